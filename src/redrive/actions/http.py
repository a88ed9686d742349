"""The HTTP action: one request per attempt, sent through the worker's clients (``http_client``); the SSRF guard.

Redirects are never followed (a 3xx is a failure), at most ``EXCERPT_BYTES`` of the response body are read
back, and every client error becomes a classified ``Failure``. Which addresses may be reached is decided by the
action's :class:`~redrive.egress.TargetPolicy`: IP literals are judged before the request, and names are judged
by :class:`GuardedResolver`, which the client resolves through and which refuses a name when any address it
resolves to is not permitted, so the connection goes to the very addresses that were checked (no second lookup
for DNS rebinding to slip through). Each policy has its own client (:class:`HttpSessions`): a pooled
connection or cached lookup made under a permissive policy is never reused under a strict one. The aiohttp
sessions beside them (``HttpSessions.session``, ``new_http_session``) are guarded the same way, for what else in
redrive speaks HTTP (alerts).

With ``sign: {scheme: standard-webhooks, secret: ...}`` (or ``secrets: [...]``, newest first) every request carries
Standard Webhooks headers over the exact body bytes sent, timed by the worker's clock at the attempt. The
``webhook-id`` is ``redrive-event-<event id>``: the same for every retry of the execution *and* for a replay of it
(a replay is the same event delivered again, never a new message), so a receiver that records the ids it has
processed drops a replay of something it already handled and takes one it never processed. The stored request
shows ``webhook-id`` and the signature masked; the timestamp is the attempt's start, to the second.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import Field, field_validator, model_validator

from redrive.actions.base import EXCERPT_BYTES, Outcome, Resources, decode
from redrive.actions.egress import TargetForbidden, TargetPolicy, parse_address, parse_allow_entry, refusal
from redrive.actions.http_client import HttpClient, header_value
from redrive.actions.http_failures import classify_http_exception
from redrive.clock import Clock, utcnow
from redrive.db.engine import json_text
from redrive.destinations.keys import url_destination
from redrive.extensions import ActionKind, ResourceContext
from redrive.failures.classify import Failure, classify_http_status, classify_raised, permanent
from redrive.hookspecs import hookimpl
from redrive.observe.redaction import REDACTED
from redrive.outbound_signing import SIGNATURE_HEADERS, StandardWebhooksSign
from redrive.triggers.fields import Duration, StrictModel, TemplateStr, TemplateTree
from redrive.triggers.templating import compile_template, render_tree

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: methods and header names
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})  # the client's to write (``http_client``)
# What the action's client raises for a request that went wrong (``http_client``'s tree; TLS errors and the total
# timeout are OSErrors too).
_REQUEST_ERRORS = (OSError, ValueError)


class HttpAction(StrictModel):
    kind: Literal["http"]
    method: TemplateStr = Field(default_factory=lambda: compile_template("POST"))
    url: TemplateStr
    headers: dict[str, TemplateStr] = Field(default_factory=dict)
    json_body: TemplateTree = Field(None, alias="json")
    body: TemplateStr | None = None
    timeout: Duration = 30.0
    connect_timeout: Duration = 5.0
    allow_private: bool = False
    allow: list[str] = Field(default_factory=list)
    sign: StandardWebhooksSign | None = None

    @field_validator("allow")
    @classmethod
    def _allow_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_allow_entry(entry)  # raises ValueError naming the entry
        return entries

    @model_validator(mode="after")
    def _one_body(self) -> HttpAction:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either 'json' or 'body', not both")
        return self

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpAction:
        # The client refuses both on every call: say so when the file is loaded, not as each event's failure.
        if "@" in urlsplit(self.url.source).netloc and any(h.lower() == "authorization" for h in self.headers):
            raise ValueError("give credentials either in the url (user:password@) or an Authorization header, not both")
        return self

    @model_validator(mode="after")
    def _client_frames_the_body(self) -> HttpAction:
        # A second Content-Length, or one beside Transfer-Encoding, would frame the body two ways on the wire.
        framing = sorted(h for h in self.headers if h.lower() in _FRAMING_HEADERS)
        if framing:
            raise ValueError(f"the {', '.join(framing)} header(s) are set from the body: remove them from 'headers'")
        return self

    @model_validator(mode="after")
    def _signing_owns_its_headers(self) -> HttpAction:
        if self.sign is not None:
            clash = sorted(h for h in self.headers if h.lower() in SIGNATURE_HEADERS)
            if clash:
                raise ValueError(f"'sign' sets the {', '.join(clash)} header(s): remove them from 'headers'")
        return self


class GuardedResolver(AbstractResolver):
    """Resolves through ``lookup`` (aiohttp's default resolver unless given) and refuses forbidden addresses.

    Every address of the answer is judged; one forbidden address refuses the whole name, since a name that
    points inside the network is not one to half-trust.
    """

    def __init__(self, policy: TargetPolicy, lookup: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._lookup = lookup or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and return its addresses, or raise TargetForbidden."""
        results = await self._lookup.resolve(host, port, family)
        for result in results:
            address = parse_address(result["host"])
            if address is None:
                raise OSError(f"the resolver answered {host} with {result['host']!r}, which is not an address")
            if not self._policy.permits(address, host):
                raise TargetForbidden(host, address)
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._lookup.close()


def user_agent() -> str:
    """``redrive/<version>``: what every outbound request of redrive's says it is."""
    try:
        return f"redrive/{version('redrive')}"
    except PackageNotFoundError:
        return "redrive"


def new_http_session(
    policy: TargetPolicy | None = None,
    *,
    lookup: AbstractResolver | None = None,
    limit: int = 100,
    trace_configs: list[aiohttp.TraceConfig] | None = None,
) -> aiohttp.ClientSession:
    """A session whose connections only reach what ``policy`` permits; call it inside the running event loop.

    ``lookup`` replaces aiohttp's resolver under the guard (a test makes a name resolve where it wants);
    ``limit`` caps open connections; ``trace_configs`` add tracing. Cookies are never kept (one session serves
    many triggers) and proxy settings are not read from the environment.
    """
    resolver = GuardedResolver(policy or TargetPolicy(), lookup)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, limit=limit, ttl_dns_cache=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        headers={"User-Agent": user_agent()},
        trace_configs=trace_configs,
        json_serialize=json_text,
    )


class HttpSessions:
    """One guarded client per target policy, opened on first use and closed together: the http action's
    (``client``, :mod:`redrive.actions.http_client`) and an aiohttp session for the rest of redrive (``session``).

    ``outbound_headers`` gives the headers every action request carries besides its own (the attempt's
    ``traceparent`` when tracing is on); ``trace_configs`` do the same for the aiohttp sessions.
    """

    def __init__(
        self,
        *,
        lookup: AbstractResolver | None = None,
        limit: int = 100,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        outbound_headers: Callable[[], Mapping[str, str]] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.clock = clock  # the worker's: what "now" is for a Retry-After date
        self.outbound_headers = outbound_headers
        self._lookup = lookup
        self._limit = limit
        self._trace_configs = trace_configs
        self._sessions: dict[TargetPolicy, aiohttp.ClientSession] = {}
        self._clients: dict[TargetPolicy, HttpClient] = {}

    def client(self, policy: TargetPolicy) -> HttpClient:
        """The http action's client for ``policy``; call it inside the running event loop."""
        client = self._clients.get(policy)
        if client is None:
            resolver = GuardedResolver(policy, self._lookup)
            client = self._clients[policy] = HttpClient(resolver, limit=self._limit, user_agent=user_agent())
        return client

    def session(self, policy: TargetPolicy) -> aiohttp.ClientSession:
        """The session for ``policy``; call it inside the running event loop."""
        session = self._sessions.get(policy)
        if session is None:
            session = new_http_session(
                policy, lookup=self._lookup, limit=self._limit, trace_configs=self._trace_configs
            )
            self._sessions[policy] = session
        return session

    async def close(self) -> None:
        """Close every client and session and their pooled connections."""
        sessions, self._sessions = list(self._sessions.values()), {}
        clients, self._clients = list(self._clients.values()), {}
        for session in sessions:
            await session.close()
        for client in clients:
            await client.close()

    async def __aenter__(self) -> HttpSessions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class HttpRequester:
    """Sends one HTTP request per attempt; success is a 2xx status."""

    kind: ClassVar[str] = "http"
    __slots__ = ("_config", "_policy")

    def __init__(self, config: HttpAction) -> None:
        self._config = config
        self._policy = TargetPolicy.build(config.allow_private, config.allow)

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render method, URL, headers and body; the method is upper-cased."""
        config = self._config
        rendered: dict[str, Any] = {
            "method": config.method.render(context).upper(),
            "url": config.url.render(context),
            "headers": {name: value.render(context) for name, value in config.headers.items()},
            "timeout": config.timeout,
            "connect_timeout": config.connect_timeout,
        }
        if config.json_body is not None:
            rendered["json"] = render_tree(config.json_body, context)
        elif config.body is not None:
            rendered["body"] = config.body.render(context)
        if config.sign is not None:
            rendered["webhook_id"] = webhook_id(context)
        return rendered

    def describe(self, rendered: Mapping[str, Any]) -> dict[str, Any]:
        """Method, URL, headers and body (``json`` or ``body``) of the request."""
        sent = {"method": rendered["method"], "url": rendered["url"], "headers": rendered["headers"]}
        if "webhook_id" in rendered:  # the signature is made when sent; the trigger's redactor masks it anyway
            sent["headers"] = {**sent["headers"], "webhook-id": rendered["webhook_id"], "webhook-signature": REDACTED}
        if "json" in rendered:
            sent["json"] = rendered["json"]
        elif "body" in rendered:
            sent["body"] = rendered["body"]
        return sent

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Send the request and classify the response (or the error that stopped it)."""
        method: str = rendered["method"]
        headers: dict[str, str] = rendered["headers"]
        unsafe = _refuse_unsafe(method, headers)
        if unsafe is not None:
            return unsafe
        url: str = rendered["url"]
        forbidden = refusal(url, self._policy)
        if forbidden is not None:
            return Outcome(permanent("target_forbidden", forbidden), {})
        sessions: HttpSessions = resources["http"]
        headers, text = _encoded(rendered)
        if self._config.sign is not None:
            headers = {**headers, **self._config.sign.headers(rendered["webhook_id"], sessions.clock(), text or "")}
        if sessions.outbound_headers is not None:
            headers = {**headers, **sessions.outbound_headers()}
        config = self._config
        client = sessions.client(self._policy)
        try:
            async with asyncio.timeout(config.timeout):
                answer = await client.request(
                    method,
                    url,
                    headers,
                    None if text is None else text.encode(),
                    connect_timeout=config.connect_timeout,
                    cap=EXCERPT_BYTES,
                )
        except _REQUEST_ERRORS as exc:
            return Outcome(_classify(exc), {}, error=exc)
        status, reason = answer.status, answer.reason
        detail = {"status": status, "reason": reason, "headers": _plain_headers(answer.headers)}
        failure = None
        if not 200 <= status <= 299:
            retry_after = header_value(answer.headers, "Retry-After")
            failure = classify_http_status(status, reason=reason, retry_after=retry_after, now=sessions.clock())
        return Outcome(failure, detail, decode(answer.body) if answer.body else None)


def webhook_id(context: Mapping[str, Any]) -> str:
    """The ``webhook-id`` of a signed request: the event's, so retries and replays of it share one id."""
    return f"redrive-event-{context['event']['id']}"


def _encoded(rendered: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """The headers and the body of a rendering: a ``json`` body encoded once (the text signed is the text sent),
    with the content type of a json or a text body unless the trigger file sets its own."""
    headers: dict[str, str] = rendered["headers"]
    if "json" in rendered:
        text, content_type = json_text(rendered["json"]), "application/json"
    elif "body" in rendered:
        text, content_type = rendered["body"], "text/plain; charset=utf-8"
    else:
        return headers, None
    if not any(name.lower() == "content-type" for name in headers):
        headers = {**headers, "Content-Type": content_type}
    return headers, text


def classify_http(exc: BaseException) -> Failure | None:
    """The ``http`` kind's rules: a refused target, then the HTTP client's errors (None: not theirs)."""
    if isinstance(exc, TargetForbidden):
        return permanent("target_forbidden", str(exc))
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, TargetForbidden):
        return permanent("target_forbidden", str(exc.os_error))
    return classify_http_exception(exc)


def _classify(exc: BaseException) -> Failure:
    return classify_http(exc) or classify_raised(exc)


def _summary(rendered: Mapping[str, Any]) -> str:
    return f"{rendered.get('method', '')} {rendered.get('url', '')}"


def _secrets(config: HttpAction) -> set[str]:
    return config.sign.secret_values() if config.sign is not None else set()


def _sessions(context: ResourceContext) -> HttpSessions:
    return HttpSessions(
        limit=max(100, context.concurrency),
        trace_configs=list(context.trace_configs) or None,
        outbound_headers=context.outbound_headers,
        clock=context.clock,
    )


@hookimpl
def redrive_action_kinds() -> list[ActionKind]:
    """The ``http`` action kind."""
    return [
        ActionKind(
            name="http",
            config=HttpAction,
            build=HttpRequester,
            summary=_summary,
            resources=_sessions,
            classify=classify_http,
            secrets=_secrets,
            destination=lambda config: url_destination(config.url),
        )
    ]


def _refuse_unsafe(method: str, headers: Mapping[str, str]) -> Outcome | None:
    # Rendered values may carry payload data: refuse what would change the request's framing.
    if not _TOKEN.fullmatch(method):
        return Outcome(permanent("invalid_method", f"{method[:40]!r} is not a valid HTTP method"), {})
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            message = f"header {name[:40]!r} has a name or value that cannot be sent (line break or NUL)"
            return Outcome(permanent("invalid_header", message), {})
    return None


def _plain_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    # Repeated fields joined per RFC 9110, under the name as first sent.
    plain: dict[str, str] = {}
    for name, value in headers:
        plain[name] = f"{plain[name]}, {value}" if name in plain else value
    return plain
