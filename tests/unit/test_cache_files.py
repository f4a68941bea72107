"""The on-disk cache's files: the size bound, least-recently-used eviction, locks.

No compiles here: entries are plain files of known sizes and ages; the compile paths
are in `tests/integration/test_cold_start.py`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from durable.errors import ConfigurationError
from durable.host import HostConfig, Runtime
from durable.host._cache_files import cache_size, evict, is_locked, lock_entry
from durable.host._shared_compile import CompiledEntry, CompileState
from durable.host.config import DEFAULT_CACHE_MAX_BYTES, cache_max_bytes, parse_size

MIB = 1024 * 1024


def _entry(cache: Path, kind: str, key: str, size: int, age: float) -> Path:
    """An entry `kind/key.*` of `size` bytes, last used `age` seconds ago."""
    suffix = ".wasm" if kind == "builds" else ".cwasm"
    path = cache / kind / f"{key}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    (cache / kind / f"{key}.lock").touch()
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_eviction_deletes_least_recently_used_entries_until_under_the_bound(
    tmp_path: Path,
) -> None:
    oldest = _entry(tmp_path, "compiled", "a", 3 * MIB, age=300)
    old = _entry(tmp_path, "builds", "b", 3 * MIB, age=200)
    recent = _entry(tmp_path, "compiled", "c", 3 * MIB, age=100)
    newest = _entry(tmp_path, "builds", "d", 3 * MIB, age=0)
    freed = evict(tmp_path, 7 * MIB)
    assert freed == 6 * MIB
    assert not oldest.exists()
    assert not old.exists()
    assert recent.exists()
    assert newest.exists()
    assert not (tmp_path / "compiled" / "a.lock").exists()  # the whole entry went
    assert cache_size(tmp_path) <= 7 * MIB


def test_eviction_spares_the_entry_just_written_and_entries_in_use(tmp_path: Path) -> None:
    kept = _entry(tmp_path, "compiled", "kept", 2 * MIB, age=500)
    loading = _entry(tmp_path, "compiled", "loading", 2 * MIB, age=400)
    victim = _entry(tmp_path, "compiled", "victim", 2 * MIB, age=10)
    reader = lock_entry(tmp_path / "compiled" / "loading.lock", shared=True)  # as a loader
    try:
        evict(tmp_path, 1, keep=tmp_path / "compiled" / "kept.lock")
    finally:
        assert reader is not None
        os.close(reader)
    assert kept.exists()
    assert loading.exists()
    assert not victim.exists()


def test_eviction_removes_stale_temporary_files_only(tmp_path: Path) -> None:
    directory = tmp_path / "compiled"
    directory.mkdir()
    stale = directory / ".abc.123.tmp"
    fresh = directory / ".def.456.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    long_ago = time.time() - 2 * 3600
    os.utime(stale, (long_ago, long_ago))
    (directory / "compile.log").write_text("a line\n")
    evict(tmp_path, 10 * MIB)
    assert not stale.exists()
    assert fresh.exists()  # a writer may still be at it
    assert (directory / "compile.log").exists()


def test_under_the_bound_nothing_is_evicted(tmp_path: Path) -> None:
    entries = [_entry(tmp_path, "builds", f"k{i}", MIB, age=i) for i in range(40)]
    assert evict(tmp_path, 41 * MIB) == 0  # not "at most 32 entries"
    assert all(path.exists() for path in entries)


def test_a_lock_is_exclusive_and_released_when_its_holder_closes_it(tmp_path: Path) -> None:
    lock = tmp_path / "compiled" / "k.lock"
    held = lock_entry(lock)
    assert held is not None
    assert is_locked(lock)
    assert lock_entry(lock, wait=False) is None
    assert lock_entry(lock, shared=True, wait=False) is None
    os.close(held)
    assert not is_locked(lock)
    again = lock_entry(lock, wait=False)
    assert again is not None
    os.close(again)


def test_a_lock_taken_on_an_evicted_lock_file_is_taken_again_on_the_new_one(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "compiled" / "k.lock"
    stale = lock_entry(lock)
    assert stale is not None
    lock.unlink()  # evicted while `stale` was held: a new entry has a new lock file
    fresh = lock_entry(lock, wait=False)
    assert fresh is not None  # not blocked by the lock on the deleted file
    assert os.fstat(fresh).st_ino == lock.stat().st_ino
    os.close(fresh)
    os.close(stale)


def test_a_corrupt_artifact_is_removed_instead_of_loaded(tmp_path: Path) -> None:
    runtime = Runtime(HostConfig(cache_dir=tmp_path))
    try:
        wasm_hash = "ab" * 32
        entry = CompiledEntry.of(tmp_path, wasm_hash)
        entry.directory.mkdir(parents=True)
        entry.artifact.write_bytes(b"not a compiled component")
        assert runtime.cache.load_compiled(wasm_hash) is None
        assert not entry.artifact.exists()
        assert runtime.cache.state(wasm_hash) is CompileState.ABSENT
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("text", "size"),
    [("4294967296", 4 * 1024**3), ("512M", 512 * MIB), ("4G", 4 * 1024**3), ("2GiB", 2 * 1024**3)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "0", "-5G", "inf", "nan"])
def test_a_bad_cache_bound_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("DURABLE_CACHE_MAX_BYTES", text)
    if not text:
        assert cache_max_bytes() == DEFAULT_CACHE_MAX_BYTES
        return
    with pytest.raises(ConfigurationError, match="DURABLE_CACHE_MAX_BYTES"):
        cache_max_bytes()


def test_the_cache_bound_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_CACHE_MAX_BYTES", "1G")
    assert cache_max_bytes() == 1024**3
    assert cache_max_bytes(5 * MIB) == 5 * MIB  # an explicit setting wins
    monkeypatch.delenv("DURABLE_CACHE_MAX_BYTES")
    assert cache_max_bytes() == DEFAULT_CACHE_MAX_BYTES


def test_the_cache_directory_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DURABLE_CACHE_DIR", str(tmp_path / "here"))
    assert HostConfig().cache_dir == tmp_path / "here"


def test_a_failure_marker_holds_for_the_checks_that_made_it_only(tmp_path: Path) -> None:
    entry = CompiledEntry.of(tmp_path, "cd" * 32)
    entry.directory.mkdir(parents=True)
    entry.mark_failed("component does not target the durable:core workflow world")
    assert entry.state() is CompileState.FAILED
    assert entry.failure() == "component does not target the durable:core workflow world"
    # Written by a durable whose world check differed: it may compile now.
    entry.marker.write_text("checks 0123\ncomponent imports interfaces this host does not provide")
    assert entry.failure() is None
    assert entry.state() is CompileState.ABSENT
