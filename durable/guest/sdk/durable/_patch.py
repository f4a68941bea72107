"""Versioned changes: `durable.patched` lets new code replay what old code recorded."""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import patch as _patch

from durable import _cancel


def patched(patch_id: str) -> bool:
    """Whether this task takes the new branch of the change named `patch_id`.

        if durable.patched("charge-v2"):
            receipt = charge_v2(order)
        else:
            receipt = charge(order)

    True for a task that reaches this call after the change was deployed (a marker is
    recorded, so its replays take the new branch too); False for a task whose history,
    recorded by the old code, had already passed this point. Once no such task is left,
    replace the call with `durable.deprecate_patch(patch_id)` and drop the old branch.

    Raises:
        TypeError: `patch_id` is not a str.
        ValueError: refused by the host: the id is empty, over 200 bytes or not
            printable, or the call is inside a step or a SQL transaction.
    """
    _check(patch_id)
    _cancel.check()
    try:
        return _patch.patched(patch_id)
    except Err as exc:
        raise ValueError(str(exc.value)) from None


def deprecate_patch(patch_id: str) -> None:
    """Mark the change `patch_id` as done: every task now runs the new code.

    Histories recorded while the code still called `durable.patched(patch_id)` hold
    its marker here; this call consumes it, so those tasks replay cleanly. Nothing is
    recorded for new tasks. Raises like `patched`.
    """
    _check(patch_id)
    _cancel.check()
    try:
        _patch.deprecate(patch_id)
    except Err as exc:
        raise ValueError(str(exc.value)) from None


def _check(patch_id: object) -> None:
    if not isinstance(patch_id, str):
        raise TypeError(f"patch id must be a str, not {type(patch_id).__name__}")
