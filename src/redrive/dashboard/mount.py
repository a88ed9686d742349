"""Serve the dashboard: mounted in redrive's own server at ``/ui``, or standalone against a remote redrive.

Streamlit keeps one runtime per process, so there is one ``st.App`` per process too: every ``create_app`` in a
process (the tests build many) mounts the same one. Its runtime starts on the first request to ``/ui``, so a server
that is never asked for the dashboard never starts Streamlit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

SCRIPT = Path(__file__).with_name("app.py")
API_URL_ENV = "REDRIVE_DASHBOARD_API"  # where the dashboard's client finds the API

# Telemetry off, no tracebacks or developer menu shown to operators, no file watching in production; XSRF
# protection stated rather than left to a default, so that no later change turns it off unnoticed.
STREAMLIT_OPTIONS: dict[str, Any] = {
    "server.enableXsrfProtection": True,
    "browser.gatherUsageStats": False,
    "client.showErrorDetails": "none",
    "client.toolbarMode": "viewer",
    "server.fileWatcherType": "none",
    "server.runOnSave": False,
}

_app: Any = None


def streamlit_app(*, configure: bool = True) -> Any:
    """The process's one ``st.App`` running the dashboard script; ``configure`` applies the options (mounted use)."""
    global _app
    if _app is None:
        import streamlit as st
        from streamlit import config

        if configure:
            for name, value in STREAMLIT_OPTIONS.items():
                config.set_option(name, value)
        _app = st.App(SCRIPT)
    return _app


class _SameServer:
    """Mounted dashboard: tells the dashboard's client to call the server it is served from, on the local socket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] in ("http", "websocket") and server and server[1] is not None:
            host = f"[{server[0]}]" if ":" in server[0] else server[0]
            os.environ.setdefault(API_URL_ENV, f"http://{host}:{server[1]}")
        await self.app(scope, receive, send)


def mount_dashboard(app: Any, path: str) -> None:
    """Mount the dashboard on the FastAPI ``app`` at ``path``."""
    app.mount(path, _SameServer(streamlit_app()), name="dashboard")


def run_standalone(api_url: str, host: str, port: int) -> None:
    """Serve the dashboard alone on ``host:port``, reading from the redrive API at ``api_url``; blocks."""
    os.environ[API_URL_ENV] = api_url.rstrip("/")
    options = {**STREAMLIT_OPTIONS, "server.address": host, "server.port": port, "server.headless": True}
    streamlit_app(configure=False).run(config=options)  # run() reloads the config, so the options go through it
