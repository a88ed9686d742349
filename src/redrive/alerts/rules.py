"""Alert rules and channel entries as the trigger file declares them (``alerts:`` and ``channels:``).

A rule names one condition (``when:``, see ``redrive.alerts.conditions``), the triggers it watches (all by default),
the channels it notifies and how often to repeat while firing. ``cross_check`` finds what a model alone cannot: a
rule naming a trigger or channel that is not declared, a ``trigger`` channel pointing nowhere, a name used twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from redrive.alerts.conditions import Condition, when_type
from redrive.errors import Problem
from redrive.triggers.fields import Duration, StrictModel

NAME = r"^[a-z0-9_-]{1,64}$"

if TYPE_CHECKING:
    When = Condition
else:
    When = when_type()


class AlertRule(StrictModel):
    name: str = Field(pattern=NAME)
    when: When
    triggers: list[str] | None = None
    """The triggers watched; None: every declared trigger."""
    notify: list[str] = Field(min_length=1)
    repeat: Duration | None = Field(None, gt=0)
    """Notify again every ``repeat`` while the rule fires; None: once per firing."""
    quiet: Duration = Field(0.0, ge=0)
    """How long the condition must stay cleared before the rule resolves (on top of the lower threshold)."""


class ChannelConfig(StrictModel):
    """What every channel entry has; a channel kind's model adds ``kind: Literal[NAME]`` and its own fields."""

    name: str = Field(pattern=NAME)


def _duplicates(section: str, items: Sequence[Any]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    found = []
    for index, item in enumerate(items):
        if item.name in seen:
            found.append((f"{section}[{index}].name", f"{section[:-1]} name {item.name!r} is declared twice"))
        seen.add(item.name)
    return found


def cross_check(source: str, rules: Sequence[AlertRule], channels: Sequence[Any], triggers: set[str]) -> list[Problem]:
    """What the rules and channels name that is not declared (each problem names the rule or channel)."""
    found = _duplicates("alerts", rules) + _duplicates("channels", channels)
    channel_names = {c.name for c in channels}
    for index, rule in enumerate(rules):
        where = f"alerts[{index}] ({rule.name})"
        for name in rule.notify:
            if name not in channel_names:
                found.append(
                    (f"{where}.notify", f"alert {rule.name!r} notifies channel {name!r}, which is not declared")
                )
        for name in rule.triggers or ():
            if name not in triggers:
                found.append(
                    (f"{where}.triggers", f"alert {rule.name!r} watches trigger {name!r}, which is not declared")
                )
    for index, channel in enumerate(channels):
        target = getattr(channel, "trigger", None)
        if getattr(channel, "kind", None) == "trigger" and target not in triggers:
            found.append(
                (
                    f"channels[{index}] ({channel.name}).trigger",
                    f"channel {channel.name!r} sends to trigger {target!r}, which is not declared",
                )
            )
    return [Problem(source, path, message) for path, message in found]
