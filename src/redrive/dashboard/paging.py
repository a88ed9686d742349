"""Paging a list a page at a time in one browser session: the cursors of the pages before the one shown, a stack
in Streamlit's session state. The first page has none; going forward pushes the cursor the API gave for the next
page, going back pops one, and a changed filter starts again from the first page. The buttons take the bound
methods as their callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import streamlit as st

C = TypeVar("C", int, str)


@dataclass(frozen=True, slots=True)
class CursorStack(Generic[C]):
    """The cursors of the pages before the one shown, kept under ``key`` in the session."""

    key: str

    def first(self) -> None:
        """Back to the first page."""
        st.session_state[self.key] = []

    def forward(self, cursor: C) -> None:
        """To the page that starts at ``cursor``."""
        st.session_state.setdefault(self.key, []).append(cursor)

    def back(self) -> None:
        """To the page before (none before the first)."""
        if st.session_state.get(self.key):
            st.session_state[self.key].pop()

    @property
    def depth(self) -> int:
        """How many pages come before the one shown."""
        return len(st.session_state.get(self.key, []))

    @property
    def current(self) -> C | None:
        """The cursor of the page shown (None: the first)."""
        cursors: list[C] = st.session_state.setdefault(self.key, [])
        return cursors[-1] if cursors else None
