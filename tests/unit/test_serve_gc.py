"""The serving process's collector settings (``redrive.cli.serve._freeze``), checked in a fresh interpreter: freezing
there would hide the test process's own objects from its collector."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from redrive.cli.serve import YOUNG_OBJECTS, _freeze

_freeze()
collections = []
gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
held = [[] for _ in range(YOUNG_OBJECTS // 2)]  # in flight: alive, so counted, and no garbage among them
during = len(collections)
held += [[] for _ in range(YOUNG_OBJECTS)]
print(json.dumps({"frozen": gc.get_freeze_count(), "during": during, "after": len(collections)}))
"""


def probe() -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_what_startup_built_is_frozen_and_objects_in_flight_do_not_start_a_collection_until_there_are_many() -> None:
    found = probe()
    assert found["frozen"] > 10_000  # the modules, classes and functions imported so far
    assert found["during"] == 0  # Python's default (700) would have collected several times by now
    assert found["after"] >= 1  # past YOUNG_OBJECTS the young generation is collected as before
