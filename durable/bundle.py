"""A Python workflow's source as data: a deterministic bundle, identified by its hash.

With the shared interpreter component (`durable.interpreter`), what makes a Python
workflow is its files, not a component of its own. A bundle holds them: the workflow
file, the `.py` files and packages beside it (what a standalone build bundles), and
the SHA-256 of the interpreter component that runs them. It is stored where workflow
binaries are stored, under its own SHA-256, so a task stays pinned to the exact code
and interpreter it started with.

Layout: the magic line, one line of JSON (`interpreter`, `main`, `files`: a list of
`[name, size]`), then the files' bytes in that order. Sorted names and canonical JSON
make the same files give the same bytes, so the same hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from durable.errors import BuildError, ComponentError
from durable.host._cache_files import write_atomic

MAGIC = b"durable-python-bundle 1\n"
#: The bundle's main module when the file's own name is not importable.
FALLBACK_MAIN = "durable_workflow_main"
#: Names the SDK or the interpreter take: a file with one of them is renamed.
_RESERVED = frozenset(
    {"durable", "durable_app", "wit_world", "componentize_py_types", "componentize_py_runtime"}
)
#: Bounds on what is bundled: beyond these, the folder is not a workflow's own code.
MAX_FILES = 500
MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Bundle:
    """A workflow's source: the interpreter that runs it, its main module, its files."""

    interpreter: str  # SHA-256 hex of the interpreter component
    main: str  # the module imported first
    files: tuple[tuple[str, str], ...]  # (path relative to the folder, text), sorted

    def encode(self) -> bytes:
        """The bundle's canonical bytes."""
        data = [text.encode() for _name, text in self.files]
        header = {
            "interpreter": self.interpreter,
            "main": self.main,
            "files": [[name, len(raw)] for (name, _), raw in zip(self.files, data, strict=True)],
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + head + b"\n" + b"".join(data)

    @property
    def digest(self) -> str:
        """The SHA-256 (hex) of the encoded bundle: the task's workflow hash."""
        return hashlib.sha256(self.encode()).hexdigest()


def is_bundle(data: bytes) -> bool:
    """Whether a stored binary is a bundle (rather than a component)."""
    return data.startswith(MAGIC)


def decode(data: bytes) -> Bundle:
    """Parse a stored bundle.

    Raises:
        ComponentError: not a well-formed bundle.
    """
    try:
        head, _, body = data[len(MAGIC) :].partition(b"\n")
        header = json.loads(head)
        interpreter = header["interpreter"]
        main = header["main"]
        files: list[tuple[str, str]] = []
        at = 0
        for name, size in header["files"]:
            if not isinstance(name, str) or not isinstance(size, int) or size < 0:
                raise ValueError("bad file entry")
            files.append((name, body[at : at + size].decode()))
            at += size
        if at != len(body) or not is_bundle(data):
            raise ValueError("sizes do not add up")
        if not (isinstance(interpreter, str) and isinstance(main, str)):
            raise ValueError("bad header")
    except (ValueError, KeyError, TypeError) as exc:
        raise ComponentError(f"not a well-formed workflow bundle: {exc}") from None
    return Bundle(interpreter=interpreter, main=main, files=tuple(files))


def collect(source: Path, interpreter: str) -> Bundle:
    """The bundle of workflow file `source` (checked already) for `interpreter`.

    Raises:
        BuildError: a file beside it is not UTF-8 or unreadable, or the folder holds
            more than a workflow's own code.
    """
    folder = source.parent
    main = source.stem
    paths = source_files(folder)
    if not main.isidentifier() or main in _RESERVED:
        main = FALLBACK_MAIN
    files: list[tuple[str, str]] = []
    total = 0
    for path in paths:
        name = path.relative_to(folder).as_posix()
        if path == source:
            name = f"{main}.py" if main == FALLBACK_MAIN else name
        elif path.parent == folder and path.stem in _RESERVED:
            continue  # never importable under its name, in a standalone build either
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BuildError(f"{name}: not a UTF-8 Python file") from None
        except OSError as exc:
            raise BuildError(f"{name}: {exc.strerror}") from None
        total += len(text)
        if len(files) >= MAX_FILES or total > MAX_BYTES:
            raise BuildError(
                f"{folder}: more than {MAX_FILES} Python files or {MAX_BYTES // 2**20} MiB "
                "beside the workflow: keep a workflow in a folder of its own"
            )
        files.append((name, text))
    if source not in paths:  # a file without the .py suffix
        files.append((f"{main}.py", source.read_text(encoding="utf-8")))
    files.sort()
    return Bundle(interpreter=interpreter, main=main, files=tuple(files))


def source_files(folder: Path) -> list[Path]:
    """The `.py` files of `folder` and, recursively, of the packages in it, sorted: what
    a workflow in `folder` can import, so what a bundle holds and a build's key covers."""
    return sorted(_files(folder))


def _files(folder: Path) -> list[Path]:
    found = [p for p in folder.glob("*.py") if p.is_file()]
    for child in folder.iterdir():
        if child.is_dir() and child.name.isidentifier() and child.name != "__pycache__":
            found.extend(_package_files(child))
    return found


def _package_files(folder: Path) -> list[Path]:
    found = [p for p in folder.glob("*.py") if p.is_file()]
    if not found:
        return []  # a folder with no Python in it is not a package the workflow imports
    for child in folder.iterdir():
        if child.is_dir() and child.name.isidentifier() and child.name != "__pycache__":
            found.extend(_package_files(child))
    return found


def _kept_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "bundles" / f"{digest}.bundle"


def keep(cache_dir: Path, data: bytes) -> None:
    """Keep a bundle in this machine's cache, where workers here find it without a fetch.

    Best effort: an unwritable cache only means a worker fetches it from the store.
    """
    path = _kept_path(cache_dir, hashlib.sha256(data).hexdigest())
    if path.exists():
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)


def kept(cache_dir: Path, digest: str) -> Bundle | None:
    """The bundle `digest` from this machine's cache, or None (absent or damaged)."""
    try:
        data = _kept_path(cache_dir, digest).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        return None  # damaged: the store has the real one
    try:
        return decode(data)
    except ComponentError:
        return None
