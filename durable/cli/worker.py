"""`durable worker`: run every unfinished task in a database."""

from __future__ import annotations

import signal

import anyio
import click

from durable.cli._common import (
    configure_logging,
    db_option,
    handle_errors,
    run_async,
    suspend_after_option,
)
from durable.host import HostConfig
from durable.storage import open_store, parse_url
from durable.worker import Worker, WorkerConfig


@click.command()
@db_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    envvar="DURABLE_CONCURRENCY",
    help="How many tasks run at once.",
)
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Exit once no task is runnable or running and no timer is due soon.",
)
@click.option(
    "--migrate",
    is_flag=True,
    help="Upgrade the database schema if it is out of date (always done for SQLite).",
)
@suspend_after_option
@click.option("-v", "--verbose", is_flag=True, help="Log every task attempt.")
@handle_errors
def worker(
    db: str | None,
    concurrency: int,
    exit_when_idle: bool,
    migrate: bool,
    suspend_after: float,
    verbose: bool,
) -> None:
    """Resume and run every unfinished task. Stops gracefully on SIGTERM or SIGINT."""
    configure_logging(verbose)
    migrate = migrate or parse_url(db).scheme != "postgres"
    config = WorkerConfig(
        concurrency=concurrency,
        exit_when_idle=exit_when_idle,
        host=HostConfig(suspend_after=suspend_after),
    )

    async def main() -> None:
        store = await open_store(db, migrate=migrate)
        try:
            w = Worker(store, config)
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for _ in signals:
                            w.stop()
                            return

                tg.start_soon(on_signal)
                await w.run()
                tg.cancel_scope.cancel()
        finally:
            await store.close()

    run_async(main)
