"""The dashboard over HTTP (the browser tests are in test_dashboard_browser.py): its
pages on a database where a real worker ran real tasks, keyset pagination and filters,
escaping of what hostile workflows write, the token, and forged writes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from durable.app import open_client
from durable.client import Client
from durable.core.model import Task, TaskState
from durable.ui.app import PAGE_SIZE, Dashboard, create_app
from durable.ui.reader import open_reader
from durable.ui.security import COOKIE, Guard, bind_refusal
from durable.worker import Worker, WorkerConfig
from tests.helpers import IDLE_WITHIN, WORKFLOWS, cli_env, compiled, durable_cmd

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MARK = "pwned_by_workflow"


@dataclass
class Site:
    client: Client
    dash: Dashboard
    http: httpx.AsyncClient
    work: Task
    hostile: Task
    waiter: Task


@asynccontextmanager
async def open_site(db: str) -> AsyncIterator[Site]:
    """A database at `db` where a real worker ran three tasks, and a dashboard on it."""
    import anyio

    client = await open_client(db, migrate=True)
    wasm = compiled(WORKFLOWS / "dashboard.py")
    workflow = await client.register(wasm, name="dashboard")
    work = await client.launch(workflow, name="work", entry="work", input=3)
    hostile = await client.launch(
        workflow, name=f"<script>window.{MARK}=1</script>", entry="hostile", input=MARK
    )
    waiter = await client.launch(workflow, name="waiter", entry="waiter", input="x")
    with anyio.fail_after(IDLE_WITHIN):
        await Worker(client.store, WorkerConfig(exit_when_idle=True)).run()
    reader = await open_reader(db)
    dash = Dashboard(client=client, reader=reader, guard=Guard(None))
    transport = httpx.ASGITransport(app=create_app(dash))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as http:
        yield Site(client, dash, http, work, hostile, waiter)
    dash.close()
    await reader.close()
    await client.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The dashboard on SQLite."""
    async with open_site(f"sqlite:///{tmp_path / 'd.db'}") as opened:
        yield opened


@pytest.fixture
async def any_site(backend_url: str) -> AsyncIterator[Site]:
    """The dashboard on SQLite, then on Postgres."""
    async with open_site(backend_url) as opened:
        yield opened


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token on the page"
    return match[1]


async def test_every_page_shows_the_tasks_as_stored(site: Site) -> None:
    http = site.http
    overview = (await http.get("/")).text
    assert re.search(r'id="count-complete"><b>1</b>', overview)
    assert re.search(r'id="count-failed"><b>1</b>', overview)
    assert re.search(r'id="count-suspended"><b>1</b>', overview)
    assert "1 completed, 1 failed in the last hour" in overview
    assert "<svg" in overview

    listing = (await http.get("/tasks")).text
    for task in (site.work, site.hostile, site.waiter):
        assert f'<a href="/tasks/{task.id}">{task.id}</a>' in listing

    work = (await http.get(f"/tasks/{site.work.id}")).text
    assert "worked 3" in work  # its log
    assert "<pre id=result>3</pre>" in work  # 0 + 1 + 2
    assert "step add" in work or "add" in work
    history = re.search(r"<tbody id=history>(.*?)</tbody>", work, re.S)
    assert history
    assert history[1].count("<tr>") == len(await site.client.store.load_history(site.work.id))

    failed = (await http.get(f"/tasks/{site.hostile.id}")).text
    assert "ValueError" in failed
    assert "id=traceback" in failed

    api = (await http.get("/api/tasks", params={"state": "suspended"})).json()
    assert [t["id"] for t in api["tasks"]] == [site.waiter.id]
    live = (await http.get(f"/api/tasks/{site.waiter.id}", params={"after": 0})).json()
    assert live["state"] == "suspended"
    assert not live["ended"]
    assert "waiting for go" in "".join(c["text"] for c in live["logs"])

    workers = (await http.get("/workers")).text
    assert "No worker is registered" in workers  # the worker stopped and deregistered
    metrics = (await http.get("/metrics")).text
    assert 'durable_tasks{state="complete"} 1.0' in metrics


async def test_nothing_a_workflow_writes_becomes_markup(site: Site) -> None:
    pages = ["/", "/tasks", f"/tasks/{site.hostile.id}"]
    for path in pages:
        response = await site.http.get(path)
        assert response.status_code == 200
        assert f"<script>window.{MARK}" not in response.text, path
        assert f'<img src=x onerror="window.{MARK}' not in response.text, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
    # The live list's JSON holds the name as it is: the page's script sets it with
    # textContent, and the answer cannot be taken for HTML.
    api = await site.http.get("/api/tasks")
    assert api.headers["content-type"] == "application/json"
    assert api.headers["x-content-type-options"] == "nosniff"
    page = (await site.http.get(f"/tasks/{site.hostile.id}")).text
    # Name, log, status and error, each shown, escaped.
    assert page.count(f"&lt;script&gt;window.{MARK}=1&lt;/script&gt;") >= 4


async def test_notify_and_cancel_need_the_pages_csrf_token(site: Site) -> None:
    http, task_id = site.http, site.waiter.id
    token = csrf_of((await http.get(f"/tasks/{task_id}")).text)
    forged = await http.post(f"/tasks/{task_id}/cancel", data={"csrf": "0" * 64})
    assert forged.status_code == 400
    cross = await http.post(
        f"/tasks/{task_id}/cancel", data={"csrf": token}, headers={"origin": "http://evil.test"}
    )
    assert cross.status_code == 403
    assert (await site.client.get(task_id)).state is TaskState.SUSPENDED

    bad = await http.post(f"/tasks/{task_id}/notify", data={"csrf": token, "event": "go",
                                                            "data": "{nope"})  # fmt: skip
    assert "err=" in bad.headers["location"]
    assert (await site.client.store.next_notification(task_id)) is None

    sent = await http.post(
        f"/tasks/{task_id}/notify", data={"csrf": token, "event": "go", "data": '{"n": 1}'},
        headers={"origin": "http://127.0.0.1:8400"},
    )  # fmt: skip
    assert sent.status_code == 303
    note = await site.client.store.next_notification(task_id)
    assert note is not None
    assert note.event == "go"
    assert note.data == '{"n": 1}'
    shown = (await http.get(sent.headers["location"])).text
    assert "sent &#x27;go&#x27;" in shown
    assert "<tbody id=notes>" in shown

    cancelled = await http.post(f"/tasks/{task_id}/cancel", data={"csrf": token})
    assert cancelled.status_code == 303
    assert (await site.client.get(task_id)).state is TaskState.CANCELLED
    again = await http.post(f"/tasks/{task_id}/cancel", data={"csrf": token})
    assert "already" in (await http.get(again.headers["location"])).text


async def test_the_replay_check_reports_as_durable_replay_does(site: Site) -> None:
    token = csrf_of((await site.http.get(f"/tasks/{site.work.id}")).text)
    page = (await site.http.post(f"/tasks/{site.work.id}/replay", data={"csrf": token})).text
    assert '<b id="verdict">clean</b>' in page
    assert f"task {site.work.id} replays cleanly" in page
    assert "(as recorded)" in page
    missing = await site.http.post(
        f"/tasks/{site.work.id}/replay", data={"csrf": token, "workflow": "nope"}
    )
    assert "replay check:" in (await site.http.get(missing.headers["location"])).text

    # Against an uploaded binary (here the task's own, sent back), as the page's form
    # sends it: multipart, with the CSRF token.
    wasm = await site.client.store.get_workflow(site.work.workflow_hash)
    url = f"/tasks/{site.work.id}/replay"
    sent = await site.http.post(url, data={"csrf": token}, files={"wasm": ("w.wasm", wasm)})
    assert '<b id="verdict">clean</b>' in sent.text
    assert f"the uploaded workflow ({len(wasm)} bytes)" in sent.text
    forged = await site.http.post(url, data={"csrf": "0" * 64}, files={"wasm": ("w.wasm", wasm)})
    assert forged.status_code == 400
    junk = await site.http.post(url, data={"csrf": token}, files={"wasm": ("w.wasm", b"junk")})
    assert junk.status_code == 303
    assert "replay check:" in (await site.http.get(junk.headers["location"])).text


async def test_pages_walk_by_keyset_and_filters_combine(site: Site) -> None:
    client = site.client
    workflow = site.work.workflow_hash
    made = [
        await client.launch(workflow, name=f"batch-{i}", entry="work", input=1) for i in range(120)
    ]
    seen: list[int] = []
    url = "/tasks?name=batch-*"
    while True:
        page = (await site.http.get(url)).text
        seen += [int(x) for x in re.findall(r'<tr><td class="num"><a href="/tasks/(\d+)">', page)]
        older = re.search(r'<a href="(/tasks\?[^"]+)" id="older">', page)
        if not older:
            break
        url = older[1].replace("&amp;", "&")
    assert seen == sorted((t.id for t in made), reverse=True)
    assert len(seen) == 120 > PAGE_SIZE
    ready = (
        await site.http.get("/api/tasks", params={"state": "ready", "name": "batch-1?"})
    ).json()
    assert [t["name"] for t in ready["tasks"]] == [f"batch-{i}" for i in range(19, 9, -1)]
    assert (await site.http.get("/tasks", params={"state": "bogus"})).status_code == 400
    assert (await site.http.get("/tasks", params={"since": "yesterday"})).status_code == 400
    found = await site.http.get("/tasks", params={"id": str(made[5].id)})
    assert found.headers["location"] == f"/tasks/{made[5].id}"
    assert (await site.http.get("/tasks/999999")).status_code == 404


async def test_a_token_guards_every_request(site: Site) -> None:
    site.dash.guard = Guard("s3cret-token")
    app = create_app(site.dash)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8400"
    ) as http:
        for path in ("/", "/tasks", "/metrics", "/static/app.js", f"/api/tasks/{site.work.id}"):
            assert (await http.get(path)).status_code == 401, path
        assert (await http.get("/", params={"token": "wrong"})).status_code == 401
        assert (await http.get("/", headers={"authorization": "Bearer s3cret-token"})).is_success
        first = await http.get("/tasks", params={"token": "s3cret-token", "state": "failed"})
        assert first.status_code == 303
        assert first.headers["location"] == "/tasks?state=failed"  # the token leaves the URL
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert (await http.get("/tasks")).status_code == 200  # by the cookie now


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    assert bind_refusal("127.0.0.1", None) is None
    assert bind_refusal("::1", None) is None
    assert bind_refusal("0.0.0.0", "t") is None
    result = subprocess.run(
        durable_cmd("ui", "--db", str(tmp_path / "d.db"), "--host", "0.0.0.0"),
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "without a token" in result.stderr
    assert not (tmp_path / "d.db").exists()  # refused before anything is opened


async def test_settled_minutes_are_read_once_and_agree_with_a_full_count(site: Site) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    full = sorted(await site.dash.reader.ended(start, 60), key=repr)
    assert sum(b.count for b in full) == 2  # the work task and the hostile one
    for later in (now, now, now + timedelta(minutes=3), now + timedelta(minutes=3)):
        got = await site.dash.ended_per_minute(start, later)
        assert sorted(got, key=repr) == full
    # The minutes up to three minutes from now, two of them settled, are now kept.
    assert max(site.dash._minutes) >= now.replace(second=0, microsecond=0)


async def test_without_a_token_only_loopback_names_are_answered(site: Site) -> None:
    # DNS rebinding: a hostile site's name resolved to 127.0.0.1 reaches the port, but
    # the browser still says which name it asked for.
    rebound = await site.http.get("/tasks", headers={"host": "evil.example:8400"})
    assert rebound.status_code == 421
    for host in ("localhost:8400", "127.0.0.1", "[::1]:8400"):
        assert (await site.http.get("/tasks", headers={"host": host})).status_code == 200


async def test_workers_show_their_tasks_and_leases_about_to_lapse(site: Site) -> None:
    import os
    import socket
    from datetime import UTC, datetime

    from durable.core.model import WorkerInfo

    store = site.client.store
    info = WorkerInfo(
        id="probe:1:abc", hostname=socket.gethostname(), pid=os.getpid(),
        started_at=datetime.now(UTC),
    )  # fmt: skip
    await store.register_worker(info)
    work = site.work.workflow_hash
    held = await site.client.launch(work, name="held", entry="work", input=1)
    (claim,) = await store.claim(worker_id=info.id, limit=1, lease_seconds=60)
    assert claim.task.id == held.id
    page = (await site.http.get("/workers")).text
    row = re.search(r"<tbody id=workers>(.*?)</tbody>", page, re.S)
    assert row
    assert "probe:1:abc" in row[1]
    assert f'<a href="/tasks/{held.id}">{held.id}</a>' in row[1]
    assert 'class="lapsing"' not in row[1]  # a minute left, and it just registered
    assert re.search(r"<td><span>\d+ ms ago</span></td>", row[1])  # its heartbeat
    # The worker goes (its lease ends now), and a worker that never registered takes the
    # task over with a lease about to end.
    await store.remove_worker(info.id)
    (claim,) = await store.claim(worker_id="gone:2:def", limit=1, lease_seconds=0.5)
    assert claim.task.id == held.id
    page = (await site.http.get("/workers")).text
    assert "Leases of workers no longer registered" in page
    assert "gone:2:def" in page
    assert 'class="lapsing"' in page


async def test_an_idle_worker_keeps_beating(site: Site) -> None:
    from tests.helpers import running, until

    worker = Worker(site.client.store, WorkerConfig(poll_interval=0.5))
    async with running(worker):
        first = await until(lambda: _beat_of(site, worker.id))
        later = await until(lambda: _beat_after(site, worker.id, first), within=120)
    assert worker.running == 0  # it beat with nothing to run: no lease was renewed
    assert later > first
    assert worker.id not in await site.dash.reader.heartbeats()  # gone once stopped


async def _beat_of(site: Site, worker_id: str) -> Any:
    return (await site.dash.reader.heartbeats()).get(worker_id)


async def _beat_after(site: Site, worker_id: str, first: Any) -> Any:
    beat = await _beat_of(site, worker_id)
    return beat if beat is not None and beat > first else None


def form_ids(html: str) -> set[str]:
    """The ids of the action forms a task page offers."""
    return set(re.findall(r'<form method="post" action="/tasks/\d+/\w+" id="(\w+)-form"', html))


async def flash_of(site: Site, response: httpx.Response) -> str:
    """The message the page an action redirected to shows."""
    assert response.status_code == 303, response.text
    page = (await site.http.get(response.headers["location"])).text
    match = re.search(r'<div class="flash[^"]*" role="status">(.*?)</div>', page, re.S)
    assert match, "no message on the page"
    return match[1]


async def is_paused(site: Site, task_id: int) -> bool:
    """The task's pause flag, as the dashboard reads it."""
    flow = await site.dash.reader.flow(task_id)
    assert flow is not None
    return flow.paused


async def test_pause_resume_and_retry_from_the_task_page(any_site: Site) -> None:
    site = any_site
    http, client = site.http, site.client
    waiter, hostile = site.waiter.id, site.hostile.id
    page = (await http.get(f"/tasks/{waiter}")).text
    token = csrf_of(page)
    # Each action is offered only where it applies.
    assert form_ids(page) == {"pause", "cancel", "notify"}
    assert '<span id="paused">no</span>' in page
    assert form_ids((await http.get(f"/tasks/{hostile}")).text) == {"retry"}
    assert form_ids((await http.get(f"/tasks/{site.work.id}")).text) == set()

    paused = await http.post(f"/tasks/{waiter}/pause", data={"csrf": token})
    assert await flash_of(site, paused) == f"task {waiter}: paused (suspended)"
    assert await is_paused(site, waiter)
    page = (await http.get(f"/tasks/{waiter}")).text
    assert '<span id="paused">yes: no worker runs it until it is resumed</span>' in page
    assert form_ids(page) == {"resume", "cancel", "notify"}

    resumed = await http.post(f"/tasks/{waiter}/resume", data={"csrf": token})
    assert await flash_of(site, resumed) == f"task {waiter}: resumed (suspended)"
    assert not await is_paused(site, waiter)
    assert form_ids((await http.get(f"/tasks/{waiter}")).text) == {"pause", "cancel", "notify"}

    # Retry: a new task, from the failed one's history; the answer is the new task's page.
    retried = await http.post(f"/tasks/{hostile}/retry", data={"csrf": token})
    assert retried.status_code == 303
    new_id = int(re.findall(r"^/tasks/(\d+)\?", retried.headers["location"])[0])
    assert new_id not in (hostile, waiter, site.work.id)
    assert await flash_of(site, retried) == f"task {new_id}: retrying task {hostile}"
    new = await client.get(new_id)
    assert new.state is TaskState.READY
    assert new.workflow_hash == site.hostile.workflow_hash
    new_page = (await http.get(f"/tasks/{new_id}")).text
    assert f'task <a href="/tasks/{hostile}">{hostile}</a>, at event' in new_page
    assert (await client.get(hostile)).state is TaskState.FAILED  # left as it was

    # Refusals (a task in the wrong state) come back as one message, not a traceback.
    wrong = await http.post(f"/tasks/{waiter}/retry", data={"csrf": token})
    assert await flash_of(site, wrong) == (
        f"retry: task {waiter} is suspended: only a failed task is retried"
    )
    ended = await http.post(f"/tasks/{site.work.id}/pause", data={"csrf": token})
    message = await flash_of(site, ended)
    assert message.startswith("pause: ")
    assert "complete" in message
    assert "Traceback" not in message


async def test_a_task_page_shows_its_queue(site: Site) -> None:
    await site.client.set_queue("nightly", concurrency=1)
    queued = await site.client.launch(
        site.work.workflow_hash, name="queued", entry="work", input=1, queue="nightly"
    )
    page = (await site.http.get(f"/tasks/{queued.id}")).text
    assert '<span id="queue">nightly</span>' in page
    assert '<span id="queue">' not in (await site.http.get(f"/tasks/{site.waiter.id}")).text


async def test_retry_pause_and_resume_need_the_pages_csrf_token(site: Site) -> None:
    http, waiter, hostile = site.http, site.waiter.id, site.hostile.id
    token = csrf_of((await http.get(f"/tasks/{waiter}")).text)
    before = len(await site.client.list(limit=100))
    posts = [(hostile, "retry"), (waiter, "pause"), (waiter, "resume")]
    for task_id, action in posts:
        url = f"/tasks/{task_id}/{action}"
        assert (await http.post(url, data={"csrf": "0" * 64})).status_code == 400, action
        assert (await http.post(url, data={})).status_code == 400, action
        cross = await http.post(url, data={"csrf": token}, headers={"origin": "http://evil.test"})
        assert cross.status_code == 403, action
    # None of them did anything: no new task, the waiter neither paused nor resumed.
    assert len(await site.client.list(limit=100)) == before
    assert not await is_paused(site, waiter)
    # A resume that was refused must be seen to be refused: pause for real, then forge.
    await site.client.pause(waiter)
    url = f"/tasks/{waiter}/resume"
    assert (await http.post(url, data={"csrf": "0" * 64})).status_code == 400
    assert await is_paused(site, waiter)


async def test_a_task_that_continued_as_new_shows_each_runs_history(tmp_path: Path) -> None:
    """Three runs of two steps each: the page lists the runs with their inputs and shows
    the current run's history; `?run=N` shows run N's; a run it does not have is a 400."""
    import anyio

    db = f"sqlite:///{tmp_path / 'd.db'}"
    client = await open_client(db, migrate=True)
    try:
        workflow = await client.register(compiled(WORKFLOWS / "continue_loop.py"), name="loop")
        task = await client.launch(workflow, name="loop", entry="loop", input={"runs": 3})
        with anyio.fail_after(IDLE_WITHIN):
            await Worker(client.store, WorkerConfig(exit_when_idle=True)).run()
        assert (await client.get(task.id)).run == 3
        reader = await open_reader(db)
        dash = Dashboard(client=client, reader=reader, guard=Guard(None))
        transport = httpx.ASGITransport(app=create_app(dash))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as http:
            current = (await http.get(f"/tasks/{task.id}")).text
            first = (await http.get(f"/tasks/{task.id}?run=1")).text
            missing = await http.get(f"/tasks/{task.id}?run=7")
        dash.close()
        await reader.close()
    finally:
        await client.close()
    assert '<span id="run">run 3 of 3</span>' in current
    runs = re.search(r"<tbody id=runs>(.*?)</tbody>", current, re.S)
    assert runs is not None
    assert re.findall(r"\?run=(\d)", runs.group(1)) == ["1", "2"], "the others link"
    assert "3 (current)" in runs.group(1)
    assert "History of run 3" in current
    assert "History of run 1" in first
    assert _history(first) != _history(current), "each run's own events"
    assert missing.status_code == 400
    assert "no run 7" in missing.text


def _history(page: str) -> list[str]:
    """The operations and payloads of the history table on a task page."""
    body = re.search(r"<tbody id=history>(.*?)</tbody>", page, re.S)
    assert body is not None, "a history table"
    return re.findall(r"<code>([^<]*)</code>", body.group(1))
