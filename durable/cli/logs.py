"""`durable logs`: print what a task has written."""

from __future__ import annotations

import click

from durable.cli._common import db_option, handle_errors, open_client, run_async
from durable.cli._output import write_chunk


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the task ends.")
@db_option
@handle_errors
def logs(task_id: int, follow: bool, db: str | None) -> None:
    """Print TASK's whole log (its stdout on stdout, its stderr on stderr)."""

    async def main() -> None:
        async with await open_client(db) as client:
            # Page by page either way: a log may be larger than this process should hold.
            async for chunk in client.follow(task_id, until_end=follow):
                write_chunk(chunk)

    run_async(main)
