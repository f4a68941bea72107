"""`durable check`: crash-test a user's workflow the way the property suite tests ours.

The workflow runs once to its end (the reference), once more with the same seed (to
learn which values are live: they differ between two clean runs, like clock readings),
and then again for every write that carries its history, crashed before the write and
after it, and resumed by a fresh worker each time (`CrashingStore`, in process). Each
crashed run must end as the reference did: the same state, result, error and output
(live ones excepted), the same durable calls in the same order, the same recorded
values, and no effect performed more often. Each ended history is also replayed against
the code (`Replayer`): a replay that diverges, or ends otherwise, means the workflow read
a value outside its history (`durable.info().attempt`, a C extension's clock).

HTTP requests are counted through `durable.host.http.REQUEST_HOOK`. The reference run
performs them; the other runs get the reference's answers (the n-th request to a URL,
the n-th answer), unless `live_http`, so that checking a workflow does not call a
service dozens of times. A crashed run that makes more requests than the reference
repeated an effect: a request inside a step (unrecorded, covered by the step) is sent
again when the step's record was lost with the crash. SQL effects are in the history
(one event per transaction), so the event comparison covers them.

A task that suspends with no timer to wake it soon (it waits for a notification or a
child, or sleeps longer than `WAIT_HORIZON`) is compared up to there.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from durable.bundle import is_bundle
from durable.bundle import keep as keep_bundle
from durable.client import Client
from durable.core.model import Event, NewTask, Stream, Task, TaskState
from durable.host import http as host_http
from durable.host.config import HostConfig
from durable.host.runtime import Runtime
from durable.loader import runs_on
from durable.storage.base import Store
from durable.testing.faults import CrashingStore, SimulatedCrash, Write
from durable.worker import Worker, WorkerConfig

__all__ = ["CheckReport", "Difference", "check_workflow"]

#: A bound on one run: a hang, not a speed limit.
RUN_TIMEOUT = 600.0
#: A task suspended until later than this (seconds) is compared up to its wait;
#: sooner timers are waited out.
WAIT_HORIZON = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """What one run of the workflow left: its task, history, stdout and requests."""

    task: Task
    history: list[Event]
    stdout: bytes
    requests: int
    replay: str | None = None  # why replaying its history differs, if it does


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """One way a crashed run departed from the reference."""

    crash_point: str  # e.g. "crash before write 2 (append of events [1])"
    what: str  # one line


@dataclass(slots=True, kw_only=True)
class CheckReport:
    """What `check_workflow` found."""

    entry: str
    writes: int = 0  # the writes of the reference run: each is crashed before and after
    runs: int = 0  # runs made in all
    requests: int = 0  # HTTP requests of the reference run
    seconds: float = 0.0
    end: str = ""  # how the reference ended: "complete", "failed", "waits" ...
    live: list[str] = field(default_factory=list)  # what differs between two clean runs
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every crashed run ended as the reference did."""
        return not self.differences

    def lines(self) -> list[str]:
        """The report as `durable check` prints it."""
        head = (
            f"{self.runs} runs: the reference ({self.end}, {self.requests} HTTP "
            f"request(s)), then crashed before and after each of its {self.writes} writes, "
            f"in {self.seconds:.1f}s"
        )
        out = [head]
        if self.live:
            out.append(
                "live, so not compared (differs between two clean runs): " + ", ".join(self.live)
            )
        out += [f"{d.crash_point}: {d.what}" for d in self.differences]
        out.append("ok: every crashed run ended as the reference did" if self.ok else "FAILED")
        return out


class _Requests:
    """The HTTP hook of a check: counts requests; records or replays their answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recorded: dict[str, list[Any]] = defaultdict(list)
        self.count = 0
        self.answer_from_recording = False
        self._seen: dict[str, int] = defaultdict(int)

    def reset(self, *, answer: bool) -> None:
        with self.lock:
            self.count = 0
            self._seen.clear()
            self.answer_from_recording = answer

    def __call__(self, request: host_http.Request, config: HostConfig) -> host_http.Payload:
        key = request.label()
        with self.lock:
            self.count += 1
            n = self._seen[key]
            self._seen[key] += 1
            answers = self.recorded.get(key, [])
            if self.answer_from_recording and answers:
                payload: host_http.Payload = answers[min(n, len(answers) - 1)]
                return payload
        payload = host_http.perform_request(host_http.shared_client(), request, config)
        with self.lock:
            if not self.answer_from_recording:
                self.recorded[key].append(payload)
        return payload


@contextmanager
def _hooked(requests: _Requests) -> Iterator[None]:
    if host_http.REQUEST_HOOK:
        raise RuntimeError("another durable check is running in this process")
    host_http.REQUEST_HOOK.append(requests)
    try:
        yield
    finally:
        host_http.REQUEST_HOOK.clear()


def _only_crashes(exc: BaseException) -> bool:
    """Whether `exc` is our simulated crash (possibly grouped, or what it interrupted)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_crashes(e) for e in exc.exceptions)
    cancelled = anyio.get_cancelled_exc_class()
    return isinstance(exc, SimulatedCrash | cancelled)


class _Checker:
    def __init__(
        self, store: Store, runtime: Runtime, workflow_hash: str, spec: NewTask, *, live: bool
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.workflow_hash = workflow_hash
        self.spec = spec
        self.live_http = live
        self.requests = _Requests()
        self.runs = 0

    def _worker(self, store: Store) -> Worker:
        config = WorkerConfig(concurrency=1, exit_when_idle=True, host=self.runtime.config)
        return Worker(store, config, runtime=self.runtime)

    async def _settled(self, task_id: int) -> bool:
        """Whether the task is done for a check: ended, or waiting with no timer."""
        task = await self.store.get_task(task_id)
        if task.state.is_terminal:
            return True
        if task.state is TaskState.SUSPENDED:
            if task.wakeup_at is None:
                return True
            delay = (task.wakeup_at - datetime.now(UTC)).total_seconds()
            if delay > WAIT_HORIZON:
                return True  # a long wait (a day's timeout): compared up to here
            await anyio.sleep(max(0.0, delay) + 0.001)
        else:
            await anyio.sleep(0.01)
        return False

    async def _to_end(self, store: Store, task_id: int) -> None:
        with anyio.fail_after(RUN_TIMEOUT):
            while True:
                await self._worker(store).run()
                if await self._settled(task_id):
                    return

    async def launch(self) -> Task:
        self.runs += 1
        return await self.store.create_task(self.spec)

    async def finish(self, task_id: int) -> Run:
        task = await self.store.get_task(task_id)
        logs = await self.store.read_logs(task_id)
        return Run(
            task=task,
            history=await self.store.load_history(task_id),
            stdout=b"".join(c.data for c in logs if c.stream is Stream.STDOUT),
            requests=self.requests.count,
        )

    async def clean_run(self, *, answer: bool) -> tuple[Run, list[Write]]:
        self.requests.reset(answer=answer)
        task = await self.launch()
        counting = CrashingStore(self.store, crash_at=None, only_task=task.id)
        await self._to_end(counting, task.id)
        return await self.finish(task.id), counting.writes

    async def crashed_run(self, crash_at: int, *, after: bool) -> Run:
        self.requests.reset(answer=not self.live_http)
        task = await self.launch()
        crashing = CrashingStore(self.store, crash_at=crash_at, after=after, only_task=task.id)
        dead: str | None = None
        with anyio.fail_after(RUN_TIMEOUT):
            while dead is None:
                worker = self._worker(crashing)
                try:
                    await worker.run()
                except BaseException as exc:
                    if not (crashing.crashed and _only_crashes(exc)):
                        raise
                    dead = worker.id
                    break
                if await self._settled(task.id):
                    break  # fewer writes this time than the crash point
        if dead is not None:
            await self.store.remove_worker(dead)  # what a live peer does for a dead one
            await self._to_end(self.store, task.id)
        return await self.finish(task.id)


def _end(task: Task) -> str:
    if task.state is TaskState.SUSPENDED:
        return "waits"
    return task.state.value


def _error(task: Task) -> tuple[str, str] | None:
    if task.error is None:
        return None
    value = json.loads(task.error)
    return (str(value.get("kind")), str(value.get("message")))


def _live(first: Run, second: Run) -> list[str]:
    """What differs between two clean runs with one seed: not compared afterwards."""
    live = []
    if first.task.result != second.task.result:
        live.append("the result")
    if first.stdout != second.stdout:
        live.append("the output")
    for a, b in zip(first.history, second.history, strict=False):
        # A digest may vary too: a child's join names the child, a new task each run.
        if a.payload != b.payload or a.digest != b.digest:
            live.append(_event(a))
    return live


def _event(event: Event) -> str:
    return f"event {event.index} ({event.label})"


def _compare(point: str, ref: Run, run: Run, live: Sequence[str]) -> list[Difference]:
    found: list[str] = []
    if _end(run.task) != _end(ref.task):
        found.append(f"ended {_end(run.task)}, the reference {_end(ref.task)}")
    if _error(run.task) != _error(ref.task):
        found.append(f"error {_error(run.task)}, the reference's {_error(ref.task)}")
    if "the result" not in live and run.task.result != ref.task.result:
        found.append(f"result {run.task.result}, the reference's {ref.task.result}")
    if "the output" not in live and run.stdout != ref.stdout:
        found.append(f"output {run.stdout[-80:]!r}, the reference's {ref.stdout[-80:]!r}")
    calls = [(e.label, None if _event(e) in live else e.digest) for e in run.history]
    ref_calls = [(e.label, None if _event(e) in live else e.digest) for e in ref.history]
    if calls != ref_calls:
        at = next(
            (i for i, (a, b) in enumerate(zip(calls, ref_calls, strict=False)) if a != b),
            min(len(calls), len(ref_calls)),
        )
        found.append(f"durable calls differ from event {at} on")
    else:
        for a, b in zip(run.history, ref.history, strict=True):
            if a.payload != b.payload and _event(a) not in live:
                found.append(f"event {a.index} ({a.label}) recorded another value")
                break
    if run.requests > ref.requests:
        found.append(
            f"effect repeated: {run.requests} HTTP requests, the reference made {ref.requests}"
        )
    if run.replay is not None:
        found.append(run.replay)
    return [Difference(crash_point=point, what=what) for what in found]


async def _replayed(store: Store, runtime: Runtime, run: Run) -> Run:
    """`run` with why a replay of its history against its code differs, if it does."""
    from durable.client import Client
    from durable.replayer import Replayer

    replayer = Replayer(runtime=runtime)
    report = await Client(store).replay(run.task.id, replayer=replayer)
    why = None
    if report.divergence is not None:
        d = report.divergence
        why = f"replay diverges at event {d.index}: recorded {d.expected}, found {d.found}"
    elif report.same_end is False:
        why = "replay ends otherwise: the workflow read a value outside its history"
    return Run(
        task=run.task, history=run.history, stdout=run.stdout, requests=run.requests, replay=why
    )


async def check_workflow(
    store: Store,
    wasm: bytes,
    *,
    input: str = "null",
    entry: str = "",
    live_http: bool = False,
    config: HostConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Crash-test the workflow `wasm` on `store` (see the module docstring).

    The tasks it creates stay in `store`, named `check`; use a scratch database.
    """
    started = time.monotonic()
    # Registered as `durable run` does: a Python workflow's bundle brings its interpreter.
    workflow_hash = await Client(store).register(wasm, name="check", compile=False)
    spec = NewTask(
        name="check",
        workflow_hash=workflow_hash,
        input=input,
        entry=entry,
        seed=secrets.randbits(62) or 1,
    )
    report = CheckReport(entry=entry)
    runtime = Runtime(config or HostConfig(suspend_after=0.5))
    checker = _Checker(store, runtime, workflow_hash, spec, live=live_http)
    # The workers die on purpose here: their warnings about dead peers are noise.
    worker_log = logging.getLogger("durable.worker")
    level = worker_log.level
    worker_log.setLevel(logging.ERROR)
    try:
        # Compiled first: a worker hands a task back while its binary compiles, and
        # that hand-back would be one more write, in the reference run only.
        if is_bundle(wasm):  # found in this machine's cache, not fetched after a hand-back
            keep_bundle(runtime.cache.cache_dir, wasm)
        await anyio.to_thread.run_sync(lambda: runtime.cache.load(*runs_on(wasm)))
        with _hooked(checker.requests):
            ref, writes = await checker.clean_run(answer=False)
            ref = await _replayed(store, runtime, ref)
            report.requests, report.end, report.writes = ref.requests, _end(ref.task), len(writes)
            again, _ = await checker.clean_run(answer=not live_http)
            report.live = _live(ref, again)
            if ref.replay is not None:
                report.differences.append(Difference(crash_point="no crash", what=ref.replay))
            for i, write in enumerate(writes):
                for after in (False, True):
                    what = f"{write.method} of events {list(write.events)}"
                    point = f"crash {'after' if after else 'before'} write {i} ({what})"
                    if progress is not None:
                        progress(point)
                    run = await _replayed(store, runtime, await checker.crashed_run(i, after=after))
                    report.differences += _compare(point, ref, run, report.live)
    finally:
        worker_log.setLevel(level)
        runtime.close()
    report.runs = checker.runs
    report.seconds = time.monotonic() - started
    return report
