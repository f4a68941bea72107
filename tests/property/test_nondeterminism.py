"""Property: a script changed under a stopped task fails at the first divergent event.

A task runs a generated script until it stops: suspended at its first long sleep, or
crashed at a chosen write. Its input is then rewritten behind the engine's back (direct
SQL on the SQLite file) to a mutated script, and the task resumes. The replay must
either:

* fail the task with a `NondeterminismError` naming the first history index where
  what the mutated script performs (label and digest, per the model in `scripts.py`)
  differs from what was recorded, or where the script ends before the history does,
  leaving the history exactly as it was; or,
* when the mutated script performs exactly the recorded events first, carry on and
  end as the mutated script does (the same result, error and log as a fresh task
  running it with the same seed), keeping what was already logged.

Never a wrong result silently. Mutations only after the suspension point must not fail.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import assume, event, given, note
from hypothesis import strategies as st

from durable.core.model import Stream, TaskState
from durable.host import Runtime
from durable.storage.sqlite import SQLiteStore
from tests.property.harness import (
    SHRINK_TIMEOUT,
    Component,
    Snapshot,
    check_matches_model,
    check_prefix_kept,
    check_same_end,
    count_writes,
    crash,
    launch,
    open_backend,
    resume,
    run_to_end,
    run_until_suspended,
    set_input,
)
from tests.property.scripts import SPECS, Label, Script, ops, predict, scripts

SEEDS = st.integers(min_value=1, max_value=2**63 - 1)
#: What mutations draw from. `step_random` is left out: its replay bug (see
#: test_crash_replay) is not what these tests are about.
#: Also left out: ops whose digests depend on the task or child id (the model
#: cannot predict where a changed one diverges without the ids); `sql_insert` (its
#: statements are checked inside its payload, not by label); `wait` (its notification
#: is sent at launch, for the original script only).
#: And the patch ops: a `patched` inserted before recorded events takes the old branch
#: instead of diverging, by design (`tests/integration/test_patched.py` covers that).
NAMES = sorted(
    n
    for n, spec in SPECS.items()
    if n not in ("step_random", "wait", "patched", "deprecate_patch")
    and spec.digests is None
    and not spec.needs_sql
)
_INDEX = re.compile(r"nondeterminism at event (\d+):")


def first_divergence(recorded: list[Label], performed: list[Label]) -> int | None:
    """The first index where `performed` departs from `recorded`, or None if it extends it.

    Departing includes ending early: a script that stops while history remains.
    """
    for i, label in enumerate(recorded):
        if i >= len(performed) or performed[i] != label:
            return i
    return None


@st.composite
def mutated(draw: st.DrawFn, script: Script, *, start: int = 0) -> Script:
    """`script` with one to three edits (replace, insert, delete, change an argument),
    each at an index >= `start`; always different from `script`."""
    result = list(script)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kinds = ["insert"]
        if len(result) > start:
            kinds += ["replace", "delete", "argument"]
        kind = draw(st.sampled_from(kinds))
        if kind == "insert":
            at = draw(st.integers(min_value=start, max_value=len(result)))
            result.insert(at, draw(ops(NAMES)))
            continue
        at = draw(st.integers(min_value=start, max_value=len(result) - 1))
        if kind == "replace":
            result[at] = draw(ops(NAMES))
        elif kind == "delete":
            del result[at]
        else:
            op: dict[str, Any] = dict(result[at])
            args = draw(SPECS[op["op"]].args)
            result[at] = {**op, **args}
    assume(result != script)
    return result


async def check_resumed(
    component: Component,
    runtime: Runtime,
    *,
    stopped: Snapshot,
    final: Snapshot,
    changed: Script,
    seed: int,
) -> int | None:
    """Check how a task that ran another script until `stopped` ended running `changed`.

    Returns the index the nondeterminism error named, or None when there was none.
    """
    recorded = stopped.labels()
    performed = predict(changed).labels
    expected = first_divergence(recorded, performed)
    where = (
        f"recorded {recorded}\nthe changed script performs {performed}\n"
        f"expected divergence at {expected}"
    )
    note(where)
    event("nondeterminism expected" if expected is not None else "no divergence expected")
    check_prefix_kept(stopped, final, where)
    if expected is not None:
        dump = f"{where}\n{final.describe()}"
        assert final.task.state is TaskState.FAILED, f"a silent wrong result: {dump}"
        error = final.error or {}
        assert error.get("kind") == "NondeterminismError", dump
        found = _INDEX.search(str(error.get("message", "")))
        assert found is not None, dump
        assert int(found.group(1)) == expected, f"wrong index named: {dump}"
        recorded_label = recorded[expected][0]
        assert repr(recorded_label) in error["message"], dump
        performed_label = performed[expected][0] if expected < len(performed) else "the end"
        assert performed_label in error["message"], dump
        assert final.history == stopped.history, f"history changed: {dump}"
        assert b"NondeterminismError" in final.output(Stream.STDERR), f"not in the log: {dump}"
        return expected
    async with open_backend("memory") as fresh:
        ref_task = await launch(fresh, component, changed, seed)
        reference = await run_to_end(fresh, runtime, ref_task.id)
    prediction = predict(changed)
    check_matches_model(final, prediction, where, check_stdout=False)
    check_same_end(reference, final, prediction, where, kept=stopped)
    return None


#: What runs before and after the one suspension the suspended cases have.
_HEAD = [n for n in NAMES if not SPECS[n].suspends and not SPECS[n].raises]
_TAIL = [n for n in NAMES if not SPECS[n].suspends]


@st.composite
def suspending_scripts(draw: st.DrawFn) -> tuple[Script, int]:
    """A script with one long sleep, and the index of the first op after it."""
    head = draw(scripts(min_ops=0, max_ops=4, names=_HEAD))
    tail = draw(scripts(min_ops=0, max_ops=3, names=_TAIL))
    return [*head, {"op": "long_sleep"}, *tail], len(head) + 1


@st.composite
def suspended_cases(draw: st.DrawFn, *, only_after: bool = False) -> tuple[Script, Script]:
    """(a script that suspends, a mutation of it), all edits after the sleep if asked."""
    script, after_sleep = draw(suspending_scripts())
    return script, draw(mutated(script, start=after_sleep if only_after else 0))


@st.composite
def crashed_cases(draw: st.DrawFn) -> tuple[Script, Script, int, bool]:
    """(a script, a mutation of it, a crash point pick, before or after the write)."""
    script = draw(scripts(names=NAMES))
    pick = draw(st.integers(min_value=0, max_value=15))  # taken modulo the write count
    return script, draw(mutated(script)), pick, draw(st.booleans())


@pytest.mark.anyio
@SHRINK_TIMEOUT
@given(case=suspended_cases(), seed=SEEDS)
async def test_a_script_changed_while_suspended_fails_at_the_first_divergent_event(
    component: Component,
    runtimes: dict[str, Runtime],
    case: tuple[Script, Script],
    seed: int,
) -> None:
    script, changed = case
    runtime = runtimes["per-event"]
    async with open_backend("sqlite") as store:
        assert isinstance(store, SQLiteStore)
        task = await launch(store, component, script, seed)
        stopped = await run_until_suspended(store, runtime, task.id)
        set_input(store.path, task.id, changed)
        final = await run_to_end(store, runtime, task.id)
        await check_resumed(
            component, runtime, stopped=stopped, final=final, changed=changed, seed=seed
        )


@pytest.mark.anyio
@SHRINK_TIMEOUT
@given(case=crashed_cases(), seed=SEEDS)
async def test_a_script_changed_after_a_crash_fails_at_the_first_divergent_event(
    component: Component,
    runtimes: dict[str, Runtime],
    case: tuple[Script, Script, int, bool],
    seed: int,
) -> None:
    script, changed, pick, after = case
    runtime = runtimes["per-event"]
    async with open_backend("sqlite") as store:
        assert isinstance(store, SQLiteStore)
        counted = await launch(store, component, script, seed)
        _, writes = await count_writes(store, runtime, counted.id)
        task = await launch(store, component, script, seed)
        crashed = await crash(store, runtime, task.id, crash_at=pick % len(writes), after=after)
        note(crashed.where())
        if crashed.pre.task.state.is_terminal:
            event("crashed after its last write: nothing left to change")
            return
        set_input(store.path, task.id, changed)
        final = await resume(store, runtime, crashed)
        await check_resumed(
            component, runtime, stopped=crashed.pre, final=final, changed=changed, seed=seed
        )


@pytest.mark.anyio
@SHRINK_TIMEOUT
@given(case=suspended_cases(only_after=True), seed=SEEDS)
async def test_changes_after_the_suspension_point_do_not_fail(
    component: Component,
    runtimes: dict[str, Runtime],
    case: tuple[Script, Script],
    seed: int,
) -> None:
    script, changed = case
    runtime = runtimes["per-event"]
    async with open_backend("sqlite") as store:
        assert isinstance(store, SQLiteStore)
        task = await launch(store, component, script, seed)
        stopped = await run_until_suspended(store, runtime, task.id)
        set_input(store.path, task.id, changed)
        final = await run_to_end(store, runtime, task.id)
        named = await check_resumed(
            component, runtime, stopped=stopped, final=final, changed=changed, seed=seed
        )
        assert named is None, f"failed at event {named} for a change after the suspension"
