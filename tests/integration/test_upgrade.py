"""`durable upgrade --check` on SQLite and Postgres: every unfinished task of a workflow
replayed against new code; clean ones and divergent ones told apart, nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from durable.client import Client
from durable.core.model import TaskState
from durable.host import HostConfig, Runtime
from durable.storage.base import Store
from durable.upgrade import check_upgrade
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, compiled, launch_task, run_cli, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture
def store(sql_store: Store) -> Store:
    return sql_store


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(FAST)
    yield rt
    rt.close()


async def test_check_tells_clean_tasks_from_divergent_ones(store: Store, runtime: Runtime) -> None:
    old = compiled(WORKFLOWS / "patch_old.py")
    new = compiled(WORKFLOWS / "patch_new.py")
    olds = [await launch_task(store, old, "order", c, workflow_name="order") for c in (1, 2)]
    on_new = await launch_task(store, new, "order", 3, workflow_name="order")
    done = await launch_task(store, old, "misuse", None, workflow_name="order")  # fails: ends
    worker = Worker(store, WorkerConfig(concurrency=4, lease_seconds=5, host=FAST), runtime=runtime)
    async with running(worker):

        async def settled() -> bool:
            ids = [*(t.id for t in olds), on_new.id]
            states = [(await store.get_task(i)).state for i in ids]
            ended = (await store.get_task(done.id)).state.is_terminal
            return ended and all(s is TaskState.SUSPENDED for s in states)

        await until(settled, within=300)
    before = {t.id: await store.load_history(t.id) for t in [*olds, on_new]}
    client = Client(store)

    # Onto the new code (patched): the old tasks replay cleanly, up to their wait.
    report = await check_upgrade(client, "order", new, parallel=2)
    assert [r.task_id for r in report.reports] == [t.id for t in olds]
    assert all(r.clean for r in report.reports)
    assert report.already == 1
    assert report.lines()[0] == (f"task {olds[0].id}: clean (1 events, then 'durable:notify.wait')")
    # Back onto the old code: the task that recorded the patch marker diverges.
    back = await check_upgrade(client, "order", old)
    assert [(r.task_id, r.clean) for r in back.reports] == [(on_new.id, False)]
    assert back.reports[0].divergence is not None
    assert "patch charge-fee" in back.reports[0].divergence.expected
    assert back.lines()[-1].startswith(
        "0 of 1 unfinished task(s) of 'order' replay cleanly against the new code ("
    )
    # Nothing was written.
    assert {t.id: await store.load_history(t.id) for t in [*olds, on_new]} == before


def test_the_command(tmp_path: Path) -> None:
    db = str(tmp_path / "up.db")
    launched = run_cli(
        "launch", "order", str(WORKFLOWS / "patch_old.py"), "--entry", "order", "--input", "7",
        "--db", db, cwd=tmp_path,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    worked = run_cli("worker", "--exit-when-idle", "--db", db, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    new = str(WORKFLOWS / "patch_new.py")
    checked = run_cli("upgrade", "patch_old", new, "--check", "--db", db, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[0] == "task 1: clean (1 events, then 'durable:notify.wait')"
    refused = run_cli("upgrade", "patch_old", new, "--db", db, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == (
        "error: moving tasks onto the new binary is not implemented yet: run with --check\n"
    )
    unknown = run_cli("upgrade", "nope", new, "--check", "--db", db, cwd=tmp_path)
    assert unknown.returncode != 0
    assert unknown.stderr == "error: no workflow binary is stored under the name 'nope'\n"
