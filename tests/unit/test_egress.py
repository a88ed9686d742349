"""Unit tests for redrive.actions.egress: which addresses are public, how hosts are read, what a policy opens."""

from __future__ import annotations

import ipaddress

import pytest

from redrive.actions.egress import TargetPolicy, is_public, literal_address, parse_allow_entry, refusal
from redrive.errors import ConfigError
from redrive.triggers.config import parse_config

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",  # reserved
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2001:db8::1",  # documentation
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert is_public(ipaddress.ip_address(address)) is False
    assert TargetPolicy().permits(ipaddress.ip_address(address), "example.com") is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_permitted(address: str) -> None:
    assert is_public(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("0x", None),
    ],
)
def test_odd_spellings_are_read_as_the_address_they_name(host: str, address: str | None) -> None:
    assert literal_address(host) == (ipaddress.ip_address(address) if address else None)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://x@127.0.0.1/",
        "http://user:pass@127.0.0.1:8080/admin",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "http://0.0.0.0:22/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_literal_targets_are_refused_before_any_lookup(url: str) -> None:
    reason = refusal(url, TargetPolicy())
    assert reason is not None
    assert "allow_private" in reason
    assert "pass" not in reason  # the message names the host, never the URL's credentials


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://example.com/", "ws://x/", "x"])
def test_schemes_other_than_http_and_https_are_refused(url: str) -> None:
    reason = refusal(url, TargetPolicy(allow_private=True))
    assert reason is not None
    assert "only http and https" in reason


def test_names_are_left_to_the_resolver_and_public_literals_pass() -> None:
    assert refusal("http://localhost/", TargetPolicy()) is None  # judged by the resolver on its addresses
    assert refusal("https://example.com/x?y=1", TargetPolicy()) is None
    assert refusal("http://8.8.8.8/", TargetPolicy()) is None


def test_allow_opens_exactly_the_listed_networks_and_hosts() -> None:
    policy = TargetPolicy.build(False, ["10.0.0.0/24", "127.0.0.1", "Sink.Internal"])
    assert policy.permits(ipaddress.ip_address("10.0.0.7"), "x")
    assert not policy.permits(ipaddress.ip_address("10.0.1.7"), "x")
    assert policy.permits(ipaddress.ip_address("127.0.0.1"), "x")
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"), "x")  # the same address, IPv6-mapped
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"), "x")
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"), "x")
    assert policy.permits(ipaddress.ip_address("192.168.9.9"), "sink.internal.")
    assert not policy.permits(ipaddress.ip_address("192.168.9.9"), "other.internal")
    assert TargetPolicy.build(True, []).permits(ipaddress.ip_address("169.254.169.254"), "x")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host!", "127.1", "2130706433", "", "10.0.0.0/8/8"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="CIDR"):
        parse_allow_entry(entry)


def test_allow_is_validated_in_the_trigger_file() -> None:
    text = "triggers:\n  - name: t\n    action: {kind: http, url: 'http://x/', allow: ['10.0.0.0/8', 'bad host']}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    [problem] = caught.value.problems
    assert problem.path == "triggers[0] (t).action.allow"
    assert "'bad host'" in problem.message
    good = "triggers:\n  - name: t\n    action: {kind: http, url: 'http://x/', allow_private: true}\n"
    assert parse_config(good, env={}).triggers[0].action.allow_private is True  # type: ignore[union-attr]
