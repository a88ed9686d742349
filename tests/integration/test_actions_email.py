"""The email action against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from redrive.actions import Outcome
from redrive.actions.email import EmailAction
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config


@dataclass
class Recorder:
    """An aiosmtpd handler that stores messages and answers RCPT with ``refuse[address]`` when given."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 2.0.0 Queued as T1"


class _EphemeralController(Controller):
    """A Controller bound to port 0: learn the real port before aiosmtpd's start-up probe connects."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextmanager
def smtp_server(handler: Recorder) -> Iterator[int]:
    controller = _EphemeralController(handler, hostname="127.0.0.1", port=0, server_hostname="smtp.test")
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def email_action(port: int, **overrides: Any) -> EmailAction:
    action_doc = {
        "kind": "email",
        "smtp": {"host": "127.0.0.1", "port": port, "timeout": "5s"},
        "from": "Redrive <redrive@example.test>",
        "to": ["{{ payload.customer }}"],
        "subject": "Order {{ payload.order }} shipped",
        "text": "Hello {{ payload.name }},\nyour order {{ payload.order }} is on its way.\n",
        **overrides,
    }
    doc = {"triggers": [{"name": "t", "action": action_doc}]}
    action = parse_config(yaml.safe_dump(doc), env={}).triggers[0].action
    assert isinstance(action, EmailAction)
    return action


PAYLOAD = {"customer": "ana@example.test", "order": "A-17", "name": "Ana"}


def send(action: EmailAction, payload: dict[str, Any] = PAYLOAD) -> Outcome:
    async def scenario() -> Outcome:
        runner = builtin_registry().build(action)
        rendered = runner.render({"payload": payload, "headers": {}, "event": {}, "trigger": {}})
        return await runner.execute(rendered, {})

    return asyncio.run(scenario())


def test_message_is_delivered_as_rendered() -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        outcome = send(email_action(port))
    assert outcome.ok, outcome
    assert outcome.detail == {"smtp_code": 250, "smtp_reply": "2.0.0 Queued as T1"}
    assert outcome.excerpt == "2.0.0 Queued as T1"
    [envelope] = handler.messages
    assert envelope.mail_from == "redrive@example.test"
    assert envelope.rcpt_tos == ["ana@example.test"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Order A-17 shipped"
    assert message["To"] == "ana@example.test"
    assert message["From"] == "Redrive <redrive@example.test>"
    assert message["Date"]
    assert message["Message-ID"].endswith("@example.test>")
    assert message.get_content().replace("\r\n", "\n") == "Hello Ana,\nyour order A-17 is on its way.\n"


def test_render_describes_the_message_without_the_password() -> None:
    action = email_action(2525, smtp={"host": "mail.test", "port": 2525, "username": "u", "password": "s3cret!"})
    rendered = builtin_registry().build(action).render({"payload": PAYLOAD, "headers": {}, "event": {}, "trigger": {}})
    assert rendered["to"] == ["ana@example.test"]
    assert rendered["subject"] == "Order A-17 shipped"
    assert rendered["smtp"] == {"host": "mail.test", "port": 2525, "starttls": False}
    assert "s3cret!" not in repr(rendered)


def test_refused_recipient_550_is_permanent() -> None:
    handler = Recorder(refuse={"ana@example.test": "550 5.1.1 No such user"})
    with smtp_server(handler) as port:
        outcome = send(email_action(port))
    assert outcome.failure is not None
    assert outcome.failure.category == "permanent"
    assert outcome.failure.code == "smtp_550"
    assert outcome.detail["smtp_code"] == 550
    assert outcome.detail["smtp_reply"] == "5.1.1 No such user"
    assert handler.messages == []


def test_refused_recipient_451_is_transient() -> None:
    handler = Recorder(refuse={"ana@example.test": "451 4.3.0 Try later"})
    with smtp_server(handler) as port:
        outcome = send(email_action(port))
    assert outcome.failure is not None
    assert outcome.failure.category == "transient"
    assert outcome.failure.code == "smtp_451"
    assert handler.messages == []


def test_one_refused_recipient_among_several_fails_the_attempt() -> None:
    handler = Recorder(refuse={"bo@example.test": "550 5.1.1 No such user"})
    with smtp_server(handler) as port:
        outcome = send(email_action(port, to=["{{ payload.customer }}", "bo@example.test"]))
    assert outcome.failure is not None
    assert outcome.failure.code == "smtp_550"
    assert outcome.detail["refused"] == {"bo@example.test": [550, "5.1.1 No such user"]}
    [envelope] = handler.messages
    assert envelope.rcpt_tos == ["ana@example.test"]


def test_a_payload_cannot_add_recipients() -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        outcome = send(email_action(port), {**PAYLOAD, "customer": "ana@example.test, mallory@evil.test"})
    assert outcome.failure is not None
    assert outcome.failure.category == "permanent"
    assert outcome.failure.code == "invalid_message"
    assert handler.messages == []


def test_a_payload_cannot_inject_headers() -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        outcome = send(email_action(port), {**PAYLOAD, "order": "1\r\nBcc: mallory@evil.test"})
    assert outcome.failure is not None
    assert outcome.failure.code == "invalid_message"
    assert handler.messages == []


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = send(email_action(port))
    assert outcome.failure is not None
    assert outcome.failure.category == "transient"
    assert outcome.failure.code == "smtp_connect_error"
    assert outcome.detail == {}
