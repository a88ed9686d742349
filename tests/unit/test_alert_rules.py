"""The ``alerts:`` and ``channels:`` sections of the trigger file: defaults, thresholds, and problems that name the
rule or channel; and the pure state machine's hysteresis."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redrive.alerts.conditions import CONDITIONS, DeadLetters, FailureRate, Reading
from redrive.alerts.decide import AlertState, decide
from redrive.errors import ConfigError
from redrive.triggers.config import parse_config

BASE = """
triggers:
  - {name: orders, action: {kind: command, argv: ["true"]}}
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, source="redrive.yaml", env={"SLACK_URL": "https://hooks.slack.test/T0/B0/s3cr3t"})
    return [(p.path, p.message) for p in caught.value.problems]


def test_the_issue_example_parses_with_its_defaults() -> None:
    config = parse_config(
        BASE
        + """
alerts:
  - name: orders-failing
    when: {failure_rate: ">= 5%", window: 5m, min_attempts: 20, resolve_below: 2%}
    triggers: [orders]
    notify: [ops-slack, oncall-email]
    repeat: 1h
  - {name: dlq, when: {dlq_size: ">= 10"}, notify: [ops-slack]}
channels:
  - {name: ops-slack, kind: slack, url: "${SLACK_URL}"}
  - {name: oncall-email, kind: email, smtp: {host: mail.test}, to: [oncall@example.com]}
  - name: pager
    kind: webhook
    url: "https://pager.test/in"
    sign: {scheme: standard-webhooks, secret: whsec_c2VjcmV0}
  - {name: to-trigger, kind: trigger, trigger: orders}
""",
        env={"SLACK_URL": "https://hooks.slack.test/T0/B0/s3cr3t"},
    )
    rule, dlq = config.alerts
    assert isinstance(rule.when, FailureRate)
    assert (rule.when.failure_rate, rule.when.window, rule.when.min_attempts) == (0.05, 300, 20)
    assert rule.when.resolve_below == 0.02
    assert rule.repeat == 3600
    assert rule.quiet == 0
    assert isinstance(dlq.when, DeadLetters)
    assert (dlq.when.dlq_size, dlq.when.resolve_below) == (10, None)
    assert dlq.triggers is None  # every trigger
    assert [c.kind for c in config.channels] == ["slack", "email", "webhook", "trigger"]
    assert "https://hooks.slack.test/T0/B0/s3cr3t" in config.secrets  # masked wherever redrive writes text
    assert "whsec_c2VjcmV0" in config.secrets


def test_problems_name_the_rule_and_the_channel() -> None:
    found = problems(
        """
alerts:
  - {name: a, when: {failure_rate: "about 5"}, notify: [x]}
  - {name: b, when: {nothing: 1}, notify: [x]}
channels:
  - {name: x, kind: pigeon}
"""
    )
    assert found == [
        ("alerts[0] (a).when.failure_rate", "'about 5' is not a threshold; write it like '>= 5%' (a percentage)"),
        ("alerts[1] (b).when", f"'when' must name one condition: {', '.join(c.key for c in CONDITIONS)}"),
        (
            "channels[0] (x)",
            "Input tag 'pigeon' found using 'kind' does not match any of the expected tags: 'slack', 'webhook', "
            "'email', 'trigger'",
        ),
    ]


def test_references_to_undeclared_channels_and_triggers_are_problems() -> None:
    found = problems(
        """
alerts:
  - {name: a, when: {dlq_size: 1}, triggers: [refunds], notify: [nowhere]}
  - {name: a, when: {dlq_size: 1}, notify: [bot]}
channels:
  - {name: bot, kind: trigger, trigger: incident-bot}
"""
    )
    assert found == [
        ("alerts[1] (a).name", "alert name 'a' is declared twice"),
        ("alerts[0] (a).notify", "alert 'a' notifies channel 'nowhere', which is not declared"),
        ("alerts[0] (a).triggers", "alert 'a' watches trigger 'refunds', which is not declared"),
        ("channels[0] (bot).trigger", "channel 'bot' sends to trigger 'incident-bot', which is not declared"),
    ]


T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOLDS = Reading(True, False, "high")
BAND = Reading(False, False, "between")
CLEARS = Reading(False, True, "low")


def test_firing_needs_the_condition_and_resolving_needs_it_cleared() -> None:
    state = AlertState("r", "ok", T0)
    step = decide(state, BAND, T0)
    assert step.transition is None
    step = decide(state, HOLDS, T0)
    assert (step.transition, step.key, step.state.state) == ("firing", "r:1:firing", "firing")
    firing = step.state
    assert decide(firing, BAND, T0 + timedelta(seconds=5)).transition is None  # hysteresis: the band keeps it
    assert decide(firing, HOLDS, T0 + timedelta(hours=5)).transition is None  # no repeat unless asked
    resolved = decide(firing, CLEARS, T0 + timedelta(seconds=9))
    assert (resolved.transition, resolved.key, resolved.state.state) == ("resolved", "r:2:resolved", "ok")


def test_a_quiet_period_restarts_when_the_reading_leaves_the_cleared_zone() -> None:
    firing = decide(AlertState("r", "ok", T0), HOLDS, T0).state
    waiting = decide(firing, CLEARS, T0 + timedelta(seconds=10), quiet=30).state
    assert waiting.clearing_since == T0 + timedelta(seconds=10)
    interrupted = decide(waiting, BAND, T0 + timedelta(seconds=20), quiet=30).state
    assert interrupted.clearing_since is None
    again = decide(interrupted, CLEARS, T0 + timedelta(seconds=45), quiet=30)
    assert again.transition is None
    assert decide(again.state, CLEARS, T0 + timedelta(seconds=75), quiet=30).transition == "resolved"


def test_repeat_is_due_after_the_interval_since_the_last_notification() -> None:
    firing = decide(AlertState("r", "ok", T0), HOLDS, T0).state
    assert decide(firing, HOLDS, T0 + timedelta(seconds=59), repeat=60).transition is None
    repeat = decide(firing, HOLDS, T0 + timedelta(seconds=60), repeat=60)
    assert (repeat.transition, repeat.key) == ("repeat", "r:2:repeat")
    assert repeat.state.notified_at == T0 + timedelta(seconds=60)


def test_the_readme_alerts_example_is_a_valid_trigger_file() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Alerts", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    triggers = "".join(f"  - {{name: {n}, action: {{kind: command, argv: ['true']}}}}\n" for n in TRIGGERS)
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.test/x", "PAGER_SECRET": "whsec_c2VjcmV0"}
    config = parse_config(f"triggers:\n{triggers}{block}", env=env)
    assert [a.name for a in config.alerts] == ["orders-failing"]
    assert [c.kind for c in config.channels] == ["slack", "email", "webhook", "trigger"]


TRIGGERS = ("orders", "refunds", "incident-bot")


def test_every_condition_has_its_count() -> None:
    from redrive.alerts.measures import COUNTS

    assert sorted(COUNTS) == sorted(c.key for c in CONDITIONS)


def test_loading_a_trigger_file_does_not_import_the_database_layer() -> None:
    code = "import sys, redrive.triggers.config; print('sqlalchemy' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
