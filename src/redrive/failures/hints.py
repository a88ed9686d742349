"""What to do about a failure: one catalog of hints, keyed by the error codes
that :mod:`redrive.failures.classify` produces.

A :class:`Hint` names the likely cause, says what to do in a sentence or two, and picks the one-click
:data:`Remedy` that applies. :func:`hint_for` looks a code up in this order:

1. the exact code (``http_404``, ``exit_127``, ``template_error``, or a plugin's own code);
2. for an SMTP 5xx reply, the enhanced status code in the message (``5.1.1``, ``5.7.x``, RFC 3463);
3. the code's family (``http_5xx``, ``exit_N``, ``smtp_4xx``, ...);
4. a generic hint.

Plugins add hints for their own codes through the ``redrive_hints`` hook; this catalog is registered the same way,
and the registry passes the merged catalog as ``catalog``. Everything is pure data and lookups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from redrive.hookspecs import hookimpl

__all__ = ["Hint", "Remedy", "hint_for"]

Remedy = Literal["replay_group", "pause_trigger", "raise_timeout", "fix_config", "none"]


@dataclass(frozen=True, slots=True)
class Hint:
    """The likely cause of a failure, what to do about it, and the one-click remedy that applies."""

    title: str
    advice: str
    remedy: Remedy


# Keys are error codes, or a family name (``http_5xx``) that _FAMILIES or _ENHANCED points at.
_CATALOG: dict[str, Hint] = {
    "http_3xx": Hint(
        "Redirect not followed",
        "The target answered with a redirect, which redrive does not follow: put the final URL in the action.",
        "fix_config",
    ),
    "http_401": Hint(
        "Credentials rejected", "Check the API key or token in the action's headers, then replay.", "replay_group"
    ),
    "http_404": Hint(
        "Wrong URL", "Nothing lives at this URL: fix the action's url template, then replay.", "replay_group"
    ),
    "http_408": Hint(
        "Target timed out reading the request",
        "The target gave up waiting for the request; it is retried. Replay the group if retries ran out.",
        "replay_group",
    ),
    "http_410": Hint(
        "Target gone",
        "The target no longer accepts deliveries, so the trigger was paused: fix the target, resume, replay.",
        "fix_config",
    ),
    "http_413": Hint(
        "Payload too large for the target",
        "The target refuses bodies this big: send less (trim the body template) or raise the target's limit.",
        "fix_config",
    ),
    "http_429": Hint(
        "Rate limited",
        "The target is throttling; retries honour Retry-After. Lower the volume, or pause the trigger if it lasts.",
        "pause_trigger",
    ),
    "http_4xx": Hint(
        "Request rejected",
        "The target refused the request as sent: compare the body and headers templates with what it expects.",
        "fix_config",
    ),
    "http_5xx": Hint(
        "Upstream outage", "The target is failing on its side: wait for it to recover, then replay.", "replay_group"
    ),
    "dns_failure": Hint(
        "Host name does not resolve",
        "Check the host name in the action's URL; if it is right, replay the group once DNS answers again.",
        "fix_config",
    ),
    "tls_error": Hint(
        "TLS handshake failed",
        "The target's certificate is invalid or expired, or the URL points at a non-TLS port: fix the target or URL.",
        "fix_config",
    ),
    "connection_refused": Hint(
        "Connection refused",
        "Nothing listens at the target's host and port: check the URL and that the service is up, then replay.",
        "replay_group",
    ),
    "connect_timeout": Hint(
        "Target unreachable",
        "The target did not accept a connection: check the URL and any firewall, then replay once it is reachable.",
        "replay_group",
    ),
    "connection_error": Hint(
        "Connection dropped",
        "The target closed the connection mid-request, often during a deploy or overload; replay the group later.",
        "replay_group",
    ),
    "timeout": Hint(
        "Request timed out",
        "The target answered too slowly: raise the action's timeout, or make the target respond sooner.",
        "raise_timeout",
    ),
    "template_error": Hint(
        "Template failed to render",
        "A field the template uses is missing from the payload: fix the template or filter such events out.",
        "fix_config",
    ),
    "target_forbidden": Hint(
        "Private address refused",
        "The URL is not public or not http(s). If the target is yours, open it with allow: [CIDR] or allow_private.",
        "fix_config",
    ),
    "invalid_url": Hint(
        "Invalid URL", "The rendered URL is not a valid http(s) URL: fix the action's url template.", "fix_config"
    ),
    "invalid_header": Hint(
        "Invalid request line or header",
        "A rendered header or the method is not valid HTTP: fix the action's method and headers templates.",
        "fix_config",
    ),
    "action_error": Hint(
        "Unexpected error in the action",
        "The action raised an error redrive does not recognise: read the message, and report it if it is a bug.",
        "none",
    ),
    "command_timeout": Hint(
        "Command timed out",
        "The command ran past its timeout and was killed: raise the action's timeout or make the command faster.",
        "raise_timeout",
    ),
    "exit_75": Hint(
        "Temporary failure (EX_TEMPFAIL)",
        "The command reported a temporary failure and is retried; replay the group if retries ran out.",
        "replay_group",
    ),
    "exit_126": Hint(
        "Program not executable", "argv[0] exists but cannot run: check its execute bit and #! line.", "fix_config"
    ),
    "exit_127": Hint(
        "Command not found", "argv[0] is not on the worker's PATH: use an absolute path or set PATH.", "fix_config"
    ),
    "exit_137": Hint(
        "Command killed (out of memory?)",
        "The command got SIGKILL, most often from the out-of-memory killer: give it more memory, then replay.",
        "replay_group",
    ),
    "exit_N": Hint(
        "Command failed", "The command exited non-zero: the stderr excerpt on the attempt says why.", "none"
    ),
    "signal_N": Hint(
        "Command killed by a signal",
        "Something outside redrive stopped or crashed the command; it is retried. Replay if retries ran out.",
        "replay_group",
    ),
    "argv_nul": Hint(
        "NUL byte in an argument",
        "A rendered argument, env value or cwd holds a NUL byte, likely from the payload: fix the templates.",
        "fix_config",
    ),
    "spawn_error": Hint(
        "Command could not start",
        "The system refused to start the command: check argv[0], the env names, the cwd and resource limits.",
        "fix_config",
    ),
    "smtp_4xx": Hint(
        "Mail server busy (temporary)",
        "The mail server deferred the message and it is retried; replay the group if retries ran out.",
        "replay_group",
    ),
    "smtp_5xx": Hint(
        "Mail rejected",
        "The mail server refused the message for good: its reply in the message says why; fix and replay.",
        "fix_config",
    ),
    "smtp_5.1.1": Hint(
        "Mailbox does not exist",
        "The recipient address is unknown to its server: fix the recipient template or the payload's address.",
        "fix_config",
    ),
    "smtp_5.7.x": Hint(
        "Refused by mail policy",
        "Authentication, relay or SPF/DMARC policy refused the mail: check the credentials and the sender.",
        "fix_config",
    ),
    "smtp_auth": Hint(
        "SMTP login refused", "The server refused the username or password: fix the action's credentials.", "fix_config"
    ),
    "smtp_connect_error": Hint(
        "Mail server unreachable",
        "Check the SMTP host, port and TLS settings; if they are right, replay once the server is back.",
        "replay_group",
    ),
    "smtp_timeout": Hint(
        "Mail server too slow",
        "The mail server did not answer in time: raise the action's timeout or check the server's health.",
        "raise_timeout",
    ),
    "smtp_protocol": Hint(
        "Unexpected SMTP reply",
        "The mail server answered outside the protocol: check that host and port point at an SMTP server.",
        "fix_config",
    ),
    "python_timeout": Hint(
        "Function timed out",
        "The python action's function did not return within its timeout: make it faster or raise 'timeout'.",
        "raise_timeout",
    ),
    "python_import": Hint(
        "Function cannot be imported",
        "The module or the callable named in 'function' no longer imports: fix the code or the setting, then replay.",
        "fix_config",
    ),
    "python_N": Hint(
        "Function raised an exception",
        "The python action's function raised: read the message, fix the function or the input, then replay. "
        "Raise redrive.TransientError or redrive.PermanentError to choose the outcome yourself.",
        "replay_group",
    ),
    "transient_error": Hint(
        "Temporary failure reported by the action",
        "The action said a later attempt may succeed; it is retried. Replay the group if retries ran out.",
        "replay_group",
    ),
    "permanent_error": Hint(
        "Failure reported by the action",
        "The action said retrying cannot help: read the message, fix the cause, then replay.",
        "fix_config",
    ),
    "invalid_message": Hint(
        "Email could not be built",
        "A rendered address, subject or body is not valid in an email: fix the email action's templates.",
        "fix_config",
    ),
}

_SAME_AS = {
    "http_403": "http_401",
    "connect_error": "connect_timeout",
    "invalid_method": "invalid_header",
    "invalid_env": "spawn_error",
    "invalid_cwd": "spawn_error",
    "signal_SIGKILL": "exit_137",
    "smtp_530": "smtp_auth",
    "smtp_535": "smtp_auth",
    "smtp_error": "smtp_protocol",
}

_FAMILIES = (
    (re.compile(r"http_3\d\d"), "http_3xx"),
    (re.compile(r"http_4\d\d"), "http_4xx"),
    (re.compile(r"http_5\d\d"), "http_5xx"),
    (re.compile(r"exit_\d+"), "exit_N"),
    (re.compile(r"signal_\w+"), "signal_N"),
    (re.compile(r"smtp_4\d\d"), "smtp_4xx"),
    (re.compile(r"smtp_5\d\d"), "smtp_5xx"),
    (re.compile(r"python_\w+"), "python_N"),
)

# RFC 3463 enhanced status codes, looked for in the reply text of SMTP 5xx failures.
_ENHANCED = (
    (re.compile(r"(?<![\d.])5\.1\.1(?!\.?\d)"), "smtp_5.1.1"),
    (re.compile(r"(?<![\d.])5\.7\.\d{1,3}(?!\.?\d)"), "smtp_5.7.x"),
)
_SMTP_5XX = re.compile(r"smtp_5\d\d")

_GENERIC = Hint(
    "Unrecognised failure",
    "No specific advice for this error: read the message and the attempt's output, fix the cause, then replay.",
    "none",
)


def hint_for(code: str, message: str = "", catalog: Mapping[str, Hint] | None = None) -> Hint:
    """Return the hint for an error code, using the message to refine SMTP rejections.

    ``catalog`` is every registered hint (the registry's, plugins' included); the built-in one when not given.
    """
    hints = _CATALOG if catalog is None else catalog
    if code in hints:
        return hints[code]
    key = _SAME_AS.get(code, code)
    if key in hints:
        return hints[key]
    if _SMTP_5XX.fullmatch(code):
        for pattern, enhanced in _ENHANCED:
            if pattern.search(message) and enhanced in hints:
                return hints[enhanced]
    for pattern, family in _FAMILIES:
        if pattern.fullmatch(code) and family in hints:
            return hints[family]
    return _GENERIC


@hookimpl
def redrive_hints() -> Mapping[str, Hint]:
    """The built-in catalog: codes and families (``http_5xx``) of the built-in action kinds."""
    return _CATALOG
