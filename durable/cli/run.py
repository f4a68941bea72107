"""`durable run`: build, launch and run one workflow to its end, here and now."""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path

import click

from durable.cli._common import (
    EXIT_FAILED,
    configure_logging,
    db_option,
    guest_db_option,
    handle_errors,
    host_config_from_options,
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
    # Start-up makes some 40,000 objects (wasmtime's bindings, asyncio...) that live
    # until exit: collecting garbage among them took a tenth of a cached run. So no
    # collection until the run starts, and then none among them (`gc.freeze`).
    gc.disable()
    try:
        configure_logging()
        value = read_input(input_, input_file, max_bytes=max_payload)
        check_before_build(workflow, entry, name)  # before a build that may take a minute
        # Here, not at the top: `durable --help` does not load the library (or wasmtime).
        from durable.app import Runner
        from durable.cli._output import describe_end, write_chunk
        from durable.core.model import Task, TaskState

        config = host_config_from_options(
            suspend_after=suspend_after,
            memory_limit=memory_limit,
            max_events=max_events,
            max_payload=max_payload,
            max_output=max_output,
        )
        others = OthersReporter()

        def launched(task: Task) -> None:
            click.echo(f"task {task.id}", err=True)
            others.launched(task)

        with Runner(config) as runner:
            with progress(f"preparing {workflow.name}"):
                binary = runner.load(workflow)
            gc.freeze()  # what was made so far lives until exit
            gc.enable()  # a run may take days: its garbage is collected as usual
            final = run_async(
                functools.partial(
                    runner.run,
                    binary,
                    input=value,
                    name=name,
                    entry=entry,
                    timeout=timeout,
                    db=db,
                    guest_db=guest_db,
                    on_launch=launched,
                    on_output=write_chunk,
                    on_claim=others,
                )
            )
        if final.state is TaskState.COMPLETE:
            if final.result is not None and final.result != "null":
                click.echo(final.result)
            sys.exit(0)
        click.echo(describe_end(final), err=True)
        sys.exit(EXIT_FAILED)
    finally:
        gc.enable()  # (if the run never started: a refusal, an interrupted build)
