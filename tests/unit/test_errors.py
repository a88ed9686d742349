"""The exception tree: every error class is drawn in the docstring of redrive.errors, under its parent."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import redrive
from redrive import errors
from redrive.errors import RedriveError

_NODE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+) \((?P<status>\S+) (?P<code>[a-z_]+)\)")


def _drawing() -> dict[str, tuple[str | None, str, str]]:
    """Each drawn class: (its drawn parent, status, code)."""
    assert errors.__doc__ is not None
    drawn: dict[str, tuple[str | None, str, str]] = {}
    parents: list[tuple[int, str]] = []  # (depth, name) along the current branch
    for line in errors.__doc__.splitlines():
        match = _NODE.match(line.strip("\n")[4:] if line.startswith("    ") else line)
        if match is None:
            continue
        depth = len(match["indent"])
        while parents and parents[-1][0] >= depth:
            parents.pop()
        drawn[match["name"]] = (parents[-1][1] if parents else None, match["status"], match["code"])
        parents.append((depth, match["name"]))
    return drawn


def _every_error_class() -> list[type[RedriveError]]:
    # Import every module (the dashboard's pages run Streamlit calls, and the dashboard defines no errors), so a
    # subclass defined anywhere else in redrive is found and fails the test below.
    for module in pkgutil.walk_packages(redrive.__path__, "redrive."):
        if not module.name.startswith(("redrive.dashboard", "redrive.db.migrations")):
            importlib.import_module(module.name)
    found: list[type[RedriveError]] = []
    todo = [RedriveError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_lives_in_errors_and_is_drawn_under_its_parent() -> None:
    drawn = _drawing()
    classes = _every_error_class()
    assert len(classes) > 30
    for cls in classes:
        where = cls.__module__
        assert where == "redrive.errors", f"{cls.__qualname__} is defined outside the tree (in {where})"
        assert cls.__name__ in drawn, f"{cls.__name__} is missing from the drawing in redrive.errors"
        parent, status, code = drawn[cls.__name__]
        expected_parent = None if cls is RedriveError else cls.__mro__[1].__name__
        assert parent == expected_parent, f"{cls.__name__} is drawn under {parent}, but subclasses {expected_parent}"
        assert code == cls.code, f"{cls.__name__} is drawn with code {code}, but has {cls.code}"
        if "/" not in status:  # HttpError's status is the framework's
            assert status == str(cls.status), f"{cls.__name__} is drawn with status {status}, but has {cls.status}"
    assert set(drawn) == {cls.__name__ for cls in classes}, "the drawing names a class that does not exist"


def test_each_class_has_a_code_of_its_own() -> None:
    classes = _every_error_class()
    for cls in classes:
        assert "code" in vars(cls), f"{cls.__name__} inherits its code; give it one of its own"
    codes = [cls.code for cls in classes]
    shared = {code for code in codes if codes.count(code) > 1}
    assert not shared, f"two classes share the code(s) {sorted(shared)}"


def test_a_code_cannot_be_made_up_where_an_error_is_raised() -> None:
    with pytest.raises(TypeError):
        errors.InvalidRequest("x", code="made_up")  # type: ignore[call-arg]
