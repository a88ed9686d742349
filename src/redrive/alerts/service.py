"""Wiring: build the alert engine of a running service from the trigger file's rules and channels.

The app's lifespan calls ``open_alerts`` once the node runs (leadership comes from it) and ``aclose`` on the way
out. Channels get what ``ChannelContext`` lends: HTTP POSTs through guarded sessions (the http action's egress
rules) and event submission through the normal accept path (for the ``trigger`` channel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from redrive.actions.egress import TargetPolicy, refusal
from redrive.actions.http import HttpSessions
from redrive.alerts.conditions import Scope
from redrive.alerts.engine import SEND_TIMEOUT, AlertEngine, AlertSetup
from redrive.alerts.message import Voice
from redrive.alerts.rules import AlertRule
from redrive.extensions import ChannelContext
from redrive.ingest.accept import Ingestor, accept, find_trigger
from redrive.ingest.prepare import prepare
from redrive.observe.redaction import Redactor
from redrive.registry import Registry
from redrive.triggers.config import RedriveConfig
from redrive.triggers.runtime import TriggerSet


class AlertService:
    """The engine and the resources its channels hold (HTTP sessions), closed together."""

    def __init__(self, engine: AlertEngine, sessions: HttpSessions) -> None:
        self.engine = engine
        self._sessions = sessions

    async def aclose(self) -> None:
        """Stop the loops, then close the channels' connections."""
        await self.engine.stop()
        await self._sessions.close()


def rule_scope(triggers: TriggerSet) -> Callable[[AlertRule], Scope]:
    """A rule's triggers (all declared ones unless it names some), by id and name."""

    def scope(rule: AlertRule) -> Scope:
        chosen = [t for t in triggers if rule.triggers is None or t.name in rule.triggers]
        return Scope(tuple(t.id for t in chosen), tuple(t.name for t in chosen))

    return scope


def _http_post(sessions: HttpSessions) -> Callable[[str, bytes, Mapping[str, str], Any], Any]:
    async def post(url: str, body: bytes, headers: Mapping[str, str], policy: TargetPolicy) -> int:
        refused = refusal(url, policy)
        if refused is not None:
            raise PermissionError(refused)
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT, connect=5)
        session = sessions.session(policy)
        async with session.post(
            url, data=body, headers=dict(headers), allow_redirects=False, timeout=timeout
        ) as answer:
            return answer.status  # the body is never read: a receiver cannot make redrive hold a large answer

    return post


def _submit_event(state: Ingestor, redactor: Redactor) -> Callable[[str, Mapping[str, Any], str], Any]:
    async def submit(trigger_name: str, payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        trigger = find_trigger(state, trigger_name)
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)  # the same transition: the same body
        prepared = prepare(
            trigger.config,
            trigger.id,
            body=body,
            headers={},
            received_at=state.now(),
            redactor=redactor,
            payload=dict(payload),
            key=key,
        )
        return (await accept(state, trigger, prepared)).body

    return submit


def open_alerts(
    state: Ingestor,
    config: RedriveConfig,
    registry: Registry,
    *,
    redactor: Redactor,
    public_url: str | None,
    interval: float,
    is_leader: Callable[[], bool],
    publish: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
) -> AlertService:
    """Build (not start) the alert engine for ``config``'s rules and channels."""
    sessions = HttpSessions(clock=state.now)
    context = ChannelContext(
        http_post=_http_post(sessions), submit_event=_submit_event(state, redactor), clock=state.now
    )
    channels = {c.name: registry.channels[c.kind].build(c, context) for c in config.channels}
    voice = Voice(registry.hint_for, redactor, public_url)
    setup = AlertSetup(config.alerts, channels, rule_scope(state.triggers), voice)
    engine = AlertEngine(
        state.db,
        setup,
        clock=state.now,
        is_leader=is_leader,
        interval=interval,
        metrics=state.metrics,
        publish=publish,
    )
    return AlertService(engine, sessions)
