"""`durable list` and `durable show`: look at tasks and their histories."""

from __future__ import annotations

import json

import click

from durable.cli import _format as fmt
from durable.cli._common import db_option, handle_errors, open_client, run_async
from durable.cli._lineage import Lineage, read_lineage
from durable.cli._lineage import pairs as lineage_pairs
from durable.cli._lineage import to_json as lineage_json
from durable.core.model import RunInfo, Task, TaskState
from durable.core.status import StatusValue
from durable.history import TaskHistory, task_to_dict

_STATES = [s.value for s in TaskState]
#: How many children `durable show` names before it only counts them.
_CHILDREN_SHOWN = 10


@click.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(_STATES),
    help="Only tasks in this state. Repeat for several.",
)
@click.option("--name", metavar="GLOB", help="Only tasks whose name matches, e.g. 'order-*'.")
@click.option("--parent", type=int, metavar="TASK", help="Only the children of TASK.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Show at most N tasks, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of task objects instead.")
@db_option
@handle_errors
def list_tasks(
    states: tuple[str, ...],
    name: str | None,
    parent: int | None,
    limit: int,
    as_json: bool,
    db: str | None,
) -> None:
    """List tasks, newest first: id, name, state, times and duration.

    Times are local, with the zone. The duration runs from launch to end; a task that
    has not ended shows `-`.
    """

    async def main() -> list[Task]:
        async with await open_client(db) as client:
            return await client.list(states=states, name=name, parent_id=parent, limit=limit)

    tasks = run_async(main)
    if as_json:
        click.echo(json.dumps([task_to_dict(t) for t in tasks], indent=2))
        return
    if not tasks:
        click.echo("no tasks", err=True)
        return
    rows = [
        [
            str(t.id),
            t.name,
            fmt.state(t.state),
            fmt.local_time(t.created_at),
            fmt.local_time(t.updated_at),
            fmt.task_duration(t),
        ]
        for t in tasks
    ]
    headers = ["ID", "NAME", "STATE", "CREATED", "UPDATED", "DURATION"]
    if any(t.queue is not None or t.priority for t in tasks):  # else the table as before
        headers.append("QUEUE")
        for row, t in zip(rows, tasks, strict=True):
            row.append(_placement(t) if t.queue is not None or t.priority else "-")
    click.echo(fmt.table(headers, rows))


@click.command()
@click.argument("task_id", metavar="TASK", type=int)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Export the task and its full history as JSON (the format `durable replay "
    "--history` reads), with its status values, if it has any.",
)
@click.option(
    "--run",
    type=click.IntRange(min=1),
    metavar="N",
    help="Show the history of run N (a task that used durable.continue_as_new) "
    "[default: the current run].",
)
@db_option
@handle_errors
def show(task_id: int, as_json: bool, run: int | None, db: str | None) -> None:
    """Show TASK: its state, times, input, result or error, its status values, and its
    event history.

    A task that continued as new (durable.continue_as_new) has runs: they are listed,
    and the history shown is its current run's, or run N's with --run. Each event is
    shown with its index, its label (the operation it records), a short form of its
    payload and the local time it was committed.
    """

    async def main() -> tuple[TaskHistory, list[Task], list[StatusValue], Lineage, list[RunInfo]]:
        async with await open_client(db) as client:
            history = await (
                client.history(task_id) if run is None else client.run_history(task_id, run)
            )
            values = await client.status_values(task_id)
            lineage = await read_lineage(client, task_id)
            runs = await client.runs(task_id)
            if as_json:
                return history, [], values, lineage, runs
            if run is not None:  # the summary shows the task as it is now
                history = TaskHistory(task=await client.get(task_id), events=history.events)
            children = await client.list(parent_id=task_id, limit=_CHILDREN_SHOWN + 1)
            return history, children, values, lineage, runs

    history, children, values, lineage, runs = run_async(main)
    if as_json:
        document = history.to_dict()
        if values:  # only then: a task without status exports exactly as before
            document["status"] = {v.key: v.to_json() for v in values}
        document.update(lineage_json(lineage))
        if len(runs) > 1:  # likewise: a task that never continued as new
            document["runs"] = [_run_json(r) for r in runs]
        click.echo(json.dumps(document, indent=2))
        return
    shown = run or history.task.run
    click.echo(_summary(history.task, children, lineage_pairs(lineage), shown, len(runs)))
    click.echo()
    if len(runs) > 1:
        click.echo("runs:")
        rows = [
            [
                str(r.run),
                str(r.events),
                _run_end(r, history.task),
                fmt.short(r.input, 60),
            ]
            for r in runs
        ]
        click.echo(fmt.table(["RUN", "EVENTS", "ENDED", "INPUT"], rows))
        click.echo()
    if values:
        click.echo("status:")
        rows = [[v.key, fmt.short(v.value, 60), fmt.local_time(v.updated_at)] for v in values]
        click.echo(fmt.table(["KEY", "VALUE", "UPDATED"], rows))
        click.echo()
    events = history.events
    if not events:
        click.echo("no events recorded")
        return
    count = f"{len(events)} event" + ("s" if len(events) != 1 else "")
    click.echo(f"{count} (times in {fmt.zone_name(history.task.created_at)}):")
    rows = [
        [
            str(e.index),
            e.label,
            fmt.short(e.payload),
            fmt.clock_time(e.created_at, day_of=history.task.created_at),
        ]
        for e in events
    ]
    click.echo(fmt.table(["INDEX", "LABEL", "PAYLOAD", "TIME"], rows))


def _run_end(run: RunInfo, task: Task) -> str:
    """When the run ended: it continued as new, or the task ended in it."""
    if run.ended_at is not None:
        return fmt.local_time(run.ended_at)
    return fmt.local_time(task.updated_at) if task.state.is_terminal else "(current)"


def _run_json(run: RunInfo) -> dict[str, object]:
    ended = None if run.ended_at is None else run.ended_at.isoformat()
    return {"run": run.run, "events": run.events, "ended_at": ended, "input": run.input}


def _summary(
    task: Task,
    children: list[Task],
    lineage: list[tuple[str, str]],
    run: int = 1,
    runs: int = 1,
) -> str:
    pairs = [
        ("state", fmt.state(task.state) + (" (cancel requested)" if task.cancel_requested else "")),
        ("workflow", f"{task.workflow_hash[:12]}, entry {task.entry or '(default)'}"),
        ("created", fmt.local_time(task.created_at)),
        ("updated", fmt.local_time(task.updated_at)),
    ]
    if task.state.is_terminal:
        pairs.append(("duration", fmt.task_duration(task)))
    if task.wakeup_at is not None and task.state is TaskState.SUSPENDED:
        pairs.append(("wakes at", fmt.local_time(task.wakeup_at)))
    if task.deadline_at is not None:
        pairs.append(("deadline", fmt.local_time(task.deadline_at)))
    pairs.append(("attempts", str(task.attempts)))
    if runs > 1:  # durable.continue_as_new: which run the history below is of
        pairs.append(("run", f"run {run} of {runs}"))
    if task.queue is not None or task.priority:
        pairs.append(("queue", _placement(task)))
    if task.started_at is not None:
        pairs.append(("started", fmt.local_time(task.started_at)))
    if task.deaths:  # see durable.storage.quarantine
        pairs.append(("deaths", f"{task.deaths} worker death(s) in a row"))
    pairs.append(("input", fmt.short(task.input, 200)))
    if task.state is TaskState.COMPLETE:
        pairs.append(("result", fmt.short(task.result, 200)))
    if task.error is not None:
        # Only a workflow that raised left a traceback in the log; a task cancelled
        # or timed out while it waited, or quarantined, has none to point to.
        hint = f"  (`durable logs {task.id}` shows the traceback)" if _traceback(task) else ""
        pairs.append(("error", fmt.style(fmt.describe_error(task.error), fg="red") + hint))
    if task.parent_id is not None:
        pairs.append(("parent", str(task.parent_id)))
    if children:
        shown = ", ".join(str(i) for i in sorted(c.id for c in children[:_CHILDREN_SHOWN]))
        more = " and more (durable list --parent)" if len(children) > _CHILDREN_SHOWN else ""
        pairs.append(("children", shown + more))
    if task.idempotency_key is not None:
        pairs.append(("key", task.idempotency_key))
    pairs.extend(lineage)  # forked from, forks, binary moves
    header = fmt.style(f"task {task.id}", bold=True) + f"  {task.name}"
    return header + "\n" + fmt.fields(pairs)


def _placement(task: Task) -> str:
    """Where a task waits: "emails, key acme, priority 5" (the parts it has)."""
    parts = [] if task.queue is None else [task.queue]
    if task.queue_key is not None:
        parts.append(f"key {task.queue_key}")
    if task.priority:
        parts.append(f"priority {task.priority}")
    return ", ".join(parts)


def _traceback(task: Task) -> str:
    """The traceback the task's error carries ("" when none, or unreadable)."""
    try:
        error = json.loads(task.error or "{}")
    except ValueError:
        return ""
    return str(error.get("traceback") or "") if isinstance(error, dict) else ""
