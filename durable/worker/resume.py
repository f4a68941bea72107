"""Waking a claimed task on the instance this worker kept live, if that is still valid.

A kept instance (`durable.host.live`) may go on only if it is exactly where a replay of
the task's stored history would be: the same task (not another database's task of the
same id); the same run, binary, entry, input and seed (what its code runs on); no claim by
anyone in between (`attempts` moved by exactly this worker's claim: so no other worker
ran it, forked it back or took it over); no cancellation to deliver; and the stored
history, read after the claim (or by the claim's own statement, which saw the task
runnable, so after the suspension that wrote the instance's last events), holds exactly
the events the instance has seen. The last check is what makes a crash safe: a write the
instance believes made but the store does not hold (or the reverse) sends the task to
replay. Anything else evicts the instance, and the task replays as it always did.
"""

from __future__ import annotations

import logging

from durable.core.model import Task
from durable.host.instance_cache import InstanceCache, Key
from durable.host.live import LiveInstance
from durable.storage.base import Store

log = logging.getLogger("durable.worker")


def cache_key(store: Store, task_id: int) -> Key:
    """Where the instance of `task_id` in `store` is kept."""
    return (store.url, task_id)


async def take_live(
    store: Store, cache: InstanceCache, task: Task, stored: int | None = None
) -> LiveInstance | None:
    """The kept instance of the claimed `task`, taken out of `cache`, if it may go on;
    else None (an invalid one is evicted). `stored`: the history's length as the claim
    read it (`Claim.history_length`), if it did; else it is read here."""
    key = cache_key(store, task.id)
    live = cache.take(key)
    if live is None:
        cache.count(hit=False)
        return None
    why = await _invalid(store, live, task, stored)
    if why is not None:
        cache.discard(key, live, why)
        cache.count(hit=False)
        return None
    cache.count(hit=True)
    return live


async def _invalid(store: Store, live: LiveInstance, task: Task, stored: int | None) -> str | None:
    """Why `live` may not go on as `task`'s attempt, or None."""
    kept = live.ctx.task
    if kept.created_at != task.created_at:
        return "another task of the same id"
    if task.workflow_hash != live.workflow_hash:
        return "the task runs another binary now"
    if task.run != kept.run:
        return "the task continued as new since"  # a new run starts from its top
    if (task.entry, task.input, task.seed) != (kept.entry, kept.input, kept.seed):
        return "the task's entry, input or seed changed"  # what its code runs on
    if task.cancel_requested or live.ctx.cancel.is_set():
        return "the task is being cancelled"
    if task.attempts != live.ctx.attempt + 1:
        return "the task was claimed elsewhere since it suspended"
    if stored is None:
        stored = await store.history_length(task.id)
    if stored != live.seen:
        return f"the stored history holds {stored} events, the instance saw {live.seen}"
    return None
