"""`durable worker`: run every unfinished task in a database."""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from durable.cli._common import (
    EXIT_FAILED,
    ByteSize,
    configure_logging,
    db_option,
    fail,
    guest_db_option,
    handle_errors,
    hard_exit,
    host_config_from_options,
    max_events_option,
    max_output_option,
    max_payload_option,
    memory_limit_option,
    run_async,
    suspend_after_option,
)
from durable.host.config import HostConfig, cache_max_bytes
from durable.worker.config import WorkerConfig

if TYPE_CHECKING:
    from durable.worker.worker import Worker

_WORKER = WorkerConfig()


@click.command()
@db_option
@guest_db_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_WORKER.concurrency,
    show_default=True,
    envvar="DURABLE_CONCURRENCY",
    show_envvar=True,
    metavar="N",
    help="How many tasks run at once.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=0),
    default=0,
    show_default="0: one per core",
    envvar="DURABLE_PROCESSES",
    show_envvar=True,
    metavar="N",
    help="Run N worker processes under one supervisor, to use N cores (0: one per core "
    "this process may use). Each runs --concurrency tasks and an equal share of "
    "--instance-cache; a process that dies is started again. 1: no supervisor.",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(min=0.5),
    default=_WORKER.lease_seconds,
    show_default=True,
    envvar="DURABLE_LEASE_SECONDS",
    show_envvar=True,
    metavar="SECONDS",
    help="A task whose worker has not renewed its lease for this long passes to another "
    "worker. Renewed every third of that, and at least once a second.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=_WORKER.poll_interval,
    show_default=True,
    envvar="DURABLE_POLL_INTERVAL",
    show_envvar=True,
    metavar="SECONDS",
    help="Longest idle wait between looks for work (a safety net: new work wakes the "
    "worker at once).",
)
@suspend_after_option
@memory_limit_option
@max_events_option
@max_payload_option
@max_output_option
@click.option(
    "--cancel-grace",
    type=click.FloatRange(min=0),
    default=HostConfig().cancel_grace,
    show_default=True,
    envvar="DURABLE_CANCEL_GRACE",
    show_envvar=True,
    metavar="SECONDS",
    help="After a cancellation, how long a running workflow may take to reach its next "
    "durable call (where it is told) before it is stopped where it is.",
)
@click.option(
    "--instance-cache",
    type=ByteSize(allow_zero=True),
    default="512M",
    show_default=True,
    envvar="DURABLE_INSTANCE_CACHE",
    show_envvar=True,
    metavar="SIZE",
    help="Memory for workflow instances kept live after they suspend (e.g. 512M; 0: "
    "none), so that a task woken on this worker goes on without replaying its history.",
)
@click.option(
    "--affinity-grace",
    type=click.FloatRange(min=0),
    default=_WORKER.affinity_grace,
    show_default=True,
    envvar="DURABLE_AFFINITY_GRACE",
    show_envvar=True,
    metavar="SECONDS",
    help="A woken task whose instance another worker process keeps live is left to that "
    "process for this long, so that it goes on without replay; then anyone takes it.",
)
@click.option(
    "--max-worker-deaths",
    type=click.IntRange(min=1),
    default=_WORKER.max_worker_deaths,
    show_default=True,
    envvar="DURABLE_MAX_WORKER_DEATHS",
    show_envvar=True,
    metavar="N",
    help="A task that was running when its worker died N times in a row fails "
    "(Quarantined) instead of taking down the next worker.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    envvar="DURABLE_STOP_TIMEOUT",
    show_envvar=True,
    metavar="SECONDS",
    help="After SIGTERM or SIGINT, how long running tasks get to be handed back; past it "
    "(or at a second signal) the worker exits and leaves them to their leases.",
)
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Exit once no task is runnable or running and no timer is due soon.",
)
@click.option(
    "--migrate",
    is_flag=True,
    help="Upgrade the database schema if it is out of date (always done for SQLite).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    envvar="DURABLE_METRICS_PORT",
    show_envvar=True,
    metavar="PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics while the worker runs "
    "(with --processes N: process k on PORT+k, k from 0).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="DURABLE_METRICS_HOST",
    show_envvar=True,
    metavar="HOST",
    help="The address --metrics-port listens on (0.0.0.0 for every interface).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every task attempt.")
@handle_errors
def worker(
    db: str | None,
    guest_db: str | None,
    concurrency: int,
    processes: int,
    lease_seconds: float,
    poll_interval: float,
    suspend_after: float,
    memory_limit: int,
    max_events: int,
    max_payload: int,
    max_output: int,
    cancel_grace: float,
    instance_cache: int,
    affinity_grace: float,
    max_worker_deaths: int,
    stop_timeout: float,
    exit_when_idle: bool,
    migrate: bool,
    metrics_port: int | None,
    metrics_host: str,
    verbose: bool,
) -> None:
    """Resume and run every unfinished task. Stops gracefully on SIGTERM or SIGINT.

    Running tasks are handed back on the way out, to be resumed by the next worker.
    One still busy after --stop-timeout (in a long HTTP request, say), or any at a
    second signal, is left to its lease instead, as if the worker had been killed.
    Every setting can also come from its DURABLE_* environment variable.
    """
    configure_logging(verbose)
    count = processes or _cores()
    if count > 1:
        _supervise(count, db, guest_db, instance_cache)
    config = WorkerConfig(
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        max_worker_deaths=max_worker_deaths,
        affinity_grace=affinity_grace,
        exit_when_idle=exit_when_idle,
        host=host_config_from_options(
            suspend_after=suspend_after,
            memory_limit=memory_limit,
            max_events=max_events,
            max_payload=max_payload,
            max_output=max_output,
            cancel_grace=cancel_grace,
            instance_cache=instance_cache,
        ),
    )
    cache_max_bytes(config.host.cache_max_bytes)  # a bad setting fails before the database
    from durable.tracing import configure_from_environment

    configure_from_environment()  # OTLP export, if OTEL_EXPORTER_OTLP_* asks for it
    from durable.app import serve  # here, not at the top: `durable --help` loads less

    # --migrate: upgrade any database; without it, the rule of every command.
    run_async(
        functools.partial(
            serve,
            db,
            config,
            migrate=migrate or None,
            guest_url=guest_db,
            alongside=functools.partial(_stop_on_signals, stop_timeout=stop_timeout),
            metrics_address=None if metrics_port is None else (metrics_host, metrics_port),
        )
    )


def _cores() -> int:
    from durable.worker.supervisor import default_processes

    return default_processes()


def _supervise(count: int, db: str | None, guest_db: str | None, cache: int) -> NoReturn:
    """Run `count` copies of this command under a supervisor.

    Every setting with an environment variable goes to the children that way (a
    database password stays off their command lines); the flags without one follow.
    The instance cache is the whole worker's budget: each child keeps its share.
    """
    from durable.worker.supervisor import Supervisor, child_command

    ctx = click.get_current_context()
    env = dict(os.environ)
    flags: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, click.Option) or param.name == "processes" or value is None:
            continue
        if isinstance(param.envvar, str):
            env[param.envvar] = repr(value) if isinstance(value, float) else str(value)
        elif param.is_flag and value:
            flags.append(param.opts[0])
    if db is not None:
        env["DURABLE_DATABASE_URL"] = db
    if guest_db is not None:
        env["DURABLE_GUEST_DATABASE_URL"] = guest_db
    env["DURABLE_INSTANCE_CACHE"] = str(cache // count)
    port = ctx.params.get("metrics_port")
    if port is not None and port + count - 1 > 65535:
        fail(f"--metrics-port {port} with {count} processes needs ports up to {port + count - 1}")
    supervisor = Supervisor(command=child_command(flags), env=env, processes=count)
    sys.exit(run_async(supervisor.run))


async def _stop_on_signals(w: Worker, stop_timeout: float) -> None:
    """SIGTERM or SIGINT: stop gracefully, within `stop_timeout` s; a second one: at once.

    The receiver stays open until the worker has stopped, so that no later signal
    turns into a `KeyboardInterrupt` that unwinds the event loop under running guests.
    Exiting without waiting leaves the tasks still running to their leases: another
    worker resumes them when those lapse, as after a kill.
    """
    import anyio

    from durable.worker.supervisor import SUPERVISOR_FD_ENV, exit_with_supervisor

    # Taken, not read: the supervisor's hand-off, which no process started from here inherits.
    fd = os.environ.pop(SUPERVISOR_FD_ENV, None)
    if fd is not None:  # a supervised process: exit with its supervisor
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signals_only, w, stop_timeout)
            await exit_with_supervisor(int(fd))
            hard_exit(EXIT_FAILED, "the supervisor is gone: exiting at once")
    await _stop_on_signals_only(w, stop_timeout)


async def _stop_on_signals_only(w: Worker, stop_timeout: float) -> None:
    """The signal handling itself (see `_stop_on_signals`)."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            w.stop()
            break
        with anyio.move_on_after(stop_timeout):
            async for _ in signals:
                hard_exit(EXIT_FAILED, "second signal: exiting without waiting for running tasks")
        hard_exit(EXIT_FAILED, f"tasks still running {stop_timeout:g} s after a signal: exiting")
