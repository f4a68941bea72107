"""Property: SQLite and Postgres record the same event log for the same script.

A generated script (every operation, SQL included) runs with the same seed on a fresh
SQLite store and on the session's Postgres database. Once what legitimately differs
between two tasks is masked (clock readings and deadlines, notification send times
and sequence numbers, child task ids, digests derived from ids, the HTTP Date header),
the two tasks must agree on everything else: the state, each event's index, label,
digest and payload, the result (clock readings masked), the error, the log bytes, and
the rows the SQL operations left. Both runs are also checked against the model.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from durable.core.model import Event
from durable.host import Runtime
from tests.property.harness import (
    SHRINK_TIMEOUT,
    Component,
    Snapshot,
    check_matches_model,
    check_sql_once,
    launch,
    open_backend,
    run_to_end,
    sql_rows,
)
from tests.property.scripts import (
    ALL_OPS,
    CLOCK,
    SLEEP,
    SPAWN,
    Prediction,
    Script,
    masked,
    predict,
    scripts,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SEEDS = st.integers(min_value=1, max_value=2**63 - 1)
MASK = "<masked>"


def _payload(event: Event) -> Any:
    """The event's payload with what differs between two tasks masked."""
    value = json.loads(event.payload)
    if event.label in (CLOCK, SLEEP):
        return MASK  # a clock reading or a deadline derived from one
    if event.label.startswith("http ") and isinstance(value.get("ok"), dict):
        ok = value["ok"]
        headers = [[k, MASK if k.lower() == "date" else v] for k, v in ok.get("headers", [])]
        return {**value, "ok": {**ok, "headers": headers}}
    if event.label == "durable:notify.wait" and isinstance(value, dict):
        return {**value, "created_at": MASK, "seq": MASK}
    if event.label == SPAWN and isinstance(value, dict) and "id" in value:
        return {**value, "id": MASK}
    if event.label.startswith("sql ") and isinstance(value, dict):
        # Each statement's digest covers its parameters: the INSERT's carry the task id.
        results = [{**r, "digest": MASK} for r in value.get("results", [])]
        return {**value, "results": results}
    return value


def normalised(run: Snapshot, prediction: Prediction) -> dict[str, Any]:
    """Everything two equivalent tasks on different stores must share."""
    labels = masked(run.labels(), prediction)
    result = run.result
    if isinstance(result, list):
        result = [
            MASK if p.spec.from_events is not None else result[p.index]
            for p in prediction.performed
        ]
    return {
        "state": run.task.state.value,
        "events": [
            (e.index, label, digest, _payload(e))
            for e, (label, digest) in zip(run.history, labels, strict=True)
        ],
        "result": result,
        "error": run.task.error,
        "log": run.chunks(),
    }


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for key in a:
        if a[key] != b[key]:
            lines.append(f"{key}:\n  sqlite:   {a[key]!r}\n  postgres: {b[key]!r}")
    return "\n".join(lines)


@SHRINK_TIMEOUT
@given(script=scripts(names=ALL_OPS, max_ops=8, max_long_sleeps=1), seed=SEEDS)
@example(
    script=[
        {"op": "now"},
        {"op": "random"},
        {"op": "http"},
        {"op": "notify_wait", "data": 1},
        {"op": "wait"},
        {"op": "spawn", "arg": 2},
        {"op": "sql_insert", "arg": 3},
        {"op": "step_print", "arg": 4},
        {"op": "long_sleep"},
        {"op": "raise"},
    ],
    seed=3,
)
async def test_sqlite_and_postgres_record_the_same_log(
    component: Component,
    runtimes: dict[str, Runtime],
    shared_pg_url: str,
    script: Script,
    seed: int,
) -> None:
    runtime = runtimes["per-event"]
    prediction = predict(script)
    async with open_backend("sqlite") as lite:
        task = await launch(lite, component, script, seed)
        on_sqlite = await run_to_end(lite, runtime, task.id)
        lite_rows = await sql_rows(lite, task.id)
    async with open_backend("postgres", url=shared_pg_url) as pg:
        task = await launch(pg, component, script, seed)
        on_postgres = await run_to_end(pg, runtime, task.id)
        pg_rows = await sql_rows(pg, task.id, url=shared_pg_url)
    check_matches_model(on_sqlite, prediction, "sqlite run")
    check_matches_model(on_postgres, prediction, "postgres run")
    check_sql_once(lite_rows, prediction, "sqlite run")
    check_sql_once(pg_rows, prediction, "postgres run")
    a, b = normalised(on_sqlite, prediction), normalised(on_postgres, prediction)
    note(f"sqlite:\n{on_sqlite.describe()}\npostgres:\n{on_postgres.describe()}")
    assert a == b, (
        f"seed {seed}: the stores disagree once ids and times are masked:\n{_diff(a, b)}\n"
        f"--- sqlite:\n{on_sqlite.describe()}\n--- postgres:\n{on_postgres.describe()}"
    )
