"""Wake-up sockets beside a SQLite database: how its processes learn of each other's commits.

SQLite has no LISTEN. Every process that waits on a database (a worker for work, a
client for a task's end) binds a Unix datagram socket in the directory `<db>-wake/`
beside the file, and every process that commits something worth waking for sends a
one-datagram message to each socket there, after the commit:

* `w`: work may be runnable (a task created, released, suspended, notified...);
* `e<id>`: task `id` ended (and, as for `w`, work may be runnable: its parent);
* `*`: some task, which one unknown, may have ended (a cancel, a quarantine).

A wake-up is only a hint, and losing one costs latency, never correctness: receivers
re-read the database after each, and keep a slow poll (`PRAGMA data_version` for
work, a timeout for ends) for a datagram dropped because a receiver's queue was full,
a socket left by a killed process, or a platform without the channel. A send never
blocks a commit: sockets are non-blocking, and one whose process is gone (connection
refused) is removed by the sender that finds it.

The directory is created mode 0700: only the database's own user can register a
socket or send to one. Socket paths longer than `sun_path` allows (deep temporary
directories) are reached through `/proc/self/fd/<dir fd>/<name>` on Linux; without
either, the channel is off and the slow poll is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("durable.storage")

#: Work may be runnable.
WORK = b"w"
#: Some task may have ended.
ANY_END = b"*"
#: `sun_path` is 108 bytes on Linux, 104 on macOS: stay under both, with the NUL.
_MAX_PATH = 100
#: More datagrams than this in one drain: the queue may have overflowed (Linux keeps
#: 10 by default) and dropped some; the receiver then treats it as "anything changed".
_OVERFLOW = 8


def end_message(task_id: int) -> bytes:
    """The message that says `task_id` ended."""
    return b"e%d" % task_id


class WakeChannel:
    """The wake-up sockets of one database, for one store: send always, receive on demand."""

    def __init__(self, db_path: Path, on_message: Callable[[bytes], None]) -> None:
        """Prepare the channel of `db_path`; `on_message` gets each datagram received."""
        self._dir = Path(f"{db_path}-wake")
        self._on_message = on_message
        self._dir_fd: int | None = None
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None
        self._name: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # An in-memory database has no other process to hear from.
        self._unavailable = str(db_path) == ":memory:"

    @property
    def listening(self) -> bool:
        """Whether this store receives wake-ups."""
        return self._receiver is not None

    def _address(self, name: str) -> str | None:
        plain = str(self._dir / name)
        if len(plain.encode()) <= _MAX_PATH:
            return plain
        if self._dir_fd is not None and os.path.isdir("/proc/self/fd"):
            return f"/proc/self/fd/{self._dir_fd}/{name}"
        return None

    def _open_dir(self, create: bool) -> bool:
        if self._dir_fd is not None:
            return True
        if create:
            with contextlib.suppress(FileExistsError):
                self._dir.mkdir(mode=0o700)
        try:
            fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return False
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            # Not ours alone: another user could register or redirect sockets there.
            os.close(fd)
            self._unavailable = True
            return False
        self._dir_fd = fd
        return True

    def listen(self) -> bool:
        """Bind this store's socket, once; False if the channel is unavailable here."""
        if self._receiver is not None:
            return True
        if self._unavailable or not hasattr(socket, "AF_UNIX"):
            return False
        try:
            if not self._open_dir(create=True):
                raise OSError(f"cannot use {self._dir}")
            name = f"{os.getpid()}-{secrets.token_hex(6)}"
            address = self._address(name)
            if address is None:
                raise OSError("no usable socket path")
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                receiver.setblocking(False)
                receiver.bind(address)
                self._loop = asyncio.get_running_loop()
                self._loop.add_reader(receiver.fileno(), self._drain)
            except BaseException:
                receiver.close()
                raise
        except OSError as exc:
            # Not fatal: the slow poll still finds every change.
            log.debug("no wake-up channel for %s: %s", self._dir, exc)
            self._unavailable = True
            return False
        self._receiver, self._name = receiver, name
        return True

    def _drain(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        count = 0
        while True:
            try:
                message = receiver.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            count += 1
            self._on_message(message)
        if count > _OVERFLOW:
            self._on_message(ANY_END)

    def send(self, message: bytes) -> None:
        """Send `message` to every other socket registered for the database. Never blocks."""
        if self._unavailable or not self._open_dir(create=False):
            return  # nobody has ever listened here (or the directory is unsafe)
        try:
            names = os.listdir(self._dir_fd if self._dir_fd is not None else self._dir)
        except OSError:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for name in names:
            if name == self._name:
                continue  # this store's own waiters are woken directly
            address = self._address(name)
            if address is None:
                continue
            try:
                self._sender.sendto(message, address)
            except (ConnectionRefusedError, FileNotFoundError):
                # Its process is gone (or the name is not a socket): clear it away.
                with contextlib.suppress(OSError):
                    os.unlink(address)
            except OSError:
                pass  # a full queue: that receiver is awake anyway

    def close(self) -> None:
        """Unregister and close the sockets. Idempotent."""
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(receiver.fileno())
            if self._name is not None and (address := self._address(self._name)) is not None:
                with contextlib.suppress(OSError):
                    os.unlink(address)
            receiver.close()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
