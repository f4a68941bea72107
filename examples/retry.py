"""Call a flaky step with a backoff policy.

    durable run examples/retry.py --input 3

`flaky` fails until its third attempt. Every attempt and its outcome are recorded, and
the waits between attempts are durable timers: a crash in the middle of the backoff
resumes the wait instead of starting over.
"""

from __future__ import annotations

import durable


@durable.step(retry=durable.Retry(attempts=5, backoff=0.2, factor=2.0, max_delay=5.0))
def flaky(succeed_on: int) -> str:
    attempt = durable.step_attempt()
    print(f"attempt {attempt}")
    if attempt < succeed_on:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"succeeded on attempt {attempt}"


@durable.workflow
def main(succeed_on: int | None = None) -> str:
    result = flaky(succeed_on or 3)
    print(result)
    return result
