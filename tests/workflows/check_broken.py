"""Deliberately broken for `durable check`: an effect inside a step, and a value read
outside the history."""

from __future__ import annotations

import durable


@durable.step
def tell_service(url: str) -> int:
    # The request is not recorded (the step's record covers it): lost with the step's
    # record in a crash, it is sent again.
    return durable.http.get(url).status_code


@durable.workflow
def main(url: str) -> dict[str, int]:
    status = tell_service(url)
    # Not recorded: a crash makes it 2, and a replay sees another value.
    attempt = durable.info().attempt
    return {"status": status, "attempt": attempt}
