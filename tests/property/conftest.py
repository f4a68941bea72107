"""Fixtures for the replay-correctness property tests: the script component, runtimes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable.builder import build_workflow
from durable.host import Runtime
from tests.helpers import ROOT, built
from tests.property import scripts
from tests.property.harness import CONFIGS, Component
from tests.property.http_server import CountingServer
from tests.property.scripts import WORKFLOW_FILE

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def http_server() -> Iterator[CountingServer]:
    """The counting HTTP server every `http` op requests (bound into scripts at launch)."""
    server = CountingServer()
    server.start()
    scripts.HTTP_BASE[:] = [server.base]
    try:
        yield server
    finally:
        scripts.HTTP_BASE.clear()
        server.stop()


@pytest.fixture(scope="session")
def component(http_server: CountingServer) -> Component:
    """The script workflow, built once (and cached by content across sessions)."""
    wasm, digest = built(HERE / WORKFLOW_FILE)
    return Component(wasm=wasm, hash=digest)


@pytest.fixture(scope="session")
def host_signals_survive(component: Component) -> None:
    """Run `probe.py` in a child process first: if a suspension or an injected crash
    kills the process, every in-process property test fails with that diagnosis
    instead of the whole session dying with it."""
    wasm_path = build_workflow(HERE / WORKFLOW_FILE).wasm_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_TEST_CRASH")}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.property.probe", str(wasm_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode < 0:
        pytest.fail(
            f"ENGINE BUG: the probe process died of signal {-proc.returncode}: a "
            f"BaseException raised in a host function (a suspension or an injected "
            f"crash) does not leave the guest cleanly.\n--- stdout:\n{proc.stdout}\n"
            f"--- stderr (tail):\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    if proc.returncode != 0:
        pytest.fail(
            f"the probe (suspend a script task, then crash one in its guest's thread) "
            f"failed with exit status {proc.returncode}:\n--- stdout:\n{proc.stdout}\n"
            f"--- stderr (tail):\n{proc.stderr[-3000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def runtimes(host_signals_survive: None) -> Iterator[dict[str, Runtime]]:
    """One `Runtime` per entry of `CONFIGS`, shared by every example of the session."""
    made = {name: Runtime(config) for name, config in CONFIGS.items()}
    try:
        yield made
    finally:
        for runtime in made.values():
            runtime.close()
