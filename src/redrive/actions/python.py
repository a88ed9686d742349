"""The python action: call ``package.module:callable`` with the event, rendered ``args``/``kwargs``, and a timeout.

- The callable is imported when the trigger file is loaded: one that cannot be imported refuses the file (a
  problem at ``triggers[i].action.function``), not each event.
- It is called as ``function(event, *args, **kwargs)``; ``event`` holds ``payload``, ``headers``, ``event`` (id,
  idempotency key, received time) and ``trigger`` (name), as the templates see them. An ``async`` callable is
  awaited; a plain one runs in a thread of the kind's own pool (its ``resources``, sized to the worker's
  concurrency), so it does not stall the worker (a thread cannot be killed: on timeout the attempt fails and the
  call is left to finish on its own).
- It succeeds by returning; what it returns is kept as the attempt's excerpt. It fails by raising:
  ``redrive.TransientError`` / ``redrive.PermanentError`` choose the outcome (with an optional ``code`` and
  ``retry_after``); any other exception is classified by its type (``python_ValueError``; connection errors and
  timeouts are transient, the rest permanent), with the end of its traceback as the excerpt.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import re
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from redrive.action_errors import ActionFailed
from redrive.actions.base import EXCERPT_BYTES, Outcome, Resources
from redrive.extensions import ActionKind, ResourceContext
from redrive.failures.classify import Failure, classify_raised, clip, permanent, transient
from redrive.hookspecs import hookimpl
from redrive.triggers.fields import Duration, StrictModel, TemplateTree
from redrive.triggers.templating import render_tree

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve(reference: str) -> Callable[..., Any]:
    """Import ``package.module:callable``; raise ValueError saying what is wrong."""
    if not _REFERENCE.match(reference):
        raise ValueError(f"{reference!r} is not 'package.module:callable'")
    module_name, _, qualname = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # whatever importing the user's module raised
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no {qualname!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{reference!r} is not callable")
    return target  # type: ignore[no-any-return]


class PythonAction(StrictModel):
    kind: Literal["python"]
    function: str = Field(description="The callable to run, as 'package.module:callable'.")
    args: list[TemplateTree] = Field(default_factory=list)
    kwargs: dict[str, TemplateTree] = Field(default_factory=dict)
    timeout: Duration = Field(60.0, gt=0)

    @field_validator("function")
    @classmethod
    def _importable(cls, reference: str) -> str:
        resolve(reference)
        return reference


class PythonCaller:
    """Calls one Python function per attempt; success is returning, failure is raising."""

    kind: ClassVar[str] = "python"
    __slots__ = ("_config", "_function", "_is_async")

    def __init__(self, config: PythonAction) -> None:
        self._config = config
        self._function = resolve(config.function)
        self._is_async = inspect.iscoroutinefunction(self._function) or inspect.iscoroutinefunction(
            getattr(self._function, "__call__", None)  # noqa: B004 -- an object with an async __call__
        )

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render ``args`` and ``kwargs``; the event the function is given travels with them."""
        config = self._config
        return {
            "function": config.function,
            "args": [render_tree(arg, context) for arg in config.args],
            "kwargs": {name: render_tree(value, context) for name, value in config.kwargs.items()},
            "timeout": config.timeout,
            "event": dict(context),
        }

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Call the function within the timeout and classify how it ended."""
        function, args, kwargs = self._function, rendered["args"], rendered["kwargs"]
        timeout: float = rendered["timeout"]
        try:
            async with asyncio.timeout(timeout) as deadline:
                if self._is_async:
                    result = await function(rendered["event"], *args, **kwargs)
                else:
                    call = functools.partial(function, rendered["event"], *args, **kwargs)
                    result = await asyncio.get_running_loop().run_in_executor(resources.get("python"), call)
        except TimeoutError as exc:
            if deadline.expired():
                failure = transient("python_timeout", f"{self._config.function} did not return within {timeout:g}s")
                return Outcome(failure, {"function": self._config.function}, error=exc)
            return _raised(exc, self._config.function)
        except Exception as exc:  # the function's own failure; cancellation (BaseException) still propagates
            return _raised(exc, self._config.function)
        excerpt = _text(result)
        return Outcome(None, {"function": self._config.function}, excerpt[:EXCERPT_BYTES] if excerpt else None)


def classify_python(exc: BaseException) -> Failure:
    """TransientError / PermanentError as they say; other exceptions by type (``python_ValueError``)."""
    if isinstance(exc, ActionFailed):
        return classify_raised(exc)
    code = f"python_{type(exc).__name__}"
    message = clip(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ConnectionError | TimeoutError):
        return transient(code, message)
    return permanent(code, message)


def _raised(exc: Exception, function: str) -> Outcome:
    trace = "".join(traceback.format_exception(exc))
    return Outcome(
        classify_python(exc), {"function": function, "exception": type(exc).__name__}, trace[-EXCERPT_BYTES:], error=exc
    )


def _text(result: Any) -> str | None:
    if result is None:
        return None
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return repr(result)


def _summary(rendered: Mapping[str, Any]) -> str:
    return str(rendered.get("function", ""))


@asynccontextmanager
async def _threads(context: ResourceContext) -> AsyncIterator[ThreadPoolExecutor]:
    # Plain functions get threads of their own: one that hangs must not take the loop's default executor, which
    # the HTTP client's DNS lookups share. Closing does not wait for a hung call (it cannot be killed).
    executor = ThreadPoolExecutor(max_workers=max(1, context.concurrency), thread_name_prefix="redrive-python")
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


@hookimpl
def redrive_action_kinds() -> list[ActionKind]:
    """The ``python`` action kind."""
    return [
        ActionKind(
            name="python",
            config=PythonAction,
            build=PythonCaller,
            summary=_summary,
            resources=_threads,
            classify=classify_python,
        )
    ]
