"""`redrive alerts ls|history|test NAME`: alert rules, their transitions and deliveries (through the HTTP API)."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import out, print_table

app = group("Alert rules: state, history of transitions and deliveries, test notifications.")
Name = Annotated[str, typer.Argument(help="Alert rule name.")]


@app.command("ls")
def ls(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List the alert rules (firing first) and the channels' delivery health."""
    with client(url, token) as api:
        found = call(api.list_alerts)
    if as_json:
        out.print_json(data=found)
        return
    rules = [(a["name"], a["state"], a["since"] or "", a["condition"], a["summary"] or "") for a in found["items"]]
    print_table(("rule", "state", "since", "condition", "last reading"), rules)
    counts = ("pending", "retrying", "delivered", "failed")
    channels = [(c["name"], c["kind"], *(str(c[k]) for k in counts)) for c in found["channels"]]
    print_table(("channel", "kind", *counts), channels)


@app.command("history")
def history(
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule's transitions.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many transitions.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Transitions (firing, resolved, repeat, test), newest first, with each notification's delivery status."""
    with client(url, token) as api:
        items = call(api.alert_history, rule=rule, limit=limit)
    if as_json:
        out.print_json(data=items)
        return
    rows = []
    for item in items:
        deliveries = ", ".join(f"{n['channel']}: {n['status']} ({n['attempts']})" for n in item["notifications"])
        rows.append((item["at"], item["rule"], item["kind"], item["title"], deliveries))
    print_table(("at", "rule", "kind", "title", "deliveries (attempts)"), rows)


@app.command("test")
def send_test(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Send a clearly marked test notification through each of the rule's channels (needs an operator token)."""
    with client(url, token) as api:
        sent = call(api.test_alert, name)
    if as_json:
        out.print_json(data=sent)
    else:
        out.print(f"test notification {sent['key']} queued for {', '.join(sent['channels'])}", highlight=False)
