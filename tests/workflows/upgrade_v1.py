"""A shop's order workflow before a change (`upgrade_v2.py` is the next version), for
tests/integration/test_upgrade.py: `durable upgrade` moves the tasks that replay
cleanly onto the new code.

`job["kind"]`: "diverge" reserves stock in a step that v2 renamed, so its history does
not replay on v2; "busy" first calls `job["url"]`, which the test's server holds, so
that the task is running (leased) while the upgrade runs.
"""

from __future__ import annotations

from typing import Any

import durable
from durable import http


@durable.step
def hello(kind: str) -> str:
    return f"hello {kind}"


@durable.step
def reserve(kind: str) -> str:
    return f"reserved for {kind}"


@durable.workflow
def order(job: dict[str, Any]) -> dict[str, Any]:
    kind = job["kind"]
    hello(kind)
    if kind == "diverge":
        reserve(kind)
    if kind == "busy":
        http.get(job["url"], timeout=600)
    durable.wait("go")
    return {"code": "v1", "kind": kind}
