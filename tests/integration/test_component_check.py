"""The check before compiling, on components built from text with wasm-tools.

Each mismatch is refused in one line with exit 2, before any compile, leaving no
database and no cache entry behind; a component that fits runs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from durable.client import Client
from durable.component_check import check_component
from durable.core.model import Task, TaskState
from durable.errors import ComponentError
from durable.host import HostConfig, Runtime, cancel_gate
from durable.storage import open_store
from durable.worker import Worker, WorkerConfig
from tests.guests.wat import MISMATCHES, build_hello_wat, build_mismatch, build_wat
from tests.helpers import launch_task, run_cli, running, until, without_progress


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_check_names_the_mismatch(tmp_path: Path, name: str) -> None:
    wasm = build_mismatch(name, tmp_path).read_bytes()
    with pytest.raises(ComponentError) as caught:
        check_component(wasm)
    assert MISMATCHES[name][1] in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_run_refuses_a_mismatch_writing_nothing(tmp_path: Path, name: str) -> None:
    wasm = build_mismatch(name, tmp_path)
    cache = tmp_path / "cache"
    proc = run_cli("run", str(wasm), cwd=tmp_path, env={"DURABLE_CACHE_DIR": str(cache)})
    assert proc.returncode == 2, proc.stderr
    lines = without_progress(proc.stderr)  # a slow check may announce itself
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {wasm.name}: "), lines[0]
    assert MISMATCHES[name][1] in lines[0]
    assert not (tmp_path / ".durable").exists()
    assert not cache.exists() or not any(cache.rglob("*.cwasm")), list(cache.rglob("*"))


@pytest.mark.anyio
async def test_register_refuses_a_wrong_run_signature(tmp_path: Path) -> None:
    wasm = build_mismatch("wrong-run", tmp_path).read_bytes()
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with pytest.raises(ComponentError, match="exports `run` as"):
            await Client(store).register(wasm, name="bad")
    finally:
        await store.close()


def test_the_check_refuses_what_is_not_a_component(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="not a valid component"):
        check_component(b"\0asm\x0d\x00\x01\x00garbage")
    with pytest.raises(ComponentError, match="core WebAssembly module"):
        check_component(b"\0asm\x01\x00\x00\x00")


def test_wit_command_writes_a_package_a_wat_guest_builds_against(tmp_path: Path) -> None:
    proc = run_cli("wit", "-o", "mywit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = {Path(line).relative_to("mywit").as_posix() for line in proc.stdout.split()}
    assert {"durable.wit", "http.wit", "sql.wit", "coordination.wit"} <= written
    assert {"deps/wasi-io.wit", "deps/wasi-clocks.wit", "deps/wasi-random.wit"} <= written
    assert "package durable:core@0.1.0;" in (tmp_path / "mywit" / "durable.wit").read_text()
    wasm = build_hello_wat(tmp_path, tmp_path / "mywit")
    check_component(wasm.read_bytes())
    assert wasm.stat().st_size < 4096


def test_wit_command_refuses_an_unwritable_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    proc = run_cli("wit", "-o", "file/wit", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot write"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_wat_guest_runs_its_step_once(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path)
    proc = run_cli("run", str(wasm), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "hello from wat"
    with sqlite3.connect(tmp_path / ".durable" / "durable.db") as db:
        events = db.execute("SELECT label, payload FROM durable_event ORDER BY idx").fetchall()
    assert events == [("greet", '"hello from wat"')]


@pytest.mark.anyio
async def test_a_guest_that_ignores_cancellation_is_stopped_at_its_next_durable_call(
    tmp_path: Path,
) -> None:
    wasm = build_wat("sleeper", tmp_path).read_bytes()
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    runtime = Runtime(HostConfig(suspend_after=60, cache_dir=tmp_path / "cache"))
    try:
        task = await launch_task(store, wasm, "", None, workflow_name="sleeper")

        async def sleeping() -> bool:
            return len(await store.load_history(task.id)) >= 2

        worker = Worker(store, WorkerConfig(host=runtime.config), runtime=runtime)
        async with running(worker):
            await until(sleeping, within=120)
            await Client(store).cancel(task.id)

            async def ended() -> Task | None:
                found = await store.get_task(task.id)
                return found if found.state.is_terminal else None

            done = await until(ended)
        history = await store.load_history(task.id)
    finally:
        runtime.close()
        await store.close()
    assert done.state is TaskState.CANCELLED, (done.state, done.error)
    assert cancel_gate.MESSAGE in (done.error or "")
    assert len(history) < 100  # it did not sleep its way to the end
