"""What every command shares: the --db option, error reporting, async running."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from durable.errors import DurableError, InputTooLargeError
from durable.host.config import HostConfig

if TYPE_CHECKING:
    from durable.client import Client

# The library is imported inside the functions that use it, not here: every command
# module imports this one, and `durable --help` or `--version` should load neither the
# client, nor a database driver, nor wasmtime (issue 15, item 19).

P = ParamSpec("P")
T = TypeVar("T")

#: Exit codes: 1 means "the workflow failed"; 2 means "we could not do what you asked".
EXIT_FAILED = 1
EXIT_USAGE = 2
#: Before exiting, how long to wait for threads still inside wasmtime.
SETTLE_TIMEOUT = 5.0

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Database: sqlite:///PATH, a file path, or postgres://... "
    "[default: $DURABLE_DATABASE_URL, else sqlite:///.durable/durable.db]",
)

guest_db_option = click.option(
    "--guest-db",
    "guest_db",
    metavar="URL",
    default=None,
    help="Postgres only: the login workflow SQL runs as, a postgres://... URL of the same "
    "database; it may not be a superuser, nor reach durable's role or schema "
    "[default: $DURABLE_GUEST_DATABASE_URL, else the login `durable migrate` creates]",
)


class Group(click.Group):
    """A click group whose usage errors are one line on stderr, not a usage screen.

    `durable show abc` says `error: Invalid value for 'TASK': 'abc' is not a valid
    integer. (see 'durable show --help')` and exits 2, like every other bad input.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; in standalone mode, report usage errors in one line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            self._standalone(args, prog_name, complete_var, **extra)
        except SystemExit as exc:
            settle(exc.code)
            _exit_quickly()
            raise
        except BaseException:
            settle(EXIT_FAILED)
            raise

    def _standalone(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> NoReturn:
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # `durable` alone: the help, as click shows it
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


async def open_client(
    db: str | None, *, max_input_bytes: int | None = None, create: bool = False
) -> Client:
    """Open the database for a command, upgrading the schema only where that is safe.

    A SQLite file (zero setup) is migrated on first use; a Postgres database is shared
    by processes of several versions, so it is upgraded only on purpose, with
    `durable migrate` or `durable worker --migrate`. Only a command that writes work
    (`create`) may create a SQLite file: the others say there is none, and exit.
    """
    from durable.app import open_client as open_app_client
    from durable.cli._hints import require_database

    if not create:
        require_database(db)
    return await open_app_client(db, max_input_bytes=max_input_bytes)


def settle(code: int | str | None) -> None:
    """Make sure the interpreter may exit: no thread is left inside wasmtime.

    An interpreter that finalizes while a thread runs inside wasmtime (or may still
    call back into Python from it) makes wasmtime abort the process (see
    `durable.host.lifecycle`). So wait a little for such threads; if one stays (a
    workflow in a long host call), end the process now with `os._exit`, as a kill
    would: its task resumes elsewhere once its lease lapses.
    """
    lifecycle = sys.modules.get("durable.host.lifecycle")
    if lifecycle is None or lifecycle.quiesce(SETTLE_TIMEOUT):
        return  # (not imported: no guest ever ran in this process)
    status = code if isinstance(code, int) else (0 if code is None else EXIT_FAILED)
    hard_exit(status, "a workflow is still running on a thread: exiting without it")


def _exit_quickly() -> None:
    """Spare the interpreter's exit a full garbage collection of everything imported.

    Finalizing runs the cycle collector over every object the imports made (wasmtime's
    bindings, click, asyncio: some 40,000): that took a fifth of a cached `durable run`
    (issue 15, item 19). Frozen objects are skipped; the process ends next, and nothing
    the CLI leaves needs a cyclic collection to be finalized (files and databases are
    closed by then, by `with` or by reference counting).
    """
    gc.freeze()


def hard_exit(code: int, why: str) -> NoReturn:
    """Say why in one line, flush, and end the process without finalizing the interpreter."""
    with contextlib.suppress(OSError, ValueError):  # a closed pipe, or stdio closed
        sys.stdout.flush()
        click.echo(f"durable: {why}", err=True)
        sys.stderr.flush()
    os._exit(code)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn every `DurableError` into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except DurableError as exc:
            fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine function to completion on a fresh event loop."""
    import anyio

    return anyio.run(fn, *args)


def parse_json(value: str, what: str) -> Any:
    """Parse user JSON, or exit with a one-line message."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


def input_options(fn: Callable[P, T]) -> Callable[P, T]:
    """`--input JSON` and `--input-file PATH` (`-`: stdin), which exclude each other."""
    fn = click.option(
        "--input-file",
        "input_file",
        metavar="PATH",
        default=None,
        help="Read the input (JSON) from a file, or from stdin with -.",
    )(fn)
    return click.option(
        "--input", "input_", metavar="JSON", help="The input, as JSON [default: null]."
    )(fn)


def read_input(input_: str | None, input_file: str | None, *, max_bytes: int) -> Any:
    """The task input given by `--input` or `--input-file`, parsed and within `max_bytes`.

    Exits with one line (status 2) when both are given, the file cannot be read, it
    is not JSON, or the input is over the limit; nothing has been written by then.
    """
    if input_ is not None and input_file is not None:
        fail("--input and --input-file cannot be used together")
    if input_file is None:
        value = parse_json("null" if input_ is None else input_, "--input")
    else:
        value = parse_json(_read_text(input_file), f"--input-file {input_file}")
    from durable.client import encode_input

    try:
        encode_input(value, max_bytes=max_bytes)
    except InputTooLargeError as exc:
        fail(str(exc))
    return value


def _read_text(path: str) -> str:
    """A file's text (`-`: stdin), or exit with a one-line message."""
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8")
    except OSError as exc:
        fail(f"cannot read --input-file {path}: {exc.strerror or type(exc).__name__}")
    except UnicodeDecodeError:
        fail(f"--input-file {path} is not UTF-8 text")


def configure_logging(verbose: bool = False) -> None:
    """Warnings (or everything, with -v) from durable's loggers go to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("durable: %(message)s"))
    root = logging.getLogger("durable")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


@contextmanager
def progress(message: str) -> Iterator[None]:
    """Show `message` with a spinner on a terminal if the work takes over a second.

    Piped (CI logs, scripts), work that takes over a second gets one line when it
    starts and one when it ends, so a first build is never tens of silent seconds.
    """
    if not sys.stderr.isatty():
        with _progress_lines(message):
            yield
        return
    done = threading.Event()

    def spin() -> None:
        if done.wait(1.0):
            return
        frames = "|/-\\"
        i = 0
        started = time.monotonic()
        while not done.wait(0.1):
            elapsed = time.monotonic() - started + 1.0
            sys.stderr.write(f"\r{frames[i % 4]} {message} ({elapsed:.0f}s)")
            sys.stderr.flush()
            i += 1
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def _progress_lines(message: str) -> Iterator[None]:
    """`progress` for a pipe: a line after a second, and then a line at the end."""
    done = threading.Event()
    started = time.monotonic()
    announced: list[bool] = []

    def announce() -> None:
        if not done.wait(1.0):
            announced.append(True)
            click.echo(f"durable: {message}...", err=True)

    thread = threading.Thread(target=announce, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()  # after this, `announced` says whether the first line went out
    # Only on success: a failure says so itself, in the error line that follows.
    if announced:
        click.echo(f"durable: {message}: done in {time.monotonic() - started:.0f} s", err=True)


_HOST = HostConfig()


def host_config_from_options(
    *,
    suspend_after: float,
    memory_limit: int,
    max_events: int,
    max_payload: int,
    max_output: int,
    **more: Any,
) -> HostConfig:
    """The `HostConfig` of the options every command that runs workflows takes
    (`suspend_after_option`, `memory_limit_option`, `max_events_option`,
    `max_payload_option`, `max_output_option`), with any other of its fields in `more`
    (the worker's `cancel_grace`). One place, so `run` and `worker` cannot drift apart."""
    return HostConfig(
        suspend_after=suspend_after,
        memory_limit=memory_limit,
        max_events=max_events,
        max_payload_bytes=max_payload,
        max_output_bytes=max_output,
        **more,
    )


class ByteSize(click.ParamType[int]):
    """A size in bytes: `268435456`, or with a unit, `256M`, `1G`, `512K` (powers of 2)."""

    name = "size"
    _UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

    def __init__(self, *, allow_zero: bool = False) -> None:
        """`allow_zero`: 0 is a size too (a setting that 0 turns off)."""
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse `value`; fail with click's one-line message when it is not a size."""
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in self._UNITS else ""
        number = text[: len(text) - len(unit)]
        try:
            size = int(float(number) * self._UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a size (like 512M or 1G)", param, ctx)
        if size < 0 or (size == 0 and not self.allow_zero):
            what = "a size (0 or more)" if self.allow_zero else "a positive size"
            self.fail(f"{value!r} is not {what}", param, ctx)
        return size


def _env(name: str) -> dict[str, Any]:
    return {"envvar": name, "show_envvar": True, "show_default": True}


suspend_after_option = click.option(
    "--suspend-after",
    type=click.FloatRange(min=0),
    default=_HOST.suspend_after,
    metavar="SECONDS",
    help="A sleep or wait longer than this suspends the task instead of holding a thread.",
    **_env("DURABLE_SUSPEND_AFTER"),
)
memory_limit_option = click.option(
    "--memory-limit",
    type=ByteSize(),
    default=f"{_HOST.memory_limit // 1024**2}M",
    metavar="SIZE",
    help="Linear memory one workflow instance may use (e.g. 512M, 1G); past it, the task fails.",
    **_env("DURABLE_MEMORY_LIMIT"),
)
max_events_option = click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=_HOST.max_events,
    metavar="N",
    help="A task that records more events than this fails (a runaway loop).",
    **_env("DURABLE_MAX_EVENTS"),
)
max_output_option = click.option(
    "--max-output",
    type=ByteSize(),
    default=f"{_HOST.max_output_bytes // 1024**2}M",
    metavar="SIZE",
    help="Output one task may print (stdout and stderr together); past it, the task fails.",
    **_env("DURABLE_MAX_OUTPUT"),
)
max_payload_option = click.option(
    "--max-payload",
    type=ByteSize(),
    default=f"{_HOST.max_payload_bytes // 1024**2}M",
    metavar="SIZE",
    help="The largest payload: a task's input (at launch, or a child's at spawn), or what "
    "one event records (a step's result, a response...).",
    **_env("DURABLE_MAX_PAYLOAD"),
)
