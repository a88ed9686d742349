# The two commands of the README: `make up` (run redrive on SQLite with the example triggers) and `make test`.
# Both install what they need on a fresh machine with Python 3.11+: uv (pinned, into .tools/ unless already on
# PATH), then the locked dependencies into .venv/.

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_WORKERS ?= 2

.PHONY: up test lint typecheck unit bench clean

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Two stamps: `make up` installs the runtime dependencies only (no test, lint or browser tools); `make test` and the
# other developer targets install the dev group on top. --inexact keeps a dev group already there (a plain sync
# would remove it); `uv run --no-sync` keeps `uv run` from syncing the dev group back in behind `make up`'s back.
# --compile-bytecode writes the dependencies' .pyc files once, at install: where Python may not write them itself
# (PYTHONDONTWRITEBYTECODE, a read-only install), every process would otherwise compile its imports from source,
# about 2 s of CPU for the service's, in each `redrive` command, pytest worker and benchmarked server. (The tests'
# own subprocesses share a bytecode cache of their own: tests/acceptance/acceptance_support.py.)
.venv/.runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode
	touch $@

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

redrive.yaml:
	cp redrive.example.yaml redrive.yaml

up: .venv/.runtime redrive.yaml
	$(UV) run --no-sync redrive up

lint: .venv/.synced
	$(UV) run ruff check src tests benchmarks
	$(UV) run ruff format --check src tests benchmarks
	$(UV) run lint-imports

typecheck: .venv/.synced
	$(UV) run mypy

test: lint typecheck
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

unit: .venv/.synced
	$(UV) run pytest tests/unit -q

bench: .venv/.synced
	$(UV) run python benchmarks/ingest_e2e.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
