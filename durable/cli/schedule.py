"""`durable schedule`: cron and periodic schedules whose ticks launch tasks."""

from __future__ import annotations

from pathlib import Path

import click

from durable.cli._common import (
    Group,
    configure_logging,
    db_option,
    handle_errors,
    open_client,
    parse_json,
    progress,
    run_async,
)
from durable.cli._format import fields, local_time, table
from durable.core.schedule import Cadence, CatchUp, Overlap, Schedule, check_name, parse_every


@click.group(cls=Group)
def schedule() -> None:
    """Add, list, show, pause, resume, delete or trigger schedules.

    Each tick of a schedule launches exactly one task, run by any `durable worker` on
    the database, however many run and however they die.
    """


def _describe(cadence: Cadence) -> str:
    if cadence.cron is not None:
        return f"cron {cadence.cron!r} ({cadence.tz})"
    return f"every {cadence.every}s"


@schedule.command()
@click.argument("name")
@click.argument("workflow")
@click.option("--cron", metavar="EXPR", help='A cron expression, e.g. "*/5 * * * *".')
@click.option("--tz", default="UTC", show_default=True, help="The time zone of --cron.")
@click.option("--every", metavar="PERIOD", help="A period instead: 30s, 5m, 2h, 1d, 1h30m.")
@click.option("--input", "input_", metavar="JSON", default="null", help="Every task's input.")
@click.option("--entry", default="", metavar="NAME", help="The entry function.")
@click.option(
    "--overlap",
    type=click.Choice([o.value for o in Overlap]),
    default=Overlap.SKIP.value,
    show_default=True,
    help="What a tick does while the previous task still runs.",
)
@click.option(
    "--catch-up",
    type=click.Choice([c.value for c in CatchUp]),
    default=CatchUp.LATEST.value,
    show_default=True,
    help="What happens to ticks missed for over a minute (no worker, or paused).",
)
@click.option(
    "--jitter", type=float, default=0.0, metavar="S", help="Start each tick up to S seconds late."
)
@db_option
@handle_errors
def add(
    name: str,
    workflow: str,
    cron: str | None,
    tz: str,
    every: str | None,
    input_: str,
    entry: str,
    overlap: str,
    catch_up: str,
    jitter: float,
    db: str | None,
) -> None:
    """Add schedule NAME running WORKFLOW (a .py or .wasm file, or a stored name).

    A file is built and stored under its stem, as `durable launch` does; each tick then
    runs the newest binary stored under that name.
    """
    configure_logging()
    check_name(name)
    value = parse_json(input_, "--input")
    Cadence(cron=cron, tz=tz, every=None if every is None else parse_every(every))
    path = Path(workflow)
    binary = None
    if path.suffix in (".py", ".wasm", ".js"):
        from durable.loader import prepare_workflow  # here: `durable --help` loads less

        with progress(f"preparing {path.name}"):
            binary = prepare_workflow(path)

    async def main() -> None:
        async with await open_client(db, create=True) as client:
            stored = workflow
            if binary is not None:
                await client.register(binary.wasm, name=binary.name, compile=False)
                stored = binary.name
            added = await client.add_schedule(
                name, stored, cron=cron, tz=tz, every=every, input=value, entry=entry,
                overlap=overlap, catch_up=catch_up, jitter=jitter,
            )  # fmt: skip
            click.echo(
                f"schedule {name}: {_describe(added.spec.cadence)}, "
                f"next tick {local_time(added.next_due)}",
                err=True,
            )

    run_async(main)


@schedule.command("list")
@db_option
@handle_errors
def list_schedules(db: str | None) -> None:
    """List schedules: name, cadence, state, next tick, ticks fired and skipped."""

    async def main() -> None:
        async with await open_client(db) as client:
            found = await client.schedules()
        rows = [
            [
                s.spec.name,
                _describe(s.spec.cadence),
                "paused" if s.paused else "active",
                local_time(s.next_due),
                str(s.fired),
                str(s.skipped),
            ]
            for s in found
        ]
        headers = ["NAME", "CADENCE", "STATE", "NEXT TICK", "FIRED", "SKIPPED"]
        click.echo(table(headers, rows))

    run_async(main)


def _show(s: Schedule) -> str:
    return fields(
        [
            ("name", s.spec.name),
            ("workflow", s.spec.workflow + (f" ({s.spec.entry})" if s.spec.entry else "")),
            ("cadence", _describe(s.spec.cadence)),
            ("state", "paused" if s.paused else "active"),
            ("input", s.spec.input),
            ("overlap", s.spec.overlap.value),
            ("catch-up", s.spec.catch_up.value),
            ("jitter", f"{s.spec.jitter:g}s"),
            ("next tick", local_time(s.next_due)),
            ("buffered tick", local_time(s.buffered)),
            ("last task", "-" if s.last_task_id is None else str(s.last_task_id)),
            ("fired", str(s.fired)),
            ("skipped", str(s.skipped)),
            ("created", local_time(s.created_at)),
        ]
    )


@schedule.command()
@click.argument("name")
@db_option
@handle_errors
def show(name: str, db: str | None) -> None:
    """Show schedule NAME: its settings, next tick and counters."""

    async def main() -> None:
        async with await open_client(db) as client:
            click.echo(_show(await client.get_schedule(name)))

    run_async(main)


@schedule.command()
@click.argument("name")
@db_option
@handle_errors
def pause(name: str, db: str | None) -> None:
    """Pause schedule NAME: no tick fires until it is resumed."""

    async def main() -> None:
        async with await open_client(db) as client:
            await client.pause_schedule(name)
        click.echo(f"schedule {name}: paused", err=True)

    run_async(main)


@schedule.command()
@click.argument("name")
@db_option
@handle_errors
def resume(name: str, db: str | None) -> None:
    """Resume schedule NAME; ticks missed meanwhile follow its catch-up policy."""

    async def main() -> None:
        async with await open_client(db) as client:
            s = await client.resume_schedule(name)
        click.echo(f"schedule {name}: active, next tick {local_time(s.next_due)}", err=True)

    run_async(main)


@schedule.command()
@click.argument("name")
@db_option
@handle_errors
def delete(name: str, db: str | None) -> None:
    """Delete schedule NAME; the tasks it launched stay."""

    async def main() -> None:
        async with await open_client(db) as client:
            await client.delete_schedule(name)
        click.echo(f"schedule {name}: deleted", err=True)

    run_async(main)


@schedule.command()
@click.argument("name")
@db_option
@handle_errors
def trigger(name: str, db: str | None) -> None:
    """Launch one task of schedule NAME now, and print its id on stdout."""

    async def main() -> None:
        async with await open_client(db) as client:
            task = await client.trigger_schedule(name)
        click.echo(task.id)

    run_async(main)
