"""OpenTelemetry traces of a real attempt, captured with the SDK's in-memory exporter:
the attempt's span, its step, HTTP and SQL spans under it, their attributes, and the
trace context a local HTTP server receives in `traceparent`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.app import open_client
from durable.worker import Worker, WorkerConfig
from tests.helpers import IDLE_WITHIN, WORKFLOWS, compiled, completed_result

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

otel_trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
export = pytest.importorskip("opentelemetry.sdk.trace.export")

_EXPORTER = memory.InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Any:
    """The in-memory exporter, behind the process's tracer provider (set once: the API
    allows one per process)."""
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(_EXPORTER))
    otel_trace.set_tracer_provider(provider)
    return _EXPORTER


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server that keeps the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hello?secret=1", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_an_attempt_is_a_span_with_its_steps_http_and_sql_under_it(
    spans: Any, server: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    url, seen = server
    spans.clear()
    client = await open_client(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        workflow = await client.register(compiled(WORKFLOWS / "dashboard.py"), name="dashboard")
        task = await client.launch(workflow, name="traced-task", entry="traced", input={"url": url})
        with anyio.fail_after(IDLE_WITHIN):
            await Worker(client.store, WorkerConfig(exit_when_idle=True)).run()
        assert completed_result(await client.get(task.id)) == [3, 204]
    finally:
        await client.close()

    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    attempt = by_name["durable.attempt"]
    assert dict(attempt.attributes) == {
        "durable.task.id": task.id, "durable.task.name": "traced-task", "durable.attempt": 1,
        "durable.entry": "traced", "durable.outcome": "completed",
    }  # fmt: skip
    for name in ("durable.step", "durable.http", "durable.sql"):
        child = by_name[name]
        assert child.parent is not None
        assert child.parent.span_id == attempt.context.span_id, name
        assert child.context.trace_id == attempt.context.trace_id
        assert child.attributes["durable.task.id"] == task.id
        assert child.attributes["durable.attempt"] == 1
    assert by_name["durable.step"].attributes["durable.step"].endswith("add")
    http_span = by_name["durable.http"]
    assert http_span.attributes["http.response.status_code"] == 204
    assert http_span.attributes["url.full"].endswith("/hello")  # no query: it may hold secrets
    assert by_name["durable.sql"].attributes["durable.sql.end"] == "commit"
    assert by_name["durable.sql"].attributes["durable.transaction"] == "tally"

    # The server got the HTTP span's context: same trace, that span as the parent.
    (headers,) = seen
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == attempt.context.trace_id
    assert int(parent_id, 16) == http_span.context.span_id
