"""The `durable_check` pytest fixture: `durable check` from a user's test suite.

    def test_order_survives_crashes(durable_check):
        report = durable_check("workflows/order.py", input={"id": 7})
        assert report.ok, "\\n".join(report.lines())

Registered as a `pytest11` plugin, so installing durable makes the fixture available.
Each check uses a scratch SQLite database in the test's `tmp_path`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the host is imported when a test uses the fixture, not at start-up
    from durable.testing.check import CheckReport

#: `durable_check(workflow, input=None, *, entry="", live_http=False) -> CheckReport`
DurableCheck = Callable[..., "CheckReport"]


@pytest.fixture
def durable_check(tmp_path: Path) -> DurableCheck:
    """Crash-test a workflow (a `.py` or `.wasm` path): see `durable check`."""

    def check(
        workflow: str | Path, input: Any = None, *, entry: str = "", live_http: bool = False
    ) -> CheckReport:
        import anyio

        from durable.loader import read_workflow
        from durable.storage import open_store
        from durable.testing.check import check_workflow

        wasm, _kind = read_workflow(Path(workflow))

        async def main() -> CheckReport:
            store = await open_store(str(tmp_path / "durable-check.db"))
            try:
                return await check_workflow(
                    store, wasm, input=json.dumps(input), entry=entry, live_http=live_http
                )
            finally:
                await store.close()

        return anyio.run(main)

    return check
