"""A throwaway PostgreSQL server for tests and benchmarks.

`PostgresServer` runs `initdb` and `pg_ctl` into a temporary directory and listens on
127.0.0.1 on a free port (and on a unix socket inside that directory). The server keeps
`fsync` on: the benchmarks measure real durable commits, and the chaos tests restart it
with `restart(mode="immediate")`, which must lose nothing that was committed.

Local connections use `trust` for the `postgres` role only; every other role needs a
password over TCP, so tests can check what a wrong password looks like.

When `DURABLE_TEST_POSTGRES_URL` is set, `postgres_server()` hands out an
`ExternalPostgres` for that server instead of starting one. When no server binaries can
be found, callers should skip loudly, except in CI (`CI=true`), where a missing Postgres
is a failure: CI must never silently skip the Postgres tests. See `skip_or_fail`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from durable.storage import _pg_admin

__all__ = [
    "ENV_URL",
    "ExternalPostgres",
    "PostgresServer",
    "ServerHandle",
    "find_binaries",
    "fresh_database",
    "postgres_server",
    "skip_or_fail",
    "unavailable_reason",
    "with_login",
]

#: Names an existing server to test against instead of starting a throwaway one.
ENV_URL = "DURABLE_TEST_POSTGRES_URL"

_T = TypeVar("_T")


def find_binaries() -> Path | None:
    """Return the directory holding `initdb` and `pg_ctl`, or None if there is none.

    Looks in `/usr/lib/postgresql/15/bin`, then the newest `/usr/lib/postgresql/*/bin`,
    then `PATH`.
    """
    candidates = [Path("/usr/lib/postgresql/15/bin")]
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates += [p / "bin" for p in reversed(versions)]
    for bin_dir in candidates:
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def unavailable_reason() -> str | None:
    """Why no Postgres server can be had for tests, or None when one can."""
    if os.environ.get(ENV_URL):
        return None
    if find_binaries() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
            f"or PATH, and {ENV_URL} is not set: Postgres tests NOT RUN"
        )
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the current test with a loud `reason`, or fail it when running in CI.

    Outside pytest (benchmarks) it raises `RuntimeError` in CI and prints the reason
    otherwise, leaving the caller to carry on without Postgres.
    """
    in_ci = os.environ.get("CI", "").lower() == "true"
    try:
        import pytest
    except ImportError:  # pragma: no cover - benchmarks without pytest installed
        if in_ci:
            raise RuntimeError(reason) from None
        print(f"WARNING: {reason}")
        return
    if in_ci:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(f"WARNING: {reason}")


class ServerHandle(Protocol):
    """What tests and benchmarks need from a Postgres server, local or external."""

    @property
    def url(self) -> str:
        """A URL for the server's default database, usable by `open_store`."""
        ...

    @property
    def can_restart(self) -> bool:
        """Whether `restart` is supported (only for servers this process started)."""
        ...

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        ...

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its clients."""
        ...

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server (`mode` as in `pg_ctl stop -m`) and start it again."""
        ...

    def execute(self, sql: str) -> None:
        """Run `sql` (statements without parameters) on the default database."""
        ...

    def commit_rate(self, seconds: float = 2.0) -> float:
        """The raw single-row INSERT + COMMIT rate over one connection, per second."""
        ...


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` to completion on a private event loop in a helper thread.

    A thread, so that it also works when called from inside a running event loop (for
    example from an async test).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="durable-pg-admin")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: _T = box["value"]
    return value


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url)._replace(path="/" + name).geturl()


def with_login(url: str, user: str, password: str) -> str:
    """`url` (same server, same database) logging in as `user` with `password`.

    Over TCP every role but `postgres` must give its password (see `_HBA`), so tests of
    other logins (a non-superuser engine, a guest login) use real authentication.
    """
    from urllib.parse import quote, urlsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(
        netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    ).geturl()


class _AdminMixin:
    """Database chores shared by both handles (asyncpg stays inside `durable.storage`)."""

    url: str

    def create_database(self, name: str) -> str:
        """Create an empty database named `name` and return its URL."""
        _run_sync(_pg_admin.create_database(self.url, name))
        return _with_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its clients."""
        _run_sync(_pg_admin.drop_database(self.url, name))

    def execute(self, sql: str) -> None:
        """Run `sql` (statements without parameters) on the default database."""
        _run_sync(_pg_admin.execute(self.url, sql))

    def commit_rate(self, seconds: float = 2.0) -> float:
        """The raw single-row INSERT + COMMIT rate over one connection, per second."""
        return _run_sync(_pg_admin.commit_rate(self.url, seconds))


class ExternalPostgres(_AdminMixin):
    """A server named by URL (`DURABLE_TEST_POSTGRES_URL`) that this process did not start."""

    def __init__(self, url: str) -> None:
        """Wrap the server at `url`; nothing is started or stopped."""
        self.url = url

    @property
    def can_restart(self) -> bool:
        """Always False: an external server is not ours to restart."""
        return False

    def restart(self, mode: str = "immediate") -> None:
        """Refuse: an external server is not ours to restart."""
        raise RuntimeError(f"cannot restart the external server named by {ENV_URL}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_HBA = """\
# Written by durable.testing.postgres: trust for the postgres role, passwords for others.
local   all  all                    trust
host    all  postgres  127.0.0.1/32 trust
host    all  postgres  ::1/128      trust
host    all  all       127.0.0.1/32 scram-sha-256
host    all  all       ::1/128      scram-sha-256
"""


class PostgresServer(_AdminMixin):
    """A PostgreSQL server in a temporary directory, for one test session or benchmark.

    Use it as a context manager, or call `start()` and `stop()`. `url` is valid while
    the server runs, and stays the same across `restart()`.
    """

    def __init__(self, *, bin_dir: Path | None = None, base_dir: Path | None = None) -> None:
        """Prepare (but do not start) a server.

        Args:
            bin_dir: the directory with `initdb` and `pg_ctl`; found with
                `find_binaries()` when None.
            base_dir: where to create the temporary directory; the system default
                when None.
        """
        found = bin_dir or find_binaries()
        if found is None:
            raise RuntimeError(unavailable_reason() or "PostgreSQL binaries not found")
        self.bin_dir = found
        self._base_dir = base_dir
        self.root: Path | None = None
        self.port = 0
        self.url = ""
        self._running = False
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    @property
    def can_restart(self) -> bool:
        """Always True: this process owns the server."""
        return True

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's unix socket."""
        assert self.root is not None, "server not started"
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        """The server's log file (useful when a start fails)."""
        assert self.root is not None, "server not started"
        return self.root / "server.log"

    def __enter__(self) -> PostgresServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server and delete its directory."""
        self.stop()

    def _cmd(self, *args: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            self._cmd(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            log = ""
            if self.root is not None and self.log_file.exists():
                log = "\n--- server log ---\n" + self.log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}): {detail}{log}")

    def start(self) -> None:
        """Create the cluster and start the server. Idempotent."""
        if self._running:
            return
        root = Path(tempfile.mkdtemp(prefix="durable-pg-", dir=self._base_dir))
        self.root = root
        (root / "sock").mkdir()
        if self._as_postgres:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(root / "sock", "postgres", "postgres")
        # --no-sync only skips initdb's own fsync of a cluster we create from scratch; the
        # server itself keeps fsync on.
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(_HBA)
        if self._as_postgres:
            shutil.chown(hba, "postgres", "postgres")
        atexit.register(self._atexit_stop)
        for attempt in range(5):
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                break
            except RuntimeError:
                # Another process may have taken the port between probe and bind.
                if attempt == 4:
                    raise
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=on",
                "-c synchronous_commit=on",
                "-c max_connections=200",
                "-c shared_buffers=64MB",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start", "-w", "-t", "60",
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", options,
        )  # fmt: skip
        self._running = True

    def _pg_ctl_stop(self, mode: str) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"), "stop", "-w", "-t", "60", "-m", mode,
            "-D", str(self.data_dir),
        )  # fmt: skip
        self._running = False

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server with `pg_ctl stop -m mode` and start it again on the same port.

        With "immediate" the server stops without a checkpoint, as if it crashed, and
        runs crash recovery when it starts.
        """
        if self._running:
            self._pg_ctl_stop(mode)
        self._pg_ctl_start()

    def stop(self) -> None:
        """Stop the server and delete its directory. Idempotent."""
        if self._running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                # The data is thrown away, so there is no point in a clean shutdown.
                self._pg_ctl_stop("immediate")
        self._running = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        atexit.unregister(self._atexit_stop)

    def _atexit_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts TCP connections, or raise `TimeoutError`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Postgres on port {self.port} is not up") from None
                time.sleep(0.05)


@contextlib.contextmanager
def postgres_server() -> Iterator[ServerHandle]:
    """Yield a server for a test session or a benchmark, and stop it afterwards.

    Uses `DURABLE_TEST_POSTGRES_URL` when set; otherwise starts a `PostgresServer`.
    When neither is possible it calls `skip_or_fail` (skip, or fail in CI); outside
    pytest it raises `RuntimeError`.
    """
    external = os.environ.get(ENV_URL)
    if external:
        yield ExternalPostgres(external)
        return
    reason = unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)
        raise RuntimeError(reason)
    with PostgresServer() as server:
        yield server


@contextlib.contextmanager
def fresh_database(server: ServerHandle, prefix: str = "durable_test") -> Iterator[str]:
    """Create an empty database with a unique name, yield its URL, and drop it afterwards.

    One per test keeps tests independent (the engine's tables always live in schema
    `durable`, so they cannot share a database). Creating one takes some tens of ms.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
