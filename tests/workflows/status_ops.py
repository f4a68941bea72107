"""Status values: publish, wait, publish again; and every refusal."""

from __future__ import annotations

from typing import Any

import durable


@durable.workflow
def publish(args: dict[str, Any]) -> str:
    durable.set_status("phase", "waiting")
    durable.set_status("detail", {"n": 1, "items": ["ü", None, 2.5]})
    got = durable.wait("go")
    assert got is not None
    durable.set_status("phase", "done")
    return "ok"


@durable.step
def inside() -> str:
    try:
        durable.set_status("in-step", 1)
    except ValueError as exc:
        return str(exc)
    return "accepted"


def _refused(key: Any, value: Any) -> str:
    try:
        durable.set_status(key, value)
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


@durable.workflow
def limits(args: dict[str, Any]) -> dict[str, str]:
    out = {
        "empty": _refused("", 1),
        "long-key": _refused("k" * 257, 1),
        "max-key": _refused("k" * 256, 1),
        "big-value": _refused("big", "x" * (64 * 1024)),
        "not-json": _refused("nan", float("nan")),
        "not-str": _refused(7, 1),
        "step": inside(),
    }
    for i in range(999):  # with "max-key", the 1000 keys allowed
        durable.set_status(f"key-{i}", i)
    out["one-too-many"] = _refused("key-1000", 1)
    out["existing-key"] = _refused("key-5", "again")
    return out
