"""Writing task output and results to the terminal."""

from __future__ import annotations

import json
import sys

from durable.core.model import LogChunk, Stream, Task, TaskState


def write_chunk(chunk: LogChunk) -> None:
    """Write a log chunk to the stream the guest wrote it to."""
    out = sys.stdout if chunk.stream is Stream.STDOUT else sys.stderr
    out.flush()
    out.buffer.write(chunk.data)
    out.buffer.flush()


def describe_end(task: Task) -> str:
    """One line saying how a task ended."""
    if task.state is TaskState.FAILED and task.error:
        error = json.loads(task.error)
        message = error.get("message", "")
        return f"task {task.id} failed: {error.get('kind', 'Error')}" + (
            f": {message}" if message else ""
        )
    return f"task {task.id} {task.state.value}"
