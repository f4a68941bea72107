"""Quarantine: a task whose attempts keep killing their worker is failed, not retried.

A task's attempt can kill the whole worker process (a SQLite bug reached through
workflow SQL, a wasmtime bug, the OOM killer). Left alone, the task stays `active`, its
lease lapses, and the next worker to claim it dies too, for ever.

So every store counts, per task, the attempts in a row that ended without their worker
finishing them (`Task.deaths`): a claim that takes over an `active` task from another
worker (its lease lapsed, or `remove_worker` expired it) adds one, and any `finish`
resets it to 0, except `Released(started=False)` (an attempt that never started its
guest), which keeps it. A worker that claims back a task whose lease it let lapse is
alive: that counts nothing. A frozen worker (SIGSTOP past its lease) counts once. A
claim given `max_deaths` fails the task whose takeover would be death number
`max_deaths`, in the same statement, instead of handing it out.

A dying worker takes all its tasks with it, innocent ones too. So a task with one death
left (its "last chance": `last_chance(max_deaths)` deaths so far) never shares a worker
with another in the same position: the worker passes `last_chances=0` to `claim` while
it runs one. A single poisonous task then cannot get the tasks it travelled with
quarantined: they reach their last chance together with it and are split up.

The error message is built from one template here; the SQL backends fill it in within
the claim statement (SQLite's `printf`, Postgres's `format`), so it reads the same
everywhere. `Task.error` is the usual `{"kind", "message", "traceback"}` JSON text.
"""

from __future__ import annotations

from datetime import datetime

from durable.core.task_error import TaskError

__all__ = ["KIND", "TIME_FORMAT", "error_json", "last_chance", "message_template"]

#: The `kind` of a quarantined task's error.
KIND = "Quarantined"
#: How the time of the last death is written in the message (UTC).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def message_template(max_deaths: int) -> str:
    """The error message, with two `%s`: the task id, and when the last death was noticed.

    Both SQLite's `printf` and Postgres's `format` read `%s` as "this value as text".
    """
    return (
        f"task %s was running when its worker died {max_deaths} times in a row (the last "
        "one noticed at %s UTC): it is failed so that it cannot take down more workers; "
        "to retry once the cause is found, launch a new task with the same input"
    )


def error_json(task_id: int, max_deaths: int, noticed: datetime) -> str:
    """The error JSON text of a quarantined task (what the SQL backends build in SQL)."""
    message = message_template(max_deaths) % (task_id, noticed.strftime(TIME_FORMAT))
    return TaskError(kind=KIND, message=message).to_json()


def last_chance(max_deaths: int | None) -> int | None:
    """The death count of a task that one more death quarantines, if it can be taken over.

    None without a limit, and with a limit of 1 (then every task is on its last chance
    from the start, and keeping them apart would mean one task per worker).
    """
    if max_deaths is None or max_deaths < 2:
        return None
    return max_deaths - 1
