"""Workflows for tests/integration/test_continue_as_new.py."""

from __future__ import annotations

import random
from typing import Any

import durable


@durable.step
def draw() -> float:
    return random.random()


@durable.workflow
def loop(state: dict[str, Any]) -> dict[str, Any]:
    """Run `runs` runs of `steps` steps each, then return what every run saw.

    Each run spawns one child (its id must be new in every run: the spawn's key has the
    run in it) and draws a random number at the same position (from the run's seed).
    """
    seen = state.get("seen", [])
    run = len(seen) + 1
    child = durable.spawn(child_run, {"run": run}).id
    value = draw()
    for _ in range(state.get("steps", 1)):
        draw()
    print(f"run {run}", flush=True)
    seen = [*seen, [child, value]]
    if run >= state["runs"]:
        return {"seen": seen, "run": durable.info().id}
    durable.continue_as_new({**state, "seen": seen})


@durable.workflow
def child_run(args: dict[str, Any]) -> int:
    return int(args["run"])


@durable.workflow
def ledger(state: dict[str, Any]) -> int:
    """Insert one row per run into `table`, in the run's SQL transaction, and continue
    for `runs` runs; a run sleeps `pause` seconds after its insert (to be killed in)."""
    run = state.get("run", 1)
    with durable.transaction("insert") as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {state['table']} (run BIGINT NOT NULL)")
        tx.execute(f"INSERT INTO {state['table']} (run) VALUES (?)", [run])
    print(f"inserted {run}", flush=True)
    if state.get("pause"):
        durable.sleep(state["pause"])
    if run >= state["runs"]:
        return run
    durable.continue_as_new({**state, "run": run + 1})


@durable.workflow
def statuses(state: dict[str, Any]) -> int:
    """Set status `first` in run 1 only, and `run` in every run, for `runs` runs."""
    run = state.get("run", 1)
    if run == 1:
        durable.set_status("first", "set in run 1")
    durable.set_status("run", run)
    if run >= state["runs"]:
        return run
    durable.continue_as_new({**state, "run": run + 1})


@durable.workflow
def paced_statuses(state: dict[str, Any]) -> int:
    """Set status `run` at the same position (event 0) of every run, and wait for a
    `next` notification before continuing, for `runs` runs."""
    run = state.get("run", 1)
    durable.set_status("run", run)
    durable.wait("next")
    if run >= state["runs"]:
        return run
    durable.continue_as_new({**state, "run": run + 1})
