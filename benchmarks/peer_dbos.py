"""durable against DBOS Transact: short workflows, side by side in one run.

    python -m benchmarks.peer_dbos [--backend sqlite|postgres|all] [--quick] [--json F]

Both engines run a trivial workflow with one step that returns a constant
(`benchmarks/workflows/peer.py`; on the DBOS side a `@DBOS.workflow` calling one
`@DBOS.step`), in this process, on the same database server or in the same temporary
directory, and are measured round by round, alternating which goes first:

- one after another: launch, wait for the result, then the next (p50 and rate);
- 16 at a time: 16 lanes, each launching and waiting one after another (rate);
- 300 started at once, then all awaited in launch order (rate).

durable runs the way a user runs it from Python: the workflow file registered with the
public `Client` (a bundle on the shared interpreter), `Client.launch` and
`Client.wait`, and an embedded `Worker` (concurrency 16) on the same event loop.
DBOS runs the way its documentation shows first: `DBOS.start_workflow` and
`handle.get_result()` from plain threads (its synchronous API: faster than its
asyncio one for this workflow on this machine), with its system database on SQLite
(its defaults) or on a database of its own on the throwaway Postgres server. Before
measuring, each engine runs a few workflows (DBOS's first workflow; durable's compile
cache load and pooled instance).

DBOS Transact is not a dependency of durable: install it (`pip install dbos`) to run
this; 3.4.0 is the version the README's figures come from.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from benchmarks.backends import Backend, PostgresBackend, SQLiteBackend, within
from benchmarks.figures import Bench, machine, median, now_utc, percentile, progress

# The durable side is `benchmarks.waits`'s own launch + `Client.wait` loops.
from benchmarks.waits import CONCURRENT, concurrent_rate, sequential_latencies
from durable.builder import build_workflow
from durable.client import Client
from durable.host import HostConfig, Runtime
from durable.loader import read_workflow
from durable.testing.postgres import ServerHandle, postgres_server, unavailable_reason
from durable.worker import Worker, WorkerConfig

PEER_WORKFLOW = Path(__file__).parent / "workflows" / "peer.py"
INSTALL_HINT = "error: DBOS Transact is not importable here: pip install dbos (3.4.0 measured)"
DURABLE = "durable"  # a .py registered as users do: a bundle on the shared interpreter
COMPONENT = "durable -o"  # the same file as a standalone component (`durable build -o`)
DBOS = "DBOS"
WARMUP = 5  # workflows per engine before measuring


@dataclass(frozen=True, slots=True)
class PeerSizes:
    """How much each round does."""

    rounds: int
    sequential: int  # one after another
    lanes: int  # in all, CONCURRENT at a time
    burst: int  # started at once


FULL = PeerSizes(rounds=4, sequential=200, lanes=400, burst=300)
QUICK = PeerSizes(rounds=1, sequential=10, lanes=32, burst=20)


@dataclass
class Samples:
    """One engine's measurements on one backend, over the rounds."""

    latencies: list[float] = field(default_factory=list)  # ms, one after another
    sequential: list[float] = field(default_factory=list)  # /s per round
    lanes: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)


class Engine:
    """What a round asks of each side: the three measurements."""

    name: str

    async def sequential(self, count: int) -> list[float]:
        """Launch and await `count` one after another; return each latency in ms."""
        raise NotImplementedError

    async def lanes(self, count: int) -> float:
        """`count` launched and awaited `CONCURRENT` at a time; return the rate."""
        raise NotImplementedError

    async def burst(self, count: int) -> float:
        """`count` launched at once, then all awaited; return the rate."""
        raise NotImplementedError


class Durable(Engine):
    """durable through its public `Client`, an embedded worker running the tasks."""

    def __init__(self, name: str, client: Client, bench: Bench) -> None:
        """Launch `bench`'s workflow through `client`; `name` it in the table."""
        self.name = name
        self.client = client
        self.bench = bench

    async def sequential(self, count: int) -> list[float]:
        """See `Engine`."""
        return await sequential_latencies(self.client, self.bench, count)

    async def lanes(self, count: int) -> float:
        """See `Engine`."""
        return await concurrent_rate(self.client, self.bench, count)

    async def burst(self, count: int) -> float:
        """See `Engine`."""
        started = time.perf_counter()
        tasks = [
            await self.client.launch(self.bench.wasm_hash, name="bench-burst", input=None)
            for _ in range(count)
        ]
        with within(120, "the burst did not end"):
            for task in tasks:
                done = await self.client.wait(task.id)
                if done.result != "1":
                    raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")
        return count / (time.perf_counter() - started)


class Dbos(Engine):
    """DBOS Transact's synchronous API, from threads off the event loop."""

    name = DBOS

    def __init__(self, dbos: Any) -> None:
        """Launch workflows through the launched `DBOS` class `dbos`."""
        self.dbos = dbos
        self.workflow = _dbos_workflow(dbos)

    def _one(self) -> float:
        started = time.perf_counter()
        result = self.dbos.start_workflow(self.workflow).get_result()
        if result != 1:
            raise RuntimeError(f"a DBOS workflow returned {result!r}")
        return (time.perf_counter() - started) * 1000

    async def sequential(self, count: int) -> list[float]:
        """See `Engine`."""
        return await anyio.to_thread.run_sync(lambda: [self._one() for _ in range(count)])

    def _lanes(self, count: int) -> float:
        left = iter(range(count))  # next() on a shared iterator is atomic under the GIL

        def lane() -> None:
            for _ in left:
                self._one()

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
            for running in [pool.submit(lane) for _ in range(CONCURRENT)]:
                running.result()
        return count / (time.perf_counter() - started)

    async def lanes(self, count: int) -> float:
        """See `Engine`."""
        return await anyio.to_thread.run_sync(self._lanes, count)

    def _burst(self, count: int) -> float:
        started = time.perf_counter()
        handles = [self.dbos.start_workflow(self.workflow) for _ in range(count)]
        for handle in handles:
            if (result := handle.get_result()) != 1:
                raise RuntimeError(f"a DBOS workflow returned {result!r}")
        return count / (time.perf_counter() - started)

    async def burst(self, count: int) -> float:
        """See `Engine`."""
        return await anyio.to_thread.run_sync(self._burst, count)


@functools.cache
def _dbos_workflow(dbos: Any) -> Callable[[], int]:
    """The DBOS side's workflow, registered once per process (DBOS keeps a registry
    across `DBOS.destroy()`, and refuses a second function of the same name)."""

    def peer_one() -> int:
        return 1

    step = dbos.step()(peer_one)

    def peer_main() -> int:
        one: int = step()
        return one

    workflow: Callable[[], int] = dbos.workflow()(peer_main)
    return workflow


@contextlib.contextmanager
def launched_dbos(dbos: Any, url: str) -> Iterator[Any]:
    """DBOS launched on the system database `url`, destroyed on the way out."""
    _dbos_workflow(dbos)  # registered before launch, as DBOS requires
    dbos(config={"name": "durable-peer", "system_database_url": url, "log_level": "WARNING"})
    try:
        dbos.launch()
        yield dbos
    finally:
        dbos.destroy()


@contextlib.asynccontextmanager
async def dbos_database(server: ServerHandle | None, tmp: Path) -> AsyncIterator[str]:
    """A fresh system database for DBOS: a file in `tmp`, or a database of its own on
    `server`, dropped afterwards."""
    if server is None:
        yield f"sqlite:///{tmp / f'dbos-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    name = f"dbos_peer_{uuid.uuid4().hex[:10]}"
    url = await anyio.to_thread.run_sync(server.create_database, name)
    try:
        yield url
    finally:
        await anyio.to_thread.run_sync(server.drop_database, name)


async def measure(
    backend: Backend,
    server: ServerHandle | None,
    benches: dict[str, Bench],
    dbos: Any,
    sizes: PeerSizes,
    tmp: Path,
) -> dict[str, Samples]:
    """Every engine on one backend, round by round, each round starting with the next."""
    samples = {name: Samples() for name in [*benches, DBOS]}
    runtime = next(iter(benches.values())).runtime
    async with backend.database() as (_, store), dbos_database(server, tmp) as url:
        client = Client(store)
        engines: list[Engine] = []
        for name, bench in benches.items():
            if await client.register(bench.wasm) != bench.wasm_hash:
                raise RuntimeError("the store named the workflow by another hash")
            engines.append(Durable(name, client, bench))
        worker = Worker(store, WorkerConfig(concurrency=CONCURRENT), runtime=runtime)
        with launched_dbos(dbos, url):
            engines.append(Dbos(dbos))
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                for engine in engines:  # warm up: DBOS's first workflow, durable's load
                    await engine.sequential(WARMUP)
                for round_ in range(sizes.rounds):
                    shift = round_ % len(engines)
                    order = engines[shift:] + engines[:shift]
                    for engine in order:
                        got = samples[engine.name]
                        got.latencies += (lat := await engine.sequential(sizes.sequential))
                        got.sequential.append(len(lat) / (sum(lat) / 1000))
                    for engine in order:
                        samples[engine.name].lanes.append(await engine.lanes(sizes.lanes))
                    for engine in order:
                        samples[engine.name].burst.append(await engine.burst(sizes.burst))
                    progress(f"{backend.name}: round {round_ + 1} of {sizes.rounds}")
                worker.stop()
    return samples


@dataclass(frozen=True, slots=True)
class Row:
    """One figure for every engine."""

    id: str
    name: str
    unit: str  # "ms" or "/s"
    values: dict[str, float]  # by engine
    per_round: dict[str, list[float]]  # each durable's value / DBOS's, round by round

    def ratio(self, engine: str) -> float:
        """`engine`'s value / DBOS's."""
        return self.values[engine] / self.values[DBOS]


def rows(samples: dict[str, Samples], sizes: PeerSizes) -> list[Row]:
    """The table's rows: rates are medians of the rounds, the p50 is over every task."""
    ours = [name for name in samples if name != DBOS]

    def rate(id_: str, name: str, pick: Callable[[Samples], list[float]]) -> Row:
        theirs = pick(samples[DBOS])
        per = {e: [x / y for x, y in zip(pick(samples[e]), theirs, strict=True)] for e in ours}
        return Row(id_, name, "/s", {e: median(pick(got)) for e, got in samples.items()}, per)

    p50 = {e: percentile(got.latencies, 50) for e, got in samples.items()}
    return [
        Row("sequential_p50_ms", "one after another, launch -> result p50", "ms", p50, {}),
        rate("sequential_per_s", "one after another, rate", lambda s: s.sequential),
        rate(f"c{CONCURRENT}_per_s", f"{CONCURRENT} at a time (launch + wait lanes), rate",
             lambda s: s.lanes),
        rate("burst_per_s", f"{sizes.burst} started at once, then awaited, rate",
             lambda s: s.burst),
    ]  # fmt: skip


def render(table: list[Row]) -> str:
    """A plain-text table: each engine's value, each durable's ratio to DBOS, and the
    first one's ratio round by round."""
    engines = list(table[0].values)
    ours = [e for e in engines if e != DBOS]
    head = "".join(f"{e:>{_width(e)}}" for e in engines)
    head += "".join(f"{e + '/' + DBOS:>{_width(e) + 6}}" for e in ours)
    lines = [f"{'figure':46}{head}  {ours[0]}/{DBOS} per round"]
    for r in table:
        cells = "".join(f"{_value(r.values[e], r.unit):>{_width(e)}}" for e in engines)
        cells += "".join(f"{r.ratio(e):>{_width(e) + 5}.2f}x" for e in ours)
        per = ", ".join(f"{x:.2f}" for x in r.per_round.get(ours[0], []))
        lines.append(f"{r.name:46}{cells}  {per}".rstrip())
    return "\n".join(lines)


def _width(engine: str) -> int:
    return max(11, len(engine) + 2)


def _value(value: float, unit: str) -> str:
    return f"{value:.2f} ms" if unit == "ms" else f"{value:,.0f}/s"


def _import_dbos() -> Any | None:
    """The `DBOS` class, or None when DBOS Transact is not installed. Imported by name,
    so that neither durable nor its type check depends on it."""
    try:
        return importlib.import_module("dbos").DBOS
    except ImportError:
        return None


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_dbos")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    dbos = _import_dbos()
    if dbos is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    wanted = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    if "postgres" in wanted and (reason := unavailable_reason()) is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    sizes = QUICK if args.quick else FULL
    results: dict[str, tuple[list[Row], str, str]] = {}
    started = time.perf_counter()
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="durable-peer-") as tmp_name:
        tmp = Path(tmp_name)
        runtime = Runtime(HostConfig())
        try:
            # Built once each: the bundle `Client.register_file` stores (the shared
            # interpreter) and the standalone component `durable build -o` makes.
            bundle, _kind = read_workflow(PEER_WORKFLOW)
            component = build_workflow(PEER_WORKFLOW).wasm_path.read_bytes()
            benches = {
                name: Bench(runtime=runtime, wasm=wasm, wasm_hash=hashlib.sha256(wasm).hexdigest())
                for name, wasm in ((DURABLE, bundle), (COMPONENT, component))
            }
            for name in wanted:
                before = _load()
                if name == "sqlite":
                    backend: Backend = SQLiteBackend(tmp / "sqlite")
                    got = anyio.run(measure, backend, None, benches, dbos, sizes, tmp)
                else:
                    with postgres_server() as server:
                        backend = PostgresBackend(server)
                        got = anyio.run(measure, backend, server, benches, dbos, sizes, tmp)
                results[name] = (rows(got, sizes), before, _load())
        finally:
            runtime.close()
    elapsed = time.perf_counter() - started
    command = "python -m benchmarks.peer_dbos " + shlex.join(sys.argv[1:] if argv is None else argv)
    version = importlib.metadata.version("dbos")
    load = f"load average {load_start} at the start, {_load()} at the end"
    print(f"durable against DBOS Transact {version}, {now_utc()}{' (quick)' if args.quick else ''}")
    print(f"machine: {machine()}; {load}")
    print(f"command: {command.strip()}   ({elapsed:.0f} s)")
    print(
        f"{sizes.rounds} rounds, engines alternating; each warmed first with {WARMUP} "
        "workflows (DBOS's first workflow, durable's compile cache and pooled instance).\n"
        f"{DURABLE}: the .py registered with Client (a bundle on the shared interpreter); "
        f"{COMPONENT}: the same file as a standalone component (durable build -o);\n"
        "both through Client.launch + Client.wait, one embedded worker (concurrency "
        f"{CONCURRENT}). {DBOS}: start_workflow + get_result from threads.\n"
        "Rates are medians of the rounds, p50 over every task; a ratio above 1 is "
        "durable ahead for a rate, behind for the p50."
    )
    for name, (table, before, after) in results.items():
        print(f"\n{name} (load average {before} before, {after} after)\n{render(table)}")
    if args.json:
        payload = {
            "machine": machine(),
            "when": now_utc(),
            "load": load,
            "command": command.strip(),
            "quick": args.quick,
            "dbos_version": version,
            "seconds": elapsed,
            "backends": {
                name: {
                    "load_before": before,
                    "load_after": after,
                    "rows": [
                        {**asdict(r), "ratios": {e: r.ratio(e) for e in benches}} for r in table
                    ],
                }
                for name, (table, before, after) in results.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
