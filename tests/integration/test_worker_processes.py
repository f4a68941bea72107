"""`durable worker --processes N`: a supervisor and N real worker processes.

Real subprocesses, killed with SIGKILL; each wait is for a condition, bounded only
against a hang.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from durable import client as client_module
from durable.client import Client
from durable.core.model import TaskState
from durable.storage.sqlite import SQLiteStore
from durable.worker.supervisor import default_processes
from tests.helpers import WORKFLOWS, built, cli_env, durable_cmd, launch_task, run_cli, until

pytestmark = pytest.mark.anyio


def _gone(pid: int) -> bool:
    """The process has exited (a zombie left for an init that does not reap counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def _worker_pids(store: SQLiteStore) -> set[int]:
    return {w.pid for w in await store.list_workers() if not _gone(w.pid)}


@pytest.fixture
async def store(tmp_path: Path) -> SQLiteStore:
    opened = await SQLiteStore.open(tmp_path / "procs.db")
    await opened.migrate()
    return opened


def _supervisor(db: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        durable_cmd("worker", "--db", str(db), "--processes", "2", *extra),
        cwd=db.parent,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_a_killed_child_is_restarted_and_sigterm_stops_them_all(
    store: SQLiteStore, tmp_path: Path
) -> None:
    proc = _supervisor(store.path)
    try:
        first = await until(lambda: _pids_when(store, 2))
        assert proc.pid not in first  # the supervisor runs no worker of its own
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        again = await until(lambda: _pids_when(store, 2, without=victim))
        assert victim not in again
        assert len(again - first) == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert b"exited with signal SIGKILL; starting another" in err
        assert all(_gone(pid) for pid in again)
        # Each deregistered on its way out (the victim: unless the new one reaped it first).
        assert {w.pid for w in await store.list_workers()} <= {victim}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)  # reap it, and close its stderr pipe
        await store.close()


async def test_a_killed_supervisor_takes_its_workers_with_it(store: SQLiteStore) -> None:
    proc = _supervisor(store.path)
    try:
        children = await until(lambda: _pids_when(store, 2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

        async def all_gone() -> bool:
            return all(_gone(pid) for pid in children)

        await until(all_gone)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)  # reap it, and close its stderr pipe
        await store.close()


async def test_tasks_run_to_their_end_across_processes(store: SQLiteStore, tmp_path: Path) -> None:
    wasm, _ = await anyio.to_thread.run_sync(built, WORKFLOWS / "greeter.py")
    try:
        tasks = [await launch_task(store, wasm, "", i, workflow_name="greeter") for i in range(6)]
    finally:
        await store.close()
    done = await anyio.to_thread.run_sync(
        lambda: run_cli(
            "worker", "--db", str(store.path), "--processes", "2", "--exit-when-idle",
            cwd=tmp_path,
        )
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reopened = await SQLiteStore.open(store.path)
    try:
        for task in tasks:
            assert (await reopened.get_task(task.id)).state is TaskState.COMPLETE
    finally:
        await reopened.close()


def test_a_bad_process_count_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = run_cli("worker", "--db", str(tmp_path / "x.db"), "--processes", "-1", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--processes" in result.stderr
    assert not (tmp_path / "x.db").exists()


async def _pids_when(store: SQLiteStore, count: int, *, without: int = 0) -> set[int] | None:
    """The live workers' pids once there are `count` of them (and `without` is not one)."""
    pids = await _worker_pids(store)
    return pids if len(pids) == count and without not in pids else None


async def test_client_wait_is_woken_by_a_worker_process_finish(
    store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No safety-net look: only the worker process's wake-up can end the wait in time.
    monkeypatch.setattr(client_module, "_END_FALLBACK", 3600.0)
    wasm, _ = await anyio.to_thread.run_sync(built, WORKFLOWS / "greeter.py")
    proc = _supervisor(store.path)  # two worker processes; either may run it
    try:
        await until(lambda: _pids_when(store, 2))
        task = await launch_task(store, wasm, "", 7, workflow_name="greeter")
        with anyio.fail_after(300):
            done = await Client(store).wait(task.id)
        assert done.state is TaskState.COMPLETE, done.error
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        await store.close()


def _free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free on loopback now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count - 1 > 65535:
            continue
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free consecutive ports")


async def test_each_process_serves_its_metrics_on_a_port_of_its_own(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """`--metrics-port P` with two processes: process k on P+k (one port has one
    listener; they used to fight over P, one of them dying again and again)."""
    wasm, _ = await anyio.to_thread.run_sync(built, WORKFLOWS / "greeter.py")
    port = _free_ports(2)
    proc = _supervisor(store.path, "--metrics-port", str(port))
    try:
        pids = await until(lambda: _pids_when(store, 2))
        tasks = [await launch_task(store, wasm, "", i, workflow_name="greeter") for i in range(6)]
        client = Client(store)
        for task in tasks:
            with anyio.fail_after(300):
                assert (await client.wait(task.id)).state is TaskState.COMPLETE

        async def started() -> list[float] | None:
            counts = [await _scrape(port + k, "durable_attempts_started_total") for k in (0, 1)]
            return counts if None not in counts and sum(counts) == len(tasks) else None  # type: ignore[arg-type]

        assert await until(started), "both serve, and between them every attempt"
        assert await _worker_pids(store) == pids, "no process was started again"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        await store.close()
    assert proc.returncode == 0, err.decode()
    assert b"exited with" not in err, err.decode()


async def _scrape(port: int, name: str) -> float | None:
    """The value of the sample `name` at http://127.0.0.1:PORT/metrics; None: no answer."""
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_metrics_ports_past_the_last_are_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "worker", "--db", str(tmp_path / "x.db"), "--processes", "3", "--metrics-port", "65534",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "error: --metrics-port 65534 with 3 processes needs ports up to 65536\n"
    assert not (tmp_path / "x.db").exists()


def test_by_default_one_process_per_core_sharing_the_instance_cache(tmp_path: Path) -> None:
    """Without --processes, `durable worker` runs one process per core it may use, each
    with its share of --instance-cache (the tests' own workers are set to one process)."""
    env = {k: v for k, v in cli_env().items() if k != "DURABLE_PROCESSES"}
    cores = default_processes()
    done = subprocess.run(
        durable_cmd(
            "worker", "--db", str(tmp_path / "d.db"), "--exit-when-idle", "-v",
            "--instance-cache", "600M",
        ),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    started = re.findall(
        r"worker \S+ started \(concurrency \d+, instance cache (\d+) MiB\)", done.stderr
    )
    assert len(started) == cores, done.stderr
    assert started == [str(600 // cores)] * cores
