"""Raises after printing, to test failure handling."""

from __future__ import annotations

import durable


def helper(x: int) -> int:
    raise ValueError(f"bad value {x}")


@durable.workflow
def main(x: int) -> int:
    print("about to fail")
    return helper(x)
