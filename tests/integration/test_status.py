"""Task status values (`durable.set_status`) on real components and every store backend:
visible while the task runs, committed with their event, never set again by a replay,
bounded; and read through the client, `durable status` and `durable show`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from durable.cli import cli
from durable.client import Client
from durable.core import ops
from durable.core.model import NewTask, Task, TaskState
from durable.errors import TaskNotFoundError
from durable.host import HostConfig, Runtime
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import EXAMPLES, WORKFLOWS, compiled, replay, run_cli, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(FAST)
    yield rt  # type: ignore[misc]
    rt.close()


@pytest.fixture(scope="module")
def status_ops() -> tuple[bytes, str]:
    # Compiled here, so that a worker runs it at once rather than handing it back
    # while it compiles (a minute, on a loaded machine).
    wasm = compiled(WORKFLOWS / "status_ops.py")
    return wasm, hashlib.sha256(wasm).hexdigest()


async def launch(store: Store, wasm: tuple[bytes, str], entry: str, value: Any) -> Task:
    await store.put_workflow(wasm[0])
    spec = NewTask(name=entry, workflow_hash=wasm[1], entry=entry, input=json.dumps(value))
    return await store.create_task(spec)


async def ended(store: Store, task_id: int) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state.is_terminal else None

    result: Task = await until(check)
    return result


def worker(store: Store, runtime: Runtime) -> Worker:
    return Worker(store, WorkerConfig(concurrency=2, lease_seconds=5, host=FAST), runtime=runtime)


async def test_values_show_while_the_task_runs_and_replay_sets_nothing(
    store: Store, runtime: Runtime, status_ops: tuple[bytes, str]
) -> None:
    client = Client(store)
    task = await launch(store, status_ops, "publish", {})
    async with running(worker(store, runtime)):

        async def waiting() -> dict[str, Any] | None:
            values = await client.status(task.id)
            return values if len(values) == 2 else None

        assert await until(waiting) == {
            "phase": "waiting",
            "detail": {"n": 1, "items": ["ü", None, 2.5]},
        }
        assert (await store.get_task(task.id)).state is not TaskState.COMPLETE
        await client.notify(task.id, "go")
        done = await ended(store, task.id)
    assert done.state is TaskState.COMPLETE, done.error
    assert await client.status(task.id) == {
        "phase": "done",
        "detail": {"n": 1, "items": ["ü", None, 2.5]},
    }
    history = await store.load_history(task.id)
    sets = [e for e in history if e.label == ops.STATUS_SET.label]
    assert [ops.STATUS_SET.decode(e.payload) for e in sets] == [
        {"key": "phase"},
        {"key": "detail"},
        {"key": "phase"},
    ]
    # Each value names the event that set it; the value itself is not in the history.
    by_key = {v.key: v for v in await client.status_values(task.id)}
    assert by_key["phase"].position == sets[2].index
    assert by_key["detail"].position == sets[1].index
    assert all("waiting" not in e.payload for e in sets)
    # A replay answers every call from the history: its sink fails the test on a write.
    end = await replay(store, runtime, status_ops[0], done)
    assert end.outcome is not None
    assert end.events == []
    assert end.writes == []


async def test_every_bound_is_refused_with_a_clear_error(
    store: Store, runtime: Runtime, status_ops: tuple[bytes, str]
) -> None:
    task = await launch(store, status_ops, "limits", {})
    async with running(worker(store, runtime)):
        done = await ended(store, task.id)
    assert done.state is TaskState.COMPLETE, done.error
    out = json.loads(done.result or "{}")
    assert out == {
        "empty": "ValueError: status key must not be empty",
        "long-key": "ValueError: status key of 257 bytes is over the limit of 256",
        "max-key": "accepted",
        "big-value": "ValueError: status value for 'big' of 65538 bytes is over the limit of 65536",
        "not-json": out["not-json"],
        "not-str": "TypeError: status key must be a str, not int",
        "step": "durable.set_status('in-step') inside step 'step inside': call it outside steps",
        "one-too-many": "ValueError: task has 1000 status keys, the limit: cannot add 'key-1000'",
        "existing-key": "accepted",
    }
    assert out["not-json"].startswith("TypeError: status value for 'nan' is not JSON-serial")
    values = await Client(store).status(task.id)
    assert len(values) == 1000
    assert values["key-5"] == "again"
    assert "big" not in values
    assert "in-step" not in values


async def test_status_of_an_unknown_task(store: Store) -> None:
    with pytest.raises(TaskNotFoundError):
        await Client(store).status(404)


# -- the example, through the CLI --------------------------------------------------------


def invoke(*args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"DURABLE_DATABASE_URL": None}, prog_name="durable")


def test_example_status_through_the_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "status.db")
    ran = run_cli("run", str(EXAMPLES / "status.py"), "--input", "3", "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[-1]) == 0 + 1 + 4

    table = invoke("status", "1", "--db", db)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "UPDATED"]
    assert lines[1].split()[:2] == ["phase", '"done"']
    assert lines[2].split()[:3] == ["progress", '{"done":', "3,"]

    as_json = invoke("status", "1", "--db", db, "--json")
    assert json.loads(as_json.stdout) == {"phase": "done", "progress": {"done": 3, "of": 3}}
    one = invoke("status", "1", "progress", "--db", db)
    assert one.stdout == '{"done": 3, "of": 3}\n'
    followed = invoke("status", "1", "phase", "--follow", "--db", db)  # the task has ended
    assert followed.exit_code == 0, followed.output
    assert followed.stdout == '"done"\n'
    lines = invoke("status", "1", "--follow", "--json", "--db", db).stdout.splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["progress", "phase"]

    shown = invoke("show", "1", "--db", db)
    assert "status:" in shown.stdout
    assert "progress" in shown.stdout
    exported = json.loads(invoke("show", "1", "--db", db, "--json").stdout)
    assert exported["status"]["progress"]["value"] == {"done": 3, "of": 3}
    assert exported["format"] == 1

    missing = invoke("status", "1", "nope", "--db", db)
    assert missing.exit_code == 1
    assert missing.stderr == "error: task 1 has no status value 'nope'\n"
    unknown = invoke("status", "9", "--db", db)
    assert unknown.exit_code != 0
    assert unknown.stderr.count("\n") == 1
    assert "Traceback" not in unknown.output


def test_show_json_of_a_task_without_status_is_unchanged(tmp_path: Path) -> None:
    db = str(tmp_path / "plain.db")
    ran = run_cli("run", str(EXAMPLES / "hello_world.py"), "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    async def exported() -> str:
        async with await Client.open(db) as client:
            return (await client.history(1)).dumps()

    shown = invoke("show", "1", "--db", db, "--json")
    assert shown.stdout == anyio.run(exported)
