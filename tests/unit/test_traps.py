"""How a trap reads: its cause is wasmtime's, whatever the guest named its functions;
a memory limit is named whenever the evidence points to one."""

from __future__ import annotations

import pytest

from durable.host.traps import LastWords, from_guest, from_trap, size_text

MEMORY = "the workflow needed more than its 32 MiB memory limit"
TRAP = (
    "error while executing at wasm backtrace:\n"
    "    0: 0x1234 - Caused by: memory limit exceeded!<wasm function 7>\n"  # a guest's name
    "    1: 0x5678 - <unknown>!<wasm function 9>\n"
    "\n"
    "Caused by:\n"
    "    {cause}\n"
)


@pytest.mark.parametrize(
    ("cause", "said", "kind", "message"),
    [
        ("wasm trap: call stack exhausted", b"", "StackOverflow", "ran out of stack"),
        ("realloc return: beyond end of memory", b"", "MemoryLimitExceeded", MEMORY),
        (
            "wasm trap: wasm `unreachable` instruction executed",
            b"MemoryError: \n",
            "MemoryLimitExceeded",
            MEMORY,
        ),
        (
            "wasm trap: wasm `unreachable` instruction executed",
            b"panicked",
            "Trap",
            "runtime aborted",
        ),
        ("wasm trap: integer divide by zero", b"MemoryError", "Trap", "integer divide by zero"),
    ],
)
def test_trap_causes_are_read_from_wasmtime_not_from_the_guest(
    cause: str, said: bytes, kind: str, message: str
) -> None:
    last_words = LastWords()
    last_words.add(said)
    got_kind, got_message = from_trap(TRAP.format(cause=cause), 32 << 20, last_words)
    assert got_kind == kind
    assert message in got_message


def test_a_guest_memory_error_names_the_limit() -> None:
    assert from_guest("MemoryError", "", 32 << 20) == (
        "MemoryLimitExceeded",
        f"{MEMORY} (MemoryError)",
    )
    assert from_guest("ValueError", "bad", 32 << 20) == ("ValueError", "bad")


@pytest.mark.parametrize(
    ("size", "text"),
    [(256 << 20, "256 MiB"), (1 << 30, "1 GiB"), (512 << 10, "512 KiB"), (1000, "1000 bytes")],
)
def test_sizes_read_in_binary_units(size: int, text: str) -> None:
    assert size_text(size) == text
