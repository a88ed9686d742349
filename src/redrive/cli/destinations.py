"""`redrive destinations ls|show|open|close|reset`: destinations and their breakers (through the HTTP API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import out, print_table
from redrive.states import BreakerState

if TYPE_CHECKING:
    from redrive.client import RedriveClient

app = group("Destinations: what actions talk to, their circuit breakers and limits.")
Name = Annotated[str, typer.Argument(help="The destination (https://host:443, smtp://host:25, trigger:NAME).")]


def _limits(item: dict[str, Any]) -> str:
    limits = item["limits"]
    parts = [
        f"{limits['rate']:g}/s" if limits["rate"] else "",
        f"≤{limits['concurrency']}" if limits["concurrency"] else "",
    ]
    return " ".join(p for p in parts if p) or "-"


def _state(item: dict[str, Any]) -> str:
    state: str = item["state"]
    return state + (f" (forced {item['forced']})" if item["forced"] else "")


def _every_page(api: RedriveClient, page: dict[str, Any], limit: int, state: BreakerState | None) -> dict[str, Any]:
    """``page`` and the pages after it, as one page: every item, no next cursor, the last page's summary."""
    items = list(page["items"])
    while page["next_cursor"] is not None:
        page = call(api.list_destinations, limit=limit, cursor=page["next_cursor"], state=state)
        items += page["items"]
    return {**page, "items": items}


def summary_line(summary: dict[str, int]) -> str:
    """Every destination by state on one line: ``3 open, 1 half-open, 41,996 closed (2 forced)``."""
    forced = f" ({summary['forced']:,} forced)" if summary["forced"] else ""
    return f"{summary['open']:,} open, {summary['half_open']:,} half-open, {summary['closed']:,} closed{forced}"


def not_shown(page: dict[str, Any], state: BreakerState | None) -> str | None:
    """The line saying how many destinations the page leaves out and how to see them (None: it shows them all)."""
    if page["next_cursor"] is None:
        return None
    matching = page["summary"][state] if state is not None else page["summary"]["total"]
    return f"{matching - len(page['items']):,} more not shown: --all lists every one (--limit takes up to 500)."


@app.command("ls")
def ls(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Destinations per page.")] = 100,
    state: Annotated[BreakerState | None, typer.Option(help="Only the destinations in this breaker state.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page: follow next_cursor to the end.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List destinations, those needing attention first (open, half-open, forced closed, then closed, by name):
    breaker state, held and running work, failure rate, latency, limits; then how many there are in each state."""
    with client(url, token) as api:
        page = call(api.list_destinations, limit=limit, state=state)
        if every:
            page = _every_page(api, page, limit, state)
    if as_json:
        out.print_json(data=page)
        return
    rows = [
        (
            item["name"],
            _state(item),
            str(item["held"]),
            str(item["pending"]),
            str(item["running"]),
            "-" if item["failure_rate"] is None else f"{item['failure_rate']:.0%}",
            "-" if item["latency_ms"] is None else f"{item['latency_ms']:g} ms",
            _limits(item),
        )
        for item in page["items"]
    ]
    if rows:
        print_table(["destination", "state", "held", "pending", "running", "failures", "latency", "limits"], rows)
    else:  # a table of headers alone reads as a display fault
        out.print(f"no {state.replace('_', '-')} destinations" if state else "no destinations yet", highlight=False)
    out.print(summary_line(page["summary"]), highlight=False)
    if (more := not_shown(page, state)) is not None:
        out.print(more, highlight=False)


@app.command("show")
def show(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """One destination with its latest breaker transitions."""
    with client(url, token) as api:
        item = call(api.get_destination, name)
    if as_json:
        out.print_json(data=item)
        return
    out.print(f"{item['name']}: {_state(item)}, {item['held']} held, {item['running']} running", highlight=False)
    rows = [
        (t["at"], t["from_state"], t["to_state"], t["actor"] or "breaker", t["reason"]) for t in item["transitions"]
    ]
    print_table(["at", "from", "to", "by", "reason"], rows)


def _force(name: str, action: str, url: str | None, token: str | None, as_json: bool) -> None:
    with client(url, token) as api:
        item = call(api.force_destination, name, action)
    if as_json:
        out.print_json(data=item)
    else:
        out.print(f"{item['name']} is {_state(item)}", highlight=False)


@app.command("open")
def force_open(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Force the breaker open (maintenance): due work is held, spending no attempt, until reset."""
    _force(name, "open", url, token, as_json)


@app.command("close")
def force_close(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Force the breaker closed: everything goes (limits still apply) until reset."""
    _force(name, "close", url, token, as_json)


@app.command("reset")
def reset(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Clear any override and the counters: closed, held work drains ramped, the breaker decides again."""
    _force(name, "reset", url, token, as_json)
