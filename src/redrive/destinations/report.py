"""Tell the world about committed breaker transitions: a log event, a counter, the live stream, the plugins' hook.

Called by whoever committed them (the worker for the breaker's own decisions, the API for an operator's), after
the commit; the audit row and the ``breaker_transitions`` row were written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from redrive.destinations.store import EVT
from redrive.extensions import BreakerTransition
from redrive.lifecycle import BREAKER_TRANSITION, Lifecycle, breaker_transition
from redrive.observe.metrics import Metrics
from redrive.observe.stream import StreamHub

log = structlog.get_logger("redrive.destinations")


def report(
    transitions: Sequence[BreakerTransition],
    *,
    metrics: Metrics | None,
    stream: StreamHub | None,
    lifecycle: Lifecycle | None,
) -> None:
    """Log (``evt=breaker_opened|breaker_half_open|breaker_closed``), count, stream and hand to plugins."""
    for t in transitions:
        log.warning(
            EVT[t.to_state],
            destination=t.destination,
            from_state=t.from_state,
            to_state=t.to_state,
            reason=t.reason,
            actor=t.actor,
        )
        if metrics is not None:
            metrics.breaker_transition(t.destination, t.to_state)
        if stream is not None:
            stream.publish(
                "breaker",
                {
                    "destination": t.destination,
                    "from_state": t.from_state,
                    "to_state": t.to_state,
                    "reason": t.reason,
                    "actor": t.actor,
                    "at": t.at.isoformat(),
                },
            )
        if lifecycle is not None and lifecycle.wants(BREAKER_TRANSITION):
            lifecycle.notify(breaker_transition(t))
