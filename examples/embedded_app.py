"""An asyncio application with a durable worker inside it.

The application opens the database, starts a `durable.Worker` as a task on its own event
loop, launches a workflow through the client, waits for the result and stops the
worker cleanly. Other processes (`durable worker`, `durable list`) can share the same
database meanwhile.

    python examples/embedded_app.py --db sqlite:///app.db Ada

The launch carries an idempotency key made from the name, so running the program twice
with the same name and database finds the first task instead of starting another.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import durable

WORKFLOW = Path(__file__).resolve().parent / "hello_world.py"


async def greet(db: str | None, name: str) -> int:
    """Run the hello-world workflow for `name` on an embedded worker; return an exit code."""
    async with await durable.Client.open(db) as client:
        worker = durable.Worker(client.store, durable.WorkerConfig(concurrency=4))
        running = asyncio.create_task(worker.run())
        try:
            workflow = await client.register_file(WORKFLOW)  # built once, then cached
            task = await client.launch(
                workflow, name="hello", input=name, idempotency_key=f"hello:{name}"
            )
            print(f"launched task {task.id}")
            done = await client.wait(task.id, timeout=120)
            for chunk in await client.logs(task.id):
                sys.stdout.write(chunk.data.decode())
            print(f"task {done.id} is {done.state.value}")
            return 0 if done.state is durable.TaskState.COMPLETE else 1
        finally:
            worker.stop()  # running tasks are handed back; `run` returns
            await running


def main() -> None:
    """Parse the command line and run the application."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="world", help="who to greet")
    parser.add_argument("--db", help="database URL [default: $DURABLE_DATABASE_URL or local]")
    args = parser.parse_args()
    sys.exit(asyncio.run(greet(args.db, args.name)))


if __name__ == "__main__":
    main()
