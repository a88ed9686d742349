"""The email action: one plain-text message per attempt, sent over SMTP with aiosmtplib.

Each attempt opens its own connection (``starttls: true`` requires the upgrade, ``false`` never attempts
it), logs in when a username is configured, and sends to exactly the rendered recipients: every rendered
``from``/``to`` value must be one address, so a payload cannot add recipients with a comma. The server's final
reply is recorded; a refused recipient fails the attempt with that recipient's reply code, even when others
were accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any, ClassVar, Literal

import aiosmtplib
from pydantic import Field, field_validator

from redrive.actions.base import Outcome, Resources
from redrive.extensions import ActionKind
from redrive.failures.classify import (
    Failure,
    classify_smtp,
    permanent,
    smtp_reply,
    transient,
    with_reply,
)
from redrive.hookspecs import hookimpl
from redrive.triggers.fields import Duration, StrictModel, TemplateStr

# What sending can raise; ValueError is aiosmtplib refusing an address it cannot put on a command line.
_SEND_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError)


class SmtpConfig(StrictModel):
    host: str
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: Duration = 30.0


class EmailAction(StrictModel):
    kind: Literal["email"]
    smtp: SmtpConfig
    sender: TemplateStr = Field(alias="from")
    to: list[TemplateStr] = Field(min_length=1)
    subject: TemplateStr
    text: TemplateStr

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class EmailSender:
    """Sends one message per attempt; success is the server accepting it (250 after DATA)."""

    kind: ClassVar[str] = "email"
    __slots__ = ("_config",)

    def __init__(self, config: EmailAction) -> None:
        self._config = config

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render sender, recipients, subject and text; ``smtp`` names the server (never the password)."""
        config = self._config
        return {
            "from": config.sender.render(context),
            "to": [recipient.render(context) for recipient in config.to],
            "subject": config.subject.render(context),
            "text": config.text.render(context),
            "smtp": {"host": config.smtp.host, "port": config.smtp.port, "starttls": config.smtp.starttls},
        }

    def describe(self, rendered: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope (``from``, ``to``), the subject and the server; not the text."""
        return {
            "from": rendered["from"],
            "to": rendered["to"],
            "subject": rendered["subject"],
            "smtp": rendered["smtp"],
        }

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Connect, send, and classify the server's reply (or the error that stopped the exchange)."""
        try:
            message, sender, recipients = _message(rendered)
        except ValueError as exc:
            return Outcome(permanent("invalid_message", f"The message cannot be built: {exc}"), {})
        smtp_config = self._config.smtp
        smtp = aiosmtplib.SMTP(
            hostname=smtp_config.host,
            port=smtp_config.port,
            timeout=smtp_config.timeout,
            start_tls=smtp_config.starttls,
            username=smtp_config.username,
            password=smtp_config.password,
        )
        try:
            await smtp.connect()  # logs in when a username is configured
            try:
                refused, reply = await smtp.send_message(message, sender=sender, recipients=recipients)
            except BaseException:
                smtp.close()  # on an error or a cancellation, drop the connection without a goodbye
                raise
            await _quit(smtp)
        except _SEND_ERRORS as exc:
            return _error_outcome(exc)
        detail: dict[str, Any] = {"smtp_code": int(aiosmtplib.SMTPStatus.completed), "smtp_reply": reply}
        failure: Failure | None = None
        if refused:
            detail["refused"] = {address: [r.code, r.message] for address, r in refused.items()}
            first = next(iter(refused.values()))
            failure = classify_smtp(first.code, first.message)
        return Outcome(failure, detail, reply or None)


def _message(rendered: Mapping[str, Any]) -> tuple[EmailMessage, str, list[str]]:
    """The message and its envelope; raise ValueError for a bad address or header value."""
    sender = _one_address(rendered["from"])
    recipients = [_one_address(value) for value in rendered["to"]]
    message = EmailMessage()
    message["From"] = rendered["from"]
    message["To"] = ", ".join(rendered["to"])
    message["Subject"] = rendered["subject"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message.set_content(rendered["text"])
    return message, sender, recipients


def _one_address(value: str) -> str:
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ValueError(f"{value[:80]!r} is not exactly one email address")
    return pairs[0][1]


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    # Say goodbye politely, but the outcome was decided by the send: a failing QUIT changes nothing.
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        smtp.close()


def _error_outcome(exc: BaseException) -> Outcome:
    detail: dict[str, Any] = {}
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        detail = {"smtp_code": exc.recipients[0].code, "smtp_reply": exc.recipients[0].message}
        detail["refused"] = {r.recipient: [r.code, r.message] for r in exc.recipients}
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = {"smtp_code": exc.code, "smtp_reply": exc.message}
    excerpt = detail.get("smtp_reply") or None
    return Outcome(classify_smtp_exception(exc), detail, excerpt, error=exc)


def classify_smtp_exception(exc: BaseException) -> Failure:
    """Classify an exception raised while sending mail with aiosmtplib."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and not 400 <= exc.code <= 499:
        return permanent("smtp_auth", with_reply(f"SMTP authentication was refused ({exc.code})", exc.message))
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # includes SMTPConnectResponseError
        return smtp_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        if exc.recipients:
            first = exc.recipients[0]
            return smtp_reply(first.code, first.message)
        return permanent("smtp_error", "The SMTP server refused the recipients")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return transient("smtp_timeout", with_reply("Timed out talking to the SMTP server", str(exc)))
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return transient(
            "smtp_connect_error",
            with_reply(f"Could not reach the SMTP server ({type(exc).__name__})", str(exc)),
        )
    return permanent("smtp_error", with_reply(f"SMTP error ({type(exc).__name__})", str(exc)))


def _summary(rendered: Mapping[str, Any]) -> str:
    return ", ".join(str(to) for to in rendered.get("to", []))


@hookimpl
def redrive_action_kinds() -> list[ActionKind]:
    """The ``email`` action kind."""
    return [
        ActionKind(
            name="email",
            config=EmailAction,
            build=EmailSender,
            summary=_summary,
            classify=classify_smtp_exception,
            destination=lambda config: f"smtp://{config.smtp.host}:{config.smtp.port}",
        )
    ]
