"""A resolver that answers from a table: the seam through which tests make names resolve where they want, a real
``AbstractResolver`` (the http action's guard and client use it as they would the system's), not a patch."""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult


class TableResolver(AbstractResolver):
    """Answers from a table of name -> addresses; a list of answers is served one lookup at a time, and a name not in
    the table fails as a system lookup does (``OSError``). ``lookups`` records every name asked."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        answer = self.table[host]
        addresses = answer.pop(0) if isinstance(answer[0], list) else answer
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass
