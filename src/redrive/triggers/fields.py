"""Field types every trigger-file model shares, built-in or from a plugin: templates, filters, durations.

An action kind's config model (``redrive.ActionKind.config``) uses these so its templates compile when the file
is loaded and its durations read like the rest of the file (``30s``, ``5m``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, PlainValidator

from redrive.durations import parse_duration, parse_rate
from redrive.triggers.templating import Filter, Template, compile_filter, compile_template, compile_tree


class StrictModel(BaseModel):
    """A trigger-file block: unknown fields are refused, values are frozen, aliases and names both accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
"""Events per second, written ``50/s``, ``600/m``, ``100/h`` or as a number per second."""


def _compile_template(value: object) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return compile_template(value)


def _source_tree(value: Any) -> Any:
    if isinstance(value, Template):
        return value.source
    if isinstance(value, dict):
        return {k: _source_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_source_tree(v) for v in value]
    return value


TemplateStr = Annotated[Template, PlainValidator(_compile_template), PlainSerializer(lambda t: t.source)]
TemplateTree = Annotated[Any, PlainValidator(compile_tree), PlainSerializer(_source_tree)]
FilterExpr = Annotated[
    Filter,
    PlainValidator(lambda v: v if isinstance(v, Filter) else compile_filter(str(v))),
    PlainSerializer(lambda f: f.source),
]
