"""An order workflow before a change: `patch_new.py` is the same with `durable.patched`."""

from __future__ import annotations

import durable


@durable.step
def charge(cents: int) -> str:
    return f"charged {cents}"


@durable.workflow
def order(cents: int) -> dict[str, object]:
    receipt = charge(cents)
    approval = durable.wait("approve")
    return {"receipt": receipt, "approved": approval is not None}
