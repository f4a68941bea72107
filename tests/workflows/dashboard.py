"""Workflows for the dashboard, metrics and tracing tests: steps and a short sleep, a
wait for a notification, and a hostile one whose output and error are HTML."""

from __future__ import annotations

from typing import Any

import durable
from durable import http


@durable.step
def add(total: int, n: int) -> int:
    return total + n


@durable.workflow
def work(n: int) -> int:
    """`n` steps, a short durable sleep, a line of output."""
    total = 0
    for i in range(n):
        total = add(total, i)
    durable.sleep(0.05)
    print(f"worked {n}")
    return total


@durable.workflow
def waiter(label: str) -> list:
    """Wait for a notification "go" and return it."""
    print(f"waiting for go ({label})")
    add(0, 1)  # an event before the wait, for the resumed attempt to replay
    note = durable.wait("go")
    return [note.event, note.data]


@durable.workflow
def hostile(marker: str) -> str:
    """Print and fail with markup that would run script if a page did not escape it."""
    print(f'<img src=x onerror="window.{marker}=1"><script>window.{marker}=1</script>')
    durable.set_status("note", f"<script>window.{marker}=1</script>")
    raise ValueError(f"<script>window.{marker}=1</script>")


@durable.workflow
def traced(args: dict[str, Any]) -> list:
    """A step, an HTTP request and a SQL transaction: one span each under the attempt."""
    total = add(1, 2)
    status = http.get(args["url"]).status_code
    with durable.transaction("tally") as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS tally (n INTEGER)")
        tx.execute("INSERT INTO tally (n) VALUES (?)", [total])
    return [total, status]
