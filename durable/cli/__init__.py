"""The `durable` command line: a thin layer over `durable.app`, the client and the worker."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from durable._version import __version__
from durable.cli._common import Group

#: Each command: its module, the name of its click command there, and its summary (the
#: first paragraph of its help, checked against the command by the tests). A command's
#: module is imported only when the command runs or shows its own help, so that
#: `durable --version` and `durable --help` import none of them (issue 15, item 19).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": (
        "durable.cli.build",
        "build",
        "Build WORKFLOW (.py, or .js with componentize-js) into a component (cached).",
    ),
    "run": (
        "durable.cli.run",
        "run",
        "Run WORKFLOW (.py or .wasm) to its end with an embedded worker.",
    ),
    "launch": (
        "durable.cli.launch",
        "launch",
        "Enqueue a task NAME running WORKFLOW (.py or .wasm) and print its id on stdout.",
    ),
    "worker": (
        "durable.cli.worker",
        "worker",
        "Resume and run every unfinished task. Stops gracefully on SIGTERM or SIGINT.",
    ),
    "logs": (
        "durable.cli.logs",
        "logs",
        "Print TASK's whole log (its stdout on stdout, its stderr on stderr).",
    ),
    "notify": (
        "durable.cli.control",
        "notify",
        "Send TASK a notification EVENT with an optional JSON payload.",
    ),
    "cancel": ("durable.cli.control", "cancel", "Cancel TASK and its unfinished children."),
    "fork": (
        "durable.cli.fork",
        "fork",
        "Start a new task from the first K events of TASK's history (--at K).",
    ),
    "retry": (
        "durable.cli.fork",
        "retry",
        "Re-run failed TASK from its last clean event, on its own code, as a new task.",
    ),
    "debug": (
        "durable.cli.debug",
        "debug",
        "Replay TASK's history with WORKFLOW's Python source in this interpreter.",
    ),
    "upgrade": (
        "durable.cli.upgrade",
        "upgrade",
        "Replay every unfinished task of workflow NAME against WORKFLOW (.py or .wasm).",
    ),
    "check": (
        "durable.cli.check",
        "check",
        "Crash-test WORKFLOW: run it, then crash it before and after each durable write.",
    ),
    "list": (
        "durable.cli.tasks",
        "list_tasks",
        "List tasks, newest first: id, name, state, times and duration.",
    ),
    "show": (
        "durable.cli.tasks",
        "show",
        "Show TASK: its state, times, input, result or error, its status values, and its"
        " event history.",
    ),
    "status": (
        "durable.cli.status",
        "status",
        "Print TASK's status values: the latest value of each key its workflow set with"
        " `durable.set_status` (only KEY's, if given).",
    ),
    "replay": (
        "durable.cli.replay",
        "replay",
        "Replay TASK's recorded history against its own code, or against WORKFLOW.",
    ),
    "migrate": (
        "durable.cli.migrate",
        "migrate",
        "Apply every pending schema migration, then print the schema version.",
    ),
    "ui": (
        "durable.cli.ui",
        "ui",
        "Serve the web dashboard: tasks, their histories and logs, workers, and metrics.",
    ),
    "schedule": (
        "durable.cli.schedule",
        "schedule",
        "Add, list, show, pause, resume, delete or trigger schedules.",
    ),
    "queue": (
        "durable.cli.queue",
        "queue",
        "List, show or set queues: concurrency, per-key and rate limits, priority, pause.",
    ),
    "pause": (
        "durable.cli.queue",
        "pause",
        "Pause TASK: it starts no more, and a running one is parked until `durable resume`.",
    ),
    "resume": (
        "durable.cli.queue",
        "resume",
        "Resume TASK after `durable pause`; a timer that passed meanwhile fires now.",
    ),
    "wit": (
        "durable.cli.wit",
        "wit",
        "Write the durable:core WIT package (world `workflow`), with the WASI it uses.",
    ),
}


class _Commands(dict[str, click.Command]):
    """A group's commands by name, each imported the first time it is looked up."""

    def __missing__(self, name: str) -> click.Command:
        if name not in COMMANDS:
            raise KeyError(name)
        module, attr, _ = COMMANDS[name]
        command: click.Command = getattr(import_module(module), attr)
        self[name] = command
        return command

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or super().__contains__(name)

    def __iter__(self) -> Any:
        return iter(sorted({*COMMANDS, *super().keys()}))

    def __len__(self) -> int:
        return len({*COMMANDS, *super().keys()})

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def _all(self) -> None:
        for name in COMMANDS:
            self.__getitem__(name)  # loads it

    def keys(self) -> Any:
        self._all()
        return super().keys()

    def values(self) -> Any:
        self._all()
        return super().values()

    def items(self) -> Any:
        self._all()
        return super().items()


class _LazyGroup(Group):
    """`Group` whose command list (`durable --help`) comes from `COMMANDS`' summaries."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            entry = COMMANDS.get(name)
            if entry is None:  # added by hand, not in the table: ask the command itself
                command = self.get_command(ctx, name)
                summary = "" if command is None else command.get_short_help_str(limit)
            else:  # as click abbreviates a command's help, without importing it
                summary = click.Command(name, help=entry[2]).get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="durable")
def cli() -> None:
    """Durable execution for Python workflows.

    Write a workflow as a plain Python file; durable compiles it to a WebAssembly
    component and runs it to completion, across crashes and restarts.
    """


cli.commands = _Commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="durable")
