"""Where an ordered execution stands in its key: what the execution view says about ordered delivery.

``ordering_head`` is the condition the claim adds (statements.py) so that only the head of each key is leased;
``key_lock`` names a key's advisory lock. The rest explains it to a person in the execution view: the execution's
ordering key, its trigger's ``on_dead_letter`` policy, and, while it waits, the execution it waits on (the head of
its key) and whether that head is dead, so that the key stays blocked until someone replays it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.engine import Connection

from redrive.db.lists import in_list, one_of
from redrive.db.schema import executions
from redrive.queue.parking import in_ordering_index, probe, same_key
from redrive.states import ExecutionStatus

Policy = Literal["continue", "block"]

_IN_FLIGHT = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)
_DEAD = (ExecutionStatus.FAILED_RETRYABLE.value, ExecutionStatus.FAILED.value)


def ordering_head(ordered: bool) -> ColumnElement[bool]:
    """Whether an execution may run now as far as its ordering key goes (``true()``, which vanishes, when unordered).

    A keyless row always may. A keyed row may when no earlier row of its key (same trigger) is pending or running,
    nor, for triggers in ``c_blocking_ids`` (``on_dead_letter: block``), dead-lettered or failed; and no row of its
    key is running (a lower id committed after a higher one was leased). Each test reads one index range
    (``ix_executions_ordering``: trigger, key, status, key_waiting, id): pending rows are tested unparked and parked
    apart, so the ``id`` bound stays in the range. The claim reads unparked rows only (``redrive.queue.parking``);
    this check is what keeps a row unparked early by a race from running out of order.
    """
    if not ordered:
        return true()
    other = executions.alias("same_key")
    key = same_key(other, executions)
    earlier = other.c.id < executions.c.id
    pending = other.c.status == ExecutionStatus.PENDING
    in_flight = probe(other, key, pending, other.c.key_waiting == false(), earlier)
    parked = probe(other, key, pending, other.c.key_waiting == true(), earlier)
    running = probe(other, key, other.c.status == ExecutionStatus.RUNNING)
    dead = probe(other, key, one_of(other.c.status, _DEAD), other.c.key_waiting == false(), earlier)
    blocks = in_list(executions.c.trigger_id, "c_blocking_ids")
    return or_(executions.c.ordering_key.is_(None), and_(~in_flight, ~parked, ~running, or_(~blocks, ~dead)))


def key_lock(trigger_id: int, ordering_key: str) -> int:
    """The advisory lock id of one trigger's ordering key: a signed 64-bit hash, the same in every process."""
    digest = hashlib.blake2b(f"{trigger_id}:{ordering_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def holding_statuses(policy: Policy) -> tuple[str, ...]:
    """The statuses of an earlier execution that hold back the rest of its key under ``policy``."""
    return _IN_FLIGHT + _DEAD if policy == "block" else _IN_FLIGHT


def describe(status: str, key: str, policy: Policy | None, head: tuple[int, str] | None) -> dict[str, Any]:
    """The ``ordering`` block of the execution view, from the execution's status and its key's head (id, status).

    ``state``: ``head`` (next of its key; it runs when due), ``waiting`` (behind the head, which is pending or
    running), ``blocked`` (behind a dead head, under ``block``), ``running`` or ``finished``. ``policy`` is None when
    the trigger no longer declares ordering.
    """
    view: dict[str, Any] = {"key": key, "on_dead_letter": policy, "waiting_on": None, "blocked": False}
    if status == ExecutionStatus.RUNNING:
        return view | {"state": "running"}
    if status != ExecutionStatus.PENDING:
        return view | {"state": "finished"}
    if head is None:
        return view | {"state": "head"}
    blocked = head[1] in _DEAD
    return view | {"state": "blocked" if blocked else "waiting", "waiting_on": head[0], "blocked": blocked}


def key_head(
    connection: Connection, execution_id: int, trigger_id: int, key: str, policy: Policy | None
) -> tuple[int, str] | None:
    """The execution ``execution_id`` waits on in its key (the oldest earlier one that holds the key, or one of the
    key that runs), as (id, status); None when it is the head."""
    holding = holding_statuses(policy or "continue")
    row = connection.execute(
        select(executions.c.id, executions.c.status)
        .where(
            executions.c.trigger_id == trigger_id,
            executions.c.ordering_key == key,
            in_ordering_index(executions),
            executions.c.id != execution_id,
            or_(
                and_(executions.c.status.in_(holding), executions.c.id < execution_id),
                executions.c.status == ExecutionStatus.RUNNING,
            ),
        )
        .order_by(executions.c.id)
        .limit(1)
    ).one_or_none()
    return (row.id, row.status) if row is not None else None
