"""Wait for a human: an `approve` or `reject` notification, for at most one day.

    durable run examples/approval.py --input '{"request": "deploy v2"}' &
    durable notify 1 approve '{"by": "alice"}'

The one-day deadline is recorded when the wait starts: the task suspends (the worker
holds nothing for it), and neither a crash nor a restart moves the deadline.
"""

from __future__ import annotations

import durable

ONE_DAY = 24 * 60 * 60


@durable.step
def record_decision(request: str, decision: str, by: str) -> str:
    return f"{request}: {decision} by {by}"


@durable.workflow
def main(args: dict) -> str:
    request = args["request"]
    print(f"waiting for approval of {request!r}")
    while True:
        note = durable.wait(timeout=args.get("timeout", ONE_DAY))
        if note is None:
            return record_decision(request, "expired", "nobody")
        if note.event in ("approve", "reject"):
            who = (note.data or {}).get("by", "someone")
            return record_decision(request, note.event + "d", who)
        print(f"ignoring notification {note.event!r}")
