"""Translation of asyncpg errors into `durable.errors`, at the Postgres backend's edge.

Two entry points: `translate(action)` wraps every database call of an open store, and
`connect_error(display, exc)` turns a failure to connect into one clear line. Messages
never carry a driver traceback; the original exception is chained with `from`.
"""

from __future__ import annotations

import socket
from types import TracebackType

import asyncpg

from durable.errors import (
    ConfigurationError,
    ConflictError,
    DurableError,
    SchemaError,
    StorageError,
)

#: Errors that mean the connection itself failed (not the statement).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name if it has none."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.removeprefix("Multiple exceptions: ")


class translate:  # lower case: it reads like a function, `with translate("claim tasks"):`
    """Map asyncpg and socket errors raised inside the block to `durable.errors`.

    `action` says what was being done ("claim tasks") and starts the message; `subject`
    (a task id, say) is appended to it, formatted only if an error happens. Errors that
    are already `DurableError`s pass through unchanged. A class rather than a
    `contextlib.contextmanager`, because it wraps every call on the hot path.
    """

    __slots__ = ("action", "subject")

    def __init__(self, action: str, subject: object = None) -> None:
        """Describe the operation the block performs."""
        self.action = action
        self.subject = subject

    def __enter__(self) -> None:
        """Enter the block."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Re-raise a driver error as the matching `DurableError`, chained `from` it."""
        if exc is None or isinstance(exc, DurableError) or not isinstance(exc, Exception):
            return
        action = self.action if self.subject is None else f"{self.action} {self.subject}"
        mapped = _translate(action, exc)
        if mapped is not None:
            raise mapped from exc


def _translate(action: str, exc: Exception) -> DurableError | None:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(f"{action}: {one_line(exc)}")
    if isinstance(
        exc,
        asyncpg.UndefinedTableError
        | asyncpg.InvalidSchemaNameError
        | asyncpg.UndefinedColumnError
        | asyncpg.UndefinedFunctionError,
    ):
        return SchemaError(
            f"{action}: the durable schema is missing or out of date ({one_line(exc)}): "
            "run `durable migrate`"
        )
    if isinstance(exc, asyncpg.DataError):  # a value the driver could not encode
        return StorageError(f"{action}: {one_line(exc)}")
    if isinstance(exc, CONNECTION_ERRORS):
        return StorageError(f"{action}: connection to Postgres failed: {one_line(exc)}")
    if isinstance(exc, asyncpg.PostgresError):
        return StorageError(f"{action}: {one_line(exc)}")
    return None


def connect_error(display: str, exc: BaseException) -> DurableError:
    """Describe, in one line, why connecting to the server at `display` failed.

    Returns `ConfigurationError` when the settings are wrong (URL, password, database
    name) and `StorageError` when the server could not be reached; the caller raises
    it `from exc`.
    """
    where = f"Postgres at {display}"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return ConfigurationError(f"cannot log in to {where}: {one_line(exc)}")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return ConfigurationError(f"cannot log in to {where}: {one_line(exc)}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigurationError(f"cannot open {where}: {one_line(exc)}")
    if isinstance(
        exc,
        ValueError
        | asyncpg.ClientConfigurationError
        | asyncpg.UndefinedObjectError  # an unknown setting in the URL's query
        | asyncpg.InvalidParameterValueError
        | asyncpg.CantChangeRuntimeParamError,
    ):
        return ConfigurationError(f"invalid Postgres URL {display}: {one_line(exc)}")
    if isinstance(exc, ConnectionRefusedError):
        return StorageError(f"cannot reach {where}: connection refused (is the server running?)")
    if isinstance(exc, socket.gaierror):
        return StorageError(f"cannot reach {where}: unknown host ({one_line(exc)})")
    if isinstance(exc, TimeoutError):
        return StorageError(f"cannot reach {where}: timed out")
    if isinstance(exc, OSError):
        reason = one_line(exc)
        if "Connect call failed" in reason:
            reason = f"connection refused (is the server running?) [{reason}]"
        return StorageError(f"cannot reach {where}: {reason}")
    return StorageError(f"cannot connect to {where}: {one_line(exc)}")
