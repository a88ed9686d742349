"""Docs tests: every setting carries a help string and the README names its ``REDRIVE_*`` variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from redrive.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
FIELDS = sorted(Settings.model_fields)


def test_settings_use_the_redrive_prefix() -> None:
    assert Settings.model_config["env_prefix"] == "REDRIVE_"
    assert FIELDS, "Settings has fields"


@pytest.mark.parametrize("field", FIELDS)
def test_every_setting_has_a_description(field: str) -> None:
    description = Settings.model_fields[field].description
    assert description
    assert description.strip()


@pytest.mark.parametrize("field", FIELDS)
def test_the_readme_names_every_setting(field: str) -> None:
    assert README.is_file(), "README.md at the repository root"
    assert f"REDRIVE_{field.upper()}" in README.read_text(encoding="utf-8")
