"""`patch_old.py` after a change: charge with a fee, behind `durable.patched`."""

from __future__ import annotations

import durable


@durable.step
def charge(cents: int) -> str:
    return f"charged {cents}"


@durable.step
def charge_with_fee(cents: int, fee: int) -> str:
    return f"charged {cents} + fee {fee}"


@durable.workflow
def order(cents: int) -> dict[str, object]:
    if durable.patched("charge-fee"):  # noqa: SIM108 - the shape the docs show
        receipt = charge_with_fee(cents, 30)
    else:
        receipt = charge(cents)
    approval = durable.wait("approve")
    return {"receipt": receipt, "approved": approval is not None}


@durable.workflow
def misuse(_: object) -> dict[str, str]:
    """Every refusal the host gives, as the workflow sees it."""
    out: dict[str, str] = {}
    for name, call in [
        ("empty", lambda: durable.patched("")),
        ("not-str", lambda: durable.patched(3)),  # type: ignore[arg-type]
        ("in-step", lambda: patch_in_step()),
    ]:
        try:
            call()
            out[name] = "accepted"
        except (TypeError, ValueError) as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


@durable.step
def patch_in_step() -> bool:
    return durable.patched("inside")
