"""The plugin manager: redrive's built-in plugins, the installed ones (``redrive`` entry points), and what they are.

``load_plugins`` builds a pluggy manager for the project ``redrive`` with the hooks of ``redrive.hookspecs``,
registers ``DEFAULT_PLUGINS`` (redrive's own actions, signature schemes, hints and alert channels), then every
installed plugin of the ``redrive`` entry-point group that ``REDRIVE_PLUGINS`` lets in, then the plugin objects a
caller passes (tests do), and reads the registry once. Nothing happens at import time: ``create_app`` and the CLI
call it.

A plugin that fails to import, implements a hook that does not exist, or registers a clashing kind stops startup
with one ``PluginError`` line naming it and the error.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from redrive import hookspecs
from redrive.errors import PluginError
from redrive.registry import CLASSIFIER, Registry

ENTRY_POINT_GROUP = "redrive"
DEFAULT_PLUGINS = (
    "redrive.actions.http",
    "redrive.actions.command",
    "redrive.actions.email",
    "redrive.actions.python",
    "redrive.ingest.signatures",
    "redrive.failures.hints",
    "redrive.alerts.channels",
)
"""redrive's own behaviour, registered through the same hooks as any plugin (module names, imported on load)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin as ``redrive plugins ls`` and ``GET /api/v1/plugins`` show it."""

    name: str
    version: str | None
    hooks: list[str]
    builtin: bool


class Plugins:
    """The plugin manager, the registry read from it, and where each plugin came from."""

    def __init__(self, manager: pluggy.PluginManager, versions: dict[str, str | None], builtins: set[str]) -> None:
        from redrive.registry import Registry  # the action machinery: not for commands that need none

        self.manager = manager
        self.registry = Registry(manager)  # registers the built-in classifier last, so it runs last
        self._versions = versions
        self._builtins = builtins | {CLASSIFIER}

    def describe(self) -> list[PluginInfo]:
        """Every plugin: name, version, the hooks it implements; built-ins first."""
        from redrive import __version__

        found = []
        for name, plugin in self.manager.list_name_plugin():
            hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ())
            builtin = name in self._builtins
            version = __version__ if builtin else self._versions.get(name)
            found.append(PluginInfo(name, version, hooks, builtin))
        return sorted(found, key=lambda p: (not p.builtin, p.name))

    def names(self) -> list[str]:
        """The names of the registered plugins, as they appear under ``/api/v1/plugins/{name}/``."""
        return [name for name, _ in self.manager.list_name_plugin()]


def plugin_name(plugin: object) -> str:
    """The name a directly given plugin is registered under: a module's or a class's name, else ``name``."""
    if isinstance(plugin, ModuleType) or inspect.isclass(plugin):
        return str(plugin.__name__)
    return str(getattr(plugin, "name", None) or type(plugin).__name__)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} cannot be registered: {_one_line(exc)}") from None


def _allowed(installed: Iterable[EntryPoint], setting: str | None) -> list[EntryPoint]:
    points = {point.name: point for point in installed}
    if setting is None:
        return list(points.values())
    wanted = [name.strip() for name in setting.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in points]
    if unknown:
        have = ", ".join(sorted(points)) or "none"
        raise PluginError(f"REDRIVE_PLUGINS names {', '.join(unknown)}, not installed (installed: {have})")
    return [points[name] for name in wanted]


def _installed(
    manager: pluggy.PluginManager, setting: str | None, installed: Iterable[EntryPoint] | None
) -> dict[str, str | None]:
    """Register the installed plugins ``setting`` (REDRIVE_PLUGINS) allows; their versions by name."""
    versions: dict[str, str | None] = {}
    found = entry_points(group=ENTRY_POINT_GROUP) if installed is None else installed
    for point in _allowed(found, setting):
        try:
            plugin: Any = point.load()
        except Exception as exc:  # whatever the import raised: one line, not a traceback
            raise PluginError(f"plugin {point.name!r} ({point.value}) failed to load: {_one_line(exc)}") from None
        _register(manager, plugin, point.name)
        versions[point.name] = point.dist.version if point.dist is not None else None
    return versions


def _checked(manager: pluggy.PluginManager) -> pluggy.PluginManager:
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or plugin_name(exc.plugin)
        raise PluginError(f"plugin {name!r} implements a hook redrive does not have: {_one_line(exc)}") from None
    return manager


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def load_plugins(
    setting: str | None = None, extra: Sequence[object] = (), *, installed: Iterable[EntryPoint] | None = None
) -> Plugins:
    """Build the manager: the built-ins, the installed plugins ``setting`` (REDRIVE_PLUGINS) allows, then ``extra``.

    ``installed`` replaces the entry points found in the environment (a test names its own). Raises PluginError.
    """
    manager = _manager()
    for module in DEFAULT_PLUGINS:
        _register(manager, importlib.import_module(module), module)
    versions = _installed(manager, setting, installed)
    for plugin in extra:
        _register(manager, plugin, plugin_name(plugin))
    return Plugins(_checked(manager), versions, set(DEFAULT_PLUGINS))


def command_plugins(setting: str | None = None) -> pluggy.PluginManager:
    """The installed plugins only, for the CLI to ask for their commands before any command runs: the built-ins add
    none, and importing them (the actions, the HTTP client) would slow every ``redrive`` call. Raises PluginError."""
    manager = _manager()
    _installed(manager, setting, None)
    return _checked(manager)


@functools.cache
def builtin_registry() -> Registry:
    """A registry of redrive's built-ins only: what ``parse_config`` validates against when given none (tests,
    tools). Built on first use and kept, since building its models takes a while; the app and the CLI build theirs."""
    return load_plugins("").registry
