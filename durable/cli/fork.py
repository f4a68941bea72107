"""`durable fork` and `durable retry`: a new task from a prefix of another's history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from durable.cli._common import db_option, fail, handle_errors, open_client, parse_json, run_async


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.argument("workflow", required=False, type=click.Path(path_type=Path))
@click.option("--at", "at", type=int, required=True, help="How many of TASK's events to keep.")
@click.option(
    "--wasm",
    "wasm",
    type=click.Path(path_type=Path),
    default=None,
    help="Run the new task on this binary (.wasm or .py) instead of TASK's own.",
)
@click.option("--input", "input_", metavar="JSON", default=None, help="A new input (JSON).")
@click.option(
    "--run",
    type=click.IntRange(min=1),
    metavar="N",
    help="Fork from run N of TASK (durable.continue_as_new) [default: its current run].",
)
@db_option
@handle_errors
def fork(
    task_id: int,
    workflow: Path | None,
    at: int,
    wasm: Path | None,
    input_: str | None,
    run: int | None,
    db: str | None,
) -> None:
    """Start a new task from the first K events of TASK's history (--at K).

    The new task runs from there on TASK's code, or on WORKFLOW (.py or .wasm; or
    --wasm), with TASK's input or --input. TASK is left untouched. Prints the new
    task's id on stdout. A copied SQL transaction event is replayed from its
    recording: its changes to the database are not made again.
    """
    if workflow is not None and wasm is not None:
        fail("give the new code as WORKFLOW or as --wasm, not both")
    code = workflow or wasm
    value: Any = None if input_ is None else parse_json(input_, "--input")

    async def main() -> None:
        async with await open_client(db) as client:
            new_hash = None if code is None else await client.register_file(code)
            if input_ is None:
                task = await client.fork(task_id, at=at, workflow_hash=new_hash, run=run)
            else:
                task = await client.fork(
                    task_id, at=at, workflow_hash=new_hash, input=value, run=run
                )
            click.echo(task.id)
            where = f"at event {at}" if run is None else f"at event {at} of run {run}"
            click.echo(f"task {task.id}: forked from task {task_id} {where}", err=True)

    run_async(main)


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@db_option
@handle_errors
def retry(task_id: int, db: str | None) -> None:
    """Re-run failed TASK from its last clean event, on its own code, as a new task.

    The last clean event is the one before the failure: before the event where the
    code diverged, or before the last step that failed; otherwise the whole history is
    kept. TASK is left untouched. Prints the new task's id on stdout.
    """

    async def main() -> None:
        async with await open_client(db) as client:
            task = await client.retry(task_id)
            origin = await client.store.task_origin(task.id)  # type: ignore[attr-defined]
            at = "?" if origin is None else origin.at
            click.echo(task.id)
            click.echo(f"task {task.id}: retrying task {task_id} from event {at}", err=True)

    run_async(main)
