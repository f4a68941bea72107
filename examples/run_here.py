"""Run a workflow to its end inside this process, as `durable run` does, from Python.

`durable.app.Runner` is what the command calls: it builds and compiles the workflow
(once per machine), launches a task, and runs it on a worker embedded in this process,
passing its output on as it is committed. If the process dies meanwhile, any
`durable worker` on the same database resumes the task.

    python examples/run_here.py --db sqlite:///here.db Ada
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from durable.app import Runner
from durable.core.model import LogChunk, Task

WORKFLOW = Path(__file__).resolve().parent / "hello_world.py"


def show(chunk: LogChunk) -> None:
    """Print the task's output as it comes."""
    sys.stdout.write(chunk.data.decode())


def main() -> None:
    """Parse the command line and run the workflow here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="world", help="who to greet")
    parser.add_argument("--db", help="database URL [default: $DURABLE_DATABASE_URL or local]")
    args = parser.parse_args()
    with Runner() as runner:  # a wasmtime runtime: closed on the way out
        binary = runner.load(WORKFLOW)  # blocking: built and compiled once per machine

        def launched(task: Task) -> None:
            print(f"task {task.id} launched")

        done = asyncio.run(
            runner.run(binary, input=args.name, db=args.db, on_launch=launched, on_output=show)
        )
    print(f"task {done.id} is {done.state.value}")
    sys.exit(0 if done.state.value == "complete" else 1)


if __name__ == "__main__":
    main()
