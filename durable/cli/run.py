"""`durable run`: build, launch and run one workflow to its end, here and now."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import click

from durable.cli._common import (
    EXIT_FAILED,
    configure_logging,
    db_option,
    guest_db_option,
    handle_errors,
    input_options,
    max_events_option,
    max_output_option,
    max_payload_option,
    memory_limit_option,
    progress,
    read_input,
    run_async,
    suspend_after_option,
)
from durable.cli._hints import OthersReporter, check_before_build, timeout_option
from durable.cli._output import describe_end, write_chunk
from durable.client import Client
from durable.core.model import TaskState
from durable.host import HostConfig, Runtime
from durable.loader import WorkflowBinary, load_workflow
from durable.storage import open_store, parse_url
from durable.worker import Worker, WorkerConfig


@click.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@input_options
@click.option("--name", help="A label for the task [default: the file's name].")
@click.option("--entry", default="", help="The entry function [default: the workflow's].")
@timeout_option
@db_option
@guest_db_option
@suspend_after_option
@memory_limit_option
@max_events_option
@max_payload_option
@max_output_option
@handle_errors
def run(
    workflow: Path,
    input_: str | None,
    input_file: str | None,
    name: str | None,
    entry: str,
    timeout: float | None,
    db: str | None,
    guest_db: str | None,
    suspend_after: float,
    memory_limit: int,
    max_events: int,
    max_payload: int,
    max_output: int,
) -> None:
    """Run WORKFLOW (.py or .wasm) to its end with an embedded worker.

    Prints the task id on stderr, streams the task's output, then prints its result
    (when not null) on stdout. Exits 0 when the workflow completes, 1 when it fails.
    If this process dies, `durable worker` resumes the task where it was.
    """
    configure_logging()
    value = read_input(input_, input_file, max_bytes=max_payload)
    check_before_build(workflow, entry, name)  # before a build that may take a minute
    runtime = Runtime(
        HostConfig(
            suspend_after=suspend_after,
            memory_limit=memory_limit,
            max_events=max_events,
            max_payload_bytes=max_payload,
            max_output_bytes=max_output,
        )
    )
    try:
        with progress(f"preparing {workflow.name}"):
            binary = load_workflow(workflow, runtime.cache)
        code = run_async(
            _run, binary, value, name or binary.name, entry, timeout, db, guest_db, runtime
        )
    finally:
        runtime.close()
    sys.exit(code)


async def _run(
    binary: WorkflowBinary,
    value: Any,
    name: str,
    entry: str,
    timeout: float | None,  # noqa: ASYNC109 - the task's own timeout, stored
    db: str | None,
    guest_db: str | None,
    runtime: Runtime,
) -> int:
    # As for every command but `migrate` and `worker --migrate`: a shared Postgres
    # database is upgraded only on purpose (a SQLite file is migrated on first use).
    store = await open_store(db, migrate=parse_url(db).scheme != "postgres", guest_url=guest_db)
    try:
        client = Client(store, max_input_bytes=runtime.config.max_payload_bytes)
        workflow_hash = await client.register(binary.wasm, name=binary.name, compile=False)
        task = await client.launch(
            workflow_hash, name=name, input=value, entry=entry, timeout=timeout
        )
        click.echo(f"task {task.id}", err=True)
        worker = Worker(store, WorkerConfig(), runtime=runtime, on_claim=OthersReporter(task.id))
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            async for chunk in client.follow(task.id):
                write_chunk(chunk)
            worker.stop()
        final = await client.get(task.id)
    finally:
        await store.close()
    if final.state is TaskState.COMPLETE:
        if final.result is not None and final.result != "null":
            click.echo(final.result)
        return 0
    click.echo(describe_end(final), err=True)
    return EXIT_FAILED
