"""The trigger file: models, ``${VAR}`` expansion, validation with every problem listed.

Everything is validated here, at the edge: a configuration that loads is one the engine can run, and one that does
not load reports each problem with its file and its path in the document.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from functools import reduce
from operator import or_
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from redrive.alerts.conditions import CONDITIONS
from redrive.alerts.rules import AlertRule, cross_check
from redrive.errors import ConfigError, Problem
from redrive.ingest.signatures import secret_values
from redrive.triggers.fields import Duration, FilterExpr, Rate, StrictModel, TemplateStr

if TYPE_CHECKING:
    from redrive.registry import Registry

MIB = 1024 * 1024


DEFAULT_KEY_SOURCES = (
    "header:Idempotency-Key",
    "header:webhook-id",
    "body:idempotency_key",
    "body:messageId",
    "body:data.messageId",
)
_KEY_SOURCE = re.compile(r"^(header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|body:[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*)$")


class SourceConfig(StrictModel):
    idempotency_key: list[str] = Field(default_factory=lambda: list(DEFAULT_KEY_SOURCES))
    on_key_conflict: Literal["reject", "accept"] = "reject"
    filter: FilterExpr | None = None
    max_body_bytes: int = Field(MIB, ge=1, le=25 * MIB)
    verify: Any = None
    """One of the registry's scheme models (``config_model`` puts the union here), or None."""

    @model_validator(mode="before")
    @classmethod
    def _scheme_key_first(cls, data: Any, info: ValidationInfo) -> Any:
        # A signed scheme names its own delivery id: unless the trigger lists its key sources, that id comes first.
        key_headers = (info.context or {}).get("key_headers", {})
        if isinstance(data, dict) and "idempotency_key" not in data and isinstance(data.get("verify"), dict):
            header = key_headers.get(data["verify"].get("scheme"))
            if header is not None:
                return {**data, "idempotency_key": [header, *(s for s in DEFAULT_KEY_SOURCES if s != header)]}
        return data

    @field_validator("idempotency_key")
    @classmethod
    def _key_sources(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if not _KEY_SOURCE.match(source):
                raise ValueError(f"{source!r} is not a key source; use 'header:Name' or 'body:dotted.path'")
        return sources


class RetryConfig(StrictModel):
    max_attempts: int = Field(8, ge=1, le=100)
    base: Duration = 2.0
    factor: float = Field(2.0, ge=1.0, le=10.0)
    max_delay: Duration = 600.0
    jitter: Literal["full", "none"] = "full"


class LimitsConfig(StrictModel):
    daily_watermark: int | None = Field(None, ge=1)
    rate: Rate | None = None
    """Most attempts per second started against the trigger's destination, across every node."""
    concurrency: int | None = Field(None, ge=1, le=10_000)
    """Most attempts running against the trigger's destination at once, across every node."""


class DestinationLimits(StrictModel):
    """The limits of a destination declared in the ``destinations:`` section."""

    rate: Rate | None = None
    concurrency: int | None = Field(None, ge=1, le=10_000)


class BreakerConfig(StrictModel):
    """A destination's circuit breaker (``redrive.destinations.breaker``); every field has a default."""

    enabled: bool | None = None
    """None: on for the ``http`` kind, off for the others (their destination is usually the trigger itself)."""
    failure_ratio: float = Field(0.5, gt=0, le=1)
    min_volume: int = Field(20, ge=1)
    window: Duration = Field(60.0, gt=0)
    consecutive: int = Field(10, ge=1)
    cooldown: Duration = Field(5.0, gt=0)
    max_cooldown: Duration = Field(300.0, gt=0)
    probes: int = Field(1, ge=1, le=100)
    drain_rate: Rate = 5.0
    """Where the drain after a close starts (per second); it doubles every ``drain_step`` up to the limit."""
    drain_step: Duration = Field(5.0, gt=0)
    drain_max: Rate = 1000.0
    """The drain ends here when the destination has no rate limit of its own."""

    @model_validator(mode="after")
    def _cooldowns(self) -> BreakerConfig:
        if self.max_cooldown < self.cooldown:
            raise ValueError("max_cooldown must be at least cooldown")
        return self


class DestinationConfig(StrictModel):
    """A ``destinations:`` entry: the breaker and limits of one destination, whichever trigger goes there."""

    breaker: BreakerConfig | None = None
    limits: DestinationLimits = Field(default_factory=DestinationLimits)


DAY = 86400.0


class RetentionConfig(StrictModel):
    """How long finished work is kept before the leader purges it."""

    succeeded: Duration = Field(7 * DAY, gt=0)
    dead_letter: Duration = Field(14 * DAY, gt=0)  # failed_retryable, failed and replayed executions
    keys: Duration = Field(7 * DAY, gt=0)  # events (and so their idempotency keys) no execution still needs


class OrderingConfig(StrictModel):
    """Ordered delivery per key: executions whose ``key`` renders the same run one at a time, in acceptance order."""

    key: TemplateStr
    """Rendered once when an event is accepted, against ``payload``, ``headers`` and ``trigger``."""
    on_dead_letter: Literal["continue", "block"] = "continue"
    """``continue``: a dead-lettered or failed head releases the next one; ``block``: the key waits for its replay."""


class TriggerConfig(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    source: SourceConfig = Field(default_factory=SourceConfig)
    action: Any
    """One of the registry's action kind models (``config_model`` puts the union here)."""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    ordering: OrderingConfig | None = None
    destination: TemplateStr | None = None
    """What the action talks to, when the kind's own answer (host, SMTP server, the trigger) is not the one."""
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)


_DESTINATION_NAME = re.compile(r"^\S{1,255}$")


class RedriveConfig(StrictModel):
    triggers: list[TriggerConfig] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    channels: list[Any] = Field(default_factory=list)
    """Alert channels: each one of the registry's channel kind models (``config_model`` puts the union here)."""
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    """Breakers and limits by destination name (``https://api.example.com:443``, ``smtp://mail:25``,
    ``trigger:NAME``); they win over the settings of the triggers that go there."""
    # Values substituted from ${VAR}: masked wherever redrive writes text down. Not part of the file's schema.
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def secrets(self) -> frozenset[str]:
        """Configured secret values (from ``${VAR}``) to mask in logs and stored text."""
        return self._secrets

    @field_validator("destinations")
    @classmethod
    def _destination_names(cls, value: dict[str, DestinationConfig]) -> dict[str, DestinationConfig]:
        for name in value:
            if not _DESTINATION_NAME.match(name):
                raise ValueError(f"destination {name!r} is not a destination name (1 to 255 characters, no spaces)")
        return value

    def trigger(self, name: str) -> TriggerConfig | None:
        """The trigger called ``name``, if declared."""
        return next((t for t in self.triggers if t.name == name), None)

    def channel(self, name: str) -> Any:
        """The alert channel called ``name``, if declared."""
        return next((c for c in self.channels if c.name == name), None)


# ${VAR} (must be set) or ${VAR:-default} (the default when VAR is unset or empty, as in the shell).
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Values shorter than this are too likely to appear by chance to be masked as substrings.
_MIN_SECRET_LENGTH = 6


def _expand(node: Any, path: str, env: dict[str, str], problems: list[str], found: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), env, problems, found) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}[{i}]", env, problems, found) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if default is not None and not env.get(name):
            return default  # written in the file, so not a secret
        if name not in env:
            problems.append(f"{path}\0environment variable {name} is not set")
            return ""
        found.add(env[name])  # from the environment: masked like any secret
        return env[name]

    return _VAR.sub(substitute, node)


def _union(models: Sequence[type[BaseModel]], tag: str) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[reduce(or_, models), Field(discriminator=tag)]


def config_model(
    kinds: Sequence[type[BaseModel]], schemes: Sequence[type[BaseModel]], channels: Sequence[type[BaseModel]] = ()
) -> type[RedriveConfig]:
    """The trigger-file model for these action kind, scheme and alert channel models: ``action``, ``verify`` and
    each ``channels`` entry are their unions."""
    if not kinds:
        raise ValueError("no action kind is registered")
    source: Any = SourceConfig
    if schemes:
        verify: Any = _union(schemes, "scheme")
        source = create_model("SourceConfig", __base__=SourceConfig, verify=(verify | None, None))
    trigger = create_model(
        "TriggerConfig",
        __base__=TriggerConfig,
        action=(_union(kinds, "kind"), ...),
        source=(source, Field(default_factory=source)),
    )
    fields: dict[str, Any] = {"triggers": (list[trigger], Field(default_factory=list))}
    if channels:
        fields["channels"] = (list[_union(channels, "kind")], Field(default_factory=list))  # type: ignore[misc]
    model: type[RedriveConfig] = create_model("RedriveConfig", __base__=RedriveConfig, **fields)
    return model


def _location(loc: tuple[int | str, ...], tags: dict[str, set[str]]) -> Iterator[str]:
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            yield f"[{part}]"
        # Pydantic names the chosen member of a tagged union in the location; the document has no such level.
        elif part not in tags.get(str(previous), ()) and not part.startswith("function-"):
            yield f".{part}"
        previous = part


_NAMED_INDEX = re.compile(r"^(triggers|alerts|channels)\[(\d+)\](?! \()")


def _named(path: str, raw: dict[str, Any]) -> str:
    """``path`` with the trigger's, rule's or channel's name after its index (``triggers[3] (orders).action.url``),
    when it has one."""
    match = _NAMED_INDEX.match(path)
    items = raw.get(match.group(1)) if match is not None else None
    if match is None or not isinstance(items, list) or int(match.group(2)) >= len(items):
        return path
    trigger = items[int(match.group(2))]
    name = trigger.get("name") if isinstance(trigger, dict) else None
    return f"{match.group(0)} ({name}){path[match.end() :]}" if isinstance(name, str) and name else path


def _duplicate_names(raw: dict[str, Any], source: str) -> list[Problem]:
    triggers = raw.get("triggers")
    if not isinstance(triggers, list):
        return []
    seen: set[str] = set()
    problems = []
    for index, trigger in enumerate(triggers):
        name = trigger.get("name") if isinstance(trigger, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(Problem(source, f"triggers[{index}].name", f"trigger name {name!r} is declared twice"))
            seen.add(name)
    return problems


def _channel_secrets(channel: BaseModel, fields: tuple[str, ...]) -> set[str]:
    """A channel's secrets: its ``fields``, and the ``secret``/``secrets`` of those that are blocks (``sign:``)."""
    found: set[str] = set()
    for name in fields:
        value = getattr(channel, name, None)
        if isinstance(value, BaseModel):
            found |= secret_values(value, ("secret", "secrets"))
        else:
            found |= secret_values(channel, (name,))
    return found


def parse_config(
    text: str, *, source: str = "<config>", env: dict[str, str] | None = None, registry: Registry | None = None
) -> RedriveConfig:
    """Parse and validate a trigger file's text against ``registry``'s action kinds and signature schemes (redrive's
    built-ins when not given); raise ConfigError listing every problem."""
    if registry is None:
        from redrive.plugins import builtin_registry

        registry = builtin_registry()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([Problem(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([Problem(source, "", "the file must be a mapping with a 'triggers' list")])
    problems: list[str] = []
    found: set[str] = set()
    expanded = _expand(raw, "", dict(os.environ) if env is None else env, problems, found)
    errors = [Problem(source, p.split("\0")[0], p.split("\0")[1]) for p in problems]
    errors += _duplicate_names(expanded, source)
    try:
        config = registry.config_model.model_validate(expanded, context={"key_headers": registry.key_headers})
    except ValidationError as exc:
        tags = {"action": set(registry.kinds), "verify": set(registry.schemes), "when": {c.key for c in CONDITIONS}}
        tags |= {str(index): set(registry.channels) for index in range(len(expanded.get("channels") or []))}
        for error in exc.errors(include_url=False):
            path = "".join(_location(error["loc"], tags)).lstrip(".")
            errors.append(Problem(source, path, error["msg"].removeprefix("Value error, ")))
        raise ConfigError([Problem(p.source, _named(p.path, expanded), p.message) for p in errors]) from exc
    errors += cross_check(source, config.alerts, config.channels, {t.name for t in config.triggers})
    if errors:
        raise ConfigError([Problem(p.source, _named(p.path, expanded), p.message) for p in errors])
    for channel in config.channels:
        found |= _channel_secrets(channel, registry.channels[channel.kind].secret_fields)
    for trigger in config.triggers:
        verify = trigger.source.verify
        if verify is not None:
            found |= secret_values(verify, registry.schemes[verify.scheme].secret_fields)
        action_secrets = registry.kinds[trigger.action.kind].secrets
        if action_secrets is not None:
            found |= set(action_secrets(trigger.action))
    config._secrets = frozenset(s for s in found if len(s) >= _MIN_SECRET_LENGTH)
    return config


def load_config(path: Path, registry: Registry | None = None) -> RedriveConfig:
    """Read and validate the trigger file at ``path`` (see ``parse_config``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read the file: {exc.strerror or exc}")]) from exc
    return parse_config(text, source=str(path), registry=registry)
