"""Guest output at scale: printing 1, 16, 100 MB with no durable call in between.

    python -m benchmarks.output [--mb 1 16 100] [--timeout S] [--backend sqlite|postgres]

For each size, a fresh database (a SQLite file, or a database on a throwaway Postgres
server, started as the tests start one) gets one task of the `flood` entry of
`tests/workflows/output/printer.py` (100-byte lines, one write each; `--entry
flood_blocks`: a hundred lines per write), run by a real
`durable worker` process. Reported per size: the wall time from launch to the end of
the task, the worker's peak resident memory (`VmHWM`, reset after a first tiny task
has loaded the component, and its value then), how long the first bytes took to be
readable in the log while the task still ran, and whether the log holds exactly the
bytes printed (SHA-256 over the whole log).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.processes import WorkerProcess, worker_command, worker_processes
from durable.builder import build_workflow
from durable.client import Client
from durable.storage import open_store
from durable.testing.postgres import fresh_database, postgres_server

PRINTER = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "output" / "printer.py"
LINE_BYTES = 100  # printer.LINE_BYTES


def expected_digest(lines: int) -> str:
    """SHA-256 of what `flood(lines)` prints (the printer's `line`, mirrored)."""
    digest = hashlib.sha256()
    for i in range(lines):
        head = f"line {i:09d} "
        digest.update((head + "x" * (LINE_BYTES - 1 - len(head)) + "\n").encode())
    return digest.hexdigest()


async def measure(
    url: str, wasm: bytes, mb: int, limit: float, log: Path, entry: str
) -> dict[str, object]:
    """Run one flood of `mb` MB in a fresh worker process on `url`; return the figures."""
    lines = mb * 1024 * 1024 // LINE_BYTES
    store = await open_store(url)
    try:
        client = Client(store)
        workflow_hash = await client.register(wasm, name="printer")
        with worker_processes() as procs:
            # Above the default --max-output (64M), which 100 MB would exceed.
            proc = WorkerProcess([*worker_command(url), "--max-output", "1G"], log)
            procs.append(proc)
            await proc.wait_registered(store)
            # A first tiny task loads (or compiles) the component; then the peak is reset
            # so that it measures the flood, not the compile.
            warm = await client.launch(workflow_hash, name="warm", input=1, entry="flood")
            await client.wait(warm.id, timeout=limit)
            proc.reset_peak()
            idle = proc.memory_mib()["VmHWM"]
            started = time.monotonic()
            task = await client.launch(workflow_hash, name=entry, input=lines, entry=entry)
            first: float | None = None
            state = "timeout"
            with anyio.move_on_after(limit):
                while True:
                    current = await client.get(task.id)
                    if (
                        first is None
                        and not current.state.is_terminal
                        and await store.read_logs(task.id, limit=1)
                    ):
                        first = time.monotonic() - started
                    if current.state.is_terminal:
                        state = current.state.value
                        break
                    await anyio.sleep(0.05)
            wall = time.monotonic() - started
            peak = proc.memory_mib()["VmHWM"]
            proc.kill()
        digest = hashlib.sha256()
        size = 0
        seq = 0
        while chunks := await store.read_logs(task.id, after_seq=seq, limit=16):
            for chunk in chunks:
                digest.update(chunk.data)
                size += len(chunk.data)
                seq = chunk.seq
        return {
            "mb": mb,
            "state": state,
            "seconds": round(wall, 2),
            "peak_rss_mib": round(peak, 1),
            "idle_rss_mib": round(idle, 1),
            "first_output_s": None if first is None else round(first, 2),
            "logged_bytes": size,
            "exact": digest.hexdigest() == expected_digest(lines),
        }
    finally:
        await store.close()


async def main() -> None:
    """Parse the arguments and print one line of figures per size."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[1, 16, 100])
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--entry",
        choices=["flood", "flood_blocks"],
        default="flood",
        help="one write per line, or one per hundred lines",
    )
    args = parser.parse_args()
    wasm = build_workflow(PRINTER).wasm_path.read_bytes()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="durable-output-")))
        server = stack.enter_context(postgres_server()) if args.backend == "postgres" else None
        for mb in args.mb:
            if server is None:
                url = f"sqlite:///{tmp / f'output-{mb}.db'}"
            else:
                url = stack.enter_context(fresh_database(server, "durable_bench"))
            figures = await measure(url, wasm, mb, args.timeout, tmp / "worker.log", args.entry)
            print(args.backend, figures, flush=True)
            if figures["state"] != "complete":
                print(f"  worker log: {(tmp / 'worker.log').read_text()[-1500:]}")


if __name__ == "__main__":
    anyio.run(main)
