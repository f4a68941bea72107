"""Helpers shared by the test tiers: running the CLI, building test workflows."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from durable.builder import build_workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def durable_cmd(*args: str) -> list[str]:
    """The argv that runs the `durable` CLI of this checkout."""
    return [sys.executable, "-m", "durable", *args]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `durable ARGS` in a subprocess and capture its output as text."""
    # The caller's database setting must not leak into a test's subprocess.
    full_env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        durable_cmd(*args),
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def built(source: Path) -> tuple[bytes, str]:
    """Build a workflow (cached) and return its bytes and SHA-256."""
    wasm = build_workflow(source).wasm_path.read_bytes()
    return wasm, hashlib.sha256(wasm).hexdigest()
