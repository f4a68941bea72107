"""`durable check`: crash-test a workflow before and after each of its durable writes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from durable.cli._common import EXIT_FAILED, fail, handle_errors, parse_json, progress, run_async


@click.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--input", "input_", metavar="JSON", default="null", help="The task's input.")
@click.option("--entry", default="", metavar="NAME", help="The entry function.")
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help="A scratch database for the check's tasks (Postgres, for workflow SQL there); "
    "default: a temporary SQLite file.",
)
@click.option("--live", is_flag=True, help="Send every run's HTTP requests for real.")
@click.option("-v", "--verbose", is_flag=True, help="Print each crash point as it runs.")
@handle_errors
def check(
    workflow: Path, input_: str, entry: str, db: str | None, live: bool, verbose: bool
) -> None:
    """Crash-test WORKFLOW: run it, then crash it before and after each durable write.

    Each crashed run is resumed by a fresh worker and must end as the first run did:
    same result, error, output, durable calls and recorded values, no HTTP request
    repeated, and a history that replays to the same end. Prints what differs, naming
    the crash point, and exits 1 if anything does.
    """
    value = parse_json(input_, "--input")
    text = json.dumps(value)

    async def main() -> bool:
        from durable.loader import read_workflow
        from durable.storage import open_store
        from durable.testing.check import check_workflow

        with progress(f"preparing {workflow.name}"):
            wasm, _kind = read_workflow(workflow)
        with tempfile.TemporaryDirectory(prefix="durable-check-") as scratch:
            url = db or str(Path(scratch) / "check.db")
            store = await open_store(url)
            try:
                report = await check_workflow(
                    store,
                    wasm,
                    input=text,
                    entry=entry,
                    live_http=live,
                    progress=(lambda p: click.echo(p, err=True)) if verbose else None,
                )
            finally:
                await store.close()
        for line in report.lines():
            click.echo(line)
        return report.ok

    if not run_async(main):
        fail("the workflow does not survive every crash point", EXIT_FAILED)
