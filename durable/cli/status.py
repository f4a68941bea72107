"""`durable status`: the status values a task's workflow publishes while it runs."""

from __future__ import annotations

import json

import click

from durable.cli import _format as fmt
from durable.cli._common import EXIT_FAILED, db_option, fail, handle_errors, open_client, run_async
from durable.core.status import StatusValue


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.argument("key", required=False)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing values as they are set, until the task ends.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: an object of every value (or KEY's value alone); with --follow, "
    'one {"key", "value", "position", "updated_at"} object per line.',
)
@db_option
@handle_errors
def status(task_id: int, key: str | None, follow: bool, as_json: bool, db: str | None) -> None:
    """Print TASK's status values: the latest value of each key its workflow set with
    `durable.set_status` (only KEY's, if given).

    Values show while the task runs, as soon as the call that set them is committed.
    """
    if follow:
        run_async(_follow, task_id, key, as_json, db)
        return

    async def main() -> list[StatusValue]:
        async with await open_client(db) as client:
            return await client.status_values(task_id)

    values = run_async(main)
    if key is not None:
        found = [v for v in values if v.key == key]
        if not found:
            fail(f"task {task_id} has no status value {key!r}", EXIT_FAILED)
        click.echo(_compact(found[0].value))
        return
    if as_json:
        click.echo(json.dumps({v.key: json.loads(v.value) for v in values}))
        return
    if not values:
        click.echo(f"task {task_id} has no status values", err=True)
        return
    rows = [[v.key, fmt.short(v.value, 60), fmt.local_time(v.updated_at)] for v in values]
    click.echo(fmt.table(["KEY", "VALUE", "UPDATED"], rows))


async def _follow(task_id: int, key: str | None, as_json: bool, db: str | None) -> None:
    async with await open_client(db) as client:
        async for value in client.follow_status(task_id, key=key):
            if as_json:
                click.echo(json.dumps({"key": value.key, **value.to_json()}))
            elif key is not None:
                click.echo(_compact(value.value))
            else:
                click.echo(f"{value.key}  {_compact(value.value)}")


def _compact(text: str) -> str:
    """JSON text on one line, as the workflow's value was stored."""
    return json.dumps(json.loads(text), ensure_ascii=False)
