"""A Slack-style inbox for trying redrive's alerts without a Slack workspace (standard library only).

``python3 examples/slack_inbox.py serve`` listens on 127.0.0.1:${SLACK_INBOX_PORT:-8010} like a Slack incoming
webhook: every JSON POST is answered 200 ``ok`` and its message (the ``text`` and each Block Kit section) is appended
to ``slack-inbox.txt`` in the current directory. ``python3 examples/slack_inbox.py show --until WORD`` prints that
file once it contains WORD (waiting up to 60 s), so a script can wait for an alert to arrive.
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

INBOX = Path("slack-inbox.txt")


def message_lines(message: dict[str, object]) -> list[str]:
    """What a person would read in Slack: the fallback text, then every section's text (mrkdwn unescaped)."""
    lines = [str(message.get("text", ""))]
    for block in message.get("blocks", []) or []:  # type: ignore[union-attr]
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, dict) and block.get("type") == "section":
            lines.append(html.unescape(str(text.get("text", ""))))
    return lines


class Inbox(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # the http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with INBOX.open("a", encoding="utf-8") as inbox:
            inbox.write("\n".join(message_lines(json.loads(body))) + "\n---\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # quiet: the inbox file is the log
        pass


def show(until: str, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = INBOX.read_text(encoding="utf-8") if INBOX.exists() else ""
        if until in text:
            print(text, end="")
            return 0
        time.sleep(0.5)
    print(f"nothing with {until!r} arrived in {timeout:g} s", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        HTTPServer(("127.0.0.1", int(os.environ.get("SLACK_INBOX_PORT", "8010"))), Inbox).serve_forever()
    if argv[:2] == ["show", "--until"] and len(argv) == 3:
        return show(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
