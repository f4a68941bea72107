"""The benchmark suite keeps working: a quick run produces every figure, and sane ones.

This checks that the figures come out (present, positive, finite, p50 <= p99, a verdict
wherever there is a target), not that they are fast: speed is what `python -m
benchmarks` reports. Without Postgres the SQLite half still runs and the test then
skips loudly, or fails under CI=true.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from durable.testing.postgres import skip_or_fail, unavailable_reason

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Every figure each backend must report, by id.
SQLITE_FIGURES = {
    "raw_commits_per_s",
    "recorded_events_per_s",
    "recorded_commits_per_s",
    "replay_events_per_s",
    "workflows_per_s_c1",
    "workflows_per_s_c16",
    "start_latency_p50_ms",
    "start_latency_p99_ms",
    "start_latency_remote_p50_ms",
    "start_latency_remote_p99_ms",
    "cold_start_p50_ms",
    "cold_start_p99_ms",
    "timer_lateness_p50_ms",
    "timer_lateness_p99_ms",
    "rss_idle_mib",
    "rss_active_peak_mib",
    "rss_suspended_peak_mib",
    "wait_p50_ms",
    "wait_workflows_per_s_c16",
    "wait_bundle_p50_ms",
    "wait_bundle_workflows_per_s_c16",
    "wait_remote_p50_ms",
    "pss_per_active_task_mib",
    "workflows_per_s_processes_1",
    "workflows_per_s_processes_2",
    "backlog_per_s_processes_1",
    "backlog_per_s_processes_2",
    "wake_next_instruction_cached_ms",
    "wake_next_instruction_replay_ms",
}
POSTGRES_FIGURES = SQLITE_FIGURES | {"failover_s"}
COMMON_FIGURES = {"build_cold_s", "build_cached_s", "load_cold_s", "load_cached_s"}
#: Figures that must have a target and a verdict on each backend.
TARGETED = {
    "sqlite": {
        "recorded_events_per_s",
        "replay_events_per_s",
        "workflows_per_s_c1",
        "workflows_per_s_c16",
        "start_latency_p99_ms",
        "start_latency_remote_p99_ms",
        "cold_start_p99_ms",
        "timer_lateness_p99_ms",
        "wait_p50_ms",
        "wait_workflows_per_s_c16",
        "wait_bundle_p50_ms",
        "wait_bundle_workflows_per_s_c16",
    },
    "postgres": {
        "recorded_events_per_s",
        "replay_events_per_s",
        "start_latency_p99_ms",
        "start_latency_remote_p99_ms",
        "cold_start_p99_ms",
        "timer_lateness_p99_ms",
        "failover_s",
    },
}
#: (p50, p99) pairs.
PERCENTILES = [
    ("start_latency_p50_ms", "start_latency_p99_ms"),
    ("start_latency_remote_p50_ms", "start_latency_remote_p99_ms"),
    ("cold_start_p50_ms", "cold_start_p99_ms"),
    ("timer_lateness_p50_ms", "timer_lateness_p99_ms"),
]
# Lateness can be a hair below zero (clock granularity); everything else is positive.
MAY_BE_NEAR_ZERO = {"timer_lateness_p50_ms", "timer_lateness_p99_ms"}


def problems(payload: dict[str, Any], backends: list[str]) -> list[str]:
    """Everything wrong with a benchmark JSON report; [] when it is sane."""
    found: list[str] = []
    expected = {"sqlite": SQLITE_FIGURES, "postgres": POSTGRES_FIGURES}
    groups: dict[str, list[dict[str, Any]]] = {
        name: payload.get("backends", {}).get(name, []) for name in backends
    }
    groups["common"] = payload.get("common", [])
    for group, rows in groups.items():
        by_id = {row["id"]: row for row in rows}
        want = COMMON_FIGURES if group == "common" else expected[group]
        for missing in sorted(want - by_id.keys()):
            found.append(f"{group}: {missing} missing")
        for fid, row in by_id.items():
            value = row.get("value")
            if not isinstance(value, int | float) or not math.isfinite(value):
                found.append(f"{group}: {fid} = {value!r} is not a finite number")
                continue
            floor = -1.0 if fid in MAY_BE_NEAR_ZERO else 0.0
            if value < floor or (floor == 0.0 and value == 0.0):
                found.append(f"{group}: {fid} = {value!r} is not positive")
            if row.get("target") and not isinstance(row.get("met"), bool):
                found.append(f"{group}: {fid} has a target but no verdict")
        for fid in TARGETED.get(group, set()):
            if fid in by_id and not by_id[fid].get("target"):
                found.append(f"{group}: {fid} has no target")
        for p50, p99 in PERCENTILES:
            if p50 in by_id and p99 in by_id and by_id[p50]["value"] > by_id[p99]["value"]:
                found.append(f"{group}: {p50} > {p99}")
    return found


@pytest.mark.slow
def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    """`python -m benchmarks --quick --backend all --json OUT` works end to end."""
    reason = unavailable_reason()
    backends = ["sqlite", "postgres"] if reason is None else ["sqlite"]
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--quick",
            "--backend", "all" if reason is None else "sqlite",
            "--json", str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=360,  # a bound on a hang: (k) and (l) start worker processes too
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    assert sorted(payload["backends"]) == sorted(backends)
    assert problems(payload, backends) == []
    for backend in backends:
        assert f"\n{backend}\n" in proc.stdout
    for figure in ("recorded events/s", "replay events/s", "build, cold (componentize-py)"):
        assert figure in proc.stdout
    if reason is not None:
        skip_or_fail(reason)  # the SQLite half passed; Postgres was not measured


def _report() -> dict[str, Any]:
    """A minimal sane report for one SQLite backend."""
    rows = [{"id": fid, "value": 1.0, "target": "", "met": None} for fid in sorted(SQLITE_FIGURES)]
    for row in rows:
        if row["id"] in TARGETED["sqlite"]:
            row["target"], row["met"] = "x", True
    common = [{"id": fid, "value": 1.0, "target": "", "met": None} for fid in COMMON_FIGURES]
    return {"backends": {"sqlite": rows}, "common": common}


def _set(report: dict[str, Any], fid: str, **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    for row in changed["backends"]["sqlite"]:
        if row["id"] == fid:
            row.update(fields)
    return changed


def test_problems_accepts_a_sane_report() -> None:
    assert problems(_report(), ["sqlite"]) == []


@pytest.mark.parametrize(
    ("fid", "fields", "complaint"),
    [
        ("replay_events_per_s", {"value": math.nan}, "not a finite number"),
        ("replay_events_per_s", {"value": math.inf}, "not a finite number"),
        ("workflows_per_s_c1", {"value": 0.0}, "not positive"),
        ("rss_idle_mib", {"value": -3.0}, "not positive"),
        ("start_latency_p50_ms", {"value": 2.0}, "start_latency_p50_ms > start_latency_p99_ms"),
        ("timer_lateness_p99_ms", {"met": None}, "has a target but no verdict"),
        ("replay_events_per_s", {"target": "", "met": None}, "has no target"),
    ],
)
def test_problems_catches_insane_figures(fid: str, fields: dict[str, Any], complaint: str) -> None:
    found = problems(_set(_report(), fid, **fields), ["sqlite"])
    assert any(complaint in line for line in found), found


def test_problems_catches_a_missing_figure() -> None:
    report = _report()
    report["backends"]["sqlite"] = [
        row for row in report["backends"]["sqlite"] if row["id"] != "failover_s"
    ]
    assert problems(report, ["sqlite"]) == []  # not a SQLite figure
    assert any("failover_s missing" in p for p in problems(
        {"backends": {"postgres": report["backends"]["sqlite"]}, "common": report["common"]},
        ["postgres"],
    ))  # fmt: skip
