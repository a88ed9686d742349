"""Pieces of README.md that tests hold to account: the Plugins section and its example plugin."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def plugins_section() -> str:
    """The README's ``## Plugins`` section, up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^## Plugins\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert found, "README.md has a '## Plugins' section"
    return found.group(1)


def example_plugin() -> str:
    """The first Python code block of the Plugins section: the complete example plugin."""
    found = re.search(r"^```python\n(.*?)^```", plugins_section(), re.MULTILINE | re.DOTALL)
    assert found, "the Plugins section shows a plugin in a ```python block"
    return found.group(1)
