"""Large task inputs: refused at launch over the payload limit, and harmless under it.

A 200 MB input used to be accepted; a lone worker then "lost its lease to another
worker" four times. The cause, on SQLite: the input lived in the task's row, and
SQLite rewrites a whole row on every UPDATE, so each claim, each lease renewal (every
second) and each finish wrote the input again; with a few large inputs a renewal took
longer than the lease, and the worker's own next claim took the task from itself.
Inputs now live in a table of their own, and the limit is checked at launch.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from durable.client import Client
from durable.core.model import Completed, NewTask, TaskState
from durable.errors import InputTooLargeError
from durable.host import HostConfig, Runtime
from durable.storage import open_store
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore
from tests.helpers import (
    ROOT,
    WORKFLOWS,
    cli_env,
    compiled,
    completed_result,
    durable_cmd,
    launch_task,
    run_cli,
    run_until_idle,
)

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BIG_INPUT = WORKFLOWS / "big_input.py"


@pytest.fixture(scope="module")
def big_input() -> bytes:
    return compiled(BIG_INPUT)


# -- under the limit: a lone worker keeps its leases ---------------------------------------


async def test_a_lone_worker_keeps_its_leases_with_large_inputs(
    backend_url: str, big_input: bytes
) -> None:
    """Six tasks with 12 MiB inputs, each napping 3 s, on one `durable worker` with a
    2 s lease: each runs once, and nothing says a lease was lost."""
    store = await open_store(backend_url)
    try:
        value = {"blob": "x" * (12 * MIB), "nap": 3}
        tasks = [
            await launch_task(store, big_input, "measure", value, workflow_name="big_input")
            for _ in range(6)
        ]
    finally:
        await store.close()
    args = ("worker", "--db", backend_url, "--exit-when-idle", "--lease-seconds", "2", "-v")
    worker = await anyio.to_thread.run_sync(lambda: run_cli(*args, cwd=ROOT, timeout=600))
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "lease" not in worker.stderr, worker.stderr[-3000:]
    store = await open_store(backend_url)
    try:
        for task in tasks:
            done = await store.get_task(task.id)
            assert (done.state, done.attempts) == (TaskState.COMPLETE, 1), done.error
            assert completed_result(done) == 12 * MIB
    finally:
        await store.close()


async def test_sqlite_lease_writes_do_not_rewrite_the_input(tmp_path: Path) -> None:
    """The root cause, measured in what SQLite writes: claim, renewals and finish of a
    task with an 8 MiB input add far less than 8 MiB to the write-ahead log."""
    db = tmp_path / "durable.db"
    store = await SQLiteStore.open(db)
    try:
        await store.migrate()
        workflow_hash = await store.put_workflow(b"\0asm\x0d\0\x01\0 wal-test")
        spec = NewTask(name="t", workflow_hash=workflow_hash, input=json.dumps("x" * (8 * MIB)))
        task = await store.create_task(spec)
        with closing(sqlite3.connect(db)) as side:  # empty the log: only what follows counts
            assert side.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        assert (tmp_path / "durable.db-wal").stat().st_size == 0
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert len(claim.task.input) > 8 * MIB  # the claim still hands the input out
        for _ in range(5):
            await store.renew_leases(worker_id="w", lease_seconds=60)
        await store.finish(claim.lease, Completed(result="1"))
        written = (tmp_path / "durable.db-wal").stat().st_size
        assert written < MIB, f"7 lease writes wrote {written} bytes to the log"
        assert (await store.get_task(task.id)).input == spec.input
    finally:
        await store.close()


# -- over the limit: refused before anything is written ------------------------------------


async def test_client_launch_refuses_an_input_over_the_limit() -> None:
    store = MemoryStore()
    client = Client(store, max_input_bytes=1000)
    # Not a real component: stored as is (nothing here runs it).
    workflow_hash = await client.register(b"\0asm\x0d\0\x01\0 limit-test", compile=False)
    with pytest.raises(InputTooLargeError, match="over the payload limit of 1000 bytes"):
        await client.launch(workflow_hash, name="t", input="x" * 1000)
    assert await store.list_tasks() == []
    task = await client.launch(workflow_hash, name="t", input="x" * 990)  # 992 bytes of JSON
    assert json.loads(task.input) == "x" * 990
    assert Client(store).max_input_bytes == HostConfig().max_payload_bytes == 16 * MIB


def _tasks(db: Path) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM durable_task").fetchone()[0])


@pytest.mark.parametrize("command", ["run", "launch"])
def test_the_cli_refuses_bad_input_in_one_line_and_writes_nothing(
    tmp_path: Path, command: str
) -> None:
    db = tmp_path / "durable.db"
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * 3000}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"blob": ')
    head = ["run"] if command == "run" else ["launch", "big"]
    cases = {
        ("--input-file", str(big), "--max-payload", "2K"): "over the payload limit of 2.0 KiB",
        ("--input-file", str(bad)): f"--input-file {bad} is not valid JSON",
        ("--input-file", str(tmp_path / "none.json")): "No such file or directory",
        ("--input-file", str(tmp_path)): "Is a directory",
        ("--input", "1", "--input-file", str(big)): "cannot be used together",
    }
    for args, message in cases.items():
        proc = run_cli(*head, str(BIG_INPUT), *args, "--db", str(db), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: "), proc.stderr
        assert message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert _tasks(db) == 0


def test_input_file_and_stdin_reach_the_task(tmp_path: Path, big_input: bytes) -> None:
    db = tmp_path / "durable.db"
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"blob": "abc"}))
    ran = run_cli(
        "run", str(BIG_INPUT), "--entry", "measure", "--input-file", str(data), "--db", str(db),
        cwd=tmp_path,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "3\n"), ran.stderr
    launched = _launch_from_stdin(db, '{"blob": "abcd"}', tmp_path)
    assert launched.returncode == 0, launched.stderr
    with closing(sqlite3.connect(db)) as conn:
        (stored,) = conn.execute(
            "SELECT input FROM durable_task_input WHERE task_id = ?", (int(launched.stdout),)
        ).fetchone()
    assert json.loads(stored) == {"blob": "abcd"}


def _launch_from_stdin(db: Path, text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        durable_cmd("launch", "four", str(BIG_INPUT), "--entry", "measure", "--input-file", "-",
                    "--db", str(db)),
        input=text, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


async def test_a_child_with_an_input_over_the_limit_is_refused(big_input: bytes) -> None:
    """The guest gets `SpawnError` (recorded, so a replay agrees) and no child exists."""
    store = MemoryStore()
    runtime = Runtime(HostConfig(max_payload_bytes=64 * 1024))
    try:
        small = await launch_task(store, big_input, "spawn_big", 1000, workflow_name="big_input")
        large = await launch_task(store, big_input, "spawn_big", 70_000, workflow_name="big_input")
        await run_until_idle(store, runtime)
    finally:
        runtime.close()
    assert completed_result(await store.get_task(small.id)) == "child measured 1000"
    refused = completed_result(await store.get_task(large.id))
    assert refused.startswith("refused: cannot spawn the child: the input is 68.4 KiB"), refused
    assert "over the payload limit of 64.0 KiB" in refused
    assert {t.parent_id for t in await store.list_tasks() if t.parent_id} == {small.id}
