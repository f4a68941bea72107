"""The `durable:core/patch` host functions: versioned changes in a workflow's code.

`durable.patched(id)` lets new code and the histories old code recorded live side by
side: a task that reaches the call past the end of its history records a marker event
(`patch ID`) and takes the new branch; a task whose history has some other event at
that point was recorded by code without the patch, and takes the old branch; the
machine (`ReplayMachine.patched`) makes that decision. `deprecate` is the same call
for code whose old branch is gone: it consumes a marker if one is due, records none.

Refused inside a step (its body is live code, never replayed, so there is no history
to consult) and inside a SQL transaction (whose body may only run SQL).
"""

from __future__ import annotations

from wasmtime import component as wc

from durable.host._sql_cursor import TransactionCursor
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION

__all__ = ["MAX_ID_BYTES", "define_patch", "patched"]

#: The longest patch id, in UTF-8 bytes: it is part of an event label.
MAX_ID_BYTES = 200


def _refusal(ctx: AttemptContext, call: str, patch_id: str) -> str | None:
    if not patch_id or len(patch_id.encode()) > MAX_ID_BYTES or not patch_id.isprintable():
        return f"patch id must be 1 to {MAX_ID_BYTES} bytes of printable text, not {patch_id!r}"
    where = f"durable.{call}({patch_id!r})"
    if ctx.in_step:
        return f"{where} inside step {ctx.step_label!r}: call it outside steps"
    if isinstance(ctx.cursor, TransactionCursor):
        label = ctx.cursor.conversation.label
        return f"{where} inside SQL transaction {label!r}: call it outside transactions"
    return None


def patched(ctx: AttemptContext, patch_id: str, *, deprecated: bool = False) -> bool | str:
    """The guest's `patch.patched` (or `patch.deprecate`): the branch to take, or why
    the call was refused."""
    why = _refusal(ctx, "deprecate_patch" if deprecated else "patched", patch_id)
    if why is not None:
        return why
    taken, recorded = ctx.machine.patched(patch_id, deprecated=deprecated)
    if recorded:
        ctx.maybe_flush()  # a marker is not an effect: group commit decides
    return taken


def define_patch(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/patch`."""

    def patched_(_store: object, patch_id: str) -> bool | str:
        return patched(current(), patch_id)  # a bool is the `ok` case, a str the `err`

    def deprecate(_store: object, patch_id: str) -> str | None:
        answer = patched(current(), patch_id, deprecated=True)
        return answer if isinstance(answer, str) else None  # a str is the `err` case

    with root.add_instance(f"durable:core/patch@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"patched": patched_, "deprecate": deprecate})
