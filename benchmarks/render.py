"""What does rendering an http action's templates cost per attempt? A figure, not a test.

    python benchmarks/render.py [--attempts 20000] [--repeat 5]

Renders the action of ``peers.py``'s trigger (a header and three JSON leaves, each one field:
``{{ event.idempotency_key }}``, ``{{ payload.key }}`` ...) and an ordering key written as an expression
(``destinations_e2e.py``'s) against the same context as the worker builds (``action_context``), two ways,
interleaved round by round:

- ``jinja``: every template rendered by Jinja (``templating._fast_render``), as before the field paths were looked
  up directly;
- ``redrive``: ``compile_template`` as redrive uses it: a template of text and field paths alone is looked up
  directly, anything else (the expression) still renders through Jinja.

Printed per round: CPU microseconds per attempt of each (``time.process_time``, one thread), and redrive's over
Jinja's. These machines' speed changes every few hundred milliseconds; the ratio within a round is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from redrive.triggers.runtime import action_context
from redrive.triggers.templating import _ENV, Template, _fast_render, compile_template, compile_tree, render_tree

ACTION = {  # peers.py's trigger: what the peers' apps send as well
    "url": "http://127.0.0.1:9/sink",
    "headers": {"X-Key": "{{ event.idempotency_key }}"},
    "json": {"key": "{{ payload.key }}", "type": "{{ payload.type }}", "data": "{{ payload.data }}"},
}
ORDERING_KEY = "{{ (payload.messageId[4:] | int) % 1000 }}"  # destinations_e2e.py's: not a field path


def by_jinja(tree: Any) -> Any:
    """``compile_tree``'s shape, every template rendered by Jinja alone."""
    if isinstance(tree, Template):
        return tree if tree._render is None else Template(tree.source, _fast_render(_ENV.from_string(tree.source)))
    if isinstance(tree, dict):
        return {key: by_jinja(item) for key, item in tree.items()}
    return tree


def cpu_per_attempt(tree: Any, key: Template, context: dict[str, Any], attempts: int) -> float:
    """CPU microseconds per rendering of the action and the key."""
    start = time.process_time()
    for _ in range(attempts):
        render_tree(tree, context)
        key.render(context)
    return (time.process_time() - start) / attempts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=20_000, help="renderings per variant per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each timing both (default 5)")
    args = parser.parse_args()
    payload = {"key": "k-1", "type": "order.paid", "data": "x" * 900, "messageId": "msg-1234"}
    context = action_context(
        "bench", event_id=1, payload=payload, headers={}, idempotency_key="k-1", received_at=datetime.now(UTC)
    )
    redrive = (compile_tree(ACTION), compile_template(ORDERING_KEY))
    jinja = (by_jinja(redrive[0]), by_jinja(redrive[1]))
    assert render_tree(redrive[0], context) == render_tree(jinja[0], context), "the two ways render the same"
    ratios = []
    for n in range(1, args.repeat + 1):
        old = cpu_per_attempt(*jinja, context, args.attempts)
        new = cpu_per_attempt(*redrive, context, args.attempts)
        ratios.append(new / old)
        print(f"#{n} jinja {old:.2f} us/attempt, redrive {new:.2f} us/attempt, redrive / jinja {new / old:.3f}")
    print(f"median redrive / jinja {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
