"""Recorded steps: `@durable.step` makes any function's outcome durable.

On the first run the body executes and its result (or the exception it raised) is
recorded. On replay the body is skipped and the recorded outcome comes back, so code
after the step sees exactly what it saw the first time.
"""

from __future__ import annotations

import builtins
import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from componentize_py_types import Err
from wit_world.imports import step as _step

from durable import _cancel, _codec, _state, _timers
from durable._errors import StepFailed

F = TypeVar("F", bound=Callable[..., Any])
# Looked up once: they are on every step's path.
_enter_ahead = _step.enter_ahead
_take_ahead = _step.take_ahead
_digest = _codec.digest
_decode_ok = _codec.decode_ok
_NOT_PLAIN = _codec.NOT_PLAIN
#: How many recorded steps to ask for at once (the replay buffer; see `_enter`).
AHEAD = 512


@dataclass(frozen=True)
class Retry:
    """How often, and how patiently, to retry a step that raises.

    The n-th retry waits `backoff * factor ** (n - 1)` seconds, at most `max_delay`.
    Every attempt and its outcome are recorded, and the waits are durable timers, so a
    crash in the middle of a backoff resumes it, and a replay takes the same path.
    """

    attempts: int = 3  # attempts in all, the first included
    backoff: float = 1.0  # seconds before the first retry
    factor: float = 2.0  # growth of the wait per retry
    max_delay: float = 60.0  # longest wait between attempts
    # Exception types worth retrying (matched against the step's raised exception).
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        return min(self.backoff * self.factor ** (retry - 1), self.max_delay)


@overload
def step(fn: F) -> F: ...
@overload
def step(*, name: str | None = None, retry: Retry | None = None) -> Callable[[F], F]: ...


def step(fn: F | None = None, *, name: str | None = None, retry: Retry | None = None) -> Any:
    """Decorate a function so that each call is a recorded step.

    The result must be JSON-serialisable; the caller gets it back as JSON would decode
    it (tuples become lists) on the first run as on replay. The step is identified by
    its name (default: the function's qualified name) and a digest of its arguments;
    replaying with a different name or arguments at the same point fails the task with
    a nondeterminism error. A step called inside another step runs as plain code.
    With `retry`, a step that raises is run again after a durable backoff.
    """

    def decorate(f: F) -> F:
        label = "step " + (name or f.__qualname__)
        if retry is not None:
            return functools.wraps(f)(_retried(f, label, retry))  # type: ignore[return-value]
        return functools.wraps(f)(_replaying(f, label))  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


def _replaying(f: Callable[..., Any], label: str) -> Callable[..., Any]:
    """The step `label` around `f`: on replay, most calls end in the buffer's branch.

    That branch replays the next entry handed out by the host (see `_enter`) when it
    is this step's: it makes no closure, no dict beyond its arguments' and, besides
    the digest and the decoding of the answer, one call, the crossing that keeps the
    host's position (`step.take-ahead`). Any other step goes the way of `run_step`.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = _state
        if state.in_step:
            return f(*args, **kwargs)
        digest = _digest(args, kwargs)
        ahead = state.ahead
        # "" stands for no digest in an entry (a digest is None or 16 hex digits).
        if ahead and (entry := ahead[-1])[0] == label and entry[1] == (digest or ""):
            ahead.pop()
            try:
                _take_ahead()
            except Err:
                state.ahead = []
                raise _cancel.error() from None
            recorded = entry[2]
            value = _decode_ok(recorded)  # the common `{"ok": ...}`, without a dict
            return _outcome(json.loads(recorded)) if value is _NOT_PLAIN else value
        recorded = _enter(label, digest)
        if recorded is not None:
            return _replayed(recorded)
        return _execute(label, _body(f, args, kwargs))

    return wrapper


def _body(
    f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[], Any]:
    # Made here, not in the wrapper: a lambda there would make its arguments closure
    # cells on every call, replayed or not.
    return lambda: f(*args, **kwargs)


def _retried(f: Callable[..., Any], label: str, policy: Retry) -> Callable[..., Any]:
    """The step `label` around `f`, run again after a durable backoff while it raises."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _state.in_step:
            return f(*args, **kwargs)
        digest = _digest(args, kwargs)
        return _with_retries(policy, label, digest, _body(f, args, kwargs))

    return wrapper


def _with_retries(policy: Retry, label: str, digest: str | None, body: Callable[[], Any]) -> Any:
    for attempt in range(1, max(policy.attempts, 1) + 1):
        _state.step_attempt = attempt
        try:
            return run_step(label, digest, body)
        except policy.retry_on as exc:
            if attempt >= policy.attempts or not _retryable(policy, exc):
                raise
            _timers.sleep(policy.delay(attempt))
        finally:
            _state.step_attempt = 1
    raise AssertionError("unreachable")


def step_attempt() -> int:
    """Inside a step with a retry policy: which attempt this is (1, 2, ...)."""
    return _state.step_attempt


def _retryable(policy: Retry, exc: BaseException) -> bool:
    # A StepFailed stands for an exception that could not be rebuilt; retry it only
    # when the policy retries everything.
    return not isinstance(exc, StepFailed) or Exception in policy.retry_on


def run_step(label: str, digest: str | None, body: Callable[[], Any]) -> Any:
    """Run `body` as the recorded step `label`, or return its recorded outcome."""
    # Inside a step the host refuses a nested one, with its own message.
    recorded = _step.enter(label, digest) if _state.in_step else _enter(label, digest)
    if recorded is not None:
        return _replayed(recorded)
    return _execute(label, body)


def _enter(label: str, digest: str | None) -> str | None:
    """`_cancel.check()` and `_step.enter` in one host call (half a replay's calls).

    On replay the host hands out the steps recorded after this one with its answer
    (`step.enter-ahead`); a step that is the next of them is replayed by the step
    wrapper (`_replaying`) with `step.take-ahead`, which carries no strings. Any other
    step (one the wrapper did not find there, or a retried step's attempt) drops them
    here and asks the host, which matches it against the history (see
    `durable.host.step_ahead`) and forgets what it handed out before.
    """
    _state.ahead = []
    try:
        recorded, text = _enter_ahead(label, digest, AHEAD)
    except Err:
        raise _cancel.error() from None
    if text:  # every field ends with a NUL
        fields = iter(text[:-1].split("\0"))
        entries = list(zip(fields, fields, fields, strict=False))  # (label, digest, payload)
        entries.reverse()  # the next one last: taken with `pop`
        _state.ahead = entries
    return recorded


def _execute(label: str, body: Callable[[], Any]) -> Any:
    """Run the body of the step just entered (not in the history) and record its outcome."""
    _state.in_step = True
    # `random` keeps its state in guest memory: draws made by the body would advance it
    # on the first run but not on a replay, which skips the body. Restoring the state
    # afterwards keeps the workflow's own random sequence the same on both paths.
    saved = random.getstate()
    try:
        value = body()
    except Exception as exc:
        payload = _error_payload(exc)
        _state.in_step = False
        random.setstate(saved)
        _step.exit(json.dumps(payload))
        rebuilt = _rebuild(payload["error"])
        if rebuilt is None or type(rebuilt) is not type(exc):
            raise StepFailed(payload["error"]["kind"], payload["error"]["message"]) from exc
        raise
    finally:
        _state.in_step = False
        random.setstate(saved)
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


def _replayed(recorded: str) -> Any:
    """A recorded payload's outcome: its value, or its exception raised."""
    value = _codec.decode_ok(recorded)  # the common `{"ok": ...}`, without a dict
    return _outcome(json.loads(recorded)) if value is _codec.NOT_PLAIN else value


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
