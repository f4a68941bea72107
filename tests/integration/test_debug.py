"""`durable debug`: a task's history replayed in CPython, stopping at a breakpoint with
pdb driven non-interactively, and the first divergence reported as replay does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.helpers import WORKFLOWS, cli_env, durable_cmd, run_cli


def test_pdb_stops_in_the_workflow_with_the_recorded_values(tmp_path: Path) -> None:
    source = tmp_path / "debug_me.py"
    shutil.copyfile(WORKFLOWS / "debug_me.py", source)
    db = str(tmp_path / "debug.db")
    ran = run_cli("run", str(source), "--input", '"apple"', "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    recorded = json.loads(ran.stdout.splitlines()[-1])

    proc = subprocess.run(
        durable_cmd("debug", "1", str(source), "--db", db),
        cwd=tmp_path,
        env=cli_env(DEBUG_ME="1"),
        input="p cents, started\nwhere\nc\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # pdb stopped in the workflow's own frame, at the line after the breakpoint ...
    assert f"> {source}(24)main()" in out, out
    assert '-> durable.set_status("cents", cents)' in out
    # ... where the step's result and the clock reading are the recorded ones.
    assert f"(Pdb) (500, {recorded['started']!r})" in out, out
    head, _, result = proc.stderr.splitlines()[-1].partition(" then completes: ")
    assert head == "task 1 replays cleanly (3 events),"
    replayed = json.loads(result)
    # Random draws are CPython's own here (README, "Debugging"); the rest is recorded.
    assert {k: replayed[k] for k in ("cents", "started")} == {
        k: recorded[k] for k in ("cents", "started")
    }


def test_the_first_divergence_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "debug_me.py"
    shutil.copyfile(WORKFLOWS / "debug_me.py", source)
    db = str(tmp_path / "debug.db")
    ran = run_cli("run", str(source), "--input", '"pear"', "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    changed = tmp_path / "changed.py"
    changed.write_text(source.read_text().replace("price(item)", 'price(item + "s")'))
    proc = run_cli("debug", "1", str(changed), "--db", db, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "task 1 diverges: nondeterminism at event 0: history recorded 'step price'"
    )
    missing = run_cli("debug", "1", "nope.py", "--db", db, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "error: nope.py: no such file\n"
