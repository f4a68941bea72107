"""The `durable` command line: a thin layer over the client, worker and builder."""

from __future__ import annotations

from importlib.metadata import version

import click

from durable.cli.build import build
from durable.cli.logs import logs
from durable.cli.run import run
from durable.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("durable"), prog_name="durable")
def cli() -> None:
    """Durable execution for Python workflows.

    Write a workflow as a plain Python file; durable compiles it to a WebAssembly
    component and runs it to completion, across crashes and restarts.
    """


cli.add_command(build)
cli.add_command(run)
cli.add_command(worker)
cli.add_command(logs)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="durable")
