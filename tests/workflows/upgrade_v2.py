"""`upgrade_v1.py` after a change: the reservation step has a new name (a history that
recorded the old one diverges here), and the result says which code ran."""

from __future__ import annotations

from typing import Any

import durable
from durable import http


@durable.step
def hello(kind: str) -> str:
    return f"hello {kind}"


@durable.step
def reserve_stock(kind: str) -> str:
    return f"reserved for {kind}"


@durable.workflow
def order(job: dict[str, Any]) -> dict[str, Any]:
    kind = job["kind"]
    hello(kind)
    if kind == "diverge":
        reserve_stock(kind)
    if kind == "busy":
        http.get(job["url"], timeout=600)
    durable.wait("go")
    return {"code": "v2", "kind": kind}
