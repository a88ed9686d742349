"""The plugin manager and the registry: built-ins as plugins, entry points, REDRIVE_PLUGINS, clashes, the trigger
file validated against the registry (a plugin's kind exactly like a built-in one), classification and hints."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Literal

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

import redrive
from plugin_echo import EchoBoom, EchoPlugin
from redrive.cli.plugins import add_plugin_commands
from redrive.errors import ConfigError, InvalidSignature, PluginError
from redrive.failures.classify import Failure, permanent
from redrive.plugins import DEFAULT_PLUGINS, load_plugins
from redrive.triggers.config import parse_config

SRC = Path(redrive.__file__).parent


def problems(text: str, **options: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={}, **options)
    return [(p.path, p.message) for p in caught.value.problems]


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="redrive")


def test_the_built_ins_are_plugins_registered_through_the_hooks() -> None:
    plugins = load_plugins("")
    registry = plugins.registry
    assert set(registry.kinds) == {"http", "command", "email", "python"}
    assert set(registry.schemes) == {"standard-webhooks", "github", "stripe", "hmac"}
    assert registry.hints["http_404"].title == "Wrong URL"
    described = {info.name: info for info in plugins.describe()}
    assert set(DEFAULT_PLUGINS) <= set(described)
    http = described["redrive.actions.http"]
    assert (http.version, http.builtin, http.hooks) == (redrive.__version__, True, ["redrive_action_kinds"])
    assert described["redrive.classify"].hooks == ["redrive_classify"]


def test_nothing_is_loaded_when_redrive_plugins_is_imported() -> None:
    code = "import sys, redrive.plugins; print(sorted(m for m in sys.modules if m.startswith('redrive.actions')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_plugin_kind_validates_exactly_like_a_built_in_one() -> None:
    registry = load_plugins("", [EchoPlugin()]).registry
    ok = parse_config("triggers: [{name: e, action: {kind: echo, message: 'hi {{ payload.x }}'}}]", registry=registry)
    assert ok.triggers[0].action.message.source == "hi {{ payload.x }}"
    plugin = problems("triggers: [{name: e, action: {kind: echo, message: hi, times: 0}}]", registry=registry)
    builtin = problems("triggers: [{name: e, action: {kind: http, url: 'http://x', timeout: soon}}]", registry=registry)
    assert plugin[0][0] == "triggers[0].action.times"
    assert builtin[0][0] == "triggers[0].action.timeout"
    extra = problems("triggers: [{name: e, action: {kind: echo, message: hi, colour: red}}]", registry=registry)
    assert extra == [("triggers[0].action.colour", "Extra inputs are not permitted")]


def test_an_unknown_kind_lists_the_known_kinds_plugins_included() -> None:
    registry = load_plugins("", [EchoPlugin()]).registry
    [(path, message)] = problems("triggers: [{name: e, action: {kind: pigeon}}]", registry=registry)
    assert path == "triggers[0].action"
    for kind in ("http", "command", "email", "python", "echo"):
        assert f"'{kind}'" in message
    # Without the plugin, its kind is unknown like any other.
    [(_, without)] = problems("triggers: [{name: e, action: {kind: echo, message: hi}}]")
    assert "'echo'" not in without.split("expected tags:")[1]


class Tagged(BaseModel):
    scheme: Literal["tagged"]
    token: str


def check_tagged(config: Tagged, body: bytes, headers: Any, now: float) -> None:
    if headers.get("x-token") != config.token:
        raise InvalidSignature("the X-Token header does not match")


class TaggedScheme:
    @redrive.hookimpl
    def redrive_signature_schemes(self) -> list[redrive.SignatureScheme]:
        return [redrive.SignatureScheme("tagged", Tagged, check_tagged, "header:X-Tag-Id", ("token",))]


def test_a_plugin_scheme_gets_its_key_header_and_its_secret_masked() -> None:
    registry = load_plugins("", [TaggedScheme()]).registry
    config = parse_config(
        "triggers: [{name: s, source: {verify: {scheme: tagged, token: '${TOKEN}'}}, action: {kind: command, "
        "argv: ['true']}}]",
        env={"TOKEN": "sesame-open"},
        registry=registry,
    )
    assert config.triggers[0].source.idempotency_key[0] == "header:X-Tag-Id"
    assert "sesame-open" in config.secrets
    [(path, _)] = problems(
        "triggers: [{name: s, source: {verify: {scheme: tagged}}, action: {kind: command, argv: ['true']}}]",
        registry=registry,
    )
    assert path == "triggers[0].source.verify.token"


def test_a_plugin_that_fails_to_import_is_named_in_one_line() -> None:
    with pytest.raises(PluginError) as caught:
        load_plugins(None, installed=[point("broken", "no_such_module_for_redrive:plugin")])
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("plugin 'broken' (no_such_module_for_redrive:plugin) failed to load:")
    assert "ModuleNotFoundError" in caught.value.message


def test_redrive_plugins_restricts_what_loads_and_refuses_what_is_not_installed() -> None:
    installed = [point("echo", "plugin_echo"), point("broken", "no_such_module_for_redrive:plugin")]
    loaded = load_plugins("echo", installed=installed)
    assert "echo" in loaded.names()
    assert "broken" not in loaded.names()
    assert "broken" not in load_plugins("", installed=installed).names()
    with pytest.raises(PluginError, match=r"REDRIVE_PLUGINS names slack, not installed \(installed: broken, echo\)"):
        load_plugins("echo, slack", installed=installed)


class Twice:
    @redrive.hookimpl
    def redrive_action_kinds(self) -> list[redrive.ActionKind]:
        return [redrive.ActionKind("http", Tagged, lambda c: c, lambda r: "")]


class Misnamed:
    @redrive.hookimpl
    def redrive_action_kinds(self) -> list[redrive.ActionKind]:
        return [redrive.ActionKind("other", Tagged, lambda c: c, lambda r: "")]


class Typo:
    @redrive.hookimpl
    def redrive_action_kind(self) -> list[redrive.ActionKind]:
        return []


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (Twice(), "action kind 'http' is registered twice"),
        (Misnamed(), "action kind 'other': its config model needs the field kind: Literal['other']"),
        (Typo(), "plugin 'Typo' implements a hook redrive does not have"),
    ],
)
def test_a_plugin_that_registers_something_unusable_stops_startup(plugin: object, message: str) -> None:
    with pytest.raises(PluginError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_plugins("", [plugin])


class Override:
    """Answers for ``http`` timeouts only; returns None for everything else."""

    @redrive.hookimpl
    def redrive_classify(self, kind: str, exc: BaseException) -> Failure | None:
        return permanent("no_patience", "we do not wait") if kind == "http" and isinstance(exc, TimeoutError) else None


class Broken:
    @redrive.hookimpl
    def redrive_classify(self, kind: str, exc: BaseException) -> Failure | None:
        raise RuntimeError("the classifier plugin is broken")


def test_the_classify_hook_runs_before_the_kind_rules_which_run_before_the_generic_ones() -> None:
    plain = load_plugins("", [EchoPlugin()]).registry
    assert not plain.overrides
    assert plain.classify("http", TimeoutError()).code == "timeout"  # the http kind's rule
    assert plain.classify("echo", EchoBoom("x")).code == "echo_boom"  # the plugin kind's own rule
    assert plain.classify("echo", ValueError("x")).code == "action_error"  # the generic rules, last
    later = plain.classify("echo", redrive.TransientError("soon", retry_after=7))
    assert (later.category, later.code, later.retry_after) == ("transient", "transient_error", 7)
    overridden = load_plugins("", [EchoPlugin(), Override()]).registry
    assert overridden.overrides
    assert overridden.classify("http", TimeoutError()).code == "no_patience"
    assert overridden.classify("command", TimeoutError()).code == "timeout"  # None: the next rule decides
    broken = load_plugins("", [Broken()]).registry
    assert broken.classify("http", ConnectionRefusedError()).code == "connection_refused"


def test_a_plugin_hint_is_found_through_the_registry() -> None:
    registry = load_plugins("", [EchoPlugin()]).registry
    assert registry.hint_for("echo_boom").title == "The echo chamber collapsed"
    assert registry.hint_for("http_503").title == "Upstream outage"  # the built-in catalog is still there
    assert load_plugins("").registry.hint_for("echo_boom").title == "Unrecognised failure"


def test_classify_imports_no_client_library() -> None:
    tree = ast.parse((SRC / "failures" / "classify.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in {"aiohttp", "aiosmtplib"}}


def test_no_redrive_module_lists_the_action_kinds() -> None:
    # A new kind is one plugin module: no list of kinds elsewhere to extend.
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if '"http", "command", "email"' in text or 'Literal["http", "command"' in text:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_a_plugin_adds_cli_commands_through_the_hook() -> None:
    cli = typer.Typer()

    @cli.command("version")
    def version() -> None:
        """A command of redrive's own (two commands make typer show sub-commands)."""

    add_plugin_commands(cli, load_plugins("", [EchoPlugin()]))
    result = CliRunner().invoke(cli, ["echo-hello", "ada"])
    assert (result.exit_code, result.output) == (0, "hello ada from echo\n")
