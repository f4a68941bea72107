"""The instances a worker keeps live after they suspended, within a memory budget.

Least recently parked go first. An instance's cost is an estimate, `INSTANCE_BYTES`:
wasmtime-py does not expose a component's linear memories, so the real size of one
cannot be read from the host (about 7 MiB of worker memory per live Python task was
measured for issue 14; a JavaScript guest is smaller). Evicting an instance unwinds its
guest (`LiveInstance.evict`); its task, suspended in the store already, replays when
next claimed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from durable import metrics

if TYPE_CHECKING:  # it imports the runtime, which makes this cache
    from durable.host.live import LiveInstance

log = logging.getLogger("durable.worker")

#: What one kept instance is taken to cost: its linear memory, its wasmtime store and
#: its parked thread (see the module docstring).
INSTANCE_BYTES = 8 * 1024**2

#: A kept instance's key: the store's url and the task's id (and, checked on resume,
#: its creation time: two stores may share a url, as in-memory ones do).
Key = tuple[str, int]


class InstanceCache:
    """Parked `LiveInstance`s by task, least recently parked first."""

    def __init__(self, budget: int, *, instance_bytes: int = INSTANCE_BYTES) -> None:
        """Keep at most `budget` bytes of instances (0: keep none)."""
        self.budget = budget
        self.instance_bytes = instance_bytes
        self._kept: OrderedDict[Key, LiveInstance] = OrderedDict()
        self._lock = threading.Lock()
        # Counted here as well as in the process's metrics (if any), for tests and
        # benchmarks: wake-ups that went on live, that replayed, instances dropped.
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        """Whether suspended instances are kept at all."""
        return self.budget >= self.instance_bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def put(self, key: Key, live: LiveInstance) -> None:
        """Keep `live`, parked, evicting the least recently parked to make room."""
        with self._lock:
            dropped = [live] if not self.enabled else []
            old = self._kept.pop(key, None)
            if old is not None:
                dropped.append(old)
            if self.enabled:
                self._kept[key] = live
                while len(self._kept) * self.instance_bytes > self.budget:
                    dropped.append(self._kept.popitem(last=False)[1])
        for gone in dropped:
            self._evict(gone, "over the instance cache's budget")

    def parked(self) -> list[Key]:
        """The keys of the kept instances, least recently parked first."""
        with self._lock:
            return list(self._kept)

    def take(self, key: Key) -> LiveInstance | None:
        """Remove and return the instance kept for `key`, if any."""
        with self._lock:
            return self._kept.pop(key, None)

    def discard(self, key: Key, live: LiveInstance, why: str) -> None:
        """Evict `live` (kept under `key` or already taken out)."""
        with self._lock:
            if self._kept.get(key) is live:
                del self._kept[key]
        self._evict(live, why)

    def clear(self, why: str = "the worker is stopping") -> list[LiveInstance]:
        """Evict every kept instance; return them (to join their threads)."""
        with self._lock:
            gone = list(self._kept.values())
            self._kept.clear()
        for live in gone:
            self._evict(live, why)
        return gone

    def count(self, *, hit: bool) -> None:
        """A claimed task woke its kept instance (`hit`), or replayed."""
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        m = metrics.active()
        if m is not None:
            m.instance_cache.labels(result="hit" if hit else "miss").inc()

    def _evict(self, live: LiveInstance, why: str) -> None:
        log.debug("task %d: live instance dropped: %s", live.ctx.task.id, why)
        live.evict()
        self.evictions += 1
        m = metrics.active()
        if m is not None:
            m.instance_cache.labels(result="evicted").inc()
