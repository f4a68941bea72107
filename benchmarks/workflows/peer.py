"""The workflow of the comparison with DBOS Transact: one step that returns a constant."""

from __future__ import annotations

import durable


@durable.step
def one() -> int:
    return 1


@durable.workflow
def main(_: object) -> int:
    """Trivial: one recorded step, as the DBOS side's `@DBOS.workflow` calling one
    `@DBOS.step`."""
    return one()
