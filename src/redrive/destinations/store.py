"""The destinations' statements: the claim's plan for restricted destinations, recording outcomes, operator actions.

Every decision is taken with the destination's row locked (``FOR UPDATE`` on PostgreSQL; SQLite's single writer
serialises them anyway), inside the transaction that acts on it: the claim that takes probes or spends tokens, the
completion that counts an outcome, the operator's force. So exactly one transaction, on one node, decides each
transition, and every node reads the result; the limits hold across processes and nodes because the running
count and the token bucket are read and spent under the same lock. Each transition is written to
``breaker_transitions`` and audited (actor ``breaker`` for the breaker's own decisions) in that transaction.

Rows not ``restricted`` (closed, unlimited, not ramping or paced) cost a claim nothing but one read of the
restricted ones, which is empty when nothing is limited or broken.

A writer transaction reads each destination's row once and saves it once (``_Held``): a claim and a completion batch
in one transaction (most of them, under load) share the row the first one locked, and every change made to it is
written at the transaction's end (``db.writer.LAST_WRITES``). The lock is taken by the first read, as before, and
held to the commit either way; what goes is a read and an update per destination for every job after the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from operator import attrgetter
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from redrive.db.engine import dialect_insert
from redrive.db.lists import in_list
from redrive.db.many import many, run_of
from redrive.db.schema import breaker_transitions, destinations, executions
from redrive.db.writer import before_commit
from redrive.destinations.breaker import (
    HALF_OPEN,
    OPEN,
    Allowance,
    Change,
    Destination,
    Observed,
    Policy,
    force,
    latency_fold,
    observe,
    plan,
    quiet,
    take,
)
from redrive.destinations.holding import held, holds_claims
from redrive.destinations.policy import Seed
from redrive.extensions import BreakerTransition
from redrive.failures.audit import record
from redrive.states import ExecutionStatus

TRANSITIONS_RETENTION = timedelta(days=30)
"""How long breaker transitions are kept (purged by the leader's retention pass)."""
CONCURRENCY_RECHECK = 0.05
"""Seconds before a claim looks again at a destination whose concurrency is all taken (a slot may free on any
node; locally the worker is woken at once)."""
BREAKER_ACTOR = "breaker"
EVT = {"open": "breaker_opened", "half_open": "breaker_half_open", "closed": "breaker_closed"}
PolicyOf = Callable[[str, str | None], Policy]
"""A destination's policy by its name and, for a templated one, the trigger its row names."""
_FIELDS = tuple(f.name for f in fields(Destination))
_UNBOUND = tuple((name, name) for name in _FIELDS)
_BOUND = tuple((f"v_{name}", name) for name in _FIELDS)  # the saving update's parameters (``_update``)
_READ = attrgetter(*_FIELDS)  # a Destination's fields of a named row, in order


def load(row: Any) -> Destination:
    """The destination of a row that has its fields as columns (SQLAlchemy's ``Row`` or ``db.many``'s named tuple)."""
    return Destination(*_READ(row))


def _values(d: Destination, now: datetime, prefix: str = "") -> dict[str, Any]:
    names = _BOUND if prefix else _UNBOUND
    values = {bound: getattr(d, name) for bound, name in names}  # shallow: asdict() deep-copies, a visible cost here
    values[f"{prefix}restricted"] = d.restricted(now)
    values[f"{prefix}updated_at"] = now
    return values


@cache
def _update() -> Any:
    columns: dict[str, Any] = {
        name: bindparam(f"v_{name}") for name in (*_FIELDS, "restricted", "updated_at") if name != "name"
    }
    return update(destinations).where(destinations.c.name == bindparam("v_name")).values(**columns)


def _write(connection: Connection, rows: Sequence[tuple[Destination, datetime]]) -> None:
    """Write ``rows`` back, each as of its moment; a row no longer restricted has its laned executions unlaned first
    (``unlane``). On SQLite the rows go to the driver as tuples (``db.many``): a restricted destination's row is
    written at the end of nearly every writer transaction, and SQLAlchemy's work on its 23 parameters cost more than
    SQLite's update."""
    run_of(
        connection,
        "destinations.update",
        _update(),
        [_values(unlane(connection, d, now), now, "v_") for d, now in rows],
    )


@dataclass(slots=True)
class _Held:
    """The destinations' rows a writer transaction has locked, as it has changed them: each is read once, by the
    first job that needs it, and written once, when every job has run (``before_commit``)."""

    rows: dict[str, Destination] = field(default_factory=dict)
    changed: dict[str, datetime] = field(default_factory=dict)  # the rows to write, each with its last change's moment

    def write(self, connection: Connection) -> None:
        """Write the changed rows now (they stay held, unchanged since)."""
        _write(connection, [(self.rows[name], now) for name, now in sorted(self.changed.items())])
        self.changed.clear()


def _held(connection: Connection) -> _Held | None:
    """The rows the open writer transaction holds; None outside one (reads and saves then go to the table)."""
    return before_commit(connection, "destinations", _Held, lambda c, kept: kept.write(c))


def settle(connection: Connection, *, forget: bool = False) -> None:
    """Write what the writer transaction has changed in the rows it holds now, for a statement that reads or updates
    the table itself; ``forget``: and let the rows go (the statement changes them: the next job reads them again)."""
    kept = _held(connection)
    if kept is not None:
        kept.write(connection)
        if forget:
            kept.rows.clear()


def _save(connection: Connection, rows: Sequence[Destination], now: datetime) -> None:
    """Save ``rows`` (locked): in a writer transaction, kept to be written at its end; elsewhere, written now."""
    kept = _held(connection)
    if kept is None:
        _write(connection, [(d, now) for d in rows])
        return
    for d in rows:
        kept.rows[d.name] = d
        kept.changed[d.name] = now


# A destination's lane. Its due rows wait in ix_executions_due's claim range until a claim finds the destination
# capped with more due than it may take: then the claim lanes them (``dest_waiting``), out of the range every other
# claim reads, and claims the destination through its own range of ix_executions_destination, laned or not, from
# then on. Each claim lanes only what fell due since the last one (``laned_to``), so a held destination's backlog is
# laned once, not walked on every claim. Laning and unlaning run under the destination's row lock (the claim's plan
# locks it, as every save does), so a claim never lanes after the release that unlanes, and no row is stranded in
# the lane of a destination no claim takes one by one. Only pending rows are laned: a lease unlanes the rows it
# takes, so a row that comes back pending (a retry, a held attempt, a lease swept) comes back unlaned, and the
# unlaning never waits on a running row, which a completion locks before its destination (that order, reversed,
# would deadlock on PostgreSQL). A row that falls due behind ``laned_to`` (an ingest that committed late, a held
# attempt given back) stays in the free range, which skips the destination's rows by name: it costs a step, never
# a delivery.
_LANED_FROM = datetime(1970, 1, 1, tzinfo=UTC)
LANE_AFTER = 100
"""Unlaned due rows a capped destination may leave in the free range before a claim lanes them: the most rows of
it any other claim steps over."""


@dataclass(frozen=True, slots=True)
class _LaneStatements:
    lane: Any  # the destination's unlaned due rows that fell due after ``l_after``
    unlane: Any  # every laned row of the destination (pending: a lease unlanes the rows it takes)


@cache
def _lane_statements() -> _LaneStatements:
    name = bindparam("l_destination", type_=executions.c.destination.type)

    def unlaned(table: Any) -> list[ColumnElement[bool]]:
        after, now = (bindparam(p, type_=executions.c.run_at.type) for p in ("l_after", "l_now"))
        return [
            table.c.destination == name,
            table.c.status == ExecutionStatus.PENDING,
            table.c.key_waiting == false(),
            table.c.dest_waiting == false(),
            table.c.run_at > after,
            table.c.run_at <= now,
        ]

    # Only a backlog is laned: a destination that keeps up (a few rows due between claims) is cheaper stepped over
    # than written twice. The count reads at most LANE_AFTER entries of the range; below it the UPDATE lanes nothing.
    counted = executions.alias("counted")
    backlog = select(func.count()).select_from(
        select(counted.c.id).where(*unlaned(counted)).limit(bindparam("l_after_rows")).subquery()
    )
    lane = (
        update(executions)
        .where(*unlaned(executions), backlog.scalar_subquery() >= bindparam("l_after_rows"))
        .values(dest_waiting=True)
    )
    unlane = (
        update(executions)
        .where(
            executions.c.destination == name,
            executions.c.status == ExecutionStatus.PENDING,
            executions.c.dest_waiting == true(),
        )
        .values(dest_waiting=False)
    )
    return _LaneStatements(lane=lane, unlane=unlane)


def lane(connection: Connection, d: Destination, now: datetime) -> Destination:
    """Lane the rows of ``d`` (locked) that fell due since it last was, when they are ``LANE_AFTER`` or more; ``d``
    laned up to ``now`` then, as it was otherwise."""
    params = {"l_destination": d.name, "l_after": d.laned_to or _LANED_FROM, "l_now": now, "l_after_rows": LANE_AFTER}
    laned = connection.execute(_lane_statements().lane, params).rowcount
    return replace(d, laned_to=now) if laned else d


def unlane(connection: Connection, d: Destination, now: datetime) -> Destination:
    """``d`` (locked) as it is saved: when it is no longer restricted, its laned rows back in the free range."""
    if d.laned_to is None or d.restricted(now):
        return d
    connection.execute(_lane_statements().unlane, {"l_destination": d.name})
    return replace(d, laned_to=None)


def _ensure(connection: Connection, names: Iterable[str], now: datetime) -> None:
    insert = dialect_insert(connection)
    rows = [{**_values(Destination.new(name, now), now)} for name in sorted(names)]
    if rows:
        connection.execute(insert(destinations).on_conflict_do_nothing(index_elements=["name"]), rows)


def seed_rows(connection: Connection, seeds: Mapping[str | None, Seed | None], now: datetime) -> None:
    """Make the rows of templated destinations with their first executions (``redrive.destinations.policy.Seed``):
    restricted at once when their trigger has limits, naming the trigger whose policy their claims apply. A row
    that exists is left as it is (``ON CONFLICT DO NOTHING``: no lock taken, so ingest never waits on a claim),
    unless it names no trigger (``_adopt``).

    Made here rather than guessed by the claim: a claim reads only the restricted rows (one indexed read, empty
    when nothing is limited or broken), and finding the destinations of a limited trigger's due executions that
    have no row would be a scan of the queue on every claim; the row costs the limited triggers' ingest one insert
    per batch, and unlimited ones nothing.
    """
    rows = []
    for name, seed in sorted(seeds.items(), key=lambda item: item[0] or ""):
        if name is not None and seed is not None:
            policy = seed.policy
            d = replace(
                Destination.new(name, now), trigger=seed.trigger, concurrency=policy.concurrency, rate=policy.rate
            )
            rows.append(_values(d, now))
    if rows:
        insert = dialect_insert(connection)
        connection.execute(insert(destinations).on_conflict_do_nothing(index_elements=["name"]), rows)
        _adopt(connection, [(row["name"], seeds[row["name"]]) for row in rows], now)


def _unadopted(trigger: Any, limited: Any, among: Any = None) -> ColumnElement[bool]:
    """A row its trigger's seed has not shaped: it names no trigger (and, with ``among``, is one of those names), or
    it names ``trigger`` but is not restricted though the trigger now has limits (they were added after the row was
    made: a restart's config)."""
    orphan: ColumnElement[bool] = destinations.c.trigger.is_(None)
    if among is not None:
        orphan = and_(orphan, destinations.c.name.in_(among))
    unrestricted = and_(destinations.c.trigger == trigger, destinations.c.restricted.is_(False), limited)
    return or_(orphan, unrestricted)


@cache
def _adoption() -> Any:
    limited = bindparam("a_limited", type_=Boolean())
    return (
        update(destinations)
        .where(destinations.c.name == bindparam("a_name"), _unadopted(bindparam("a_trigger"), limited))
        .values(
            trigger=bindparam("a_trigger"),
            concurrency=bindparam("a_concurrency"),
            rate=bindparam("a_rate"),
            restricted=or_(destinations.c.restricted, limited),
            updated_at=bindparam("a_now"),
        )
    )


def _adopt(connection: Connection, seeded: Sequence[tuple[str, Seed | None]], now: datetime) -> int:
    """Shape the rows of ``seeded`` that their seed has not (``_unadopted``): name the trigger, restricted when its
    policy limits them; how many.

    Such a row was made before its trigger's seed could shape it: by an operator forcing the destination before its
    first event, by outcomes counted while the trigger declared no limits or breaker of its own, before migration
    0013, or under an earlier config whose trigger had no limits yet. A claim applies the policy of the trigger a row
    names and reads only restricted rows, so without this the trigger's limits never applied there. Only such rows
    are locked, each once: afterwards it is shaped.
    """
    params = [
        {
            "a_name": name,
            "a_trigger": seed.trigger,
            "a_concurrency": seed.policy.concurrency,
            "a_rate": seed.policy.rate,
            "a_limited": seed.policy.limited,
            "a_now": now,
        }
        for name, seed in seeded
        if seed is not None
    ]
    if not params:
        return 0
    settle(connection, forget=True)  # it updates rows a job may hold
    return int(connection.execute(_adoption(), params).rowcount)


def adopt_queued(seeds: Mapping[int, Seed], now: datetime) -> Callable[[Connection], int]:
    """A write job for the worker's start: ``_adopt``, for each templated trigger with a seed (``seeds``, by trigger
    id), the rows naming no trigger that its queued (pending or running) executions go to, and, when it has limits,
    the rows naming it that are not restricted (limits added since they were made), so a backlog made before is
    claimed within them; how many rows were adopted. One read of the queue per such trigger."""

    def job(connection: Connection) -> int:
        adopted = 0
        for trigger_id, seed in sorted(seeds.items()):
            queued = (
                select(executions.c.destination)
                .where(
                    executions.c.status.in_((ExecutionStatus.PENDING, ExecutionStatus.RUNNING)),
                    executions.c.trigger_id == trigger_id,
                    executions.c.destination.is_not(None),
                )
                .distinct()
            )
            limited = true() if seed.policy.limited else false()
            found = select(destinations.c.name).where(_unadopted(seed.trigger, limited, among=queued))
            unshaped = connection.execute(found).scalars()
            adopted += _adopt(connection, [(name, seed) for name in unshaped], now)
        return adopted

    return job


@dataclass(frozen=True, slots=True)
class _Statements:
    restricted: Any  # the restricted rows, locked, by name
    restricted_running: Any  # SQLite: the same, each with its running executions (``running``)
    named: Any  # the rows named in ``d_names``, locked, by name
    running: Any  # running executions per destination among ``d_names``


@cache
def _statements() -> _Statements:
    # Built once with bound parameters, as the claim's are: building a statement (and its cache key) on every claim
    # and every completion batch cost more than running it.
    locked = select(destinations).order_by(destinations.c.name).with_for_update()
    running = (
        select(executions.c.destination, func.count())
        .where(executions.c.status == ExecutionStatus.RUNNING, in_list(executions.c.destination, "d_names"))
        .group_by(executions.c.destination)
    )
    counted = (
        select(func.count())
        .where(executions.c.destination == destinations.c.name, executions.c.status == ExecutionStatus.RUNNING)
        .scalar_subquery()
    )
    restricted = destinations.c.restricted.is_(True)
    return _Statements(
        restricted=locked.where(restricted),
        restricted_running=select(destinations, counted.label("running"))
        .where(restricted)
        .order_by(destinations.c.name),
        named=locked.where(in_list(destinations.c.name, "d_names")),
        running=running,
    )


def _locked(connection: Connection, query: Any, names: Sequence[str] = ()) -> list[Destination]:
    return [load(row) for row in connection.execute(query, {"d_names": list(names)} if names else {})]


def _locked_or_new(connection: Connection, names: list[str], now: datetime) -> list[Destination]:
    """The rows of ``names``, locked; the missing ones made first (a row is made once: no insert on later calls).
    In a writer transaction, a row it holds already is not read again."""
    kept = _held(connection)
    known = kept.rows if kept is not None else {}
    wanted = [name for name in names if name not in known]
    rows = _locked(connection, _statements().named, wanted) if wanted else []
    missing = set(wanted) - {d.name for d in rows}
    if missing:
        _ensure(connection, missing, now)
        rows = _locked(connection, _statements().named, wanted)
    if kept is None:
        return rows
    known.update((d.name, d) for d in rows)
    return [known[name] for name in sorted(names)]


def _transitions(
    connection: Connection, name: str, changes: Sequence[Change], now: datetime, actor: str | None
) -> list[BreakerTransition]:
    made = [BreakerTransition(name, c.from_state, c.to_state, c.reason, now, actor) for c in changes]
    if made:
        connection.execute(
            breaker_transitions.insert(),
            [
                {
                    "destination": t.destination,
                    "from_state": t.from_state,
                    "to_state": t.to_state,
                    "reason": t.reason,
                    "actor": t.actor,
                    "at": t.at,
                }
                for t in made
            ],
        )
        if actor is None:  # an operator's action is audited by the action itself
            for t in made:
                record(
                    connection,
                    at=now,
                    actor=BREAKER_ACTOR,
                    action=EVT[t.to_state],
                    target=f"destination:{name}",
                    result="ok",
                    detail={"from": t.from_state, "to": t.to_state, "reason": t.reason},
                )
    return made


def _running(connection: Connection, names: Sequence[str]) -> dict[str, int]:
    return {row[0]: row[1] for row in connection.execute(_statements().running, {"d_names": list(names)})}


@dataclass(slots=True)
class ClaimPlan:
    """What a claim may take from each restricted destination; ``commit`` spends what it took."""

    allowances: dict[str, int] = field(default_factory=dict)
    """Destinations a claim must not take freely, each with how many executions it may take now."""
    next_at: datetime | None = None
    """When a held destination may let more through (the worker wakes then)."""
    transitions: list[BreakerTransition] = field(default_factory=list)
    _rows: dict[str, tuple[Destination, Destination]] = field(default_factory=dict)  # as read, as planned

    @property
    def restricted(self) -> bool:
        """Whether the plan found any destination restricted."""
        return bool(self._rows)

    @property
    def laned(self) -> frozenset[str]:
        """Destinations with laned rows: a claim takes them through their own range, whatever their allowance."""
        return frozenset(name for name, (_, planned) in self._rows.items() if planned.laned_to is not None)

    def lane(self, connection: Connection, name: str, now: datetime) -> None:
        """Lane the due rows of the planned destination ``name`` (``lane``): it had more due than it could take."""
        before, planned = self._rows[name]
        self._rows[name] = (before, lane(connection, planned, now))

    @property
    def probing(self) -> frozenset[str]:
        """Destinations half-open after planning: what a claim takes from them is their probes."""
        return frozenset(name for name, (_, planned) in self._rows.items() if planned.state == HALF_OPEN)

    def commit(self, connection: Connection, taken: Mapping[str | None, int], now: datetime) -> None:
        """Spend the tokens of what was claimed and save the planned rows that changed."""
        rows = [take(planned, taken.get(name, 0)) for name, (_, planned) in self._rows.items()]
        read = {name: before for name, (before, _) in self._rows.items()}
        _save(connection, [d for d in rows if d != read[d.name] or d.restricted(now) is not True], now)


def plan_claim(connection: Connection, policy_of: PolicyOf, now: datetime) -> ClaimPlan:
    """Lock the restricted destinations and work out what a claim may take from each (transitions included).

    On SQLite the read counts each one's running executions too. On PostgreSQL they are counted in a statement of
    their own, after the locks are granted: a statement that waited for a lock still reads the snapshot it began with,
    so a count made in it would miss the leases of the claim it waited for, and the concurrency limit would not hold.
    """
    statements = _statements()
    running: dict[str, int] = {}
    if connection.dialect.name == "sqlite":  # the writer transaction is the only one: its snapshot is the newest
        # Through the compiled text (``db.many``): SQLAlchemy's result for this one row of 24 columns cost 90 us of
        # the writer's per claim, SQLite's read of it 11.
        found = many(connection, "destinations.restricted_running", statements.restricted_running).typed(connection, {})
        rows = [load(row) for row in found]
        running = {row.name: row.running for row in found}
    else:
        rows = _locked(connection, statements.restricted)
    kept = _held(connection)
    if kept is not None:
        rows = _as_held(kept, rows)
    result = ClaimPlan()
    if not rows:
        return result
    uncounted = [d.name for d in rows if d.name not in running]
    if uncounted:
        running.update(_running(connection, uncounted))
    for d in rows:
        planned, allowance, changes = plan(d, policy_of(d.name, d.trigger), running.get(d.name, 0), now)
        result._rows[d.name] = (d, planned)
        result.transitions += _transitions(connection, d.name, changes, now, None)
        if allowance.count is not None:
            result.allowances[d.name] = allowance.count
        wake = _wake(allowance, now)
        if wake is not None and (result.next_at is None or wake < result.next_at):
            result.next_at = wake
    return result


def _as_held(kept: _Held, rows: Sequence[Destination]) -> list[Destination]:
    """The restricted ``rows`` as read, seen through what the writer transaction holds (``kept``): a row it holds as
    it has it, and a row whose change is not written yet restricted or not as that change left it; the rows read are
    held from now on."""
    merged = {d.name: kept.rows.get(d.name, d) for d in rows}
    for name, at in kept.changed.items():
        d = kept.rows[name]
        if d.restricted(at):
            merged[name] = d
        else:
            merged.pop(name, None)
    kept.rows.update(merged)
    return [merged[name] for name in sorted(merged)]


def _wake(allowance: Allowance, now: datetime) -> datetime | None:
    if allowance.count != 0:
        return None
    return allowance.next_at or now + timedelta(seconds=CONCURRENCY_RECHECK)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recorded attempt at a destination, with the policy of the trigger it ran for."""

    destination: str
    observed: Observed
    policy: Policy
    probe: bool = False  # the attempt was a half-open breaker's probe, as its claim leased it (``holding``)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What counting outcomes came to: the breakers' transitions, and which outcomes (by index) are held by an
    open breaker, not charged (``redrive.destinations.holding``)."""

    transitions: list[BreakerTransition]
    held: frozenset[int] = frozenset()


def record_outcomes(connection: Connection, outcomes: Sequence[Outcome], now: datetime) -> Recorded:
    """Count attempts' outcomes at their destinations and take the breakers' decisions, rows locked; say which
    outcomes completed into an open breaker and are held.

    A healthy destination's quiet outcomes (``_count_quietly``) are counted by one update of its row; the others'
    rows are read, decided on and saved."""
    by_name: dict[str, list[int]] = {}
    for index, outcome in enumerate(outcomes):
        by_name.setdefault(outcome.destination, []).append(index)
    names = sorted(by_name)
    counted = _count_quietly(connection, [[outcomes[i] for i in by_name[name]] for name in names], now)
    made: list[BreakerTransition] = []
    changed: list[Destination] = []
    kept: set[int] = set()
    for d in _locked_or_new(connection, names[counted:], now):
        seen = [outcomes[i] for i in by_name[d.name]]
        updated, changes = observe(d, [o.observed for o in seen], seen[0].policy, now)
        changed.append(updated)
        made += _transitions(connection, d.name, changes, now, None)
        if holds_claims(d) or holds_claims(updated) or any(c.to_state == OPEN for c in changes):
            flags = held(d, [(o.observed, o.probe) for o in seen], seen[0].policy, now)
            kept.update(i for i, flag in zip(by_name[d.name], flags, strict=True) if flag)
    _save(connection, changed, now)
    return Recorded(made, frozenset(kept))


@cache
def _quiet_count() -> Any:
    latency = destinations.c.latency_ms
    return (
        update(destinations)
        .where(
            destinations.c.name == bindparam("q_name"),
            destinations.c.restricted.is_(False),  # so closed and not forced (``Destination.restricted``)
            destinations.c.window_start > bindparam("q_since", type_=destinations.c.window_start.type),
        )
        .values(
            window_total=destinations.c.window_total + bindparam("q_total"),
            consecutive_failures=0,
            latency_ms=case(
                (latency.is_(None), bindparam("q_fresh")), else_=latency * bindparam("q_keep") + bindparam("q_add")
            ),
            updated_at=bindparam("q_now", type_=destinations.c.updated_at.type),
        )
    )


def _count_quietly(connection: Connection, seen: Sequence[Sequence[Outcome]], now: datetime) -> int:
    """Count, in order, the outcomes ``seen`` at each destination (sorted by name) while they are quiet at a
    healthy row, each by one update; how many destinations were counted so (the rest are the caller's).

    Quiet outcomes (no transient failure, no stated wait: ``breaker.quiet``) at a row that is not restricted (its
    column, ``Destination.restricted`` as of its last save: so closed, not forced, not limited, ramping or paced)
    and whose window does not roll now change only its counters and moving latency, exactly as ``observe`` would:
    so the update counts them where the row stands, without reading it, when the row is so (its ``WHERE``), and
    touches nothing otherwise. On PostgreSQL that is one round trip instead of a locked read and a save, on every
    completion batch at a healthy destination, the usual case; the update locks the row as the read would.

    A pace that has run out since the row was saved leaves it restricted in the column until a save clears it: such
    a row is counted the long way, which clears it. A row the writer transaction holds is counted with the rows it
    holds, and a destination with limits is not tried at all: its row is restricted for as long as the limits
    apply, so the update could only miss (a statement, and on PostgreSQL a round trip, for nothing). The first
    destination not counted here ends the run: the caller locks it and those after it, in the same name order as
    always (no deadlock).
    """
    kept = _held(connection)
    statement = _quiet_count()
    for done, outcomes in enumerate(seen):
        observed = [one.observed for one in outcomes]
        name = outcomes[0].destination
        policy = outcomes[0].policy
        held = kept is not None and name in kept.rows
        if policy.limited or held or any(one.probe for one in outcomes) or not quiet(observed):
            return done
        fresh, keep, add = latency_fold(observed)
        params = {
            "q_name": name,
            "q_since": now - timedelta(seconds=policy.window),  # observe's window, not rolling
            "q_total": len(observed),
            "q_fresh": fresh,
            "q_keep": keep,
            "q_add": add,
            "q_now": now,
        }
        if connection.execute(statement, params).rowcount != 1:
            return done
    return len(seen)


def declare(names: Iterable[str], now: datetime) -> Callable[[Connection], None]:
    """A write job: a row for every destination the trigger file names, closed, as its first outcome would make it
    (a row that exists is left as it is). Run at start-up, so every destination known up front is a row the list
    reads with the others, in the database's order, before anything has gone there."""

    def job(connection: Connection) -> None:
        _ensure(connection, names, now)

    return job


def sync_limits(limited: Mapping[str, Policy], now: datetime) -> Callable[[Connection], None]:
    """A write job: make sure each destination with limits has a restricted row before the first claim."""

    def job(connection: Connection) -> None:
        _ensure(connection, limited, now)
        settle(connection, forget=True)  # it updates rows a job may hold
        connection.execute(
            update(destinations)
            .where(destinations.c.name.in_(sorted(limited)), destinations.c.restricted.is_(False))
            .values(restricted=True, updated_at=now)
        )

    return job


Action = Literal["open", "close", "reset"]


def force_job(
    name: str, action: Action, actor: str, now: datetime
) -> Callable[[Connection], tuple[dict[str, Any], BreakerTransition]]:
    """A write job: an operator forces ``name`` open or closed, or resets it; audited; returns the row and the
    transition."""

    def job(connection: Connection) -> tuple[dict[str, Any], BreakerTransition]:
        (d,) = _locked_or_new(connection, [name], now)
        updated, change = force(d, action, now)
        _save(connection, [updated], now)
        (made,) = _transitions(connection, name, [change], now, actor)
        record(
            connection,
            at=now,
            actor=actor,
            action=f"destination_{action}",
            target=f"destination:{name}",
            result="ok",
            detail={"from": change.from_state, "to": change.to_state},
        )
        return describe(updated, now), made

    return job


def describe(d: Destination, now: datetime, window: float = 60.0) -> dict[str, Any]:
    """A destination as the API shows it."""
    total, failed = d.failure_rate(now, window)
    return {
        "name": d.name,
        "state": d.state,
        "forced": d.forced,
        "changed_at": d.changed_at.isoformat(),
        "reopen_at": d.reopen_at.isoformat() if d.reopen_at else None,
        "cooldown_s": d.cooldown,
        "consecutive_failures": d.consecutive_failures,
        "attempts_in_window": round(total, 1),
        "failure_rate": round(failed / total, 3) if total else None,
        "latency_ms": round(d.latency_ms, 1) if d.latency_ms is not None else None,
        "limits": {"rate": d.rate, "concurrency": d.concurrency},
        "ramping": d.ramp_start is not None,
        "paced_until": d.paced_until.isoformat() if d.paced_until and d.paced_until > now else None,
    }


def purge_transitions(before: datetime) -> Callable[[Connection], int]:
    """A write job: delete the breaker transitions older than ``before``; how many went."""

    def job(connection: Connection) -> int:
        query = delete(breaker_transitions).where(breaker_transitions.c.at < before)
        return int(connection.execute(query).rowcount)

    return job
