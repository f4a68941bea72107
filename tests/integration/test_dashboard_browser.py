"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright,
against a real `durable ui` process and a real `durable worker` process running real
tasks, on SQLite and on Postgres.

Each page is loaded and checked; notify, pause, resume, cancel and retry are clicked
(confirming the dialog) and the task is seen to change; a task launched while the list
is open shows up in it without a reload; a hostile workflow's markup runs no script.
Screenshots are saved in `test-artifacts/dashboard/` (git-ignored) for a person to look
at.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from durable.app import open_client
from durable.core.model import Task, TaskState
from tests.helpers import ROOT, WORKFLOWS, cli_env, compiled, durable_cmd
from tests.integration.test_metrics import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
MARK = "pwned_by_workflow"
#: Flags for a quick, quiet headless Chromium on a machine without a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A bound on hangs (the machine may be busy), not on speed.
WAIT_MS = 120_000

sync_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM) and os.environ.get("CI"):
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                                   reason="needs Debian's chromium")]  # fmt: skip


@dataclass
class Scene:
    db: str
    base: str
    worker_pid: int
    tasks: dict[str, Task]


def call(fn: Any, *args: Any) -> Any:
    """Run an async client call from this synchronous test (Playwright's sync API owns
    no event loop of ours)."""

    async def main() -> Any:
        client = await open_client(args[0], migrate=True)
        try:
            return await fn(client, *args[1:])
        finally:
            await client.close()

    # In a thread of its own: Playwright's sync API runs an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, main).result()


async def _setup(client: Any, wasm: bytes) -> dict[str, Task]:
    workflow = await client.register(wasm, name="dashboard")
    return {
        "work": await client.launch(workflow, name="work", entry="work", input=4),
        "hostile": await client.launch(
            workflow, name=f"<script>window.{MARK}=1</script>", entry="hostile", input=MARK
        ),
        "notified": await client.launch(workflow, name="waiter-1", entry="waiter", input="a"),
        "cancelled": await client.launch(workflow, name="waiter-2", entry="waiter", input="b"),
    }


async def _states(client: Any, ids: list[int]) -> list[str]:
    return [(await client.get(i)).state.value for i in ids]


def _wait_states(db: str, wanted: dict[int, str], within: float = 600) -> None:
    """Wait until the tasks are in these states (a bound on hangs, not on speed)."""
    deadline = time.monotonic() + within
    while True:
        got = call(_states, db, list(wanted))
        if got == list(wanted.values()):
            return
        assert time.monotonic() < deadline, f"states {got}, wanted {list(wanted.values())}"
        time.sleep(0.1)


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(durable_cmd(*args), cwd=cwd, env=cli_env(), stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


@pytest.fixture
def scene(backend_url: str, tmp_path: Path) -> Iterator[Scene]:
    wasm = compiled(WORKFLOWS / "dashboard.py")
    tasks = call(_setup, backend_url, wasm)
    worker = _spawn(["worker", "--db", backend_url], tmp_path)
    port = free_port()
    ui = _spawn(["ui", "--db", backend_url, "--port", str(port)], tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_states(backend_url, {
            tasks["work"].id: "complete", tasks["hostile"].id: "failed",
            tasks["notified"].id: "suspended", tasks["cancelled"].id: "suspended",
        })  # fmt: skip
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/").is_success:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        yield Scene(backend_url, base, worker.pid, tasks)
    finally:
        ui_err = _stop(ui)
        worker_err = _stop(worker)
    assert ui.returncode == 0, ui_err
    assert worker.returncode == 0, worker_err


@pytest.fixture
def page(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile each time
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())  # every confirmation: yes
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield tab
        finally:
            context.close()
        assert errors == [], errors


def shot(page: Any, backend: str, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{backend}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_the_dashboard_in_chromium(scene: Scene, page: Any, backend_url: str) -> None:
    backend = "sqlite" if backend_url.startswith("sqlite") else "postgres"
    t = scene.tasks
    expect = sync_api.expect

    # Overview: the counts by state, the charts.
    page.goto(scene.base + "/")
    expect(page.locator("#count-complete b")).to_have_text("1")
    expect(page.locator("#count-failed b")).to_have_text("1")
    expect(page.locator("#count-suspended b")).to_have_text("2")
    assert page.locator("svg.chart").count() == 2
    shot(page, backend, "overview")

    # Tasks: every task listed, the hostile name as text; a new task appears live.
    page.goto(scene.base + "/tasks")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(page.get_by_text(f"<script>window.{MARK}=1</script>")).to_have_count(1)
    late = call(_launch_late, scene.db, t["work"].workflow_hash)
    expect(page.locator(f'tbody a[href="/tasks/{late.id}"]')).to_have_count(1)
    _wait_states(scene.db, {late.id: "complete"})
    expect(page.locator(f'tr[data-id="{late.id}"] .state')).to_have_text("complete")
    shot(page, backend, "tasks")
    page.get_by_label("state").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)

    # A completed task: result, history timeline, log.
    page.goto(f"{scene.base}/tasks/{t['work'].id}")
    expect(page.locator("#state")).to_have_text("complete")
    expect(page.locator("#result")).to_have_text("6")
    assert page.locator("#history tr").count() >= 5
    expect(page.locator("#log")).to_contain_text("worked 4")

    # The hostile task: its error and traceback shown as text, and no script ran.
    page.goto(f"{scene.base}/tasks/{t['hostile'].id}")
    expect(page.locator("#error")).to_contain_text(f"<script>window.{MARK}=1</script>")
    expect(page.locator("#traceback")).to_contain_text("ValueError")
    expect(page.locator("#log")).to_contain_text("onerror=")
    assert page.evaluate(f"typeof window.{MARK}") == "undefined"
    shot(page, backend, "hostile-task")

    # Retry the failed task: the answer is the new task's page, linked to the old one;
    # the worker runs it, and it fails the same way (the page follows it there).
    page.locator("#retry").click()
    expect(page.locator(".flash")).to_contain_text(f"retrying task {t['hostile'].id}")
    expect(page.locator("#origin")).to_contain_text(f"task {t['hostile'].id}, at event")
    retried = re.search(r"/tasks/(\d+)", page.url)
    assert retried, page.url
    assert int(retried[1]) != t["hostile"].id
    expect(page.locator("#state")).to_have_text("failed")
    expect(page.locator("#traceback")).to_contain_text("ValueError")
    assert page.evaluate(f"typeof window.{MARK}") == "undefined"

    # Notify: the waiting task gets the event, resumes and completes; the page follows.
    page.goto(f"{scene.base}/tasks/{t['notified'].id}")
    expect(page.locator("#state")).to_have_text("suspended")
    page.get_by_label("event").fill("go")
    page.get_by_label("data (JSON)").fill('{"approved": true}')
    page.locator("#notify").click()
    expect(page.locator(".flash")).to_contain_text("sent 'go'")
    expect(page.locator("#state")).to_have_text("complete")
    expect(page.locator("#result")).to_contain_text('"approved": true')
    notes = page.locator("#notes tr")
    expect(notes).to_have_count(1)
    shot(page, backend, "task")

    # Pause, then resume, a sleeping task: the page shows the flag and the one action
    # that applies each time.
    page.goto(f"{scene.base}/tasks/{t['cancelled'].id}")
    expect(page.locator("#paused")).to_have_text("no")
    page.locator("#pause").click()
    expect(page.locator(".flash")).to_contain_text("paused (suspended)")
    expect(page.locator("#paused")).to_contain_text("yes")
    expect(page.locator("#pause")).to_have_count(0)
    page.locator("#resume").click()
    expect(page.locator(".flash")).to_contain_text("resumed (suspended)")
    expect(page.locator("#paused")).to_have_text("no")
    expect(page.locator("#resume")).to_have_count(0)

    # Cancel: confirmed, the task is cancelled at once (it was suspended).
    page.locator("#cancel").click()
    expect(page.locator(".flash")).to_contain_text("cancelled")
    expect(page.locator("#state")).to_have_text("cancelled")
    assert call(_state, scene.db, t["cancelled"].id) is TaskState.CANCELLED

    # Replay check against its own code.
    page.goto(f"{scene.base}/tasks/{t['work'].id}")
    page.locator("#replay").click()
    expect(page.locator("#verdict")).to_have_text("clean")
    expect(page.locator("#report")).to_contain_text("replays cleanly")

    # Workers: the worker process, with its pid.
    page.goto(scene.base + "/workers")
    expect(page.locator("#workers tr")).to_have_count(1)
    expect(page.locator("#workers")).to_contain_text(str(scene.worker_pid))
    expect(page.locator("#workers")).to_contain_text(" ago")  # its last heartbeat
    shot(page, backend, "workers")

    # Metrics on the dashboard agree with the database. The counts by state are shared
    # for a couple of seconds (`SharedCounts`): ask until they include the last changes.
    expected = (
        r'durable_tasks\{state="complete"\} 3\.0',
        r'durable_tasks\{state="cancelled"\} 1\.0',
    )
    give_up = time.monotonic() + 120  # a bound on a hang, not on speed
    while True:
        text = page.request.get(scene.base + "/metrics").text()
        if all(re.search(p, text) for p in expected) or time.monotonic() > give_up:
            break
        time.sleep(0.2)
    assert re.search(expected[0], text), text
    assert re.search(expected[1], text), text


async def _launch_late(client: Any, workflow: str) -> Task:
    return await client.launch(workflow, name="launched-while-watching", entry="work", input=2)


async def _state(client: Any, task_id: int) -> TaskState:
    return (await client.get(task_id)).state
