"""A built component's digest is kept beside it, so a cached run neither reads nor
hashes the component; a component replaced since is hashed again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from durable.builder import component_digest, digest_path


def _component(builds: Path, data: bytes) -> Path:
    builds.mkdir(exist_ok=True)
    path = builds / "0123abcd.wasm"
    tmp = builds / ".0123abcd.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)  # as a build writes it: a new file each time
    return path


def test_the_digest_is_kept_and_then_read_not_computed(tmp_path: Path) -> None:
    wasm = _component(tmp_path / "builds", b"\0asm first component")
    digest = component_digest(wasm)
    assert digest == hashlib.sha256(b"\0asm first component").hexdigest()
    assert digest_path(wasm).read_text().split()[0] == digest
    # The same file, its bytes changed in place (a cache is not edited so; here it
    # shows whether the file is read): the kept digest is what comes back.
    with wasm.open("r+b") as fh:
        fh.write(b"\0asm other component")
    assert component_digest(wasm) == digest


def test_a_replaced_component_is_hashed_again(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    first = component_digest(_component(builds, b"\0asm first"))
    wasm = _component(builds, b"\0asm second, rebuilt")  # evicted and built again
    assert component_digest(wasm) == hashlib.sha256(b"\0asm second, rebuilt").hexdigest()
    assert component_digest(wasm) != first


@pytest.mark.parametrize("kept", ["", "not a digest", "ab" * 32 + " 1:2"])
def test_a_missing_or_stale_digest_file_is_replaced(tmp_path: Path, kept: str) -> None:
    wasm = _component(tmp_path / "builds", b"\0asm component")
    digest_path(wasm).write_text(kept)
    assert component_digest(wasm) == hashlib.sha256(b"\0asm component").hexdigest()
    assert digest_path(wasm).read_text().split()[0] == component_digest(wasm)


def test_an_evicted_component_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        component_digest(tmp_path / "builds" / "gone.wasm")
