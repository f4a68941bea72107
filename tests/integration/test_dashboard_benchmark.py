"""The dashboard benchmark keeps working: a small run reports every page, on both
backends. (Speed is what `python -m benchmarks.dashboard` reports, not asserted here.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli_env

pytestmark = pytest.mark.slow


def test_a_small_run_reports_every_page(backend_url: str, tmp_path: Path) -> None:
    out = tmp_path / "pages.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.dashboard", "--tasks", "500", "--loads", "3",
         "--db", backend_url, "--json", str(out)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["tasks"] == 500
    assert len(report["pages"]) == 10
    for page, figures in report["pages"].items():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], page
        assert math.isfinite(figures["p99_ms"]), page
    assert "tasks, newest page" in result.stdout
