"""Side-writes: what an effect changes in durable's own database with its event.

Some host calls change a row besides the history, and that change must be durable
exactly when the event that records the call is: a notification consumed by a
`notify.wait`, a status value set by `status.set`, a child cancelled by
`child-control.cancel`. The host hands such a change to the store as a typed value
beside the events (`Store.append(..., writes=...)`), and every store applies each
kind in the same transaction as the events, or refuses them all.

A replay answers the call from the recorded event and makes no side-write: the change
was committed with the event the first time.

Adding a kind: a frozen dataclass here, added to `SideWrite`, and one branch per store
(`memory.py`, `_sqlite_codec.fenced_writes`, `_pg_codec.write_args`); mypy's
exhaustiveness check (`assert_never`) finds a store that forgot it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumeNotification:
    """Mark a notification of the attempt's task consumed.

    A store refuses the whole write (`ConflictError`) if it is not pending for the task.
    """

    seq: int  # the notification's sequence number


@dataclass(frozen=True, slots=True, kw_only=True)
class SetStatus:
    """Set one status value of the attempt's task (`durable.set_status`)."""

    key: str  # the status key (bounded by `durable.core.status`)
    value: str  # JSON text
    position: int  # the index of the event that recorded the call


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelChild:
    """Cancel a child of the attempt's task, and its unfinished descendants.

    As `Store.request_cancel` does it: a ready or suspended one ends as cancelled, an
    active one is asked to stop. A child that has ended already is left as it is (it may
    end between the host's look and the commit), and a task that is not a child of the
    attempt's task is never touched: a workflow cancels only its own children.
    """

    task_id: int  # the child's id


#: Every kind of side-write.
SideWrite = ConsumeNotification | SetStatus | CancelChild


def consumed(writes: Sequence[SideWrite]) -> list[int]:
    """The notification seqs consumed by `writes`, in order."""
    return [w.seq for w in writes if isinstance(w, ConsumeNotification)]


def cancelled_children(writes: Sequence[SideWrite]) -> list[int]:
    """The ids of the children `writes` cancel, in order, each once."""
    return list(dict.fromkeys(w.task_id for w in writes if isinstance(w, CancelChild)))


def statuses(writes: Sequence[SideWrite]) -> list[SetStatus]:
    """The status values set by `writes`: the last one per key, in order of position."""
    last: dict[str, SetStatus] = {}
    for w in writes:
        if isinstance(w, SetStatus):
            last.pop(w.key, None)
            last[w.key] = w
    return list(last.values())
