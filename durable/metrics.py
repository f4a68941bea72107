"""Prometheus metrics of a worker process (`durable worker --metrics-port N`) and of the
dashboard (`GET /metrics` on `durable ui`).

Each `Metrics` has a registry of its own, never prometheus-client's global default,
so two in one process (tests, an application that embeds a worker) count apart. The
engine's code reports through `active()`, the one instance `install`ed in this process,
and does nothing when none is: a worker without `--metrics-port` pays a `None` check.

Tasks by state are not counted as they change (other processes change them too): they
are read from the database when the metrics are scraped (`Metrics.render`), one
grouped count over the `(state, id)` index.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from durable.core.model import Claim, TaskState
from durable.errors import StorageError
from durable.storage.base import Store

if TYPE_CHECKING:  # imported when first used: the host imports this module for `active`
    from prometheus_client import CollectorRegistry

#: The media type of the Prometheus text format that `render` returns.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: How an attempt ended, as its `outcome` label: the `Outcome` class names in lower
#: case, and these two for an attempt that ended without one.
LOST = "lease_lost"  # another worker took the task over meanwhile
ERROR = "error"  # a storage or host error dropped the attempt

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)


class Metrics:
    """The instruments of one process, in a registry of their own."""

    def __init__(self) -> None:
        """Create the instruments, all at zero."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Gauge(
            "durable_tasks", "Tasks in the database, by state (read at scrape time).",
            ["state"], registry=r,
        )  # fmt: skip
        self.attempts_started = Counter(
            "durable_attempts_started", "Task attempts this process started.", registry=r
        )
        self.attempts_finished = Counter(
            "durable_attempts_finished", "Task attempts this process ended, by outcome.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.attempt_seconds = Histogram(
            "durable_attempt_duration_seconds", "How long attempts ran, by outcome.",
            ["outcome"], buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.events_recorded = Counter(
            "durable_events_recorded", "History events written by this process.", registry=r
        )
        self.events_replayed = Counter(
            "durable_events_replayed",
            "History events read back to replay at the start of an attempt.",
            registry=r,
        )
        self.lease_takeovers = Counter(
            "durable_lease_takeovers",
            "Claims of a task whose previous worker died holding it.",
            registry=r,
        )
        self.timer_lateness = Histogram(
            "durable_timer_lateness_seconds",
            "How long after its deadline a durable sleep went on.",
            buckets=_LATENESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.compile_cache = Counter(
            "durable_compile_cache", "Looks for a compiled workflow, by result (hit, miss).",
            ["result"], registry=r,
        )  # fmt: skip
        self.instance_cache = Counter(
            "durable_instance_cache",
            "Wake-ups of a task whose instance this worker kept live (hit) or that "
            "replayed instead (miss), and kept instances dropped (evicted).",
            ["result"], registry=r,
        )  # fmt: skip
        self.database_errors = Counter(
            "durable_database_errors", "Database calls that failed with a storage error.",
            registry=r,
        )  # fmt: skip
        for state in TaskState:
            self.tasks.labels(state=state.value).set(0)
        for result in ("hit", "miss"):
            self.compile_cache.labels(result=result)
        for result in ("hit", "miss", "evicted"):
            self.instance_cache.labels(result=result)

    async def render(self, count_tasks: Callable[[], Awaitable[Mapping[str, int]]]) -> bytes:
        """The metrics in the Prometheus text format, task counts read now."""
        from prometheus_client import generate_latest

        counts = await count_tasks()
        for state in TaskState:
            self.tasks.labels(state=state.value).set(counts.get(state.value, 0))
        return generate_latest(self.registry)


_active: Metrics | None = None


def active() -> Metrics | None:
    """The metrics this process reports to, if any were installed."""
    return _active


def install(metrics: Metrics) -> Callable[[], None]:
    """Report this process's events to `metrics` from now on; returns the remover."""
    global _active
    _active = metrics

    def remove() -> None:
        global _active
        if _active is metrics:
            _active = None

    return remove


class MeteredStore:
    """A `Store` wrapper that counts what passes: events written and read back for a
    replay, takeovers among claims, and storage errors. Everything else is the
    wrapped store's, so `isinstance` checks on its roles still answer for it."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        """Wrap `store`; count into `metrics`."""
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not inspect.iscoroutinefunction(value):
            return value
        errors = self._metrics.database_errors

        @functools.wraps(value)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await value(*args, **kwargs)
            except StorageError:
                errors.inc()
                raise
            self._count(name, args, kwargs, result)
            return result

        return call

    def _count(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        m = self._metrics
        if name == "append":
            m.events_recorded.inc(len(args[1] if len(args) > 1 else kwargs["events"]))
        elif name == "finish":
            events = args[2] if len(args) > 2 else kwargs.get("events", ())
            m.events_recorded.inc(len(events))
        elif name == "load_history":
            m.events_replayed.inc(len(result))
        elif name == "load_attempt":
            m.events_replayed.inc(len(result[0]))
        elif name == "claim":
            # A takeover adds a death; a death count kept by a hand-back before the
            # guest started also shows here (rare: that worker died mid-compile).
            claims: list[Claim] = result
            takeovers = sum(1 for c in claims if c.task.deaths > 0)
            if takeovers:
                m.lease_takeovers.inc(takeovers)


def metered(store: Store, metrics: Metrics) -> Store:
    """`store`, counted into `metrics` (see `MeteredStore`)."""
    return cast("Store", MeteredStore(store, metrics))
