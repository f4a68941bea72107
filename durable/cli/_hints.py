"""Checks and one-line hints the CLI gives before it builds or writes anything."""

from __future__ import annotations

from pathlib import Path

import click

from durable import settings
from durable.core.model import Task
from durable.entry_section import check_wasm_entry
from durable.errors import ConfigurationError
from durable.preflight import check_entry
from durable.storage import parse_url
from durable.task_names import name_problem


def check_before_build(workflow: Path, entry: str, name: str | None) -> None:
    """Refuse a bad task name, or an unknown `--entry` (or no entry), before a build.

    A `.py` source is read for its entries; a `.wasm` component is checked against the
    entries its build recorded (`durable.entry_section`), and one that records none
    when its task starts. A choice the user did not make explicitly is said in one line.

    Raises:
        ConfigurationError: see `durable.task_names` and `durable.preflight.check_entry`.
    """
    problem = None if name is None else name_problem(name)
    if name is not None and problem is not None:
        raise ConfigurationError(f"{problem}: {name[:60]!r}")
    if workflow.suffix not in (".py", ".wasm") or not workflow.is_file():
        return  # a missing file: the build says so
    if workflow.suffix == ".wasm":
        note = check_wasm_entry(workflow, entry)  # entries its build recorded, if any
    else:
        note = check_entry(workflow, entry)
    if note:
        click.echo(f"durable: {note}", err=True)


def require_database(db: str | None) -> None:
    """Refuse, in one line, a `db` that names a SQLite file that does not exist.

    A read-only command (`durable list` in any directory) must not leave a new
    database behind; it says there is none instead.

    Raises:
        ConfigurationError: no such database file.
    """
    url = parse_url(db)
    if url.scheme != "sqlite" or url.path is None or url.path.exists():
        return
    default = not db and not settings.database_url()
    where = " (the default: --db or DURABLE_DATABASE_URL chooses another)" if default else ""
    raise ConfigurationError(
        f"no database at {url.path}{where}: nothing has been launched here yet "
        "(`durable run` or `durable launch` creates it)"
    )


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Fail the task if it has not ended this many seconds after launch "
    "(TimeoutError) [default: no limit].",
)


class OthersReporter:
    """Says, once per task, when `durable run`'s embedded worker runs a task not its own.

    The embedded worker claims whatever is runnable in the database, oldest first: the
    task `durable run` launched, its children, and any task queued there by someone
    else. Those others run to their end too, so the user is told which they are.
    """

    def __init__(self) -> None:
        self._ours: set[int] = set()
        self._told: set[int] = set()

    def launched(self, task: Task) -> None:
        """`task` is the one `durable run` launched: it and its descendants are ours."""
        self._ours.add(task.id)

    def __call__(self, task: Task) -> None:
        """Note `task`, just claimed; say so if it is neither ours nor our descendant."""
        if task.id in self._ours or task.parent_id in self._ours:
            self._ours.add(task.id)
            return
        if task.id not in self._told:
            self._told.add(task.id)
            click.echo(
                f"durable: the embedded worker also runs task {task.id} ({task.name}), "
                "found in this database (--db chooses a database of its own)",
                err=True,
            )
