"""`durable debug`: replay TASK's history in CPython, where pdb and breakpoints work."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from durable.cli._common import EXIT_FAILED, db_option, handle_errors, open_client, run_async


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.argument("workflow", type=click.Path(path_type=Path))
@db_option
@handle_errors
def debug(task_id: int, workflow: Path, db: str | None) -> None:
    """Replay TASK's history with WORKFLOW's Python source in this interpreter.

    Every durable call is answered from the history, so `breakpoint()`, pdb and an
    IDE's debugger stop in the workflow's own code with the values the task saw. Ends
    at the end of the history or at the first divergence (exit 1), as `durable replay`.
    Child tasks, HTTP requests and SQL transactions are answered from the history too.
    """
    from durable.history import TaskHistory

    async def load() -> TaskHistory:
        async with await open_client(db) as client:
            return await client.history(task_id)

    history = run_async(load)
    from durable.debugger import debug_history

    end = debug_history(history, workflow)
    sys.stdout.flush()
    click.echo(end.line, err=True)
    if not end.clean:
        sys.exit(EXIT_FAILED)
