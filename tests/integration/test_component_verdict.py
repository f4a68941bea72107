"""A component that passed the check is not checked again on this machine: a cached
`durable run` spawns no wasm-tools. Verdicts are kept only for passes, only for the
check that gave them, and are evicted with the compiled artifact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from durable import component_verdict
from durable.component_verdict import check_once, fingerprint, passed, verdict_path
from durable.errors import ComponentError
from durable.host._cache_files import evict
from tests.guests.wat import build_hello_wat, build_mismatch
from tests.helpers import run_cli


def test_a_pass_is_checked_once(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path).read_bytes()
    digest = hashlib.sha256(wasm).hexdigest()
    cache = tmp_path / "cache"
    before = component_verdict.checks_run
    reads: list[int] = []

    def read() -> bytes:
        reads.append(1)
        return wasm

    check_once(cache, digest, read)
    assert component_verdict.checks_run == before + 1
    assert reads == [1]
    assert passed(cache, digest)
    check_once(cache, digest, read)  # known to pass: neither read nor checked
    assert component_verdict.checks_run == before + 1
    assert reads == [1]


def test_a_verdict_of_another_check_counts_for_nothing(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path).read_bytes()
    digest = hashlib.sha256(wasm).hexdigest()
    cache = tmp_path / "cache"
    check_once(cache, digest, wasm)
    verdict_path(cache, digest).write_text("an older check")
    before = component_verdict.checks_run
    check_once(cache, digest, wasm)
    assert component_verdict.checks_run == before + 1
    assert verdict_path(cache, digest).read_text() == fingerprint()


def test_a_refusal_is_not_kept(tmp_path: Path) -> None:
    wasm = build_mismatch("wrong-run", tmp_path).read_bytes()
    digest = hashlib.sha256(wasm).hexdigest()
    cache = tmp_path / "cache"
    for _ in range(2):
        with pytest.raises(ComponentError, match="exports `run` as"):
            check_once(cache, digest, wasm)
    assert not passed(cache, digest)
    assert not verdict_path(cache, digest).exists()


def test_a_verdict_is_kept_under_the_hash_of_what_was_checked(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path).read_bytes()
    cache = tmp_path / "cache"
    check_once(cache, "0" * 64, wasm)  # a wrong name: the pass is not recorded for it
    assert not passed(cache, "0" * 64)
    assert passed(cache, hashlib.sha256(wasm).hexdigest())


def test_a_verdict_is_evicted_with_its_entry(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path).read_bytes()
    digest = hashlib.sha256(wasm).hexdigest()
    cache = tmp_path / "cache"
    check_once(cache, digest, wasm)
    evict(cache, 0)
    assert not verdict_path(cache, digest).exists()
    assert not list((cache / "compiled").iterdir())


def test_a_second_run_does_not_check_again(tmp_path: Path) -> None:
    wasm = build_hello_wat(tmp_path)
    digest = hashlib.sha256(wasm.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    env = {"DURABLE_CACHE_DIR": str(cache)}
    first = run_cli("run", str(wasm), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    verdict = verdict_path(cache, digest)
    assert verdict.read_text() == fingerprint()
    stat = verdict.stat()
    second = run_cli("run", str(wasm), cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == "hello from wat"
    again = verdict.stat()  # a check writes its verdict anew (another file)
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
