"""Unit tests for the trigger file (parsing, defaults, every problem listed) and the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from redrive.actions.command import CommandAction
from redrive.actions.email import EmailAction
from redrive.actions.http import HttpAction
from redrive.errors import ConfigError
from redrive.settings import Settings
from redrive.triggers.config import (
    DEFAULT_KEY_SOURCES,
    MIB,
    RedriveConfig,
    load_config,
    parse_config,
)
from redrive.triggers.templating import render_tree

REPO = Path(__file__).resolve().parents[2]

ISSUE_EXAMPLE = """\
triggers:
  - name: whatsapp-notify
    source:
      idempotency_key: ["header:Idempotency-Key", "body:data.key.id"]
      on_key_conflict: reject
      filter: "payload.event == 'messages.upsert'"
      max_body_bytes: 1048576
    action:
      kind: http
      method: POST
      url: "http://127.0.0.1:9000/send/{{ payload.instance }}"
      headers: {apikey: "${EVOLUTION_API_KEY}"}
      json: {number: "{{ payload.data.key.remoteJid }}", text: "hello"}
      timeout: 30s
    retry: {max_attempts: 8, base: 2s, factor: 2, max_delay: 10m, jitter: full}
    limits: {daily_watermark: 50}
"""
API_KEY = "evo-key-0123456789"
HTTP = "{kind: http, url: 'http://127.0.0.1:9/x'}"


def one_trigger(body: str, env: dict[str, str] | None = None) -> Any:
    """Parse a file with one trigger named ``t``; ``body`` is its YAML lines after the name (indented 4)."""
    return parse_config(f"triggers:\n  - name: t\n{body}", env=env or {}).triggers[0]


def problems(text: str, env: dict[str, str] | None = None, source: str = "redrive.yaml") -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=source, env=env or {})
    assert all(p.source == source for p in caught.value.problems)
    return [(p.path, p.message) for p in caught.value.problems]


# --- a valid file ----------------------------------------------------------------------------------------------------


def test_the_issue_example_parses() -> None:
    config = parse_config(ISSUE_EXAMPLE, source="issue.yaml", env={"EVOLUTION_API_KEY": API_KEY})
    assert [t.name for t in config.triggers] == ["whatsapp-notify"]
    trigger = config.trigger("whatsapp-notify")
    assert trigger is not None
    assert trigger.source.idempotency_key == ["header:Idempotency-Key", "body:data.key.id"]
    assert trigger.source.on_key_conflict == "reject"
    assert trigger.source.max_body_bytes == MIB
    assert trigger.source.filter is not None
    assert trigger.source.filter.matches({"payload": {"event": "messages.upsert"}, "headers": {}}) is True

    action = trigger.action
    assert isinstance(action, HttpAction)
    payload = {"instance": "inst-1", "data": {"key": {"remoteJid": "5511@s.whatsapp.net"}}}
    context = {"payload": payload}
    assert action.method.render(context) == "POST"
    assert action.url.render(context) == "http://127.0.0.1:9000/send/inst-1"
    assert {name: value.render(context) for name, value in action.headers.items()} == {"apikey": API_KEY}
    assert render_tree(action.json_body, context) == {"number": "5511@s.whatsapp.net", "text": "hello"}
    assert action.body is None
    assert action.timeout == 30.0
    assert action.connect_timeout == 5.0

    assert trigger.retry.model_dump() == {
        "max_attempts": 8,
        "base": 2.0,
        "factor": 2.0,
        "max_delay": 600.0,
        "jitter": "full",
    }
    assert trigger.limits.daily_watermark == 50
    assert config.secrets == frozenset({API_KEY})
    assert config.trigger("nope") is None


def test_the_issue_example_without_its_variable_names_it() -> None:
    assert problems(ISSUE_EXAMPLE) == [
        ("triggers[0] (whatsapp-notify).action.headers.apikey", "environment variable EVOLUTION_API_KEY is not set")
    ]


def test_the_shipped_example_stays_valid() -> None:
    config = load_config(REPO / "redrive.example.yaml")
    assert len(config.triggers) >= 3
    assert {type(t.action) for t in config.triggers} == {HttpAction, CommandAction, EmailAction}


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "redrive.yaml"
    path.write_text(ISSUE_EXAMPLE.replace("${EVOLUTION_API_KEY}", "literal-key"), encoding="utf-8")
    config = load_config(path)
    assert config.triggers[0].name == "whatsapp-notify"
    assert config.secrets == frozenset()


def test_load_config_expands_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLUTION_API_KEY", API_KEY)
    path = tmp_path / "redrive.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    assert load_config(path).secrets == frozenset({API_KEY})


def test_load_config_reports_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.source == str(path)
    assert "cannot read the file" in problem.message
    assert caught.value.code == "config_invalid"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "triggers: []\n"])
def test_an_empty_file_has_no_triggers(text: str) -> None:
    assert parse_config(text, env={}).triggers == []


def test_a_bare_triggers_key_is_not_a_list() -> None:
    # `triggers:` alone is null in YAML, which is not a list.
    assert problems("triggers:\n") == [("triggers", "Input should be a valid list")]


# --- defaults --------------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    trigger = one_trigger(f"    action: {HTTP}\n")
    assert trigger.source.idempotency_key == list(DEFAULT_KEY_SOURCES)
    assert trigger.source.on_key_conflict == "reject"
    assert trigger.source.filter is None
    assert trigger.source.max_body_bytes == 1024 * 1024
    assert trigger.retry.max_attempts == 8
    assert trigger.retry.base == 2.0
    assert trigger.retry.factor == 2.0
    assert trigger.retry.max_delay == 600.0
    assert trigger.retry.jitter == "full"
    assert trigger.limits.daily_watermark is None
    assert trigger.action.method.render({}) == "POST"
    assert trigger.action.headers == {}
    assert trigger.action.json_body is None
    assert trigger.action.timeout == 30.0


def test_command_and_email_defaults() -> None:
    command = one_trigger("    action: {kind: command, argv: [echo]}\n").action
    assert (command.env, command.cwd, command.timeout) == ({}, None, 60.0)
    email = one_trigger("    action: {kind: email, smtp: {host: h}, from: a@b, to: c@d, subject: s, text: t}\n").action
    assert (email.smtp.port, email.smtp.starttls, email.smtp.timeout) == (25, False, 30.0)


def test_an_empty_key_source_list_means_no_key() -> None:
    assert one_trigger(f"    source: {{idempotency_key: []}}\n    action: {HTTP}\n").source.idempotency_key == []


# --- every problem, with file and path -------------------------------------------------------------------------------

BAD_FILE = """\
triggers:
  - name: Bad Name
    action: {kind: http, url: "http://x/${REDRIVE_TEST_SURELY_UNSET_VAR}"}
  - name: unknown-kind
    action: {kind: ftp, url: x}
  - name: bad-source
    source: {max_body_bytes: 26214401, idempotency_key: ["cookie:x"], colour: blue}
    action: {kind: http, url: "http://x", json: {a: 1}, body: "b", timeout: 1x}
  - name: empty-argv
    action: {kind: command, argv: []}
  - name: templates
    action:
      kind: http
      url: "{{ x"
      headers:
        a: "{{ ''.__class__ }}"
        b: "{{ x._private }}"
        c: "{{ x['__class__'] }}"
  - name: bad-retry
    action: {kind: http, url: x}
    retry: {max_attempts: 0, max_delay: soon, jitter: some}
"""


def test_every_problem_is_listed_at_once_with_file_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRIVE_TEST_SURELY_UNSET_VAR", raising=False)
    path = tmp_path / "triggers.yaml"
    path.write_text(BAD_FILE, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = caught.value.problems
    assert {p.source for p in found} == {str(path)}
    expected = {
        "triggers[0] (Bad Name).action.url": "environment variable REDRIVE_TEST_SURELY_UNSET_VAR is not set",
        "triggers[0] (Bad Name).name": "String should match pattern",
        "triggers[1] (unknown-kind).action": "Input tag 'ftp' found using 'kind' does not match",
        "triggers[2] (bad-source).source.max_body_bytes": "less than or equal to 26214400",
        "triggers[2] (bad-source).source.idempotency_key": "'cookie:x' is not a key source",
        "triggers[2] (bad-source).source.colour": "Extra inputs are not permitted",
        "triggers[2] (bad-source).action.timeout": "'1x' is not a duration",
        "triggers[3] (empty-argv).action.argv": "at least 1 item",
        "triggers[4] (templates).action.url": "does not compile",
        "triggers[4] (templates).action.headers.a": "private attribute '__class__'",
        "triggers[4] (templates).action.headers.b": "private attribute '_private'",
        "triggers[4] (templates).action.headers.c": "private attribute '__class__'",
        "triggers[5] (bad-retry).retry.max_attempts": "greater than or equal to 1",
        "triggers[5] (bad-retry).retry.max_delay": "'soon' is not a duration",
        "triggers[5] (bad-retry).retry.jitter": "'full' or 'none'",
    }
    by_path = {p.path: p.message for p in found}
    assert set(by_path) == set(expected)
    for where, fragment in expected.items():
        assert fragment in by_path[where], where
    # The error's text carries one line per problem, each with the file and the path.
    lines = str(caught.value).splitlines()
    assert len(lines) == len(found)
    assert all(line.startswith(f"{path}: triggers[") for line in lines)


def test_both_json_and_body_is_a_problem_of_the_action() -> None:
    assert problems("triggers:\n  - name: t\n    action: {kind: http, url: x, json: {a: 1}, body: b}\n") == [
        ("triggers[0] (t).action", "give either 'json' or 'body', not both")
    ]


def test_url_credentials_and_an_authorization_header_are_a_problem_of_the_action() -> None:
    action = "{kind: http, url: 'https://u:p@example.com/{{ payload.x }}', headers: {authorization: 'Bearer t'}}"
    assert problems(f"triggers:\n  - name: t\n    action: {action}\n") == [
        (
            "triggers[0] (t).action",
            "give credentials either in the url (user:password@) or an Authorization header, not both",
        )
    ]
    either = "{kind: http, url: 'https://u:p@example.com/', headers: {X-Token: t}}"
    assert parse_config(f"triggers:\n  - name: t\n    action: {either}\n", env={}).triggers[0].name == "t"


def test_duplicate_names_are_a_problem() -> None:
    text = f"triggers:\n  - name: same\n    action: {HTTP}\n  - name: other\n    action: {HTTP}\n"
    text += f"  - name: same\n    action: {HTTP}\n"
    assert problems(text) == [("triggers[2] (same).name", "trigger name 'same' is declared twice")]


def test_duplicate_names_are_listed_with_the_other_problems() -> None:
    text = f"triggers:\n  - name: same\n    action: {HTTP}\n  - name: same\n    action: {{kind: http}}\n"
    paths = [path for path, _ in problems(text)]
    assert "triggers[1] (same).action.url" in paths
    assert any("declared twice" in message for _, message in problems(text))


def test_a_duplicate_name_points_at_the_second_declaration() -> None:
    text = f"triggers:\n  - name: same\n    action: {HTTP}\n  - name: same\n    action: {HTTP}\n"
    assert [path for path, _ in problems(text)] == ["triggers[1] (same).name"]


def test_a_header_named_like_an_action_kind_keeps_its_path() -> None:
    text = "triggers:\n  - name: t\n    action: {kind: http, url: x, headers: {email: '{{ x._y }}'}}\n"
    assert [path for path, _ in problems(text)] == ["triggers[0] (t).action.headers.email"]


@pytest.mark.parametrize(
    ("action", "path", "fragment"),
    [
        ("{kind: nope}", "triggers[0] (t).action", "Input tag 'nope'"),
        ("{url: x}", "triggers[0] (t).action", "Unable to extract tag"),
        ("{kind: http}", "triggers[0] (t).action.url", "Field required"),
        ("{kind: http, url: x, method: 5}", "triggers[0] (t).action.method", "must be a string"),
        ("{kind: command, argv: [echo, '{{ a._b }}']}", "triggers[0] (t).action.argv[1]", "private attribute '_b'"),
        (
            "{kind: email, smtp: {host: h}, from: a, to: [b, 5], subject: s, text: t}",
            "triggers[0] (t).action.to[1]",
            "",
        ),
        (
            "{kind: email, smtp: {host: h}, from: a, to: [], subject: s, text: t}",
            "triggers[0] (t).action.to",
            "at least 1",
        ),
        (
            "{kind: email, smtp: {host: h, port: 0}, from: a, to: b, subject: s, text: t}",
            "triggers[0] (t).action.smtp.port",
            "",
        ),
        ("{kind: http, url: x, json: {deep: ['{{ x._y }}']}}", "triggers[0] (t).action.json", "private attribute"),
    ],
)
def test_action_problems_have_precise_paths(action: str, path: str, fragment: str) -> None:
    [(where, message)] = problems(f"triggers:\n  - name: t\n    action: {action}\n")
    assert where == path
    assert fragment in message


@pytest.mark.parametrize(
    ("source", "path", "fragment"),
    [
        ("{filter: 'payload.x == ('}", "triggers[0] (t).source.filter", "does not compile"),
        ("{filter: 'payload.__class__'}", "triggers[0] (t).source.filter", "private attribute"),
        ("{on_key_conflict: maybe}", "triggers[0] (t).source.on_key_conflict", "'reject' or 'accept'"),
        ("{max_body_bytes: 0}", "triggers[0] (t).source.max_body_bytes", "greater than or equal to 1"),
        ("{idempotency_key: 'header:X'}", "triggers[0] (t).source.idempotency_key", "valid list"),
        ("{idempotency_key: ['query:id']}", "triggers[0] (t).source.idempotency_key", "not a key source"),
        ("{idempotency_key: ['header:']}", "triggers[0] (t).source.idempotency_key", "not a key source"),
        ("{idempotency_key: ['header:Bad Name']}", "triggers[0] (t).source.idempotency_key", "not a key source"),
        ("{idempotency_key: ['body:a..b']}", "triggers[0] (t).source.idempotency_key", "not a key source"),
        ("{idempotency_key: ['body:']}", "triggers[0] (t).source.idempotency_key", "not a key source"),
    ],
)
def test_source_problems_have_precise_paths(source: str, path: str, fragment: str) -> None:
    [(where, message)] = problems(f"triggers:\n  - name: t\n    source: {source}\n    action: {HTTP}\n")
    assert where == path
    assert fragment in message


@pytest.mark.parametrize("source", ["header:X-GitHub-Delivery", "header:webhook-id", "body:a.b.0.c", "body:$id"])
def test_good_key_sources(source: str) -> None:
    assert one_trigger(
        f"    source: {{idempotency_key: ['{source}']}}\n    action: {HTTP}\n"
    ).source.idempotency_key == [source]


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("github-push_2", True), ("x" * 64, True), ("x" * 65, False), ("Upper", False), ("a b", False)],
)
def test_trigger_names(name: str, ok: bool) -> None:
    text = f"triggers:\n  - name: '{name}'\n    action: {HTTP}\n"
    if ok:
        assert parse_config(text, env={}).triggers[0].name == name
    else:
        assert problems(text) == [(f"triggers[0] ({name}).name", "String should match pattern '^[a-z0-9_-]{1,64}$'")]


@pytest.mark.parametrize("max_body_bytes", [1, MIB, 25 * MIB])
def test_max_body_bytes_within_limits(max_body_bytes: int) -> None:
    trigger = one_trigger(f"    source: {{max_body_bytes: {max_body_bytes}}}\n    action: {HTTP}\n")
    assert trigger.source.max_body_bytes == max_body_bytes


def test_an_unknown_top_level_field_is_refused() -> None:
    assert problems("triggers: []\ntrigers: []\n") == [("trigers", "Extra inputs are not permitted")]


def test_a_top_level_secrets_key_is_refused() -> None:
    assert problems("triggers: []\nsecrets: [abcdefgh]\n") == [("secrets", "Extra inputs are not permitted")]


# --- YAML and the document's shape -----------------------------------------------------------------------------------


def test_a_yaml_syntax_error_reports_line_and_column() -> None:
    text = "triggers:\n  - name: t\n    action: {kind: http, url: [x\n"
    [(where, message)] = problems(text)
    assert where.startswith("line ")
    line, column = (int(part.split()[-1]) for part in where.split(","))
    assert line >= 3
    assert column >= 1
    assert message.startswith("not valid YAML: ")


def test_a_yaml_error_names_the_exact_place() -> None:
    assert problems("triggers:\n\t- name: t\n") == [
        ("line 2, column 1", "not valid YAML: found character '\\t' that cannot start any token")
    ]


@pytest.mark.parametrize("text", ["- a\n- b\n", "42\n", "just a string\n", "[triggers]\n"])
def test_a_document_that_is_not_a_mapping(text: str) -> None:
    assert problems(text) == [("", "the file must be a mapping with a 'triggers' list")]


def test_a_problem_without_a_path_prints_as_file_and_message() -> None:
    with pytest.raises(ConfigError, match=r"^file\.yaml: the file must be a mapping"):
        parse_config("- a\n", source="file.yaml", env={})


# --- ${VAR} and secrets ----------------------------------------------------------------------------------------------


def test_variables_expand_inside_strings_and_lists() -> None:
    env = {"HOST": "gw.internal", "TOKEN": "tok-123456", "WHO": "ops"}
    trigger = one_trigger(
        "    action:\n"
        "      kind: command\n"
        "      argv: [notify, '${WHO}', 'https://${HOST}/x?t=${TOKEN}']\n"
        "      env: {AUTH: 'Bearer ${TOKEN}'}\n",
        env,
    )
    assert [a.render({}) for a in trigger.action.argv] == ["notify", "ops", "https://gw.internal/x?t=tok-123456"]
    assert trigger.action.env["AUTH"].render({}) == "Bearer tok-123456"


def test_only_braced_variable_names_are_expanded() -> None:
    trigger = one_trigger("    action: {kind: command, argv: ['$HOME', '${1X}', '$${X}', '${X']}\n", {"X": "x"})
    assert [a.render({}) for a in trigger.action.argv] == ["$HOME", "${1X}", "$x", "${X"]


def test_every_missing_variable_is_listed() -> None:
    text = "triggers:\n  - name: t\n    action: {kind: command, argv: ['${A}', '${B}${C}'], env: {K: '${A}'}}\n"
    assert sorted(problems(text, {"B": "b"})) == [
        ("triggers[0] (t).action.argv[0]", "environment variable A is not set"),
        ("triggers[0] (t).action.argv[1]", "environment variable C is not set"),
        ("triggers[0] (t).action.env.K", "environment variable A is not set"),
    ]


def test_secrets_are_the_expanded_values_of_six_characters_or_more() -> None:
    env = {"LONG": "abcdef", "LONGER": "abcdefghijkl", "SHORT": "abcde", "EMPTY": "", "UNUSED": "unused-value"}
    config = parse_config(
        "triggers:\n  - name: t\n    action:\n      kind: command\n"
        "      argv: ['${LONG}', '${SHORT}', 'x${EMPTY}', '${LONGER}', 'literal-looking-secret']\n",
        env=env,
    )
    assert config.secrets == frozenset({"abcdef", "abcdefghijkl"})
    assert "secrets" not in config.model_dump()


def test_variables_are_expanded_before_templates_compile() -> None:
    # A variable's value is part of the admin's file, so it may hold template syntax itself.
    trigger = one_trigger("    action: {kind: http, url: 'http://h/${PATH_T}'}\n", {"PATH_T": "{{ payload.id }}"})
    assert trigger.action.url.render({"payload": {"id": 5}}) == "http://h/5"


def test_the_variable_mapping_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDRIVE_TEST_CONFIG_VAR", "from-process-env")
    config = parse_config(
        "triggers:\n  - name: t\n    action: {kind: http, url: 'http://h/${REDRIVE_TEST_CONFIG_VAR}'}\n"
    )
    assert config.triggers[0].action.url.render({}) == "http://h/from-process-env"
    assert config.secrets == frozenset({"from-process-env"})


# --- action details --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "expected"), [("a@example.com", ["a@example.com"]), ("[a@x.io, b@x.io]", ["a@x.io", "b@x.io"])]
)
def test_email_to_takes_a_string_or_a_list(to: str, expected: list[str]) -> None:
    action = one_trigger(
        f"    action: {{kind: email, smtp: {{host: h}}, from: r@x.io, to: {to}, subject: s, text: t}}\n"
    ).action
    assert isinstance(action, EmailAction)
    assert [address.render({}) for address in action.to] == expected
    assert action.sender.render({}) == "r@x.io"


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("5", 5.0), ("1.5", 1.5)],
)
@pytest.mark.parametrize("quoted", [False, True])
def test_durations_in_the_file(timeout: str, seconds: float, quoted: bool) -> None:
    value = f"'{timeout}'" if quoted else timeout
    trigger = one_trigger(f"    action: {{kind: http, url: x, timeout: {value}}}\n    retry: {{base: {value}}}\n")
    assert trigger.action.timeout == seconds
    assert trigger.retry.base == seconds


@pytest.mark.parametrize(
    ("value", "fragment"), [("-1", "cannot be negative"), ("true", "must be a number"), ("1x", "not a duration")]
)
def test_bad_durations_in_the_file(value: str, fragment: str) -> None:
    [(where, message)] = problems(f"triggers:\n  - name: t\n    action: {{kind: http, url: x, timeout: {value}}}\n")
    assert where == "triggers[0] (t).action.timeout"
    assert fragment in message


def test_a_huge_duration_is_a_config_problem() -> None:
    [(where, _)] = problems(f"triggers:\n  - name: t\n    action: {{kind: http, url: x, timeout: 1{'0' * 400}}}\n")
    assert where == "triggers[0] (t).action.timeout"


def test_the_config_is_immutable() -> None:
    config = parse_config(f"triggers:\n  - name: t\n    action: {HTTP}\n", env={})
    with pytest.raises(ValidationError):
        config.triggers[0].name = "other"  # type: ignore[misc]
    assert isinstance(config, RedriveConfig)


def test_a_dump_gives_back_the_template_sources() -> None:
    config = parse_config(ISSUE_EXAMPLE, env={"EVOLUTION_API_KEY": API_KEY})
    action = config.model_dump(by_alias=True)["triggers"][0]["action"]
    assert action["url"] == "http://127.0.0.1:9000/send/{{ payload.instance }}"
    assert action["json"] == {"number": "{{ payload.data.key.remoteJid }}", "text": "hello"}
    assert config.model_dump(by_alias=True)["triggers"][0]["source"]["filter"] == "payload.event == 'messages.upsert'"


# --- Settings --------------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"REDRIVE_{name.upper()}", raising=False)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./redrive.db"
    assert settings.config == Path("redrive.yaml")
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")
    assert settings.is_sqlite


def test_settings_read_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDRIVE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    clean_env.setenv("REDRIVE_PORT", "9001")
    clean_env.setenv("REDRIVE_CONFIG", "/etc/redrive/triggers.yaml")
    clean_env.setenv("REDRIVE_LOG_LEVEL", "debug")
    clean_env.setenv("REDRIVE_WORKER_CONCURRENCY", "0")
    clean_env.setenv("REDRIVE_LEASE_SECONDS", "45.5")
    clean_env.setenv("REDRIVE_WRITER_CONNECTIONS", "3")  # PostgreSQL only
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert not settings.is_sqlite
    assert settings.port == 9001
    assert settings.config == Path("/etc/redrive/triggers.yaml")
    assert settings.log_level == "debug"
    assert settings.worker_concurrency == 0
    assert settings.lease_seconds == 45.5
    assert settings.writer_connections == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("PORT", "http"),
        ("LOG_LEVEL", "verbose"),
        ("CLAIM_BATCH", "0"),
        ("LEASE_SECONDS", "1"),
        ("POLL_INTERVAL", "0"),
        ("WORKER_CONCURRENCY", "-1"),
        ("WRITER_CONNECTIONS", "0"),
        ("WRITER_CONNECTIONS", "2"),  # on the default SQLite file, which has one writer
    ],
)
def test_settings_refuse_bad_values(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(f"REDRIVE_{name}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.errors()[0]["loc"] == (name.lower(),)


def test_settings_ignore_unknown_redrive_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDRIVE_SOMETHING_ELSE", "1")
    assert Settings().port == 8000


def test_settings_can_be_given_directly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDRIVE_PORT", "9001")
    assert Settings(port=9002).port == 9002


# --- ${VAR:-default} -------------------------------------------------------------------------------------------------

DEFAULTED = (
    "triggers:\n  - name: t\n    action: {kind: http, url: '${TARGET:-http://127.0.0.1:8009}/x', allow: [127.0.0.1]}\n"
)


def test_a_default_stands_in_for_an_unset_variable_and_is_no_secret() -> None:
    config = parse_config(DEFAULTED, env={})
    assert config.triggers[0].action.url.source == "http://127.0.0.1:8009/x"
    assert config.secrets == frozenset()


def test_a_default_stands_in_for_an_empty_variable() -> None:
    assert parse_config(DEFAULTED, env={"TARGET": ""}).triggers[0].action.url.source == "http://127.0.0.1:8009/x"


def test_a_set_variable_wins_over_its_default_and_stays_a_secret() -> None:
    config = parse_config(DEFAULTED, env={"TARGET": "http://gateway.internal:9000"})
    assert config.triggers[0].action.url.source == "http://gateway.internal:9000/x"
    assert config.secrets == frozenset({"http://gateway.internal:9000"})


def test_an_empty_default_and_a_plain_variable_side_by_side() -> None:
    text = "triggers:\n  - name: t\n    action: {kind: command, argv: ['a${OPT:-}b', '${NEEDED}', '${NEEDED:-x}']}\n"
    assert [a.source for a in one_trigger(text.split("- name: t\n")[1], env={"NEEDED": "n"}).action.argv] == [
        "ab",
        "n",
        "n",
    ]
    assert problems(text) == [("triggers[0] (t).action.argv[1]", "environment variable NEEDED is not set")]


# --- problems name the trigger ---------------------------------------------------------------------------------------


def test_a_problem_names_the_trigger_by_its_name_and_its_index() -> None:
    text = f"triggers:\n  - name: a\n    action: {HTTP}\n  - name: orders\n    action: {{kind: http, url: 5}}\n"
    assert problems(text) == [("triggers[1] (orders).action.url", "must be a string")]


def test_a_trigger_without_a_name_is_named_by_its_index_alone() -> None:
    assert problems(f"triggers:\n  - action: {HTTP}\n") == [("triggers[0].name", "Field required")]
    assert [path for path, _ in problems(f"triggers:\n  - name: 5\n    action: {HTTP}\n")] == ["triggers[0].name"]


# --- ordering --------------------------------------------------------------------------------------------------------


def test_ordering_defaults_to_continue_and_compiles_its_key() -> None:
    trigger = one_trigger(f"    action: {HTTP}\n    ordering: {{key: '{{{{ payload.customer.id }}}}'}}\n")
    assert trigger.ordering.on_dead_letter == "continue"
    assert trigger.ordering.key.render({"payload": {"customer": {"id": 7}}}) == "7"
    assert one_trigger(f"    action: {HTTP}\n").ordering is None


@pytest.mark.parametrize(
    ("ordering", "path", "fragment"),
    [
        ("{key: '{{ payload.customer.id '}", "triggers[0] (t).ordering.key", "does not compile"),
        ("{key: '{{ payload._secret }}'}", "triggers[0] (t).ordering.key", "private attribute"),
        ("{key: 7}", "triggers[0] (t).ordering.key", "must be a string"),
        ("{key: k, on_dead_letter: stop}", "triggers[0] (t).ordering.on_dead_letter", "'continue' or 'block'"),
        ("{on_dead_letter: block}", "triggers[0] (t).ordering.key", "Field required"),
        ("{key: k, per: customer}", "triggers[0] (t).ordering.per", "Extra inputs"),
    ],
)
def test_ordering_problems_name_the_trigger_and_the_field(ordering: str, path: str, fragment: str) -> None:
    [(where, message)] = problems(f"triggers:\n  - name: t\n    action: {HTTP}\n    ordering: {ordering}\n")
    assert where == path
    assert fragment in message


def test_breaker_limits_and_destinations_are_validated_with_their_paths() -> None:
    text = """
triggers:
  - name: orders
    action: {kind: http, url: "https://api.example.com/orders"}
    limits: {rate: fast, concurrency: 0}
    breaker: {cooldown: 1m, max_cooldown: 10s}
destinations:
  "https://api.example.com:443": {limits: {rate: "50/x"}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    found = {(p.path, p.message.split(";")[0]) for p in caught.value.problems}
    assert found == {
        ("triggers[0] (orders).limits.rate", "'fast' is not a rate"),
        ("triggers[0] (orders).limits.concurrency", "Input should be greater than or equal to 1"),
        ("triggers[0] (orders).breaker", "max_cooldown must be at least cooldown"),
        ("destinations.https://api.example.com:443.limits.rate", "'50/x' is not a rate"),
    }
    with pytest.raises(ConfigError) as caught:
        parse_config('destinations: {"has space": {}}', env={})
    [problem] = caught.value.problems
    assert (problem.path, problem.message) == (
        "destinations",
        "destination 'has space' is not a destination name (1 to 255 characters, no spaces)",
    )


def test_breaker_and_limits_defaults() -> None:
    config = parse_config(
        """
triggers:
  - name: orders
    action: {kind: http, url: "https://api.example.com/orders"}
    limits: {rate: 600/m}
""",
        env={},
    )
    trigger = config.triggers[0]
    assert (trigger.limits.rate, trigger.limits.concurrency, trigger.destination) == (10.0, None, None)
    assert (trigger.breaker.enabled, trigger.breaker.consecutive, trigger.breaker.cooldown) == (None, 10, 5.0)
