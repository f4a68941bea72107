"""Recorded steps: `@durable.step` makes any function's outcome durable.

On the first run the body executes and its result (or the exception it raised) is
recorded. On replay the body is skipped and the recorded outcome comes back, so code
after the step sees exactly what it saw the first time.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar, overload

from wit_world.imports import step as _step

from durable import _state
from durable._errors import StepFailed

F = TypeVar("F", bound=Callable[..., Any])


@overload
def step(fn: F) -> F: ...
@overload
def step(*, name: str | None = None) -> Callable[[F], F]: ...


def step(fn: F | None = None, *, name: str | None = None) -> Any:
    """Decorate a function so that each call is a recorded step.

    The result must be JSON-serialisable; the caller gets it back as JSON would decode
    it (tuples become lists) on the first run as on replay. The step is identified by
    its name (default: the function's qualified name) and a digest of its arguments;
    replaying with a different name or arguments at the same point fails the task with
    a nondeterminism error. A step called inside another step runs as plain code.
    """

    def decorate(f: F) -> F:
        label = "step " + (name or f.__qualname__)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _state.in_step:
                return f(*args, **kwargs)
            return run_step(label, _digest(args, kwargs), lambda: f(*args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


def run_step(label: str, digest: str | None, body: Callable[[], Any]) -> Any:
    """Run `body` as the recorded step `label`, or return its recorded outcome."""
    recorded = _step.enter(label, digest)
    if recorded is not None:
        return _outcome(json.loads(recorded))
    _state.in_step = True
    try:
        value = body()
    except Exception as exc:
        payload = _error_payload(exc)
        _state.in_step = False
        _step.exit(json.dumps(payload))
        rebuilt = _rebuild(payload["error"])
        if rebuilt is None or type(rebuilt) is not type(exc):
            raise StepFailed(payload["error"]["kind"], payload["error"]["message"]) from exc
        raise
    finally:
        _state.in_step = False
    try:
        text = json.dumps({"ok": value}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps(
            {
                "error": {
                    "kind": "TypeError",
                    "message": f"step {label[5:]} returned a value "
                    f"that is not JSON-serialisable: {exc}",
                    "args": None,
                }
            }
        )
        _step.exit(text)
        return _outcome(json.loads(text))
    _step.exit(text)
    return json.loads(text)["ok"]


def _outcome(payload: dict[str, Any]) -> Any:
    if "ok" in payload:
        return payload["ok"]
    err = payload["error"]
    rebuilt = _rebuild(err)
    if rebuilt is not None:
        raise rebuilt
    raise StepFailed(err["kind"], err["message"])


def _error_payload(exc: BaseException) -> dict[str, Any]:
    args: list[Any] | None = list(exc.args)
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        args = None
    return {"error": {"kind": type(exc).__name__, "message": str(exc), "args": args}}


def _rebuild(err: dict[str, Any]) -> BaseException | None:
    """Rebuild a builtin exception from its record, so replay raises the same type.

    Only builtin exception types are rebuilt: they are importable in every run and take
    their args back. Anything else becomes `StepFailed`, on the first run as on replay.
    """
    cls = getattr(builtins, err["kind"], None)
    if isinstance(cls, type) and issubclass(cls, Exception) and err.get("args") is not None:
        try:
            return cls(*err["args"])
        except Exception:
            return None
    return None


def _digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A short hash of the arguments, or None when they are not JSON (e.g. objects)."""
    try:
        text = json.dumps([args, kwargs], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]
