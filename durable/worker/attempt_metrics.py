"""What an attempt reports to the process's metrics (`durable.metrics`), if any."""

from __future__ import annotations

import time
from dataclasses import dataclass

from durable import metrics
from durable.core.model import Outcome


@dataclass(slots=True)
class AttemptMeter:
    """Times one attempt and counts how it ended (`outcome`, set by the runner)."""

    started: float
    outcome: str = metrics.ERROR  # until the runner learns better

    @classmethod
    def start(cls) -> AttemptMeter:
        """An attempt begins now."""
        m = metrics.active()
        if m is not None:
            m.attempts_started.inc()
        return cls(started=time.monotonic())

    def ended(self, outcome: Outcome) -> None:
        """The attempt's end was written: `completed`, `failed`, `suspended`..."""
        self.outcome = type(outcome).__name__.lower()

    def stop(self) -> None:
        """Count the attempt as finished with its outcome."""
        m = metrics.active()
        if m is not None:
            m.attempts_finished.labels(outcome=self.outcome).inc()
            seconds = time.monotonic() - self.started
            m.attempt_seconds.labels(outcome=self.outcome).observe(seconds)


def count_compile_lookup(*, hit: bool) -> None:
    """A worker looked for a workflow's compiled component in the cache."""
    m = metrics.active()
    if m is not None:
        m.compile_cache.labels(result="hit" if hit else "miss").inc()
