"""What every command shares: the --db option, error reporting, async running."""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

import anyio
import click

from durable.errors import DurableError

P = ParamSpec("P")
T = TypeVar("T")

#: Exit codes: 1 means "the workflow failed"; 2 means "we could not do what you asked".
EXIT_FAILED = 1
EXIT_USAGE = 2

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Database: sqlite:///PATH, a file path, or postgres://... "
    "[default: $DURABLE_DATABASE_URL, else sqlite:///.durable/durable.db]",
)


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
    return anyio.run(fn, *args)


def parse_json(value: str, what: str) -> Any:
    """Parse user JSON, or exit with a one-line message."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


def configure_logging(verbose: bool = False) -> None:
    """Warnings (or everything, with -v) from durable's loggers go to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("durable: %(message)s"))
    root = logging.getLogger("durable")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


@contextmanager
def progress(message: str) -> Iterator[None]:
    """Show `message` with a spinner on a terminal if the work takes over a second."""
    if not sys.stderr.isatty():
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


suspend_after_option = click.option(
    "--suspend-after",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    envvar="DURABLE_SUSPEND_AFTER",
    metavar="SECONDS",
    help="A sleep or wait longer than this suspends the task instead of holding a thread. "
    "[env: DURABLE_SUSPEND_AFTER]",
)
