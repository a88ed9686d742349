"""Attempts held by an open breaker: recorded as the requests they were, but not charged to the retry budget.

While a breaker is open its destination's due executions are held: they stay queued and spend no attempt. The
requests already in flight when it opens cannot be recalled, and they fail too; charged, they would spend up to the
worker's concurrency less one attempt per outage beyond the threshold and the probes, and on a tight retry budget
dead-letter executions the breaker exists to protect. So they are held like the rest.

The rule. An attempt is **held, not charged** when all three hold:

1. it failed transiently (a success or a permanent failure is charged: the destination answered);
2. when its outcome was counted at its destination (outcomes counted in completion order, a batch's earlier ones
   first), the destination already held its claims: its breaker open and not forced closed, or forced open;
3. it was not a half-open probe: its claim did not lease it from a half-open destination (``Claimed.probe``, carried
   to the completion; a probe that completes after another probe reopened the breaker is charged, as every probe
   is).

So the failure that trips the breaker is charged (it was counted while closed), and so is each probe; everything
else that completes into an open breaker is held. During an outage the charged attempts are then at most the
threshold plus the probes, whatever the concurrency.

A held attempt's execution goes back to ``pending`` with its ``run_at`` as it was (it takes its place among the
rows the breaker holds, first in line when probes go), its lease cleared, ``attempts`` (the retry budget)
untouched and ``uncharged`` one more: no backoff, no dead letter. Its attempt row is recorded as it happened, with
``charged`` false and numbered after every earlier request (``attempts + uncharged + 1``), so the execution's
attempts, the stats and the error groups show the real failure it was.

A probe is told by its claim, not by times: the claim that leases it knows the destination is half-open, under the
row's lock, on whichever node it runs; the completion may be counted on another node, with another clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from redrive.destinations.breaker import CLOSED, OPEN, Destination, Observed, Policy, observe

NOT_CHARGED = "held by the breaker: not charged"
"""How a held attempt is shown (the execution's attempts, the worker's log)."""


def holds_claims(d: Destination) -> bool:
    """Whether the destination's claims are held: its breaker open (not forced closed), or forced open."""
    return d.forced == OPEN or (d.state == OPEN and d.forced != CLOSED)


def into_open(d: Destination, seen: Sequence[Observed], policy: Policy, now: datetime) -> list[bool]:
    """For each of ``seen`` (in completion order, as ``observe`` counts them): whether it is a transient failure
    counted while ``d`` held its claims (a candidate for holding: rules 1 and 2)."""
    if not any(one.outcome == "transient" for one in seen):
        return [False] * len(seen)
    flags: list[bool] = []
    for one in seen:  # observe is pure and rolls its window once per ``now``: one at a time equals all at once
        flags.append(one.outcome == "transient" and holds_claims(d))
        d, _ = observe(d, [one], policy, now)
    return flags


def held(d: Destination, seen: Sequence[tuple[Observed, bool]], policy: Policy, now: datetime) -> list[bool]:
    """For each outcome at ``d`` (as read before counting them), with whether its attempt was a probe: whether it
    is held."""
    candidates = into_open(d, [observed for observed, _ in seen], policy, now)
    return [candidate and not probe for candidate, (_, probe) in zip(candidates, seen, strict=True)]
