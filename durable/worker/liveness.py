"""Finding workers that died without saying so, on this machine.

A lease expiry is how other machines learn a worker died. On the same machine we can do
better: a registered worker whose process no longer exists is certainly dead, so its
tasks are freed at once instead of after the lease. This is what lets
`durable worker` resume a task right after `durable run` was killed with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import socket

from durable.storage.base import Store

log = logging.getLogger("durable.worker")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


async def reap_dead_local_workers(store: Store, self_id: str) -> int:
    """Remove registered workers of this host whose process is gone. Returns how many."""
    host = socket.gethostname()
    reaped = 0
    for worker in await store.list_workers():
        if worker.id == self_id or worker.hostname != host:
            continue
        # A reused pid keeps a dead worker looking alive; its lease expiry covers that.
        if not process_alive(worker.pid):
            await store.remove_worker(worker.id)
            log.info("freed the tasks of dead worker %s", worker.id)
            reaped += 1
    return reaped
