"""Stress: real worker processes, killed, trapped, signalled and left idle, many times.

No process may end by a signal it was not sent, nor print a panic: issue 12 found
`durable worker --exit-when-idle` dying of SIGABRT, wasmtime having printed "panic in a
function that cannot unwind" from a `tokio-rt-worker` thread (the cause and the fix are
in `durable.host.lifecycle`). Each round runs one scenario in its own SQLite database:

- idle: guests that raise, exhaust memory (in chunks, at once, while printing), overflow
  the stack, and loop on the CPU or print until their timeout stops them; the worker
  exits when idle, right after those traps;
- kill: SIGKILL while guests sleep, loop and print; a second worker resumes and exits
  when idle;
- term, int: SIGTERM or SIGINT while guests loop, print and sleep; they are handed back;
- twice: SIGTERM then SIGINT at once: the worker exits without waiting, still cleanly.

How many rounds follows the Hypothesis profile (`CI=true` selects "ci"; set
HYPOTHESIS_PROFILE=thorough for a long local hunt).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import settings

from durable.core.model import Task, TaskState
from tests.helpers import ROOT, durable_cmd
from tests.integration.limit_tasks import LIMITS, Spec, build, launch, tasks

#: Rounds per profile, and how many run at once. Each round starts one or two workers.
ROUNDS = {"ci": 30, "dev": 30, "thorough": 500}
PARALLEL = 4
SCENARIOS = ("idle", "kill", "term", "int", "twice")
#: Output that must never appear on a worker's stderr.
FORBIDDEN = ("panic", "Fatal Python error", "Traceback")
#: Generous: the CI machine may be three times slower than a laptop.
PROCESS_TIMEOUT = 120.0


def _rounds() -> int:
    return ROUNDS.get(settings.get_current_profile_name(), ROUNDS["dev"])


class Round:
    """One scenario in its own database, with the worker processes it starts."""

    def __init__(self, root: Path, endless: str) -> None:
        self.root = root
        self.endless = endless  # the entry of this round's guest that runs until stopped
        self.db = root / "stress.db"
        self.processes = 0
        self._stderr: dict[int, Path] = {}
        self._started: list[subprocess.Popen[bytes]] = []
        self._ids: list[int] = []
        root.mkdir(parents=True)

    def launch(self, specs: Sequence[Spec]) -> list[int]:
        ids = launch(self.db, specs)
        self._ids += ids
        return ids

    def tasks(self, ids: Sequence[int]) -> list[Task]:
        return tasks(self.db, ids)

    def progress(self, ids: Sequence[int]) -> tuple[list[str], int]:
        """The tasks' states and the first one's event count, read directly (quick)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as conn:
            marks = ",".join("?" * len(ids))
            states = dict(
                conn.execute(f"SELECT id, state FROM durable_task WHERE id IN ({marks})", ids)
            )
            (events,) = conn.execute(
                "SELECT count(*) FROM durable_event WHERE task_id = ?", (ids[0],)
            ).fetchone()
        return [states[i] for i in ids], events

    def wait_until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not check():
            assert time.monotonic() < deadline, f"{self.root.name}: timed out waiting for {what}"
            time.sleep(0.01)

    # -- worker processes -------------------------------------------------------------

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.processes += 1
        n = self.processes
        env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
        with (self.root / f"out{n}").open("wb") as out, (self.root / f"err{n}").open("wb") as err:
            proc = subprocess.Popen(
                durable_cmd("worker", "--db", str(self.db), *args),
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=err,
            )
        self._stderr[proc.pid] = self.root / f"err{n}"
        self._started.append(proc)
        return proc

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        """What `proc` has written on stderr."""
        return self._stderr[proc.pid].read_text(errors="replace")

    def close(self) -> None:
        """Kill whatever this round started and left running (after a failure)."""
        for proc in self._started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def finish(self, proc: subprocess.Popen[bytes], allowed: set[int]) -> None:
        """Wait for `proc`; it must end with an allowed code and a clean stderr."""
        try:
            code = proc.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        err = self.stderr(proc)
        if code is None:
            states = [(t.name, t.state.value) for t in self.tasks(self._ids)]
            raise AssertionError(f"{self.root.name}: worker did not exit ({states}):\n{err}")
        assert code in allowed, f"{self.root.name}: worker exited with {code}:\n{err}"
        found = [word for word in FORBIDDEN if word in err]
        assert not found, f"{self.root.name}: worker printed {found}:\n{err}"


# -- scenarios --------------------------------------------------------------------------

#: Tasks that trap or fail, and the error kind each must end with (None: completes).
TRAPPING = [
    (Spec("raises"), "ValueError"),
    (Spec("hog"), "MemoryLimitExceeded"),
    (Spec("huge", 1 << 30), "MemoryLimitExceeded"),
    (Spec("shout_and_hog"), "MemoryLimitExceeded"),
    (Spec("deep", 200_000), "StackOverflow"),
    (Spec("fine", 1), None),
]
#: Guests that run until stopped: one per round, as each keeps a core busy.
ENDLESS = ("spin", "shout")


def _busy(run: Round, ids: Sequence[int]) -> bool:
    """Every task claimed, and the first (a ticker) a few sleeps in, or ended: the
    guests run. A guest in a CPU loop commits nothing (its events wait for its next
    durable call), so the ticker's committed sleeps are what shows progress.
    """
    states, ticks = run.progress(ids)
    return states[0] == "complete" or (set(states) == {"active"} and ticks >= 3)


def idle(run: Round) -> None:
    # The endless guest's timeout stops it in the watchdog, unless the worker took longer
    # than that to start (then it fails before it runs: still a valid round).
    specs = [spec for spec, _ in TRAPPING] + [Spec(run.endless, timeout=1.5)]
    ids = run.launch(specs)
    proc = run.start("--exit-when-idle", "--memory-limit", "48M", "--concurrency", "4")
    run.finish(proc, {0})
    kinds = [kind for _, kind in TRAPPING] + ["TimeoutError"]
    for task, kind in zip(run.tasks(ids), kinds, strict=True):
        if kind is None:
            assert task.state is TaskState.COMPLETE, task
        else:
            assert task.state is TaskState.FAILED, task
            assert json.loads(task.error or "{}")["kind"] == kind, task.error


def kill(run: Round) -> None:
    ids = run.launch([Spec("ticker", 40), Spec(run.endless, timeout=3.0)])
    proc = run.start("--concurrency", "4")
    run.wait_until(lambda: _busy(run, ids), "guests to run")
    proc.send_signal(signal.SIGKILL)
    run.finish(proc, {-signal.SIGKILL})
    resumed = run.start("--exit-when-idle", "--concurrency", "4")
    run.finish(resumed, {0})
    ticker, *stopped = run.tasks(ids)
    assert (ticker.state, ticker.result) == (TaskState.COMPLETE, '"done"'), ticker
    assert all(t.state is TaskState.FAILED for t in stopped), stopped


def _signalled(run: Round, signals: Sequence[signal.Signals], allowed: set[int]) -> None:
    ids = run.launch([Spec("ticker", 100_000), Spec(run.endless)])
    proc = run.start("--concurrency", "4")
    run.wait_until(lambda: _busy(run, ids), "guests to run")
    for sig in signals:
        proc.send_signal(sig)
    run.finish(proc, allowed)
    if allowed == {0}:  # a graceful stop hands every task back
        assert all(t.state is TaskState.READY for t in run.tasks(ids))


def term(run: Round) -> None:
    _signalled(run, [signal.SIGTERM], {0})


def int_(run: Round) -> None:
    _signalled(run, [signal.SIGINT], {0})


def twice(run: Round) -> None:
    # The second signal makes the worker exit at once (1), unless it was already done.
    _signalled(run, [signal.SIGTERM, signal.SIGINT], {0, 1})


PLAYS: dict[str, Callable[[Round], None]] = {
    "idle": idle,
    "kill": kill,
    "term": term,
    "int": int_,
    "twice": twice,
}


@pytest.mark.timeout(3600)
def test_workers_never_abort(tmp_path: Path) -> None:
    build()
    rounds = _rounds()
    plan = list(itertools.islice(itertools.cycle(SCENARIOS), rounds))
    started = time.monotonic()

    def play(i: int, scenario: str) -> int:
        run = Round(tmp_path / f"{i:04d}-{scenario}", ENDLESS[i // len(SCENARIOS) % 2])
        try:
            PLAYS[scenario](run)
        finally:
            run.close()
        return run.processes

    with ThreadPoolExecutor(PARALLEL) as pool:
        processes = sum(pool.map(play, range(rounds), plan))
    print(f"{rounds} rounds, {processes} worker processes, {time.monotonic() - started:.0f} s")


#: Exits of the focused test below; each one aborted before the fix.
EXIT_RUNS = 3


def test_exit_right_after_close_while_a_guest_prints() -> None:
    """The deterministic form of the abort: wasmtime's threads call into Python (a
    guest's output) while the interpreter exits. `Runtime.close` must stop the guest and
    wait for its output streams to go, so that exiting right after it is safe."""
    for _ in range(EXIT_RUNS):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.integration.guest_at_exit", str(LIMITS)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
        found = [word for word in FORBIDDEN if word in proc.stderr]
        assert not found, proc.stderr
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "closed: True\n"


def test_a_host_call_does_not_hold_up_a_stop(tmp_path: Path) -> None:
    """A guest waiting on a request that gets no answer cannot be stopped; past
    --stop-timeout the worker exits without it (status 1, one line, no panic) and
    leaves its task to its lease."""
    accepted = threading.Event()
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hold() -> None:
            conn, _ = server.accept()
            held.append(conn)  # read nothing, answer nothing
            accepted.set()

        threading.Thread(target=hold, daemon=True).start()
        run = Round(tmp_path / "stall", "spin")
        try:
            (task_id,) = run.launch([Spec("stall", f"http://127.0.0.1:{server.getsockname()[1]}/")])
            proc = run.start("--stop-timeout", "1")
            assert accepted.wait(PROCESS_TIMEOUT), "the workflow never connected"
            proc.send_signal(signal.SIGTERM)
            run.finish(proc, {1})
        finally:
            run.close()
            for conn in held:
                conn.close()
    assert "tasks still running 1 s after a signal: exiting" in run.stderr(proc)
    (task,) = run.tasks([task_id])
    assert task.state is TaskState.ACTIVE  # its lease lapses; another worker resumes it
