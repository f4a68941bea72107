"""A Python workflow's bundle: the same files give the same bytes (so the same task
pin), the bytes read back to the same files, and what is bundled is the workflow's
folder: its `.py` files and packages, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durable.bundle import FALLBACK_MAIN, Bundle, collect, decode, is_bundle, keep, kept
from durable.errors import BuildError, ComponentError

INTERP = "ab" * 32


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text("import helper\n")
    (tmp_path / "helper.py").write_text("X = 'é'\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "inner.py").write_text("Y = 2\n")
    (tmp_path / "data").mkdir()  # no Python in it: not a package
    (tmp_path / "data" / "notes.txt").write_text("not code")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "stale.py").write_text("no")
    (tmp_path / "README.md").write_text("not code")
    return tmp_path / "flow.py"


def test_the_folders_python_is_bundled_and_reads_back(tmp_path: Path) -> None:
    bundle = collect(_folder(tmp_path), INTERP)
    assert bundle.main == "flow"
    assert [name for name, _ in bundle.files] == [
        "flow.py",
        "helper.py",
        "pkg/__init__.py",
        "pkg/inner.py",
    ]
    data = bundle.encode()
    assert is_bundle(data)
    assert not data.startswith(b"\0asm")
    assert decode(data) == bundle


def test_the_same_files_give_the_same_hash_and_a_change_another(tmp_path: Path) -> None:
    source = _folder(tmp_path)
    first = collect(source, INTERP)
    assert collect(source, INTERP).digest == first.digest
    assert collect(source, "cd" * 32).digest != first.digest  # another interpreter
    (tmp_path / "helper.py").write_text("X = 'changed'\n")
    assert collect(source, INTERP).digest != first.digest


def test_a_file_named_unimportably_gets_the_fallback_name(tmp_path: Path) -> None:
    source = tmp_path / "my-flow.py"
    source.write_text("pass\n")
    bundle = collect(source, INTERP)
    assert bundle.main == FALLBACK_MAIN
    assert bundle.files == ((f"{FALLBACK_MAIN}.py", "pass\n"),)


def test_a_file_beside_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    source = _folder(tmp_path)
    (tmp_path / "latin.py").write_bytes(b"X = '\xe9'\n")
    with pytest.raises(BuildError, match=r"^latin\.py: not a UTF-8 Python file$"):
        collect(source, INTERP)


@pytest.mark.parametrize(
    "data",
    [
        b"durable-python-bundle 1\nnot json\n",
        b'durable-python-bundle 1\n{"interpreter":"x","main":"m","files":[["a.py",9]]}\nshort',
        b'durable-python-bundle 1\n{"main":"m","files":[]}\n',
        b'durable-python-bundle 1\n{"interpreter":"x","main":"m","files":[["a.py",-1]]}\n',
        b'durable-python-bundle 1\n{"interpreter":"x","main":"m","files":[["a.py",1]]}\n\xff',
    ],
)
def test_a_damaged_bundle_is_refused(data: bytes) -> None:
    with pytest.raises(ComponentError, match="not a well-formed workflow bundle"):
        decode(data)


def test_a_kept_bundle_is_found_by_hash_and_a_damaged_one_is_not(tmp_path: Path) -> None:
    bundle = Bundle(interpreter=INTERP, main="m", files=(("m.py", "pass\n"),))
    assert kept(tmp_path, bundle.digest) is None
    keep(tmp_path, bundle.encode())
    assert kept(tmp_path, bundle.digest) == bundle
    path = tmp_path / "bundles" / f"{bundle.digest}.bundle"
    path.write_bytes(bundle.encode() + b"tampered")
    assert kept(tmp_path, bundle.digest) is None


def test_kept_bundles_are_under_the_cache_bound(tmp_path: Path) -> None:
    from durable.host._cache_files import evict

    old = Bundle(interpreter=INTERP, main="m", files=(("m.py", "x = 1\n" * 1000),))
    keep(tmp_path, old.encode())
    path = tmp_path / "bundles" / f"{old.digest}.bundle"
    os.utime(path, (1, 1))  # used long ago
    new = Bundle(interpreter=INTERP, main="m", files=(("m.py", "x = 2\n" * 1000),))
    keep(tmp_path, new.encode())
    evict(tmp_path, len(new.encode()) + 100)
    assert kept(tmp_path, old.digest) is None
    assert kept(tmp_path, new.digest) == new
