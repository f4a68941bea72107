"""An asyncio application with a durable worker inside it.

The application opens the database, starts a `durable.Worker` as a task on its own event
loop, launches a workflow through the client, waits for the result and stops the
worker cleanly. Other processes (`durable worker`, `durable list`) can share the same
database meanwhile.

    python examples/embedded_app.py Ada

Its database is `--db`, else `$DURABLE_DATABASE_URL`, else `app.db` in a directory of
its own under the system's temporary directory (printed), so that trying it leaves
nothing in the current directory. The launch carries an idempotency key made from the
name, so running the program twice with the same name and database finds the first
task instead of starting another.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import durable

WORKFLOW = Path(__file__).resolve().parent / "hello_world.py"


def default_db() -> str:
    """`$DURABLE_DATABASE_URL`, else a SQLite file in a directory of this example's own."""
    if os.environ.get("DURABLE_DATABASE_URL"):
        return os.environ["DURABLE_DATABASE_URL"]
    folder = Path(tempfile.gettempdir()) / "durable-embedded-app"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'app.db'}"


async def greet(db: str, name: str) -> int:
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
    parser.add_argument(
        "--db", help="database URL [default: $DURABLE_DATABASE_URL, else a temporary app.db]"
    )
    args = parser.parse_args()
    db = args.db or default_db()
    if not args.db:
        print(f"database: {db}", file=sys.stderr)
    sys.exit(asyncio.run(greet(db, args.name)))


if __name__ == "__main__":
    main()
