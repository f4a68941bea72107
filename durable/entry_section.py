"""A workflow component's entries, kept in a custom section so a `.wasm` can be checked.

A component exports one function, `run(entry, input)`; which entries a workflow has is
known only to its guest code. So that `durable run|launch file.wasm --entry NAME` can
refuse an unknown entry at once, like a `.py` (`durable.preflight.check_entry`),
`durable build` appends a custom section `durable:entries` to the component: JSON
`{"entries": [...], "main": bool}`, the decorated entries found in the source and
whether it has an undecorated `main`. Reading it walks the component's top-level
section headers (a few dozen, skipped by their sizes), with no compile: milliseconds
for an 18 MB component.

A component without the section (built by other tools, or from a source whose entries
the scan cannot follow) is not checked here; an unknown entry then fails as its task.
Custom sections do not change what a component does: wasmtime and wasm-tools skip them.
"""

from __future__ import annotations

import json
from pathlib import Path

from durable.preflight import decide_entry, scan_entries

__all__ = ["SECTION", "check_wasm_entry", "read_entries", "stamp"]

#: The custom section's name.
SECTION = "durable:entries"
_MAGIC = b"\x00asm"
_CUSTOM = 0


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uleb(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned LEB128 at `pos`, and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise ValueError("truncated or oversized LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def section(entries: list[str], plain_main: bool) -> bytes:
    """The custom section (id, size, name, JSON payload) for these entries."""
    name = SECTION.encode()
    body = json.dumps({"entries": sorted(entries), "main": plain_main}).encode()
    payload = _uleb(len(name)) + name + body
    return bytes([_CUSTOM]) + _uleb(len(payload)) + payload


def stamp(wasm_path: Path, source: Path) -> None:
    """Append the entries of the Python workflow at `source` to the component it built.

    Nothing is appended when the scan cannot follow how the entries are registered.
    """
    scanned = scan_entries(source)
    if scanned is None:
        return
    entries, plain_main = scanned
    with wasm_path.open("ab") as fh:
        fh.write(section(entries, plain_main))


def read_entries(wasm: bytes | memoryview) -> tuple[list[str], bool] | None:
    """The entries (and whether a plain `main` runs) recorded in a component, or None
    when it has no such section or is not a well-formed component or module."""
    data = memoryview(wasm)
    if len(data) < 8 or bytes(data[:4]) != _MAGIC:
        return None
    pos = 8
    try:
        while pos < len(data):
            kind = data[pos]
            size, start = _read_uleb(data, pos + 1)
            end = start + size
            if end > len(data):
                return None
            if kind == _CUSTOM:
                length, at = _read_uleb(data, start)
                if bytes(data[at : at + length]) == SECTION.encode():
                    found = json.loads(bytes(data[at + length : end]))
                    entries = [str(e) for e in found["entries"]]
                    return entries, bool(found["main"])
            pos = end
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return None


def check_wasm_entry(wasm_path: Path, entry: str) -> str | None:
    """Check `entry` against the entries recorded in the component at `wasm_path`.

    Returns a note when the choice is not explicit (a plain `main`), else None; checks
    nothing when the component records no entries.

    Raises:
        ConfigurationError: no such entry (the known ones listed), or none to choose.
    """
    try:
        wasm = wasm_path.read_bytes()
    except OSError:
        return None  # the load says why, as for any unreadable file
    found = read_entries(wasm)
    if found is None:
        return None
    entries, plain_main = found
    return decide_entry(wasm_path.name, entries, plain_main, entry)
