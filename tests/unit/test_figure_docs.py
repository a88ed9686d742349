"""The README's table of what the numbers mean says, word for word, what the code counts: every ``*_MEANS``
definition (written once, next to its query) appears in it, and nothing in the table is not one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from redrive.failures import error_groups
from redrive.observe import stats

README = Path(__file__).resolve().parents[2] / "README.md"
DEFINITIONS = {
    f"{module.__name__}.{name}": value
    for module in (stats, error_groups)
    for name, value in vars(module).items()
    if name.endswith("_MEANS")
}


def _table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### What the numbers mean", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[-1].removesuffix(" |") for line in section.splitlines() if line.startswith("| ")][1:]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_the_readme_states_every_definition(name: str) -> None:
    assert DEFINITIONS[name] in _table(), f"add {name} to the README's 'What the numbers mean' table"


def test_the_readme_table_states_nothing_else() -> None:
    rows = _table()
    assert len(rows) >= 18
    assert [row for row in rows if row not in DEFINITIONS.values()] == []
