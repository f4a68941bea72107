"""OpenTelemetry traces of task attempts, in the optional extra `durable[otel]`.

One span per attempt (`durable.attempt`), and under it a span for each step the
attempt runs (`durable.step`: not for steps answered from the history), each HTTP
request (`durable.http`, whose trace context goes out in a `traceparent` header) and
each workflow SQL transaction (`durable.sql`). Each carries the task's id and name and
the attempt's number.

Off, and free, unless the OpenTelemetry API is installed and a tracer provider is set:
the import is tried once, here, and every hook in the host checks one attribute for
None. `configure_from_environment` (called by `durable worker`) sets up the SDK's
provider with an OTLP exporter when the standard `OTEL_EXPORTER_OTLP_*` variables name
an endpoint; an application that embeds a worker sets up its own provider instead.

Spans are started with an explicit parent rather than through the current context: a
guest runs on a thread of its own, and its step begins and ends in two host calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from durable import settings
from durable.core.model import Outcome, Task

_trace: Any  # the `opentelemetry.trace` module, or None
_propagate: Any  # `opentelemetry.propagate`, or None
try:
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: tracing stays off
    _trace = _propagate = None

log = logging.getLogger("durable.tracing")

TRACER = "durable"
#: The attributes every span of an attempt carries.
TASK_ID, TASK_NAME, ATTEMPT = "durable.task.id", "durable.task.name", "durable.attempt"


def _tracer() -> Any:
    """The tracer to use, or None: no API installed, or no provider set up."""
    if _trace is None:
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider):
        return None  # nobody would receive the spans: do not make them
    return provider.get_tracer(TRACER)


class AttemptTrace:
    """The spans of one attempt: its own, and the step and SQL spans open under it."""

    def __init__(self, tracer: Any, task: Task) -> None:
        """Start the attempt's span."""
        assert _trace is not None
        self._tracer = tracer
        self.attributes = {TASK_ID: task.id, TASK_NAME: task.name, ATTEMPT: task.attempts}
        self.span = tracer.start_span(
            "durable.attempt", attributes={**self.attributes, "durable.entry": task.entry}
        )
        self._open: list[Any] = []  # steps, innermost last
        self._sql: Any = None

    def _child(self, name: str, **attributes: Any) -> Any:
        assert _trace is not None
        parent = self._open[-1] if self._open else self.span
        return self._tracer.start_span(
            name,
            context=_trace.set_span_in_context(parent),
            attributes={**self.attributes, **attributes},
        )

    def step_started(self, label: str) -> None:
        """A step runs (it was not in the history)."""
        self._open.append(self._child("durable.step", **{"durable.step": label}))

    def step_ended(self) -> None:
        """The innermost running step returned (its result is recorded)."""
        if self._open:
            self._open.pop().end()

    def sql_started(self, label: str) -> None:
        """A workflow SQL transaction opens."""
        self._sql = self._child("durable.sql", **{"durable.transaction": label})

    def sql_ended(self, how: str) -> None:
        """The transaction ended: `commit`, `rollback` or a refused commit's kind."""
        if self._sql is not None:
            self._sql.set_attribute("durable.sql.end", how)
            self._sql.end()
            self._sql = None

    @contextlib.contextmanager
    def http(self, method: str, url: str) -> Iterator[tuple[Any, list[tuple[str, str]]]]:
        """A span around one HTTP request; yields it and the headers that carry its
        trace context to the server."""
        assert _trace is not None
        assert _propagate is not None
        span = self._child(
            "durable.http", **{"http.request.method": method, "url.full": _no_query(url)}
        )
        carrier: dict[str, str] = {}
        _propagate.inject(carrier, context=_trace.set_span_in_context(span))
        try:
            yield span, list(carrier.items())
        finally:
            span.end()

    def end(self, outcome: Outcome | str) -> None:
        """End every open span, the attempt's last, with how the attempt ended."""
        assert _trace is not None
        while self._open:
            self._open.pop().end()
        self.sql_ended("abandoned")
        how = outcome if isinstance(outcome, str) else type(outcome).__name__.lower()
        self.span.set_attribute("durable.outcome", how)
        if how in ("failed", "error"):
            self.span.set_status(_trace.Status(_trace.StatusCode.ERROR))
        self.span.end()


def start_attempt(task: Task) -> AttemptTrace | None:
    """The trace of an attempt of `task` starting now, or None when tracing is off."""
    tracer = _tracer()
    return None if tracer is None else AttemptTrace(tracer, task)


def _no_query(url: str) -> str:
    """The URL without its query string, which may hold secrets."""
    return url.split("?", 1)[0]


def configure_from_environment() -> bool:
    """Export spans over OTLP when the environment asks for it; True if it does.

    It asks when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    is set (and `OTEL_SDK_DISABLED` is not `true`); the exporter reads the other
    standard variables (headers, protocol, timeout) itself, and the service is named by
    `OTEL_SERVICE_NAME` (default `durable-worker`).
    """
    if not settings.otel_export():
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set, but durable[otel] is not installed")
        return False
    assert _trace is not None
    resource = Resource.create({"service.name": settings.otel_service_name()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _trace.set_tracer_provider(provider)
    return True
