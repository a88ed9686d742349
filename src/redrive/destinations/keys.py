"""The destination of a trigger's executions: what its action talks to, fixed when the execution row is made.

- ``http``: ``scheme://host:port`` of the URL (default ports filled in, the host lower-cased);
- ``email``: ``smtp://host:port`` of the SMTP server;
- any other kind: what its ``ActionKind.destination`` says, else ``trigger:<name>``;
- a trigger's own ``destination: "{{ ... }}"`` template wins over all of these.

A key that does not depend on the event is computed once per trigger (``DestinationKey.fixed``), so ingest pays
nothing for it; a templated one (the trigger's template, or an http URL whose host is a template) is rendered per
event at ingest. Its templates see ``payload``, ``headers``, ``trigger`` and ``event`` (whose ``id`` is 0 there:
the event is not stored yet). A template that fails to render gives ``trigger:<name>``; the execution itself then
fails on the same template when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from redrive.destinations.policy import Seed
from redrive.triggers.templating import RenderError

MAX_LENGTH = 255
DEFAULT_PORTS = {"http": 80, "https": 443}

Dynamic = Callable[[Mapping[str, Any]], str | None]
"""A destination that depends on the event: the template context in, the key out (None: the trigger's)."""


def origin(url: str) -> str | None:
    """``scheme://host:port`` of ``url`` (None when it has no host or an unknown scheme without a port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host:
        return None
    port = port if port is not None else DEFAULT_PORTS.get(scheme)
    if port is None:
        return None
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def trigger_destination(name: str) -> str:
    """The destination of a trigger whose action names none: the trigger itself."""
    return f"trigger:{name}"


@dataclass(frozen=True, slots=True)
class DestinationKey:
    """How one trigger's executions get their destination: ``fixed``, or ``dynamic`` per event."""

    fixed: str | None
    dynamic: Dynamic | None = None
    fallback: str = ""
    seed: Seed | None = None
    """A dynamic key's row is made with each execution, when its trigger's policy must hold from the first claim."""

    def of(self, context: Mapping[str, Any]) -> str | None:
        """The destination for an event whose template context is ``context`` (only read when dynamic)."""
        if self.fixed is not None or self.dynamic is None:
            return self.fixed
        try:
            key = self.dynamic(context)
        except RenderError:
            return self.fallback
        return key[:MAX_LENGTH] if key else self.fallback

    def seeded(self, seed: Seed | None) -> DestinationKey:
        """This key, its rows made with ``seed`` when it is dynamic (a fixed one's row is made at worker start)."""
        return replace(self, seed=seed) if self.fixed is None and seed is not None else self


def destination_key(name: str, declared: Any, from_kind: str | Dynamic | None) -> DestinationKey:
    """The key of trigger ``name``: its ``destination`` template (``declared``) first, then its kind's answer."""
    fallback = trigger_destination(name)
    if declared is not None:
        source: str = declared.source
        if "{{" not in source and "{%" not in source:
            return DestinationKey(source.strip()[:MAX_LENGTH] or fallback)
        return DestinationKey(None, lambda context: str(declared.render(context)).strip(), fallback)
    if callable(from_kind):
        return DestinationKey(None, from_kind, fallback)
    return DestinationKey(from_kind[:MAX_LENGTH] if from_kind else fallback)


def url_destination(url: Any) -> str | Dynamic | None:
    """The destination of an http-like action whose URL template is ``url``: fixed unless its host is templated."""
    source: str = url.source
    head = source.split("/", 3)[:3] if "://" in source else [source]
    if any("{{" in part or "{%" in part for part in head):
        return lambda context: origin(str(url.render(context)))
    return origin(source)
