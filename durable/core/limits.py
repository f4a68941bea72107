"""The size limit on a task's input: one check for launches and for child spawns.

An input is JSON text stored with the task and handed to the guest on every attempt,
so it is held to the same limit as any recorded payload (`max_payload_bytes`): a
workflow that needs more data should be given a reference to it instead.
"""

from __future__ import annotations

__all__ = ["input_too_large", "payload_bytes"]


def payload_bytes(text: str) -> int:
    """The size of `text` in UTF-8, without encoding it when it is ASCII (JSON usually is)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def input_too_large(text: str, limit: int) -> str | None:
    """Why the input `text` may not be stored, or None when it is within `limit` bytes."""
    size = payload_bytes(text)
    if size <= limit:
        return None
    return (
        f"the input is {_size(size)} of JSON, over the payload limit of {_size(limit)}: "
        "pass a reference to the data instead, or raise the limit (--max-payload)"
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"
