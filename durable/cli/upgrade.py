"""`durable upgrade`: check a workflow's unfinished tasks against new code."""

from __future__ import annotations

from pathlib import Path

import click

from durable.cli._common import (
    EXIT_FAILED,
    db_option,
    fail,
    handle_errors,
    open_client,
    progress,
    run_async,
)


@click.command()
@click.argument("name")
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Only report; move nothing (required for now).")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Replays at once.")
@db_option
@handle_errors
def upgrade(name: str, workflow: Path, check: bool, parallel: int | None, db: str | None) -> None:
    """Replay every unfinished task of workflow NAME against WORKFLOW (.py or .wasm).

    Reports, per task, whether it replays cleanly (and what it does next) or where it
    would diverge, without performing or writing anything. Exits 1 if any diverges.
    Moving the clean tasks onto the new binary is not implemented yet: --check is
    required.
    """
    if not check:
        fail("moving tasks onto the new binary is not implemented yet: run with --check")

    async def main() -> bool:
        from durable.loader import read_workflow
        from durable.upgrade import check_upgrade

        with progress(f"preparing {workflow.name}"):
            wasm, _kind = read_workflow(workflow)
        async with await open_client(db) as client:
            report = await check_upgrade(client, name, wasm, parallel=parallel)
        for line in report.lines():
            click.echo(line)
        return len(report.clean) == len(report.reports)

    if not run_async(main):
        raise SystemExit(EXIT_FAILED)
