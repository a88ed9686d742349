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
        _refuse_private_access(_ENV.parse(source), source)
        compiled = _ENV.from_string(source)
    except TemplateError as exc:
        raise ValueError(f"template {source!r} does not compile: {exc}") from exc
    return Template(source, _fast_render(compiled))


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
