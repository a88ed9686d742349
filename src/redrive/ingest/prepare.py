"""Prepare an event: parse, pick the idempotency key, filter, render the ordering key; values in, a ``NewEvent`` out
(no I/O).

The ordering key (``ordering.key`` of an ordered trigger) is rendered here, once, and stored on the execution: the
claim never renders templates. Storing it is ``ingest.store``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from redrive.destinations.keys import DestinationKey
from redrive.destinations.policy import Seed
from redrive.errors import FilterError, InvalidIdempotencyKey, InvalidJson, InvalidOrderingKey, NumberOutOfRange
from redrive.observe.redaction import Redactor
from redrive.triggers.config import TriggerConfig
from redrive.triggers.runtime import action_context
from redrive.triggers.templating import RenderError

MAX_KEY_LENGTH = 255
MAX_JSON_DEPTH = 64
INTEGERS = (-(2**63), 2**64 - 1)
"""The integers a payload may hold: what orjson reads and writes exactly (past them it reads a double, rounded)."""
# Every digit a '0', a minus sign kept, anything else a space: in that text, the shortest spellings of an integer
# outside INTEGERS are 20 digits (2**64 has 20), or a minus and 19 (-2**63 - 1). A 19-digit id (a snowflake) is not one.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x2D else 0x20 for b in range(256))
_TWENTY_DIGITS, _MINUS_NINETEEN = b"0" * 20, b"-" + b"0" * 19


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to store."""

    trigger_id: int
    action_kind: str
    idempotency_key: str | None
    body_sha256: str
    headers: dict[str, str]
    payload: Any
    filtered: bool
    received_at: datetime
    accept_key_conflicts: bool
    ordering_key: str | None = None
    ordering_blocks: bool = False
    """Its trigger orders with ``on_dead_letter: block``: a dead earlier row of its key holds it (it parks)."""
    destination: str | None = None
    """What its execution's action talks to (``redrive.destinations.keys``)."""
    seed: Seed | None = None
    """Set when ``destination`` was rendered and its row must exist from the first claim (its trigger's limits)."""


def parse_payload(body: bytes) -> Any:
    """Parse a JSON body, raising InvalidJson with the parser's reason (or because it nests too deep)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from exc
    # Only a body with more brackets than the limit can nest deeper than it: most never pay for the walk.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        check_depth(payload)
    # orjson reads an integer outside INTEGERS as the nearest double, without a word: the payload stored would not be
    # the one sent. Only a body with such a run of digits can hold one (found in about a microsecond per kilobyte);
    # such a body is read again by the standard library, which sees each integer's digits.
    digits = body.translate(_DIGITS)
    if _TWENTY_DIGITS in digits or _MINUS_NINETEEN in digits:
        json.loads(body, parse_int=_exact_integer)
    return payload


def _exact_integer(digits: str) -> int:
    """An integer of a payload, read from its digits; NumberOutOfRange when it is outside INTEGERS."""
    low, high = INTEGERS
    if len(digits.lstrip("-")) <= 20 and low <= (value := int(digits)) <= high:
        return value
    raise _out_of_range(digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)")


def _out_of_range(shown: str) -> NumberOutOfRange:
    low, high = INTEGERS
    return NumberOutOfRange(
        f"the payload holds the integer {shown}, outside the range redrive carries exactly ({low} to {high}); "
        "send it as a string"
    )


def check_numbers(payload: Any) -> None:
    """Raise NumberOutOfRange for an integer outside INTEGERS or a number too large for a double anywhere in
    ``payload``: for a payload read by another parser than ``parse_payload``'s (the events API's)."""
    low, high = INTEGERS
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not low <= node <= high:  # a bool is within
            raise _out_of_range(str(node) if node.bit_length() <= 128 else f"of {node.bit_length()} bits")
        elif isinstance(node, float) and not math.isfinite(node):
            raise NumberOutOfRange("the payload holds a number too large for a double; send it as a string")


def check_depth(payload: Any) -> None:
    """Raise InvalidJson when objects and arrays nest more than MAX_JSON_DEPTH levels deep."""
    stack = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(f"the JSON nests more than {MAX_JSON_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _lookup(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if isinstance(node, dict):  # JSON objects are dicts; an ABC check costs more than the lookup
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def extract_key(sources: list[str], headers: Mapping[str, str], payload: Any) -> str | None:
    """The first present key among ``sources`` (``header:Name`` or ``body:dotted.path``); None when none is."""
    for source in sources:
        where, _, name = source.partition(":")
        value = headers.get(name.lower()) if where == "header" else _lookup(payload, name)
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            continue
        key = str(value)
        if not key:
            continue
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidIdempotencyKey(
                f"the idempotency key from {source} is {len(key)} characters long; "
                f"at most {MAX_KEY_LENGTH} are allowed",
            )
        return key
    return None


def ordering_key(trigger: TriggerConfig, payload: Any, headers: Mapping[str, str]) -> str | None:
    """The event's ordering key when ``trigger`` orders its deliveries, else None.

    An event whose key does not render, renders empty or is longer than a column holds is refused (422
    ``invalid_ordering_key``) rather than delivered out of order: the sender learns at once, nothing is stored.
    """
    if trigger.ordering is None:
        return None
    template = trigger.ordering.key
    try:
        key = template.render({"payload": payload, "headers": headers, "trigger": {"name": trigger.name}}).strip()
    except RenderError as exc:
        raise InvalidOrderingKey(
            f"trigger {trigger.name!r} orders deliveries by a key this event lacks: {exc}"
        ) from exc
    if not key:
        raise InvalidOrderingKey(
            f"trigger {trigger.name!r} orders deliveries by {template.source!r}, which is empty for this event"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidOrderingKey(
            f"trigger {trigger.name!r}: the ordering key is {len(key)} characters long; at most {MAX_KEY_LENGTH} are "
            "allowed"
        )
    return key


def prepare(
    trigger: TriggerConfig,
    trigger_id: int,
    *,
    body: bytes,
    headers: Mapping[str, str],
    received_at: datetime,
    redactor: Redactor,
    payload: Any = None,
    key: str | None = None,
    destination: DestinationKey | None = None,
) -> NewEvent:
    """Turn a raw delivery into a NewEvent. ``headers`` must have lower-case names.

    ``payload``/``key`` are given by senders that already hold them parsed (the events API); otherwise the body
    is parsed and the key taken from the trigger's key sources. ``destination`` gives the execution's destination
    (rendered here only when it depends on the event).
    """
    if payload is None:
        payload = parse_payload(body)
    if key is None:
        key = extract_key(trigger.source.idempotency_key, headers, payload)
    filtered = False
    if trigger.source.filter is not None:
        try:
            filtered = not trigger.source.filter.matches({"payload": payload, "headers": headers})
        except RenderError as exc:
            raise FilterError(str(exc)) from exc
    stored_headers = redactor.tree(headers)  # a new dict: the caller's is left as it was
    target = None
    seed = None
    if destination is not None and not filtered:
        target = destination.fixed
        if target is None and destination.dynamic is not None:
            seed = destination.seed
            context = action_context(
                trigger.name,
                event_id=0,
                payload=payload,
                headers=stored_headers,
                idempotency_key=key,
                received_at=received_at,
            )
            target = destination.of(context)
    return NewEvent(
        trigger_id=trigger_id,
        action_kind=trigger.action.kind,
        idempotency_key=key,
        body_sha256=hashlib.sha256(body).hexdigest(),
        headers=stored_headers,
        payload=payload,
        filtered=filtered,
        received_at=received_at,
        accept_key_conflicts=trigger.source.on_key_conflict == "accept",
        ordering_key=None
        if filtered
        else ordering_key(trigger, payload, stored_headers),  # a filtered event never runs
        ordering_blocks=trigger.ordering is not None and trigger.ordering.on_dead_letter == "block",
        destination=target,
        seed=seed,
    )
