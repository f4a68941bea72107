"""The `durable` command line: a thin layer over the client, worker and builder."""

from __future__ import annotations

from importlib.metadata import version

import click

from durable.cli._common import Group
from durable.cli.build import build
from durable.cli.control import cancel, notify
from durable.cli.launch import launch
from durable.cli.logs import logs
from durable.cli.migrate import migrate
from durable.cli.replay import replay
from durable.cli.run import run
from durable.cli.status import status
from durable.cli.tasks import list_tasks, show
from durable.cli.worker import worker


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("durable"), prog_name="durable")
def cli() -> None:
    """Durable execution for Python workflows.

    Write a workflow as a plain Python file; durable compiles it to a WebAssembly
    component and runs it to completion, across crashes and restarts.
    """


cli.add_command(build)
cli.add_command(run)
cli.add_command(launch)
cli.add_command(worker)
cli.add_command(logs)
cli.add_command(notify)
cli.add_command(cancel)
cli.add_command(list_tasks)
cli.add_command(show)
cli.add_command(status)
cli.add_command(replay)
cli.add_command(migrate)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="durable")
