"""Property: a task crashed at any write and resumed ends exactly as if never crashed.

For a generated script (see `scripts.py`), an uninterrupted reference run gives the
result R and the log O, and counts the history-carrying writes (each `append`,
`finish`, and commit of a workflow SQL transaction, which carries its event) the
attempts make. Then, for every write k, a task with the same script and
seed is crashed before write k is durable and, separately, right after it commits,
and resumed by a fresh worker after the dead one is removed. The resumed task must:

* end like the reference: the same state, the same result or error, the same
  recorded events (labels, digests, and every payload derived from the seed), and a
  byte-identical log with each printed line exactly once; clock readings differ
  between tasks, so the `now` values it returns must equal its own recorded events;
* keep everything that was durable at the crash, unchanged, and nothing of a write
  that the crash prevented;
* have sent each HTTP request (`http` op, to the session's counting server) at least
  once, and at most once more per crash;
* have left each `sql_insert` row exactly once (SQLite; the memory store has no SQL,
  so there those ops become steps);
* have, at the crash and at the end, exactly the status values its durable events set.

Runs with one write per event (a crash point at every event index) and with the
default group commit, on the memory, SQLite and Postgres stores; and with several tasks sharing
one worker (one guest thread each), which dies at one of their writes.
"""

from __future__ import annotations

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from durable.host import Runtime
from durable.storage.base import Store
from tests.property.harness import (
    BACKENDS,
    CONFIGS,
    SHRINK_TIMEOUT,
    Component,
    check_http_counts,
    check_matches_model,
    check_prefix_kept,
    check_same_end,
    check_sql_once,
    check_status,
    count_writes,
    crash_and_resume,
    labels_prefix_ok,
    launch,
    open_backend,
    run_to_end,
    run_until_dead,
    snapshot,
    sql_rows,
    strip_sql,
)
from tests.property.http_server import CountingServer
from tests.property.scripts import ALL_OPS, Script, predict, scripts

SEEDS = st.integers(min_value=1, max_value=2**63 - 1)
#: Half the profile's examples: each Postgres example makes dozens of crashed runs.
POSTGRES_EXAMPLES = max(3, settings().max_examples // 2)  # settings(): the loaded profile

#: Every operation once, a suspension in the middle: always run, in every profile.
EVERY_OP: Script = [
    {"op": "now"},
    {"op": "random"},
    {"op": "uuid"},
    {"op": "print", "text": "a"},
    {"op": "step", "arg": 3},
    {"op": "step_error", "arg": 4},
    {"op": "sleep"},
    {"op": "long_sleep"},
    {"op": "print", "text": "b"},
    {"op": "http"},
    {"op": "notify_wait", "data": 5},
    {"op": "wait"},
    {"op": "spawn", "arg": 6},
    {"op": "sql_insert", "arg": 7},
    {"op": "status", "key": "a", "value": 8},
    {"op": "deprecate_patch"},  # followed by another patch's marker: not its own
    {"op": "patched"},
    {"op": "now"},
    {"op": "raise"},
]


@pytest.mark.anyio
@SHRINK_TIMEOUT
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("backend", BACKENDS)
@given(script=scripts(names=ALL_OPS), seed=SEEDS)
@example(script=EVERY_OP, seed=7)
@example(script=EVERY_OP[:-1], seed=7)
async def test_every_crash_point_resumes_to_the_same_end(
    component: Component,
    runtimes: dict[str, Runtime],
    http_server: CountingServer,
    backend: str,
    config: str,
    script: Script,
    seed: int,
) -> None:
    if backend == "memory":
        script = strip_sql(script)
    async with open_backend(backend) as store:
        await _check_every_crash_point(
            store, runtimes, config, component, http_server, script, seed, backend
        )


@pytest.mark.anyio
@pytest.mark.postgres
@SHRINK_TIMEOUT
@pytest.mark.parametrize("config", list(CONFIGS))
@given(script=scripts(names=ALL_OPS, max_ops=6, max_long_sleeps=1), seed=SEEDS)
@example(script=EVERY_OP, seed=7)
@settings(max_examples=POSTGRES_EXAMPLES)
async def test_every_crash_point_resumes_to_the_same_end_on_postgres(
    component: Component,
    runtimes: dict[str, Runtime],
    http_server: CountingServer,
    shared_pg_url: str,
    config: str,
    script: Script,
    seed: int,
) -> None:
    """The same property on the production store: fenced appends and workflow SQL that
    commits with its event in one Postgres transaction, crashed on either side."""
    async with open_backend("postgres", url=shared_pg_url) as store:
        await _check_every_crash_point(
            store, runtimes, config, component, http_server, script, seed, "postgres",
            url=shared_pg_url,
        )  # fmt: skip


async def _check_every_crash_point(
    store: Store,
    runtimes: dict[str, Runtime],
    config: str,
    component: Component,
    http_server: CountingServer,
    script: Script,
    seed: int,
    backend: str,
    *,
    url: str | None = None,
) -> None:
    """Run `script` uninterrupted under `config`, then crash it before and after each
    of its writes."""
    runtime = runtimes[config]
    name = f"{backend}/{config}"
    prediction = predict(script)
    before = http_server.snapshot()
    task = await launch(store, component, script, seed)
    hits = runtime.instances.hits
    reference, writes = await count_writes(store, runtime, task.id)
    check_matches_model(reference, prediction, f"{name}: reference run")
    if runtime.instances.enabled:  # the cache is in play: every wake-up went on live
        woken = runtime.instances.hits - hits
        assert woken == reference.task.attempts - 1, f"{name}: {woken} live wake-ups"
    check_http_counts(http_server.snapshot() - before, prediction, 0, "reference run")
    check_sql_once(await sql_rows(store, task.id, url=url), prediction, "reference run")
    note(f"reference run's writes: {[w.describe() for w in writes]}")
    event(f"{2 * len(writes)} crash points")
    assert writes, "the reference run made no write at all"
    for crash_at in range(len(writes)):
        for after in (False, True):
            before = http_server.snapshot()
            run = await crash_and_resume(
                store, runtime, component, script, seed, crash_at=crash_at, after=after
            )
            where = f"{name}, seed {seed}: {run.where()}"
            crashes = 0 if run.dead_worker is None else 1
            check_http_counts(http_server.snapshot() - before, prediction, crashes, where)
            check_sql_once(await sql_rows(store, run.final.task.id, url=url), prediction, where)
            if run.fired is None:
                # Only timing (the flush interval) can change how many writes a run
                # makes, and only under the group-commit config.
                assert not config.startswith("per-event"), (
                    f"{where}: the crash point was never reached"
                )
                event("crash point not reached (timing-dependent group commit)")
            else:
                durable = run.writes[: crash_at + 1 if after else crash_at]
                carried = sorted(i for w in durable for i in w.events)
                kept = [e.index for e in run.pre.history]
                assert kept == carried, (
                    f"{where}: events {kept} durable at the crash, "
                    f"but the writes that completed carried {carried}\n"
                    f"{run.pre.describe()}"
                )
            assert labels_prefix_ok(run.pre.history, prediction), (
                f"{where}: the pre-crash history is not a prefix of the model's\n"
                f"{run.pre.describe()}"
            )
            check_status(run.pre, prediction, f"{where}, at the crash")
            check_prefix_kept(run.pre, run.final, where)
            check_matches_model(run.final, prediction, where)
            check_same_end(reference, run.final, prediction, where)


@pytest.mark.anyio
@SHRINK_TIMEOUT
@given(
    batch=st.lists(scripts(max_ops=6), min_size=2, max_size=3),
    seed=SEEDS,
    pick=st.integers(min_value=0, max_value=30),
    after=st.booleans(),
)
async def test_tasks_sharing_a_worker_each_resume_to_their_own_end(
    component: Component,
    runtimes: dict[str, Runtime],
    batch: list[Script],
    seed: int,
    pick: int,
    after: bool,
) -> None:
    """Several tasks run at once in one worker (one guest thread each, one runtime),
    which dies at one of their writes: each must still end as it would alone."""
    runtime = runtimes["per-event"]
    seeds = [(seed + i) % 2**63 or 1 for i in range(len(batch))]
    async with open_backend("memory") as store:
        references = []
        for script, task_seed in zip(batch, seeds, strict=True):
            task = await launch(store, component, script, task_seed)
            references.append(await run_to_end(store, runtime, task.id))
        ids = [
            (await launch(store, component, s, task_seed)).id
            for s, task_seed in zip(batch, seeds, strict=True)
        ]
        total = sum(len(r.history) for r in references) + len(batch)  # about the writes
        crashing, dead = await run_until_dead(
            store, runtime, ids, crash_at=pick % total, after=after, concurrency=len(batch)
        )
        where = f"crash {'after' if after else 'before'} write {pick % total} of {crashing.writes}"
        note(where)
        event("crashed" if dead is not None else "crash point not reached")
        kept = [await snapshot(store, task_id) for task_id in ids]
        if dead is not None:
            await store.remove_worker(dead)
        for script, reference, pre in zip(batch, references, kept, strict=True):
            final = await run_to_end(store, runtime, pre.task.id)
            prediction = predict(script)
            check_prefix_kept(pre, final, where)
            check_matches_model(final, prediction, where)
            check_same_end(reference, final, prediction, where)


@pytest.mark.anyio
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_random_draws_inside_a_step_do_not_shift_the_workflows_random_stream(
    component: Component, runtimes: dict[str, Runtime], after: bool
) -> None:
    """A step body's `random` draws are not replayed; the workflow's own draws must not
    depend on them. Crash once the step is recorded, so the resumed run replays it."""
    script: Script = [{"op": "step_random", "arg": 1}, {"op": "random"}, {"op": "now"}]
    prediction = predict(script)
    runtime = runtimes["per-event"]
    async with open_backend("memory") as store:
        task = await launch(store, component, script, 11)
        reference, writes = await count_writes(store, runtime, task.id)
        check_matches_model(reference, prediction, "reference run")
        assert writes[0].events == (0,), writes
        run = await crash_and_resume(
            store, runtime, component, script, 11, crash_at=0 if after else 1, after=after
        )
        assert run.fired is not None
        check_same_end(reference, run.final, prediction, run.where())
