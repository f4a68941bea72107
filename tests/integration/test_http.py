"""`durable.http` end to end: real components, a real local HTTP server, real stores.

The server runs on 127.0.0.1 in a thread and counts the requests it gets per path, so
the tests can tell a replayed response (no new request) from a repeated one.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import socket
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.to_thread
import pytest

from durable.core.model import Completed, Event, Failed, LogChunk, Task
from durable.core.side_writes import SideWrite
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.http import Request
from durable.host.runtime import AttemptEnd, Runtime
from durable.storage.base import Store
from durable.worker.attempt import StoreSink
from tests.helpers import (
    EXAMPLES,
    WORKFLOWS,
    built,
    completed_result,
    durable_cmd,
    launch_task,
    load_component,
    replay,
    run_cli,
    run_until_idle,
)

pytestmark = pytest.mark.anyio

WORKFLOW = WORKFLOWS / "http_client.py"
LIMIT = 64 * 1024  # the response-size limit the in-process tests run with


# -- the test server -------------------------------------------------------------------------


class Server:
    """A local HTTP server that counts requests per path."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # /block holds its first request until this is set (or the server stops).
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def count(self, path: str) -> int:
        with self.lock:
            return self.counts[path]

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

        def handle_one_request(self) -> None:
            # The client may give up mid-response (timeout, size limit, killed process).
            with contextlib.suppress(OSError):
                super().handle_one_request()

        def _send(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, value: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
            body = json.dumps(value).encode()
            self._send(200, body, [("Content-Type", "application/json"), *headers])

        def _serve(self) -> None:
            url = urlsplit(self.path)
            with server.lock:
                server.counts[url.path] += 1
                n = server.counts[url.path]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path == "/echo":
                self._json(
                    {
                        "method": self.command,
                        "query": parse_qsl(url.query, keep_blank_values=True),
                        "headers": [[k.lower(), v] for k, v in self.headers.items()],
                        "body": body.decode("latin-1"),
                    },
                    headers=[("X-Multi", "one"), ("X-Multi", "two")],
                )
            elif url.path.startswith("/status/"):
                self._send(int(url.path.rsplit("/", 1)[1]), b"nope")
            elif url.path == "/bytes":
                binary = [("Content-Type", "application/octet-stream")]
                self._send(200, bytes([0, 255, 128, 10]), binary)
            elif url.path == "/gzip":
                self._send(200, gzip.compress(b"unzipped " * 3), [("Content-Encoding", "gzip")])
            elif url.path == "/big":
                self._send(200, b"x" * int(query["n"]))
            elif url.path == "/stream":
                # No Content-Length: the body ends when the connection closes, so only
                # counting while reading can enforce the limit.
                self.send_response(200)
                self.end_headers()
                for _ in range(int(query["n"]) // 1024):
                    self.wfile.write(b"y" * 1024)
                self.close_connection = True
            elif url.path == "/slow":
                server.stop.wait(float(query["s"]))
                self._send(200, b"late")
            elif url.path == "/block":
                if n == 1:
                    server.blocked.set()
                    while not (server.release.is_set() or server.stop.is_set()):
                        server.release.wait(0.05)
                self._json({"n": n})
            elif url.path == "/effect":
                self._json({"n": n, "got": json.loads(body or b"null")})
            elif url.path == "/user":
                self._json({"name": "Ada Lovelace", "address": {"city": "London"}})
            else:
                self._send(404, b"no such path")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


def closed_port() -> int:
    """A local port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- running tasks in-process ----------------------------------------------------------------


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return built(WORKFLOW)[0]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    config = HostConfig(
        cache_dir=tmp_path_factory.mktemp("cache"),
        http_max_response_bytes=LIMIT,
        http_default_timeout=5.0,
        http_max_timeout=1.0,  # a workflow asking for more gets 1 s
    )
    rt = Runtime(config)
    yield rt
    rt.close()


async def launch(store: Store, wasm: bytes, entry: str, value: Any) -> Task:
    return await launch_task(store, wasm, entry, value, workflow_name="http_client")


async def run_task(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> Task:
    task = await launch(store, wasm, entry, value)
    await run_until_idle(store, runtime)
    return await store.get_task(task.id)


result = completed_result


# -- round trips -----------------------------------------------------------------------------


async def test_requests_round_trip_and_replay_without_the_network(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    task = await run_task(store, runtime, wasm, "roundtrip", {"base": server.base})
    out = result(task)

    get = out["get"]
    assert get["method"] == "GET"
    assert get["query"] == [
        ["fixed", "1"],
        ["q", "a b&c"],
        ["n", "2"],
        ["flag", "true"],
        ["multi", "x"],
        ["multi", "y"],
    ]
    headers = dict(map(tuple, get["headers"]))
    assert headers["x-token"] == "t0k"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "durable"
    assert out["get_status"] == [200, 200, True, "OK"]
    assert out["get_content_type"] == ["application/json", True]
    assert out["get_multi"] == ["one", "two"]
    assert out["get_multi_joined"] == "one, two"

    post = out["post"]
    assert post["method"] == "POST"
    assert json.loads(post["body"].encode("latin-1")) == {"hello": "wörld", "n": [1, 2]}
    post_headers = [h for h in post["headers"] if h[0] in ("content-type", "x-twice")]
    assert post_headers == [
        ["x-twice", "a"],
        ["x-twice", "b"],
        ["content-type", "application/json"],
    ]
    assert [out["put"]["method"], out["put"]["body"]] == ["PUT", "plain text"]
    assert [out["patch"]["method"], out["patch"]["body"]] == ["PATCH", "k=v+w"]
    assert ["content-type", "application/x-www-form-urlencoded"] in out["patch"]["headers"]
    assert [out["delete"]["method"], out["delete"]["body"]] == ["DELETE", "\x00\xff"]
    assert out["missing"] == [404, False, "nope"]
    kind, status, message, is_http_error = out["raised"]
    assert [kind, status, is_http_error] == ["HTTPStatusError", 404, True]
    assert message == f"404 Not Found (client error) for GET {server.base}/status/404"
    assert out["binary"] == [0, 255, 128, 10]
    assert out["gzip"] == "unzipped " * 3

    # One event per request, labelled without the query string.
    events = await store.load_history(task.id)
    labels = [e.label for e in events]
    assert labels[0] == f"http GET {server.base}/echo"
    assert labels.count(f"http GET {server.base}/echo") == 1
    assert all(e.digest for e in events if e.label.startswith("http "))
    assert "fixed" not in labels[0]
    assert sum(label.startswith("http ") for label in labels) == 8

    # A replay answers every request from the history: no new request reaches the server.
    before = server.total()
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == out
    assert end.events == []
    assert server.total() == before


async def test_replay_of_a_different_request_is_nondeterministic(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    task = await run_task(store, runtime, wasm, "once", {"url": f"{server.base}/effect"})
    assert result(task)["n"] == 1
    # Same label (the query is not in it), another URL: the digest tells them apart.
    changed = replace(task, input=json.dumps({"url": f"{server.base}/effect?v=2"}))
    end = await replay(store, runtime, wasm, changed)
    assert isinstance(end.outcome, Failed)
    error = json.loads(end.outcome.error)
    assert error["kind"] == "NondeterminismError"
    assert "event 0" in error["message"]
    assert "http POST" in error["message"]
    assert server.count("/effect") == 1


def test_digest_covers_method_url_headers_and_body() -> None:
    base = Request("GET", "http://h/p?q=1", [("a", "1")], None, None)
    variants = [
        replace(base, method="POST"),
        replace(base, url="http://h/p?q=2"),
        replace(base, headers=[("a", "2")]),
        replace(base, body=b""),
        replace(base, body=b"x"),
    ]
    digests = {base.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 1 + len(variants)
    assert replace(base, timeout_ms=5).digest() == base.digest()  # not what is asked for
    assert base.label() == "http GET http://h/p"
    assert (
        Request("GET", "https://u:pw@h:8/a?k=s#f", [], None, None).label()
        == "http GET https://h:8/a"
    )


# -- at least once ---------------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying."""


class CrashOnHttpEvent:
    """A sink that dies when asked to commit an HTTP event: after the request, before
    its outcome is durable."""

    def __init__(self, inner: StoreSink) -> None:
        self.inner = inner

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        if any(e.label.startswith("http ") for e in events):
            raise Crash("killed between the request and its commit")
        self.inner.write(events, logs, writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def attempt(
    store: Store,
    runtime: Runtime,
    wasm: bytes,
    wrap: Callable[[StoreSink], Any],
    *,
    finish: bool = True,
) -> tuple[Task, AttemptEnd | BaseException]:
    """Claim the next task and run one attempt through `wrap(sink)`, as a worker would;
    with `finish=False`, die before writing its end."""
    [claim] = await store.claim(worker_id="crashy", limit=1, lease_seconds=60)
    component = await anyio.to_thread.run_sync(load_component, runtime, wasm)
    ctx = AttemptContext(
        task=claim.task,
        attempt=claim.task.attempts,
        history=await store.load_history(claim.task.id),
        sink=wrap(StoreSink(store, claim.lease)),
        config=runtime.config,
    )
    try:
        end = await anyio.to_thread.run_sync(runtime.run, component, ctx)
    except Crash as exc:
        return claim.task, exc
    if finish and end.outcome is not None:
        await store.finish(claim.lease, end.outcome, end.events, end.logs)
    return claim.task, end


async def test_crash_before_commit_repeats_the_request_once(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    task = await launch(store, wasm, "once", {"url": f"{server.base}/effect"})
    _, crashed = await attempt(store, runtime, wasm, CrashOnHttpEvent)
    assert isinstance(crashed, Crash)
    assert server.count("/effect") == 1  # the request went out ...
    assert await store.load_history(task.id) == []  # ... and its outcome was lost

    await store.remove_worker("crashy")  # the dead worker's lease lapses at once
    await run_until_idle(store, runtime)
    done = await store.get_task(task.id)
    assert result(done) == {"n": 2, "got": {"task": task.id}}
    assert server.count("/effect") == 2  # repeated once, not more
    events = await store.load_history(task.id)
    assert [e.label for e in events] == [f"http POST {server.base}/effect"]
    logs = b"".join(c.data for c in await store.read_logs(task.id))
    assert logs == b"after request 200\n"

    end = await replay(store, runtime, wasm, done)
    assert isinstance(end.outcome, Completed)
    assert server.count("/effect") == 2  # and never again once recorded


async def test_crash_after_commit_does_not_repeat_the_request(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    task = await launch(store, wasm, "once", {"url": f"{server.base}/effect"})
    # The attempt runs to its end but dies before `finish`: the response event is
    # committed, the task's end is not.
    _, end = await attempt(store, runtime, wasm, lambda sink: sink, finish=False)
    assert isinstance(end, AttemptEnd)
    assert isinstance(end.outcome, Completed)
    assert server.count("/effect") == 1
    assert len(await store.load_history(task.id)) == 1

    await store.remove_worker("crashy")
    await run_until_idle(store, runtime)
    done = await store.get_task(task.id)
    assert result(done)["n"] == 1  # the recorded response, not a new one
    assert server.count("/effect") == 1
    logs = b"".join(c.data for c in await store.read_logs(task.id))
    assert logs == b"after request 200\n"


async def test_requests_inside_a_step_are_covered_by_the_step(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    task = await run_task(store, runtime, wasm, "stepped", {"url": f"{server.base}/effect"})
    assert result(task)["n"] == 1
    events = await store.load_history(task.id)
    assert [e.label for e in events] == ["step fetch_in_step"]  # no event of its own
    await replay(store, runtime, wasm, task)
    assert server.count("/effect") == 1


# -- typed errors ----------------------------------------------------------------------------


async def test_errors_are_recorded_typed_and_catchable(
    store: Store, runtime: Runtime, wasm: bytes, server: Server
) -> None:
    port = closed_port()
    cases = [
        ["no_scheme", "not a url", None],
        ["bad_scheme", "ftp://example.com/file", None],
        ["bad_port", "http://127.0.0.1:99999/", None],
        ["refused", f"http://127.0.0.1:{port}/", None],
        ["dns", "http://nonexistent.invalid/", None],
        ["too_large", f"{server.base}/big?n={LIMIT + 1}", None],
        ["too_large_streamed", f"{server.base}/stream?n={4 * LIMIT}", None],
        ["at_limit", f"{server.base}/big?n={LIMIT}", None],
        ["timeout", f"{server.base}/slow?s=3", 0.3],
        ["timeout_clamped", f"{server.base}/slow?s=3", 600],  # lowered to the 1 s maximum
    ]
    task = await run_task(store, runtime, wasm, "errors", {"cases": cases})
    out = result(task)

    assert out["no_scheme"][0] == "InvalidURL"
    assert out["bad_scheme"][0] == "InvalidURL"
    assert "ftp" in out["bad_scheme"][1]
    assert out["bad_port"][0] == "InvalidURL"
    assert out["refused"][0] == "ConnectError"
    assert out["refused"][1].startswith(f"GET http://127.0.0.1:{port}/: cannot connect:")
    assert "refused" in out["refused"][1].lower()
    assert out["dns"][0] == "NameResolutionError"
    assert out["dns"][2] is True  # a NameResolutionError is a ConnectError
    assert out["too_large"] == [
        "ResponseTooLarge",
        f"GET {server.base}/big: response body larger than {LIMIT} bytes",
        LIMIT,
    ]
    assert out["too_large_streamed"][0] == "ResponseTooLarge"
    assert out["at_limit"] == ["ok", 200, LIMIT]
    assert out["timeout"][0] == "Timeout"
    assert out["timeout_clamped"][0] == "Timeout"
    logs = b"".join(c.data for c in await store.read_logs(task.id))
    assert logs == b"errors handled\n"

    # Every outcome, errors included, is an event: the replay raises the same exceptions
    # without a single request.
    events = await store.load_history(task.id)
    assert len([e for e in events if e.label.startswith("http ")]) == len(cases)
    recorded = {e.label: json.loads(e.payload) for e in events}
    assert recorded[f"http GET {server.base}/slow"]["error"] == {"kind": "timeout", "detail": None}
    before = server.total()
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == out
    assert server.total() == before


# -- through the CLI, on SQLite ----------------------------------------------------------------


def test_example_through_the_cli(tmp_path: Path, server: Server) -> None:
    args = {"url": f"{server.base}/user", "field": "address.city"}
    example = str(EXAMPLES / "http_request.py")
    proc = run_cli("run", example, "--input", json.dumps(args), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "London\n"
    assert server.count("/user") == 1
    with sqlite3.connect(tmp_path / ".durable" / "durable.db") as conn:
        rows = conn.execute("SELECT label FROM durable_event WHERE task_id = 1").fetchall()
    assert rows == [(f"http GET {server.base}/user",)]

    missing = run_cli(
        "run",
        example,
        "--input",
        json.dumps({"url": f"{server.base}/status/500", "field": "x"}),
        cwd=tmp_path,
    )
    assert missing.returncode == 1
    expected = "task 2 failed: HTTPStatusError: 500 Internal Server Error (server error)"
    assert expected in missing.stderr


def test_killed_during_a_request_resumes_and_repeats_it_once(
    tmp_path: Path, server: Server
) -> None:
    db = tmp_path / "http.db"
    args = {"url": f"{server.base}/block"}
    proc = subprocess.Popen(
        durable_cmd(
            "run", str(WORKFLOW), "--entry", "once", "--input", json.dumps(args), "--db", str(db)
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.blocked.wait(120), "the request never reached the server"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    server.release.set()
    assert server.count("/block") == 1

    resumed = run_cli("worker", "--db", str(db), "--exit-when-idle", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert server.count("/block") == 2
    with sqlite3.connect(db) as conn:
        state, result_json = conn.execute(
            "SELECT state, result FROM durable_task WHERE id = 1"
        ).fetchone()
        labels = [r[0] for r in conn.execute("SELECT label FROM durable_event WHERE task_id = 1")]
    assert state == "complete"
    assert json.loads(result_json)["n"] == 2
    assert labels == [f"http POST {server.base}/block"]
    logs = run_cli("logs", "1", "--db", str(db), cwd=tmp_path)
    assert logs.stdout == "after request 200\n"
