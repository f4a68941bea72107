"""`durable replay`: check that a recorded history replays against the same or new code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from durable.cli import _format as fmt
from durable.cli._common import (
    EXIT_FAILED,
    db_option,
    fail,
    handle_errors,
    open_client,
    progress,
    run_async,
)

if TYPE_CHECKING:
    from durable.replayer import ReplayReport


@click.command()
@click.argument("args", nargs=-1, metavar="[TASK] [WORKFLOW]")
@click.option(
    "--wasm",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The component to replay against (like WORKFLOW, for a .wasm file).",
)
@click.option(
    "--history",
    "history_file",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Replay this exported history (`durable show --json`) instead of a task in the "
    "database; WORKFLOW is then required.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_option
@handle_errors
def replay(
    args: tuple[str, ...],
    wasm: Path | None,
    history_file: Path | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Replay TASK's recorded history against its own code, or against WORKFLOW.

    WORKFLOW is a .py file (built first) or a .wasm component. Nothing is performed
    and nothing is written: every operation is answered from the history. Reports
    either that the history replays cleanly to its last event (and what the workflow
    does next), or the first event where the code departs from it: its index, the
    operation recorded there and the one found. Exits 0 when clean, 1 on divergence.

    Run it against new code before upgrading the workers that run old tasks, and with
    --history to keep golden histories as regression tests.
    """
    task_id, workflow = _parse(args, wasm, history_file)
    from durable.history import TaskHistory  # here: `durable --help` loads no wasmtime
    from durable.replayer import Replayer

    with Replayer() as replayer:
        new_wasm = None
        if workflow is not None:
            verb = "building" if workflow.suffix == ".py" else "loading"
            with progress(f"{verb} {workflow.name}"):
                new_wasm = replayer.load(workflow).wasm
        if history_file is not None:
            history = TaskHistory.load(history_file)
            with progress(f"replaying task {history.task.id}"):
                report = replayer.replay(history, new_wasm)
        else:
            assert task_id is not None

            async def main() -> ReplayReport:
                async with await open_client(db) as client:
                    return await client.replay(task_id, wasm=new_wasm, replayer=replayer)

            with progress(f"replaying task {task_id}"):
                report = run_async(main)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(_describe(report))
    sys.exit(0 if report.clean else EXIT_FAILED)


def _parse(
    args: tuple[str, ...], wasm: Path | None, history_file: Path | None
) -> tuple[int | None, Path | None]:
    """`(task id, workflow path)` from the arguments, or a one-line usage error."""
    if history_file is not None:
        if len(args) > 1:
            fail("with --history, give only the WORKFLOW to replay against")
        workflow = Path(args[0]) if args else None
        if workflow is not None and wasm is not None:
            fail("give either WORKFLOW or --wasm, not both")
        if workflow is None and wasm is None:
            fail("--history needs the WORKFLOW (.py or .wasm) to replay against")
        return None, workflow or wasm
    if not args:
        fail("which task? usage: durable replay TASK [WORKFLOW | --wasm FILE]")
    if len(args) > 2:
        fail(f"unexpected argument {args[2]!r}")
    try:
        task_id = int(args[0])
    except ValueError:
        fail(f"TASK must be a task id (a number), not {args[0]!r}")
    workflow = Path(args[1]) if len(args) == 2 else None
    if workflow is not None and wasm is not None:
        fail("give either WORKFLOW or --wasm, not both")
    return task_id, workflow or wasm


def _describe(report: ReplayReport) -> str:
    """What a person reads: clean or not, and what happens at the end."""
    task = f"task {report.task_id}"
    if report.divergence is not None:
        d = report.divergence
        return "\n".join(
            [
                f"{task} {fmt.style('diverges', fg='red', bold=True)} at event {d.index}",
                f"  recorded  {d.expected}",
                f"  found     {d.found}",
            ]
        )
    if report.events:
        plural = "s" if report.events != 1 else ""
        first = (
            f"{task} {fmt.style('replays cleanly', fg='green')} to event {report.last_index} "
            f"({report.events} event{plural})"
        )
    else:
        first = f"{task} {fmt.style('replays cleanly', fg='green')} (no events recorded)"
    return first + "\n" + _then(report)


def _then(report: ReplayReport) -> str:
    from durable.replayer import ReplayEnd

    if report.end is ReplayEnd.COMPLETE:
        line = f"then it completes: {fmt.short(report.result, 80)}"
    elif report.end is ReplayEnd.FAILED:
        line = f"then it fails: {fmt.describe_error(report.error)}"
    elif report.end is ReplayEnd.CANCELLED:
        line = "then it ends cancelled"
    elif report.next_operation is not None:
        line = f"then it goes on past the history, to {report.next_operation!r}"
    else:
        line = "then it goes on past the history"
    if report.same_end is True:
        line += " (as recorded)"
    elif report.same_end is False:
        line += " " + fmt.style("(the task had ended otherwise)", fg="yellow")
    return line
