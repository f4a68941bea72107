"""Nondeterministic on purpose: takes another path on its second attempt."""

from __future__ import annotations

import durable


@durable.step
def first() -> str:
    return "first"


@durable.step
def second() -> str:
    return "second"


@durable.workflow
def main(_: object) -> str:
    if durable.info().attempt == 1:
        first()
        durable.sleep(1.5)  # longer than the test's suspend threshold: suspends
        return "unreachable"
    return second()
