"""The `durable:entries` custom section: written after a component, read without a
compile, and robust to anything that is not a well-formed component."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.entry_section import check_wasm_entry, read_entries, section, stamp
from durable.errors import ConfigurationError

#: A component header followed by one (empty-bodied) non-custom section.
HEADER = b"\x00asm\x0d\x00\x01\x00" + bytes([1, 3, 1, 2, 3])


def test_round_trip_among_other_custom_sections() -> None:
    other = bytes([0, 6, 5]) + b"other"  # a custom section named "other", empty
    wasm = HEADER + other + section(["square", "main"], False) + other
    assert read_entries(wasm) == (["main", "square"], False)


@pytest.mark.parametrize(
    "wasm",
    [
        b"",
        b"not wasm at all",
        HEADER,  # no section
        HEADER + bytes([0, 0xFF]),  # a size that never ends
        HEADER + bytes([0, 50, 3]) + b"abc",  # a section larger than the file
        HEADER + section(["a"], False)[:-3],  # cut short
        HEADER + bytes([0, 20, 15]) + b"durable:entries" + b"{nope",  # not JSON
    ],
)
def test_anything_else_reads_as_no_entries(wasm: bytes) -> None:
    assert read_entries(wasm) is None


def test_stamp_records_what_the_source_declares(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text(
        "import durable\n\n\n@durable.workflow\ndef a(x):\n    return x\n\n\n"
        "@durable.workflow\ndef b(x):\n    return x\n"
    )
    wasm = tmp_path / "flow.wasm"
    wasm.write_bytes(HEADER)
    stamp(wasm, src)
    assert read_entries(wasm.read_bytes()) == (["a", "b"], False)
    assert check_wasm_entry(wasm, "a") is None
    unknown = r"flow.wasm has no entry 'c' \(its entries: a, b\)"
    with pytest.raises(ConfigurationError, match=unknown):
        check_wasm_entry(wasm, "c")
    with pytest.raises(ConfigurationError, match="several entries"):
        check_wasm_entry(wasm, "")


def test_a_source_the_scan_cannot_follow_records_nothing(tmp_path: Path) -> None:
    src = tmp_path / "dynamic.py"
    src.write_text("import durable\n\nfor f in [len]:\n    durable.workflow(f)\n")
    wasm = tmp_path / "dynamic.wasm"
    wasm.write_bytes(HEADER)
    stamp(wasm, src)
    assert wasm.read_bytes() == HEADER
    assert check_wasm_entry(wasm, "anything") is None
