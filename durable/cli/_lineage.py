"""What `durable show` says of where a task's code and history came from: the task it
was forked from (and at which event), the forks made from it, and its moves onto new
binaries (`durable upgrade`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.cli import _format as fmt
from durable.client import Client
from durable.storage.fork import ForkStore, TaskFork, TaskOrigin, of_run
from durable.storage.moves import BinaryMove, MoveStore

#: How many forks `durable show` names.
FORKS_SHOWN = 10


@dataclass(slots=True)
class Lineage:
    """A task's origin, forks and binary moves."""

    origin: TaskOrigin | None = None
    forks: list[TaskFork] = field(default_factory=list)  # up to FORKS_SHOWN + 1
    moves: list[BinaryMove] = field(default_factory=list)


async def read_lineage(client: Client, task_id: int) -> Lineage:
    """What the store knows (nothing, for a store without these roles)."""
    store = client.store
    found = Lineage()
    if isinstance(store, ForkStore):
        found.origin = await store.task_origin(task_id)
        found.forks = await store.task_forks(task_id, limit=FORKS_SHOWN + 1)
    if isinstance(store, MoveStore):
        found.moves = await store.binary_moves(task_id)
    return found


def pairs(lineage: Lineage) -> list[tuple[str, str]]:
    """Lines for `durable show`'s summary."""
    out = []
    if lineage.origin is not None:
        o = lineage.origin
        out.append(("forked from", f"task {o.origin_id} at event {o.at}{of_run(o.run)}"))
    if lineage.forks:
        shown = ", ".join(
            f"{f.task_id} (at {f.at}{of_run(f.run)})" for f in lineage.forks[:FORKS_SHOWN]
        )
        more = " and more" if len(lineage.forks) > FORKS_SHOWN else ""
        out.append(("forks", shown + more))
    for m in lineage.moves:
        out.append(
            (
                "moved",
                f"{m.from_hash[:12]} -> {m.to_hash[:12]} after {m.events} events, "
                f"{fmt.local_time(m.moved_at)}",
            )
        )
    return out


def to_json(lineage: Lineage) -> dict[str, object]:
    """Keys for `durable show --json`, each only when it has something to say (so that
    other tasks export exactly as before)."""
    out: dict[str, object] = {}
    if lineage.origin is not None:
        o = lineage.origin
        out["origin"] = {"task": o.origin_id, "at": o.at, "run": o.run}
    if lineage.moves:
        out["moves"] = [m.to_json() for m in lineage.moves]
    return out
