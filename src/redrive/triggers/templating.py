"""Templated action parameters and filters, rendered in Jinja2's immutable sandbox.

Templates come only from the trigger file (an admin's words); payload values are data passed in the context and
are never compiled, so a payload holding ``{{ ... }}`` arrives as those literal characters. ``StrictUndefined``
turns a missing field into an error instead of an empty string, and an error while rendering is a permanent
failure of the attempt, never a crash of the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RenderError(Exception):
    """A template could not be rendered for this event (missing field, type error, sandbox refusal)."""


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _refuse_private_access(ast: nodes.Template, source: str) -> None:
    # The sandbox refuses these at render time too; saying so when the file is loaded is kinder.
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(getattr(node, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise ValueError(f"template {source!r} reaches into private attribute {name!r}, which is not allowed")


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template string; plain strings without ``{{``/``{%`` render to themselves at no cost."""

    source: str
    _render: Callable[[Mapping[str, Any]], str] | None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render against the context, raising RenderError with a readable message."""
        if self._render is None:
            return self.source
        try:
            return self._render(context)
        except TemplateError as exc:
            raise RenderError(f"template {self.source!r}: {exc}") from exc
        except Exception as exc:
            raise RenderError(f"template {self.source!r}: {type(exc).__name__}: {exc}") from exc


def compile_template(source: str) -> Template:
    """Compile a template string; raise ValueError (a config error) when it is malformed or unsafe."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return Template(source, None)
    try:
        ast = _ENV.parse(source)
        _refuse_private_access(ast, source)
        compiled = _ENV.from_string(source)
    except TemplateError as exc:
        raise ValueError(f"template {source!r} does not compile: {exc}") from exc
    render = _fast_render(compiled)
    parts = _paths_only(ast)
    return Template(source, render if parts is None else _path_render(parts, render))


def _fast_render(compiled: JinjaTemplate) -> Callable[[Mapping[str, Any]], str]:
    """``compiled.render`` without its per-call copies of the environment's globals.

    Jinja keeps the globals in a ``ChainMap`` and walks it twice per render (to build the context and again for its
    key set); every string leaf of every action renders once per attempt, so that walk was most of the worker's
    templating cost. Here the globals are copied into a plain dict once and each render hands Jinja one merged dict
    as the context's data (``shared``), which is what ``render`` builds itself.
    """
    environment, name, blocks, body = compiled.environment, compiled.name, compiled.blocks, compiled.root_render_func
    fixed = dict(compiled.globals)

    def render(context: Mapping[str, Any]) -> str:
        data = {**fixed, **context}
        return environment.concat(body(new_context(environment, name, blocks, data, shared=True)))

    return render


# A template made of text and field paths alone (``{{ payload.customer.id }}``, ``/send/{{ payload.instance }}``),
# the usual action parameter, ordering key or destination, is rendered by looking the fields up directly: Jinja's
# render of one such field (a context, its globals merged, the sandbox's lookups) cost about 2.3 us, and an http
# action renders every leaf of its url, headers and body per attempt. The lookups follow the sandbox's rules where
# they are taken (``getattr`` on a dict finds its keys unless the name is one of dict's own attributes; ``[...]``
# subscripts first); anything else (a missing field, a value that is not a dict, list or string) renders through
# Jinja after all, so its result and its error are Jinja's own.
_DICT_ATTRIBUTES = frozenset(dir(dict))
_KEYS = frozenset({str, int})  # the subscripts taken directly: ``["key"]``, ``[0]`` (not ``True``, a bool)
_SUBSCRIPTED = frozenset({dict, list, str})  # the values ``[...]`` is taken on directly: JSON's, no object's own
_Path = tuple[str, tuple[tuple[bool, str | int], ...]]  # a context name, then its steps: (subscript?, key)


class _Unusual(Exception):
    """A lookup the direct path does not take: the template renders through Jinja."""


def _path(node: nodes.Node) -> _Path | None:
    """``node`` as a field path (a name, then ``.attr``, ``["key"]`` or ``[0]`` steps); None if it is anything else."""
    steps: list[tuple[bool, str | int]] = []
    while True:
        if isinstance(node, nodes.Getattr) and node.attr not in _DICT_ATTRIBUTES:
            steps.append((False, node.attr))
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and type(node.arg.value) in _KEYS:
            steps.append((True, node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            return node.name, tuple(reversed(steps))
        else:
            return None


def _paths_only(ast: nodes.Template) -> list[str | _Path] | None:
    """The template's text and field paths in order, when it holds nothing else; else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts: list[str | _Path] = []
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
        elif (path := _path(node)) is not None:
            parts.append(path)
        else:
            return None
    return parts


def _lookup(context: Mapping[str, Any], path: _Path) -> Any:
    name, steps = path
    if name not in context:
        raise _Unusual
    value = context[name]
    for subscript, key in steps:
        kind = type(value)
        if subscript and kind in _SUBSCRIPTED:
            try:
                value = value[key]
            except (TypeError, LookupError):
                raise _Unusual from None
        elif not subscript and kind is dict and key in value:
            value = value[key]
        else:
            raise _Unusual
    return value


def _path_render(
    parts: list[str | _Path], jinja: Callable[[Mapping[str, Any]], str]
) -> Callable[[Mapping[str, Any]], str]:
    if len(parts) == 1 and not isinstance(parts[0], str):  # one field alone, the usual case
        path = parts[0]

        def field(context: Mapping[str, Any]) -> str:
            try:
                return str(_lookup(context, path))
            except _Unusual:
                return jinja(context)

        return field

    def render(context: Mapping[str, Any]) -> str:
        try:
            return "".join([part if isinstance(part, str) else str(_lookup(context, part)) for part in parts])
        except _Unusual:
            return jinja(context)

    return render


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled boolean filter expression such as ``payload.event == 'messages.upsert'``."""

    source: str
    _evaluate: Callable[..., Any]

    def matches(self, context: Mapping[str, Any]) -> bool:
        """Evaluate the expression; an error while evaluating raises RenderError."""
        try:
            return bool(self._evaluate(**context))
        except TemplateError as exc:
            raise RenderError(f"filter {self.source!r}: {exc}") from exc
        except Exception as exc:
            raise RenderError(f"filter {self.source!r}: {type(exc).__name__}: {exc}") from exc


def compile_filter(source: str) -> Filter:
    """Compile a filter expression; raise ValueError when it is malformed or unsafe."""
    try:
        evaluate = _ENV.compile_expression(source, undefined_to_none=False)
        _refuse_private_access(_ENV.parse("{{ " + source + " }}"), source)
    except TemplateError as exc:
        raise ValueError(f"filter {source!r} does not compile: {exc}") from exc
    return Filter(source, evaluate)


def compile_tree(value: Any) -> Any:
    """Compile every string inside a JSON-like tree (dicts, lists, scalars) into Templates."""
    if isinstance(value, str):
        return compile_template(value)
    if isinstance(value, Mapping):
        return {key: compile_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compile_tree(item) for item in value]
    return value


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """Render a tree made by compile_tree, keeping its shape and its non-string leaves."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {key: render_tree(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_tree(item, context) for item in value]
    return value
