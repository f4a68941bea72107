"""`durable queue`, `durable pause` and `durable resume`: flow control."""

from __future__ import annotations

from typing import Any

import click

from durable.cli._common import Group, db_option, handle_errors, open_client, run_async
from durable.cli._format import fields, table
from durable.core.queue import KEEP, Queue, describe, parse_rate


@click.group(cls=Group)
def queue() -> None:
    """List, show or set queues: concurrency, per-key and rate limits, priority, pause.

    A task launched with `--queue NAME` starts only within its queue's limits, which
    hold across all workers.
    """


def _row(q: Queue) -> list[str]:
    s = q.settings
    return [
        s.name, ", ".join(describe(s)) or "-", str(s.priority),
        "paused" if s.paused else "active", str(q.ready), str(q.active), str(q.suspended),
    ]  # fmt: skip


@queue.command("list")
@db_option
@handle_errors
def list_queues(db: str | None) -> None:
    """List queues: limits, default priority, state and task counts."""

    async def main() -> None:
        async with await open_client(db) as client:
            found = await client.queues()
        headers = ["NAME", "LIMITS", "PRIORITY", "STATE", "READY", "ACTIVE", "SUSPENDED"]
        click.echo(table(headers, [_row(q) for q in found]))

    run_async(main)


@queue.command()
@click.argument("name")
@db_option
@handle_errors
def show(name: str, db: str | None) -> None:
    """Show queue NAME: its limits and how many tasks wait, run and sleep in it."""

    async def main() -> None:
        async with await open_client(db) as client:
            q = await client.get_queue(name)
        s = q.settings
        click.echo(
            fields(
                [
                    ("name", s.name),
                    ("concurrency", "-" if s.concurrency is None else str(s.concurrency)),
                    ("per key", "-" if s.key_concurrency is None else str(s.key_concurrency)),
                    ("rate", "-" if s.rate_limit is None else f"{s.rate_limit}/{s.rate_period:g}s"),
                    ("priority", str(s.priority)),
                    ("state", "paused" if s.paused else "active"),
                    ("ready", str(q.ready)),
                    ("active", str(q.active)),
                    ("suspended", str(q.suspended)),
                ]
            )
        )

    run_async(main)


class _Limit(click.ParamType[int | None]):
    """A positive whole number, or "none" (no limit)."""

    name = "N|none"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip()
        if text.lower() == "none":
            return None
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{text!r} is not a whole number of at least 1, nor 'none'", param, ctx)


def _keep(value: object, given: bool) -> Any:
    return value if given else KEEP


@queue.command("set")
@click.argument("name")
@click.option("--concurrency", type=_Limit(), help="Most active tasks at once; none: no limit.")
@click.option(
    "--key-concurrency", type=_Limit(), help="Most active tasks per queue key; none: no limit."
)
@click.option(
    "--rate",
    metavar="N/PERIOD|none",
    help="Most starts per period, e.g. 10/1s, 100/1m; none: no limit.",
)
@click.option("--priority", type=int, help="Priority of tasks launched without one.")
@click.option("--pause/--resume", default=None, help="Start nothing more from it, or go on.")
@db_option
@handle_errors
def set_queue(
    name: str,
    concurrency: int | None,
    key_concurrency: int | None,
    rate: str | None,
    priority: int | None,
    pause: bool | None,
    db: str | None,
) -> None:
    """Create queue NAME or change the settings given; the others keep their values.

    A new queue starts with no limits, priority 0, not paused. `none` clears a limit
    (`--concurrency none`, `--key-concurrency none`, `--rate none`). The new settings
    apply at once, to the tasks already waiting too.
    """
    ctx = click.get_current_context()

    def given(option: str) -> bool:
        return ctx.get_parameter_source(option) is not click.core.ParameterSource.DEFAULT

    parsed: tuple[int, float] | None = None
    if rate is not None and rate.strip().lower() != "none":
        parsed = parse_rate(rate)

    async def main() -> None:
        async with await open_client(db, create=True) as client:
            q = await client.set_queue(
                name,
                concurrency=_keep(concurrency, given("concurrency")),
                key_concurrency=_keep(key_concurrency, given("key_concurrency")),
                rate=_keep(parsed, rate is not None),
                priority=_keep(priority, priority is not None),
                paused=_keep(pause, pause is not None),
            )
        limits = ", ".join(describe(q.settings)) or "no limits"
        paused = ", paused" if q.settings.paused else ""
        click.echo(f"queue {name}: {limits}, priority {q.settings.priority}{paused}", err=True)

    run_async(main)


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@db_option
@handle_errors
def pause(task_id: int, db: str | None) -> None:
    """Pause TASK: it starts no more, and a running one is parked until `durable resume`.

    A sleeping task is handed back at once; a busy one within a few seconds. It is not
    kept in memory meanwhile, and its timers keep their deadlines.
    """

    async def main() -> None:
        async with await open_client(db) as client:
            task = await client.pause(task_id)
        click.echo(f"task {task_id}: paused ({task.state.value})", err=True)

    run_async(main)


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@db_option
@handle_errors
def resume(task_id: int, db: str | None) -> None:
    """Resume TASK after `durable pause`; a timer that passed meanwhile fires now."""

    async def main() -> None:
        async with await open_client(db) as client:
            task = await client.resume(task_id)
        click.echo(f"task {task_id}: resumed ({task.state.value})", err=True)

    run_async(main)
