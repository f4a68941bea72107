"""`python -m benchmarks.peer_dbos` without DBOS Transact: one line saying how to get it.

DBOS is not a dependency of durable and CI does not install it, so the comparison is
not run here; only its refusal is checked. The import is hidden with a `sys.modules`
block, so the check holds (and can fail) whether or not dbos is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# `None` in sys.modules makes `import dbos` raise ImportError, as if not installed.
_HIDDEN = (
    "import runpy, sys\n"
    "sys.modules['dbos'] = None\n"
    "sys.argv = ['peer_dbos', '--quick', '--backend', 'sqlite']\n"
    "runpy.run_module('benchmarks.peer_dbos', run_name='__main__', alter_sys=True)\n"
)


def test_without_dbos_one_line_and_a_failure() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HIDDEN],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install dbos" in lines[0]
    assert done.stdout == ""
