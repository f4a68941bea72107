"""A worker process with a chosen lease, for the failover benchmark.

    python -m benchmarks._worker --db URL [--concurrency N] [--suspend-after S]
                                 [--lease-seconds L]

The same as `durable worker` (a `durable.worker.Worker` that stops gracefully on
SIGTERM or SIGINT), plus `--lease-seconds`. `benchmarks.processes` runs the real
`durable worker` whenever its CLI takes the lease length, and this only when it does not.
"""

from __future__ import annotations

import argparse
import signal
import sys

import anyio

from durable.host import HostConfig
from durable.storage import open_store
from durable.worker import Worker, WorkerConfig


def main(argv: list[str] | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    parser.add_argument("--db", required=True)
    parser.add_argument("--concurrency", type=int, default=WorkerConfig().concurrency)
    parser.add_argument("--suspend-after", type=float, default=HostConfig().suspend_after)
    parser.add_argument("--lease-seconds", type=float, default=WorkerConfig().lease_seconds)
    args = parser.parse_args(argv)
    config = WorkerConfig(
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        host=HostConfig(suspend_after=args.suspend_after),
    )

    async def run() -> None:
        store = await open_store(args.db, migrate=False)
        try:
            worker = Worker(store, config)
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for _ in signals:
                            worker.stop()
                            return

                tg.start_soon(on_signal)
                await worker.run()
                tg.cancel_scope.cancel()
        finally:
            await store.close()

    anyio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
