"""`durable notify` and `durable cancel`: talk to a running or waiting task."""

from __future__ import annotations

import click

from durable.cli._common import db_option, handle_errors, open_client, parse_json, run_async


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.argument("event")
@click.argument("data", metavar="[JSON]", required=False, default="null")
@db_option
@handle_errors
def notify(task_id: int, event: str, data: str, db: str | None) -> None:
    """Send TASK a notification EVENT with an optional JSON payload.

    The workflow receives it from `durable.wait()`, exactly once; a notification sent
    before the workflow waits is kept for it.
    """
    value = parse_json(data, "the notification data")

    async def main() -> None:
        async with await open_client(db) as client:
            note = await client.notify(task_id, event, value)
            click.echo(f"notified task {task_id}: {note.event} (#{note.seq})", err=True)

    run_async(main)


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@db_option
@handle_errors
def cancel(task_id: int, db: str | None) -> None:
    """Cancel TASK and its unfinished children.

    A waiting task is cancelled at once, without waking; a running one stops promptly,
    after its workflow has had the chance to run cleanup steps.
    """

    async def main() -> None:
        async with await open_client(db) as client:
            task = await client.cancel(task_id)
            how = "cancelling" if task.state.value == "active" else task.state.value
            click.echo(f"task {task_id}: {how}", err=True)

    run_async(main)
