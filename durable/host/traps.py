"""Why a guest failed, in one line that names the limit it ran into.

A trap reaches the host as a `WasmtimeError` whose text is a wasm backtrace (with the
guest's own function names in it) followed by "Caused by:" and the cause. Only the
last cause is read: it is wasmtime's, while a guest could name its functions anything.

Memory. wasmtime 50's C API sets a store's memory limit (`wasmtime_store_limiter`) but
has neither `trap_on_grow_failure` nor a limiter callback, and a component keeps its
core memories from the host, so the failed `memory.grow` itself cannot be seen (the
out-of-band flag wasmtime's maintainers suggest needs a custom limiter, which the C API
cannot install). At the limit, `memory.grow` returns -1 to the guest, and what follows
depends on where the guest was allocating:

- in Python code: a `MemoryError`, which the SDK reports as the workflow's error;
- in the guest runtime's own code (turning a large input into a Python string, say):
  it writes its last words to stderr (`MemoryError`, `memory allocation of N bytes
  failed`) and aborts, which is a wasm `unreachable` trap;
- in the guest's allocator, asked by the host to make room for data (the input, a host
  call's result): wasmtime's check "realloc return: beyond end of memory" fails;
- at instantiation, if the limit is below what the component needs to start.

Each is recognised here and reported as `MemoryLimitExceeded`. The guest's last words
are evidence the guest could forge, but a forgery only mislabels its own failure: no
decision of the host's rests on it.
"""

from __future__ import annotations

#: The error kind of a workflow that needed more memory than its limit.
MEMORY_KIND = "MemoryLimitExceeded"
#: The error kind of a workflow that exhausted the wasm stack (deep recursion).
STACK_KIND = "StackOverflow"

# Causes, as wasmtime words them.
_STACK = "call stack exhausted"
_UNREACHABLE = "unreachable"
_MEMORY_CAUSES = {
    "realloc return: beyond end of memory": "no room for its input or a host call's result",
    "exceeds memory limits": "it needs more than that to start",  # at instantiation
    "resource limit exceeded": "it needs more than that to start",
}
# What a guest runtime writes to stderr when an allocation fails before it aborts.
_OUT_OF_MEMORY_WORDS = (b"MemoryError", b"memory allocation of", b"out of memory")


class LastWords:
    """The last few KiB a guest wrote to stderr: what it said before it aborted."""

    SIZE = 4096

    def __init__(self) -> None:
        self._data = b""

    def add(self, data: bytes) -> None:
        """Keep `data`, and drop what falls out of the window."""
        self._data = (self._data + data[-self.SIZE :])[-self.SIZE :]

    def out_of_memory(self) -> bool:
        """Whether the guest said an allocation failed."""
        return any(words in self._data for words in _OUT_OF_MEMORY_WORDS)


def from_guest(kind: str, message: str, memory_limit: int) -> tuple[str, str]:
    """The kind and message of a workflow's own error (its exception, as the SDK saw it)."""
    if kind == "MemoryError":
        cause = f"MemoryError: {message}" if message else "MemoryError"
        return MEMORY_KIND, memory_message(memory_limit, cause)
    return kind, message


def from_trap(text: str, memory_limit: int, last_words: LastWords) -> tuple[str, str]:
    """The kind and message of a trap whose `WasmtimeError` reads `text`."""
    cause = trap_cause(text)
    for known, meaning in _MEMORY_CAUSES.items():
        if known in cause:
            return MEMORY_KIND, memory_message(memory_limit, meaning)
    if _STACK in cause:
        return STACK_KIND, f"the workflow ran out of stack: recursion too deep ({cause})"
    if _UNREACHABLE in cause:
        if last_words.out_of_memory():
            return MEMORY_KIND, memory_message(memory_limit, "its runtime aborted")
        return "Trap", f"the workflow's runtime aborted ({cause}); its last output is in the log"
    return "Trap", cause


def memory_message(memory_limit: int, cause: str) -> str:
    """`the workflow needed more than its 256 MiB memory limit (cause)`."""
    return f"the workflow needed more than its {size_text(memory_limit)} memory limit ({cause})"


def trap_cause(text: str) -> str:
    """The last "Caused by:" line of a trap's text, else its first line."""
    if "Caused by:" in text:
        for line in text.rsplit("Caused by:", 1)[1].splitlines():
            if line.strip():
                return line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "guest trapped"


def size_text(n: int) -> str:
    """A size for people, in the largest binary unit that divides it (`256 MiB`)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n} bytes"
