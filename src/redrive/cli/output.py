"""How commands print: the consoles, markup escaping and tables.

rich is imported at first use, not with the command: ``redrive --help`` never prints through it.

Tables follow where they go. On a terminal they are rich tables whose cells wrap (fold) and are never cut. Piped or
redirected (stdout is not a terminal) they are plain text: one header line, then one line per row, columns aligned
and separated by two spaces, every value whole and verbatim, so ``grep``, ``awk`` and ``cut`` see full ids and
codes. ``--json`` prints the API's JSON instead, wherever stdout goes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

GAP = "  "


@cache
def console(*, stderr: bool = False) -> Console:
    """The rich Console for stdout (or stderr): no emoji codes, soft wrap, so values come out verbatim."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, emoji=False)


class _LazyConsole:
    """Stands for ``console(stderr=...)`` and builds it at first use (methods only: pass ``console()`` itself
    where rich wants a Console object)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(console(stderr=self._stderr), name)


if TYPE_CHECKING:
    out: Console
    err: Console
else:
    out = _LazyConsole(stderr=False)
    err = _LazyConsole(stderr=True)


def escape(text: str) -> str:
    """``text`` with rich markup escaped, to print a value verbatim inside markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def plain_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows as aligned plain-text columns, every value whole (the last column is not padded)."""
    lines = [list(columns), *([" ".join(str(cell).splitlines()) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        GAP.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print a table: rich on a terminal (cells fold, never cut), plain aligned columns when piped."""
    if not sys.stdout.isatty():
        print(plain_table(columns, rows))
        return
    from rich.table import Table

    table = Table(*columns)
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    out.print(table)
