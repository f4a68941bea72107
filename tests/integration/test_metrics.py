"""Prometheus metrics from a real `durable worker --metrics-port` process, scraped while
its tasks run and checked against the database."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from durable.app import open_client
from durable.client import Client
from durable.core.model import TaskState
from durable.errors import StorageError
from durable.metrics import Metrics, metered
from durable.storage.base import SqlStore
from durable.storage.sqlite import SQLiteStore
from tests.helpers import WORKFLOWS, cli_env, compiled, durable_cmd, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$")


def parse(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample of a scrape."""
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match[1] + (match[2] or "")] = float(match[3])
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=["512M", "0"], ids=["kept", "replayed"])
def worker_with_metrics(
    backend_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str, bool]]:
    """A `durable worker --metrics-port` on a fresh database, with its instance cache on
    or off: (database URL, metrics URL, whether it keeps suspended instances)."""
    port = free_port()
    cache = request.param
    args = ["--db", backend_url, "--migrate", "--metrics-port", str(port)]
    proc = subprocess.Popen(
        durable_cmd("worker", *args, "--instance-cache", cache),
        cwd=tmp_path,
        env=cli_env(),
        stderr=subprocess.PIPE,
    )
    try:
        yield backend_url, f"http://127.0.0.1:{port}/metrics", cache != "0"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()


async def scrape(url: str) -> dict[str, float] | None:
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(url)
    except httpx.TransportError:
        return None  # not listening yet
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def counts(client: Client) -> dict[str, int]:
    tasks = await client.list(limit=10_000)
    return {s.value: sum(t.state is s for t in tasks) for s in TaskState}


async def test_metrics_follow_real_tasks_and_agree_with_the_database(
    worker_with_metrics: tuple[str, str, bool],
) -> None:
    db, url, kept = worker_with_metrics
    wasm = compiled(WORKFLOWS / "dashboard.py")
    client = await open_client(db, migrate=True)
    try:
        workflow = await client.register(wasm, name="dashboard")
        waiting = await client.launch(workflow, name="waiter", entry="waiter", input="m")
        done = [
            await client.launch(workflow, name="work", entry="work", input=i) for i in range(1, 6)
        ]
        with anyio.fail_after(300):
            for task in done:
                await client.wait(task.id)
        await until(lambda: _suspended(client, waiting.id))
        # Scraped while a task is parked and the worker runs on: the gauge is the
        # database's own count (nothing changes meanwhile, so a shared one is as good).
        first = await until(lambda: scrape(url))
        in_db = await counts(client)
        for state, n in in_db.items():
            assert first[f'durable_tasks{{state="{state}"}}'] == n, state
        assert in_db["complete"] == 5
        assert in_db["suspended"] == 1
        assert first['durable_attempts_finished_total{outcome="completed"}'] == 5
        assert first['durable_attempts_finished_total{outcome="suspended"}'] >= 1
        assert first["durable_attempts_started_total"] >= 6
        # Each work task records at least one event per step; 1+2+3+4+5 steps.
        assert first["durable_events_recorded_total"] >= 15
        assert first['durable_attempt_duration_seconds_count{outcome="completed"}'] == 5
        assert first["durable_timer_lateness_seconds_count"] >= 5
        hits = first['durable_compile_cache_total{result="hit"}']
        assert hits >= 6
        assert first["durable_database_errors_total"] == 0

        # The waiter wakes on the instance this worker kept, replaying nothing; with
        # the instance cache off, by replay: its recorded events are read back.
        await client.notify(waiting.id, "go", {"ok": True})
        await client.wait(waiting.id, timeout=300)
        after = await until(lambda: _scraped_after(url))
        assert after['durable_tasks{state="complete"}'] == 6
        assert after['durable_tasks{state="suspended"}'] == 0
        if kept:
            assert after['durable_instance_cache_total{result="hit"}'] >= 1
            assert after["durable_events_replayed_total"] == 0
        else:
            assert after["durable_events_replayed_total"] >= 1
            assert after['durable_compile_cache_total{result="hit"}'] > hits
    finally:
        await client.close()


async def _suspended(client: Client, task_id: int) -> bool:
    return (await client.get(task_id)).state is TaskState.SUSPENDED


async def _scraped_after(url: str) -> dict[str, float] | None:
    sample = await scrape(url)
    # The counts by state are read at most every couple of seconds (`SharedCounts`):
    # wait for the one that follows the waiter's end.
    completed = 'durable_attempts_finished_total{outcome="completed"}'
    if sample and sample[completed] == 6 and sample['durable_tasks{state="complete"}'] == 6:
        return sample
    return None


async def test_storage_errors_and_events_are_counted_by_the_wrapper(tmp_path: Path) -> None:
    metrics = Metrics()
    store = metered(await SQLiteStore.open(tmp_path / "d.db"), metrics)
    await store.migrate()
    assert isinstance(store, SqlStore)  # a worker still gives it workflow SQL
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.get_task(1)
    samples = parse((await metrics.render(_no_tasks)).decode())
    assert samples["durable_database_errors_total"] == 1
    assert samples['durable_tasks{state="ready"}'] == 0


async def _no_tasks() -> dict[str, int]:
    return {}


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            durable_cmd("worker", "--db", str(tmp_path / "d.db"), "--metrics-port", str(port)),
            cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
