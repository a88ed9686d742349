"""The claim benchmarks' shared set-up (``held_backlog.py``, ``destination_rows.py``): two http triggers, one
destination each, one of them to be held; and the database options they take."""

from __future__ import annotations

import argparse
import os
from datetime import datetime

from sqlalchemy import Engine

from redrive.plugins import load_plugins
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import TriggerSet, build_trigger_set, sync_triggers

HELD_AND_HEALTHY = """
triggers:
  - name: held
    action: {kind: http, url: "https://held.example/hook"}
  - name: healthy
    action: {kind: http, url: "https://healthy.example/hook"}
"""
HELD = "https://held.example:443"


def held_and_healthy(engine: Engine, at: datetime) -> TriggerSet:
    """``HELD_AND_HEALTHY``'s triggers synced into the database at ``at``; their ``TriggerSet``."""
    plugins = load_plugins("")
    config = parse_config(HELD_AND_HEALTHY, registry=plugins.registry)
    with engine.begin() as connection:
        ids = sync_triggers(connection, config, at)
    return build_trigger_set(config, ids, plugins.registry)


def database_options(parser: argparse.ArgumentParser) -> None:
    """``--only sqlite|postgresql`` and ``--pg`` (the admin DSN fresh PostgreSQL databases are made on)."""
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--pg", default=os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )


def databases(args: argparse.Namespace) -> list[str]:
    """The databases to measure, as ``database_options`` chose; prints the load average first."""
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}", flush=True)
    return [kind for kind in ("sqlite", "postgresql") if args.only in (None, kind)]
