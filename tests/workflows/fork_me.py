"""A small workflow to fork at every event, and one to retry after a failed step."""

from __future__ import annotations

import random
import uuid

import durable


@durable.step
def add(total: int, i: int) -> int:
    return total + i


@durable.workflow
def main(n: int) -> dict[str, object]:
    total = 0
    for i in range(n):
        total = add(total, i)
    durable.set_status("total", total)
    draw = random.randrange(1000)  # derived from the task's seed and position
    durable.sleep(0.01)
    print("done", total)
    return {"total": total, "draw": draw, "id": str(uuid.uuid4())}


@durable.step
def fetch_ok(url: str) -> str:
    response = durable.http.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return response.text


@durable.workflow
def fetch(url: str) -> dict[str, object]:
    before = add(1, 2)
    return {"before": before, "body": fetch_ok(url)}
