"""`durable launch`: enqueue one task for the workers to run, and print its id.

Unlike `durable run`, nothing runs here: the workflow is built (or read) and checked
against the workflow world, stored, and a `ready` task is created for whichever worker
claims it first. With `--tail` the command then follows the task's log until it ends.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from durable.cli._common import (
    EXIT_FAILED,
    configure_logging,
    db_option,
    handle_errors,
    input_options,
    max_payload_option,
    open_client,
    progress,
    read_input,
    run_async,
)
from durable.cli._hints import check_before_build, timeout_option
from durable.cli._output import describe_end, write_chunk
from durable.core.model import TaskState

if TYPE_CHECKING:
    from durable.loader import WorkflowBinary


@click.command()
@click.argument("name")
@click.argument("workflow", type=click.Path(path_type=Path))
@input_options
@click.option(
    "--entry", default="", metavar="NAME", help="The entry function [default: the workflow's]."
)
@timeout_option
@click.option(
    "--queue", metavar="NAME", help="Wait in queue NAME for a slot (see `durable queue`)."
)
@click.option("--queue-key", metavar="KEY", help="The task's key in its queue (per-key limit).")
@click.option(
    "--priority", type=int, help="Higher starts first in its queue [default: the queue's]."
)
@click.option(
    "--debounce",
    nargs=2,
    metavar="KEY SECONDS",
    type=(str, float),
    help="Wait SECONDS before starting; a launch with the same KEY meanwhile replaces "
    "this task's input and restarts the wait.",
)
@click.option(
    "--tail",
    is_flag=True,
    help="Follow the task's output until it ends; exit 0 if it completes, 1 if it fails "
    "or is cancelled.",
)
@db_option
@max_payload_option
@handle_errors
def launch(
    name: str,
    workflow: Path,
    input_: str | None,
    input_file: str | None,
    entry: str,
    timeout: float | None,
    queue: str | None,
    queue_key: str | None,
    priority: int | None,
    debounce: tuple[str, float] | None,
    tail: bool,
    db: str | None,
    max_payload: int,
) -> None:
    """Enqueue a task NAME running WORKFLOW (.py or .wasm) and print its id on stdout.

    The task runs on any `durable worker` attached to the same database. Bad input (a
    missing or broken workflow, invalid JSON, an input over the payload limit, an
    unusable database) is one line on stderr and exit status 2, with nothing written.
    """
    configure_logging()
    value = read_input(input_, input_file, max_bytes=max_payload)
    from durable.loader import prepare_workflow  # here: `durable --help` loads less
    from durable.storage import parse_url

    check_before_build(workflow, entry, name)  # before a build that may take a minute
    if queue is not None:
        from durable.core.queue import check_name

        check_name(queue)
    parse_url(db)  # a malformed URL fails now, before a build that may take seconds
    with progress(f"preparing {workflow.name}"):
        # Built, checked and compiled for this machine's workers (seconds, the first time).
        binary = prepare_workflow(workflow)
    flow = Flow(queue=queue, queue_key=queue_key, priority=priority, debounce=debounce)
    sys.exit(run_async(_launch, binary, value, name, entry, timeout, tail, db, max_payload, flow))


@dataclass(frozen=True)
class Flow:
    """`--queue`, `--queue-key`, `--priority` and `--debounce`."""

    queue: str | None = None
    queue_key: str | None = None
    priority: int | None = None
    debounce: tuple[str, float] | None = None


async def _launch(
    binary: WorkflowBinary,
    value: Any,
    name: str,
    entry: str,
    timeout: float | None,  # noqa: ASYNC109 - the task's own timeout, stored
    tail: bool,
    db: str | None,
    max_payload: int,
    flow: Flow = Flow(),
) -> int:
    async with await open_client(db, max_input_bytes=max_payload, create=True) as client:
        workflow_hash = await client.register(binary.wasm, name=binary.name, compile=False)
        key, window = flow.debounce if flow.debounce is not None else (None, 0.0)
        task = await client.launch(
            workflow_hash, name=name, input=value, entry=entry, timeout=timeout,
            queue=flow.queue, queue_key=flow.queue_key, priority=flow.priority,
            debounce_key=key, debounce=window,
        )  # fmt: skip
        click.echo(task.id)
        if not tail:
            return 0
        sys.stdout.flush()
        async for chunk in client.follow(task.id):
            write_chunk(chunk)
        final = await client.get(task.id)
    if final.state is TaskState.COMPLETE:
        return 0
    click.echo(describe_end(final), err=True)
    return EXIT_FAILED
