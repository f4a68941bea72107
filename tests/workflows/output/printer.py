"""Workflows that print a lot, for the output tests and the output benchmark.

Alone in its directory: the build cache key covers every `.py` file beside a workflow.
"""

from __future__ import annotations

import sys
import time

import durable

#: One numbered line is this many bytes, newline included.
LINE_BYTES = 100


def line(i: int) -> str:
    """Line `i` of a flood: its number, padded to `LINE_BYTES` with a newline."""
    head = f"line {i:09d} "
    return head + "x" * (LINE_BYTES - 1 - len(head)) + "\n"


@durable.workflow
def flood(lines: int) -> int:
    """Print `lines` numbered lines with no durable call in between."""
    write = sys.stdout.write
    for i in range(lines):
        write(line(i))
    return lines


@durable.workflow
def flood_blocks(lines: int) -> int:
    """The same output as `flood`, a hundred lines per write."""
    write = sys.stdout.write
    for start in range(0, lines, 100):
        write("".join(line(i) for i in range(start, min(start + 100, lines))))
    return lines


@durable.workflow
def one_write(lines: int) -> int:
    """The same output as `flood`, in a single write."""
    sys.stdout.write("".join(line(i) for i in range(lines)))
    return lines


@durable.workflow
def flood_then_wait(lines: int) -> str:
    """Print, then wait for a `go` notification: the output must show before it."""
    for i in range(lines):
        sys.stdout.write(line(i))
    durable.wait("go")
    print("released")
    return "done"


@durable.workflow
def spin(text: str) -> None:
    """Print one line, then compute forever without a durable call (until cancelled)."""
    print(text)
    n = 0
    while True:
        n += 1


@durable.workflow
def stretches(spec: dict[str, int]) -> int:
    """Print `lines` numbered lines, every seventh on stderr, in blocks of `block`
    lines: in even blocks a durable call (a clock reading) follows every `every`
    lines; odd blocks make no durable call at all."""
    total, every, block = spec["lines"], spec["every"], spec["block"]
    for i in range(total):
        (sys.stderr if i % 7 == 3 else sys.stdout).write(line(i))
        if (i // block) % 2 == 0 and i % every == every - 1:
            time.time()  # recorded: an event
    return total
