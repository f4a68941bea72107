"""Tracing is off, and makes no spans, without the extra or without a tracer provider."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
{block}
from datetime import UTC, datetime
from durable import tracing
from durable.core.model import Task, TaskState
now = datetime.now(UTC)
task = Task(id=1, name="t", workflow_hash="h", entry="", input="null", state=TaskState.ACTIVE,
            seed=1, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
            owner="w", attempts=1, parent_id=None, idempotency_key=None)
print(tracing._trace is None, tracing.start_attempt(task) is None)
"""


def probe(block: str) -> str:
    code = _PROBE.format(block=block)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_without_the_extra_tracing_is_off() -> None:
    # A None entry in sys.modules makes `import opentelemetry` fail, as if not installed.
    assert probe("sys.modules['opentelemetry'] = None") == "True True"


def test_with_the_api_but_no_provider_no_span_is_made() -> None:
    assert probe("") == "False True"


def test_with_a_provider_an_attempt_gets_a_span() -> None:
    block = (
        "from opentelemetry import trace; from opentelemetry.sdk.trace import TracerProvider; "
        "trace.set_tracer_provider(TracerProvider())"
    )
    assert probe(block) == "False False"
