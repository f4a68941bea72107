"""`durable worker --processes N`: one supervisor, N worker processes.

A Python worker runs its guests on threads but its own loop, the host calls and the
store on one interpreter: one process keeps about one core busy. The supervisor
starts N ordinary `durable worker` processes on the same database (each its own
worker, with its own id and leases, claiming with the same atomic claim as any other)
and looks after them. It loads no wasmtime and touches no database itself.

* **Settings** reach the children through their `DURABLE_*` environment variables,
  not their command lines, so a database URL with a password is not shown by `ps`.
* **Stopping**: SIGTERM or SIGINT to the supervisor is passed on as SIGTERM to every
  child, which hands its tasks back as a single worker does; a second signal is passed
  on too (children then exit at once, leaving their tasks to their leases). The
  children run in their own session, so a Ctrl-C at the terminal reaches them only
  through the supervisor, once.
* **A child that dies** (killed, crashed) is started again, after a pause that grows
  (up to `MAX_BACKOFF`) while children keep dying young. One that exits 0 (idle, with
  `--exit-when-idle`) is not; the supervisor exits when no child is left.
* **A supervisor that dies**: each child holds one end of a socket pair whose other end
  only the supervisor has. When that closes (the supervisor exited or was killed), the
  child exits at once, like a killed worker: no orphaned workers keep running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

log = logging.getLogger("durable.worker")

#: The environment variable that hands a child its end of the socket pair (an fd).
SUPERVISOR_FD_ENV = "DURABLE_SUPERVISOR_FD"
#: `--metrics-port`'s variable: each child serves on the port plus its slot.
METRICS_PORT_ENV = "DURABLE_METRICS_PORT"
#: A child that lived less than this counts as dying young: the next start waits longer.
YOUNG = 10.0
#: The longest pause before starting a child again.
MAX_BACKOFF = 30.0


#: Where a cgroup's CPU quota is read from: v2's `cpu.max`, v1's quota and period.
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


def default_processes() -> int:
    """The cores this process may use: those it may run on, fewer if its cgroup's CPU
    quota allows less (a container limited to 2 CPUs on a 64-core host runs 2
    processes, not 64)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, cores if quota is None else min(cores, quota))


def cgroup_cpu_quota() -> int | None:
    """The CPUs this process's cgroup may use, rounded up; None when unlimited or not
    known."""
    try:
        return quota_cpus(CGROUP_V2_CPU_MAX.read_text().split())
    except (OSError, ValueError):
        pass
    try:
        quota = (CGROUP_V1_CPU / "cpu.cfs_quota_us").read_text().strip()
        period = (CGROUP_V1_CPU / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    try:
        return quota_cpus([quota, period])
    except ValueError:
        return None


def quota_cpus(fields: Sequence[str]) -> int | None:
    """CPUs from a quota and a period in microseconds ("max" or a negative quota: no
    limit), rounded up.

    Raises:
        ValueError: not a quota and a period.
    """
    quota, period = fields  # ValueError unless exactly two
    if quota == "max" or int(quota) < 0:
        return None
    return max(1, -(-int(quota) // int(period)))


@dataclass
class _Child:
    slot: int
    process: Process | None = None
    lifeline: socket.socket | None = None  # the supervisor's end of the socket pair
    started: float = 0.0
    backoff: float = 0.0
    done: bool = False  # exited 0: not started again
    restarts: int = 0
    code: int = 0  # how its last process exited


@dataclass
class Supervisor:
    """Runs `processes` copies of `command` until stopped.

    Args:
        command: a worker's command line (`python -m durable worker --processes 1 ...`).
        env: the children's environment (the settings are in it). A metrics port in it
            is the first child's; the child in slot k serves on that port plus k,
            since one port can have only one listener.
        processes: how many children.
    """

    command: Sequence[str]
    env: Mapping[str, str]
    processes: int
    children: list[_Child] = field(default_factory=list)
    stopping: bool = False
    _wake: anyio.Event = field(default_factory=anyio.Event)

    async def run(self) -> int:
        """Start the children, keep them running, stop them on a signal; the exit code."""
        self.children = [_Child(slot=i) for i in range(self.processes)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals, tg)
            async with anyio.create_task_group() as kids:
                for child in self.children:
                    kids.start_soon(self._keep, child)
            tg.cancel_scope.cancel()
        # 0 when every slot's last process ended well (idle, or handed its tasks back).
        return 0 if all(c.code == 0 for c in self.children) else 1

    async def _keep(self, child: _Child) -> None:
        """Run one child slot: start, wait, and start again while it dies."""
        while not self.stopping:
            if child.backoff:
                with anyio.move_on_after(child.backoff):
                    await self._wake.wait()
                if self.stopping:
                    return
            code = child.code = await self._run_once(child)
            if code == 0:
                child.done = True
                return
            if self.stopping:
                return
            lived = time.monotonic() - child.started
            child.backoff = 0.0 if lived >= YOUNG else min(max(child.backoff * 2, 0.5), MAX_BACKOFF)
            child.restarts += 1
            log.warning(
                "worker process %d (slot %d) exited with %s; starting another%s",
                child.process.pid if child.process else -1,
                child.slot,
                _describe(code),
                f" in {child.backoff:g} s" if child.backoff else "",
            )

    async def _run_once(self, child: _Child) -> int:
        ours, theirs = socket.socketpair()
        env = {**self.env, SUPERVISOR_FD_ENV: str(theirs.fileno())}
        if METRICS_PORT_ENV in env:
            env[METRICS_PORT_ENV] = str(int(env[METRICS_PORT_ENV]) + child.slot)
        try:
            process = await anyio.open_process(
                list(self.command),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        finally:
            theirs.close()
        child.process, child.lifeline, child.started = process, ours, time.monotonic()
        try:
            return await process.wait()
        finally:
            ours.close()
            child.lifeline = None

    async def _signals(self, tg: anyio.abc.TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self.stopping:
                    log.info("stopping %d worker process(es)", self._alive())
                self.stopping = True
                self._wake.set()
                self._forward(signal.SIGTERM)
                del signum

    def _alive(self) -> int:
        return sum(1 for c in self.children if c.process and c.process.returncode is None)

    def _forward(self, signum: signal.Signals) -> None:
        for child in self.children:
            process = child.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


async def exit_with_supervisor(fd: int) -> None:
    """In a child: return when the supervisor's end of the lifeline closes."""
    lifeline = socket.socket(fileno=fd)
    lifeline.setblocking(False)
    try:
        while True:
            await anyio.wait_readable(lifeline)
            try:
                if not lifeline.recv(64):
                    return  # EOF: the supervisor is gone
            except BlockingIOError:
                continue
            except OSError:
                return
    finally:
        lifeline.close()


def child_command(extra: Sequence[str]) -> list[str]:
    """The command line of one supervised worker process."""
    return [sys.executable, "-m", "durable", "worker", "--processes", "1", *extra]
