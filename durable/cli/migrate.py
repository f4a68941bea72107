"""`durable migrate`: bring a database's schema up to date."""

from __future__ import annotations

import click

from durable.cli._common import db_option, handle_errors, run_async


@click.command()
@db_option
@handle_errors
def migrate(db: str | None) -> None:
    """Apply every pending schema migration, then print the schema version.

    Safe to run while workers are running, and from several processes at once: each
    migration is applied exactly once. Postgres needs it before the first worker starts
    (or start that worker with --migrate); a SQLite file is migrated on first use.
    """
    from durable.app import open_client
    from durable.storage import parse_url

    url = parse_url(db).display()

    async def main() -> int:
        async with await open_client(db, migrate=True) as client:  # opening migrates
            return await client.migrate()

    click.echo(f"{url}: schema version {run_async(main)}")
