"""The calls the CLI makes, for an application to make too.

The CLI is a layer over this module: each command parses its options and prints, and
what it does is one of these calls. So `durable run` is `Runner.run`, `durable worker`
is `serve`, and the rule for when opening a database may upgrade its schema is
`migrates_on_open`, written once.

    runner = Runner(HostConfig(memory_limit=512 * 1024**2))
    try:
        binary = runner.load(Path("greet.py"))  # built and compiled once per machine
        task = await runner.run(binary, input="Ada", db="sqlite:///app.db")
    finally:
        runner.close()

Nothing here imports wasmtime until a `Runner` is made: an application that only
launches tasks (`open_client`, `durable.Client`) does not load it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from durable.client import Client
from durable.core.model import LogChunk, Task
from durable.host.config import HostConfig
from durable.storage import Store, parse_url
from durable.storage import open_store as _open_store

if TYPE_CHECKING:
    from durable.host.runtime import Runtime
    from durable.loader import WorkflowBinary
    from durable.worker.config import WorkerConfig
    from durable.worker.worker import Worker


#: `Runner.run`'s first pause between looks at its task (it backs off from there).
_FIRST_POLL = 0.005


def migrates_on_open(url: str | None) -> bool:
    """Whether opening the database at `url` upgrades its schema on its own.

    A SQLite file (zero setup) is migrated on first use; a Postgres database is shared
    by processes of several versions, so it is upgraded only on purpose, with
    `durable migrate` or `durable worker --migrate` (`migrate=True` here).
    """
    return parse_url(url).scheme != "postgres"


async def open_store(
    url: str | None = None, *, migrate: bool | None = None, guest_url: str | None = None
) -> Store:
    """`durable.storage.open_store` with the CLI's migrate rule when `migrate` is None."""
    if migrate is None:
        migrate = migrates_on_open(url)
    return await _open_store(url, migrate=migrate, guest_url=guest_url)


async def open_client(
    url: str | None = None, *, migrate: bool | None = None, max_input_bytes: int | None = None
) -> Client:
    """A `Client` on the database at `url`, with the CLI's migrate rule by default."""
    store = await open_store(url, migrate=migrate)
    return Client(store, max_input_bytes=max_input_bytes)


async def serve(
    url: str | None,
    config: WorkerConfig | None = None,
    *,
    migrate: bool | None = None,
    guest_url: str | None = None,
    alongside: Callable[[Worker], Coroutine[Any, Any, None]] | None = None,
    metrics_address: tuple[str, int] | None = None,
) -> None:
    """Run a worker on the database at `url` until it stops: `durable worker`.

    It stops when `Worker.stop()` is called (by `alongside`, which runs beside it and
    is given it: the CLI's signal handler) or, with `exit_when_idle`, when no task is
    left to run. `migrate`: as for `open_store`. `metrics_address`: serve Prometheus
    metrics (`durable.metrics`) at `http://HOST:PORT/metrics` meanwhile.
    """
    from durable.worker.metered import metering
    from durable.worker.worker import Worker

    store = await open_store(url, migrate=migrate, guest_url=guest_url)
    try:
        async with metering(url, store, metrics_address) as (counted, serve_metrics):
            worker = Worker(counted, config)
            async with anyio.create_task_group() as tg:
                if serve_metrics is not None:
                    tg.start_soon(serve_metrics)
                if alongside is not None:
                    tg.start_soon(alongside, worker)
                await worker.run()
                tg.cancel_scope.cancel()
    finally:
        await store.close()


class Runner:
    """Build, launch and run workflows to their end in this process: `durable run`.

    Holds a wasmtime runtime (engine, linker, compiled components): close it.
    """

    def __init__(self, config: HostConfig | None = None) -> None:
        from durable.host.runtime import Runtime  # wasmtime: only for a runner

        self.config = config or HostConfig()
        self.runtime: Runtime = Runtime(self.config)

    def load(self, path: Path) -> WorkflowBinary:
        """The workflow at `path` (`.py`: built; `.wasm`: read), compiled for this machine.

        Raises:
            ConfigurationError: the file is missing or of an unknown kind.
            ComponentError: it does not build, or is not a workflow component.
        """
        from durable.loader import load_workflow

        return load_workflow(path, self.runtime.cache)

    async def run(
        self,
        binary: WorkflowBinary,
        *,
        input: Any = None,
        name: str | None = None,
        entry: str = "",
        db: str | None = None,
        guest_db: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's own timeout, stored
        on_launch: Callable[[Task], None] | None = None,
        on_output: Callable[[LogChunk], None] | None = None,
        on_claim: Callable[[Task], None] | None = None,
    ) -> Task:
        """Launch `binary` and run the task to its end on a worker embedded here.

        `timeout` is the task's (see `Client.launch`). `on_launch` sees the new task,
        `on_output` each chunk of its output as it is committed, and `on_claim` each
        task the embedded worker claims: it runs whatever is runnable in the database,
        not only this task and its children. Returns the task as it ended (complete,
        failed or cancelled). If this process dies meanwhile, any worker on the
        database resumes the task.
        """
        from durable.worker import Worker, WorkerConfig

        store = await open_store(db, guest_url=guest_db)
        try:
            client = Client(store, max_input_bytes=self.config.max_payload_bytes)
            workflow_hash = await _register(client, binary)
            task = await client.launch(
                workflow_hash, name=name or binary.name, input=input, entry=entry, timeout=timeout
            )
            if on_launch is not None:
                on_launch(task)
            worker = Worker(store, WorkerConfig(), runtime=self.runtime, on_claim=on_claim)
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                # Polled quickly at first: a short task's end shows within about its own
                # run time (the pause doubles up to 0.25 s), not 0.1 s after it.
                async for chunk in client.follow(task.id, poll=_FIRST_POLL):
                    if on_output is not None:
                        on_output(chunk)
                worker.stop()
            return await client.get(task.id)
        finally:
            await store.close()

    def close(self) -> bool:
        """Stop the runtime (see `Runtime.close`); True when nothing is left running."""
        return self.runtime.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _register(client: Client, binary: WorkflowBinary) -> str:
    """Store `binary` under its name, unless the name already names this very binary:
    then a run writes no 19 MB blob (and hashes nothing) again."""
    from durable.errors import NotFoundError

    try:
        if await client.store.find_workflow(binary.name) == binary.hash:
            return binary.hash
    except NotFoundError:
        pass
    return await client.register(binary.wasm, name=binary.name, compile=False)
