"""The files of the on-disk cache: per-entry locks, atomic writes, and a size bound.

The cache directory (`HostConfig.cache_dir`) holds entries of two kinds, each a few
files that share one key::

    builds/KEY.wasm        a built component (`durable.builder`)
    builds/KEY.sha256      its SHA-256, so a cached build is not read to be named
    builds/KEY.lock
    compiled/KEY.cwasm     a compiled artifact (`durable.host.cache`)
    compiled/KEY.error     ... or why the binary cannot be compiled
    compiled/KEY.checked   ... the binary passed `durable.component_check` (by whom)
    compiled/KEY.lock
    compiled/compile.log   one line per compile, for the operator

Whoever writes an entry holds its lock exclusively (`fcntl.flock`); whoever loads a
compiled artifact holds it shared. The kernel drops a lock when its holder dies, so
no lock outlives a killed process and none needs a timeout.

The bound: after each write, the least recently used entries are deleted until the
directory holds at most `max_bytes`. Use is the data file's mtime, which every reader
touches. An entry is deleted only by a process holding its lock exclusively, so never
while another process loads or writes it; a reader that finds its entry gone builds
or compiles it again. (Counting entries instead, as before, let 32 small entries or a
few huge ones take any amount of disk.)

Lock files are deleted with their entry. A process that locked a lock file which was
deleted meanwhile would hold a lock that guards nothing, so `lock_entry` checks, once
it holds the lock, that the path still names the file it locked, and starts again if
not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The subdirectories that hold entries (`bundles`: Python workflows' sources, see
#: `durable.bundle.keep`; an evicted one is fetched from the store again).
ENTRY_DIRS = ("builds", "compiled", "bundles")
#: The files of an entry besides its lock.
DATA_SUFFIXES = (".cwasm", ".error", ".wasm", ".sha256", ".checked", ".bundle")
LOG_NAME = "compile.log"
#: A log larger than this is rotated (to `compile.log.1`) before the next line.
LOG_MAX_BYTES = 1024 * 1024
#: Temporary files (`.name...`) untouched for this long were left by a killed writer.
STALE_TEMP_SECONDS = 3600.0


def lock_entry(lock_path: Path, *, shared: bool = False, wait: bool = True) -> int | None:
    """Lock an entry through its lock file; return the locked descriptor.

    Close the descriptor to unlock. With `wait=False`, return None at once when
    another process holds the lock in a conflicting mode.

    Raises:
        OSError: the directory cannot be created, or the lock file not opened.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)  # evicted while we waited: lock the entry's new lock file


def is_locked(lock_path: Path) -> bool:
    """Whether a process holds the entry's lock exclusively (writes or deletes it now)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # none (or unreadable): nobody can be writing through it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if taken
    return False


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    A reader sees the old file or the whole new one, never a part.

    Raises:
        OSError: the file cannot be written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def touch(path: Path) -> None:
    """Mark `path` as just used (its mtime), for the least-recently-used order."""
    with contextlib.suppress(OSError):  # a read-only cache is still a cache
        os.utime(path)


def append_log(cache_dir: Path, line: str) -> None:
    """Append one timestamped line to `compiled/compile.log` (best effort)."""
    path = cache_dir / "compiled" / LOG_NAME
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_MAX_BYTES:
            os.replace(path, path.with_name(LOG_NAME + ".1"))
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, f"{stamp} pid {os.getpid()}: {line}\n".encode())
        finally:
            os.close(fd)


@dataclass
class _Entry:
    lock: Path  # the entry's lock file (it may not exist)
    size: int = 0  # bytes of all its files
    data_used: float = 0.0  # newest mtime of its data files: when it was last used
    lock_used: float = 0.0  # its lock's mtime, for an entry with no data (yet)

    @property
    def used(self) -> float:
        return self.data_used or self.lock_used


def cache_size(cache_dir: Path) -> int:
    """Bytes held by the cache's entries and temporary files."""
    entries, temps = _scan(cache_dir)
    return sum(e.size for e in entries) + sum(size for _, size, _ in temps)


def evict(cache_dir: Path, max_bytes: int, *, keep: Path | None = None) -> int:
    """Delete least recently used entries until the cache holds at most `max_bytes`.

    Entries locked by another process are skipped, as is the one whose lock file is
    `keep` (the entry just written). Temporary files left by killed writers go first.
    Returns the bytes freed. Never raises for a file that vanished meanwhile.
    """
    entries, temps = _scan(cache_dir)
    total = sum(e.size for e in entries) + sum(size for _, size, _ in temps)
    freed = 0
    now = time.time()
    for path, size, mtime in temps:
        if now - mtime > STALE_TEMP_SECONDS:
            with contextlib.suppress(OSError):
                path.unlink()
                freed += size
    for entry in sorted(entries, key=lambda e: e.used):
        if total - freed <= max_bytes:
            break
        if entry.lock == keep:
            continue
        try:
            fd = lock_entry(entry.lock, wait=False)
        except OSError:
            continue
        if fd is None:
            continue  # being loaded or written right now
        try:
            stem = entry.lock.with_suffix("")
            for suffix in DATA_SUFFIXES:  # by name: a file written since the scan goes too
                with contextlib.suppress(FileNotFoundError):
                    stem.with_suffix(suffix).unlink()
            with contextlib.suppress(FileNotFoundError):
                entry.lock.unlink()
            freed += entry.size
        finally:
            os.close(fd)
    return freed


def _scan(cache_dir: Path) -> tuple[list[_Entry], list[tuple[Path, int, float]]]:
    """The cache's entries, and its temporary files as (path, size, mtime)."""
    entries: dict[Path, _Entry] = {}
    temps: list[tuple[Path, int, float]] = []
    for name in ENTRY_DIRS:
        directory = cache_dir / name
        try:
            listing = list(os.scandir(directory))
        except OSError:
            continue
        for item in listing:
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if not item.is_file(follow_symlinks=False) or item.name.startswith(LOG_NAME):
                continue
            path = directory / item.name
            if item.name.startswith("."):
                temps.append((path, st.st_size, st.st_mtime))
                continue
            key, _, suffix = item.name.partition(".")
            lock = directory / f"{key}.lock"
            entry = entries.setdefault(lock, _Entry(lock=lock))
            entry.size += st.st_size
            if f".{suffix}" in DATA_SUFFIXES:
                entry.data_used = max(entry.data_used, st.st_mtime)
            else:
                entry.lock_used = st.st_mtime
    return list(entries.values()), temps
