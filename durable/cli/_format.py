"""Text for people: tables, local times, durations, short payloads, colour.

Colour is used only when stdout is a terminal and `NO_COLOR` is not set; widths are
computed on the plain text, so styled cells line up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime

import click

from durable import settings
from durable.core.model import Task, TaskState
from durable.core.task_error import TaskError

_STATE_COLOURS = {
    TaskState.READY: "white",
    TaskState.ACTIVE: "cyan",
    TaskState.SUSPENDED: "blue",
    TaskState.COMPLETE: "green",
    TaskState.FAILED: "red",
    TaskState.CANCELLED: "yellow",
}


def colour_enabled() -> bool:
    """Whether to style output: stdout is a terminal and NO_COLOR is unset."""
    return sys.stdout.isatty() and not settings.no_color()


def style(text: str, **styles: object) -> str:
    """`click.style(text, ...)` on a terminal; `text` unchanged elsewhere."""
    return click.style(text, **styles) if colour_enabled() else text  # type: ignore[arg-type]


def state(value: TaskState) -> str:
    """A task state, coloured by how it is doing."""
    return style(value.value, fg=_STATE_COLOURS[value], bold=value is TaskState.FAILED)


def local_time(value: datetime | None) -> str:
    """`2025-06-01 14:03:07 CEST`: local time, to the second, with the zone."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock_time(value: datetime | None, *, day_of: datetime | None = None) -> str:
    """`14:03:07.123` in local time; the date goes first if it is not `day_of`'s."""
    if value is None:
        return "-"
    local = value.astimezone()
    text = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    if day_of is not None and day_of.astimezone().date() != local.date():
        text = local.strftime("%Y-%m-%d ") + text
    return text


def zone_name(at: datetime | None = None) -> str:
    """The local time zone's abbreviation at `at` (default: now), e.g. `CEST` or `UTC`."""
    return (at or datetime.now()).astimezone().strftime("%Z")


def duration(seconds: float) -> str:
    """`850ms`, `12.3s`, `4m05s`, `3h02m`, `2d04h`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def task_duration(task: Task) -> str:
    """From launch to end for a task that has ended; `-` for one that has not."""
    if not task.state.is_terminal:
        return "-"
    return duration(max(0.0, (task.updated_at - task.created_at).total_seconds()))


def short(text: str | None, width: int = 48) -> str:
    """JSON text on one line, cut to `width` characters with an ellipsis."""
    if text is None:
        return "-"
    try:
        flat = json.dumps(json.loads(text), ensure_ascii=False)
    except json.JSONDecodeError:
        flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe_error(error: str | None) -> str:
    """`ValueError: bad value 7` from an error's JSON text (read by `TaskError`, the one
    place that knows the format; text that is not one reads as `Error: TEXT`)."""
    if error is None:
        return "-"
    return TaskError.from_json(error).describe()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last one is not padded."""
    plain = [[click.unstyle(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in plain:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [_line([style(h, bold=True) for h in headers], list(headers), widths)]
    lines += [_line(list(row), cells, widths) for row, cells in zip(rows, plain, strict=True)]
    return "\n".join(lines)


def _line(styled: list[str], plain: list[str], widths: list[int]) -> str:
    padded = [
        cell + " " * (widths[i] - len(plain[i])) if i < len(styled) - 1 else cell
        for i, cell in enumerate(styled)
    ]
    return "  ".join(padded).rstrip()


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """`name  value` lines, the names padded to one width."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{style(name.ljust(width), bold=True)}  {value}" for name, value in pairs)
