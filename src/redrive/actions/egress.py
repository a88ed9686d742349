"""Which outbound targets an ``http`` action may reach: the SSRF policy, as pure decisions.

By default only public (globally routable, unicast) addresses are reachable, over http or https. Refused:
loopback, private (RFC 1918, unique-local), link-local (169.254.0.0/16 with cloud metadata, fe80::/10), carrier-grade
NAT (100.64.0.0/10), multicast, unspecified, reserved and documentation ranges, and the IPv6 forms that embed one of
these (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). An action opens exactly what its
admin chose: ``allow_private: true`` (everything), or ``allow:`` a list of CIDRs and host names.

The policy judges addresses, not spellings: the resolver in :mod:`redrive.actions.http` applies it to every address
a name resolves to, and the connection goes to those checked addresses; :func:`refusal` judges IP literals (which
aiohttp never sends to a resolver), including legacy IPv4 spellings such as ``2130706433`` or ``0177.0.0.1``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?")
# Digits, hex and dots only: what inet_aton would read as a (possibly legacy) IPv4 address.
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64 well-known prefix, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (and an IPv6 form of one only if what it embeds is public)."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def parse_address(text: str) -> IPAddress | None:
    """An IP address written in ``text`` (an IPv6 scope id is dropped), or None when it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names by itself, legacy IPv4 spellings included; None for a name to resolve."""
    host = host.strip("[]")
    address = parse_address(host)
    if address is not None or not _LEGACY_IPV4.fullmatch(host):
        return address
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """What one action may reach beyond public addresses."""

    allow_private: bool = False
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, allow_private: bool, allow: Iterable[str]) -> TargetPolicy:
        """A policy from an action's ``allow_private`` and ``allow`` (CIDRs, addresses and host names)."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in allow:
            network = parse_allow_entry(entry)
            if isinstance(network, str):
                hosts.add(network)
            else:
                networks.append(network)
        return cls(allow_private, tuple(networks), frozenset(hosts))

    def permits(self, address: IPAddress, host: str) -> bool:
        """May a connection for ``host`` go to ``address``?"""
        if self.allow_private or is_public(address) or _normal_host(host) in self.hosts:
            return True
        candidates = [address] + ([inner] if (inner := embedded_ipv4(address)) is not None else [])
        return any(candidate in network for candidate in candidates for network in self.networks)


def parse_allow_entry(entry: str) -> IPNetwork | str:
    """A CIDR or address (as a network) or a host name (lower case); ValueError for anything else."""
    text = entry.strip()
    if "/" in text or parse_address(text) is not None:
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a valid CIDR or address: {exc}") from None
    name = _normal_host(text)
    if not _HOST_NAME.fullmatch(name) or _LEGACY_IPV4.fullmatch(name):
        raise ValueError(f"{entry!r} is neither a CIDR, an address nor a host name")
    return name


def _normal_host(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def describe(address: IPAddress) -> str:
    """A few words saying what kind of address this is, for messages."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return f"an IPv6 form of {inner} ({describe(inner)})"
    for test, words in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives here)"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address in ipaddress.ip_network("100.64.0.0/10"), "a carrier-grade NAT address"),
        (address.is_private, "a private address"),
    ):
        if test:
            return words
    return "not a public address"


@lru_cache(maxsize=1024)  # an action's URL is mostly the same string each time: parsing it was a visible cost
def refusal(url: str, policy: TargetPolicy) -> str | None:
    """Why ``url`` may not be requested before any lookup (scheme, or an IP literal host), or None."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None  # malformed: the HTTP client reports it as invalid_url
    if parsed.scheme.lower() not in SCHEMES:
        return f"the scheme {parsed.scheme or '(none)'!r} is refused; only http and https are allowed"
    host = parsed.host or ""
    address = literal_address(host)
    if address is None or policy.permits(address, host):
        return None
    return forbidden_message(host, address)


class TargetForbidden(OSError):
    """A name resolved to an address the action's policy refuses (an OSError, as resolvers raise)."""

    def __init__(self, host: str, address: IPAddress) -> None:
        super().__init__(forbidden_message(host, address))
        self.host = host
        self.address = address


def forbidden_message(host: str, address: IPAddress) -> str:
    """The message of a refused target (the host and address only: never the URL, which may carry secrets)."""
    shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
    return (
        f"The target {shown} is {describe(address)}; the http action refuses it unless its config allows it "
        "(allow_private: true, or allow: [CIDR or host])"
    )
