"""`durable upgrade`: check a workflow's unfinished tasks against new code, and move
the ones that replay cleanly onto it."""

from __future__ import annotations

from pathlib import Path

import click

from durable.cli._common import (
    EXIT_FAILED,
    db_option,
    handle_errors,
    open_client,
    progress,
    run_async,
)


@click.command()
@click.argument("name")
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Only report; store and move nothing.")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Replays at once.")
@db_option
@handle_errors
def upgrade(name: str, workflow: Path, check: bool, parallel: int | None, db: str | None) -> None:
    """Replay every unfinished task of workflow NAME against WORKFLOW (.py or .wasm).

    With --check, reports per task whether it replays cleanly (and what it does next)
    or where it would diverge, without performing or writing anything. Without it,
    stores WORKFLOW as NAME's newest binary and moves each task that replays cleanly
    onto it (recorded: `durable show` lists the move); a task that diverges stays on
    its binary, and one that is running or ran on since its replay is skipped. Exits 1
    if any task is left on an old binary.
    """

    async def main() -> bool:
        from durable.loader import read_workflow
        from durable.upgrade import check_upgrade
        from durable.upgrade_move import upgrade_tasks

        with progress(f"preparing {workflow.name}"):
            wasm, _kind = read_workflow(workflow)
        async with await open_client(db) as client:
            if not check:
                moves = await upgrade_tasks(client, name, wasm, parallel=parallel)
                for line in moves.lines():
                    click.echo(line)
                return moves.left == 0
            report = await check_upgrade(client, name, wasm, parallel=parallel)
        for line in report.lines():
            click.echo(line)
        return len(report.clean) == len(report.reports)

    if not run_async(main):
        raise SystemExit(EXIT_FAILED)
