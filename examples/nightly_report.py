"""A nightly report: a schedule launches one task per tick, and the task reads its tick.

    durable schedule add nightly examples/nightly_report.py \
        --cron "0 2 * * *" --tz Europe/Paris --input '{"team": "ops"}'
    durable worker

Every worker fires due ticks; each tick launches exactly one task, however many workers
run and however they die. The report covers the day before its tick, not the day it
happens to run: a tick fired late (every worker was down) still reports on its own day.
"""

from __future__ import annotations

from datetime import timedelta

import durable


@durable.step
def count_orders(team: str, day: str) -> int:
    # A real report would query a database or an API here; a step's result is
    # recorded, so a replay after a crash does not query again.
    return sum(ord(c) for c in team + day) % 100


@durable.workflow
def main(params: dict[str, str]) -> dict[str, object]:
    info = durable.info()
    tick = info.tick or info.created_at  # launched by hand: report on the launch day
    day = (tick - timedelta(days=1)).date().isoformat()
    orders = count_orders(params["team"], day)
    print(f"report for {params['team']} on {day}: {orders} orders")
    return {"team": params["team"], "day": day, "orders": orders, "tick": tick.isoformat()}
