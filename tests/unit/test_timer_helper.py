"""The timer helper component that durable ships (durable/host/timer_helper) is the
one its WAT and WIT build: rebuild it with wasm-tools and compare the bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

from durable.component_check import WIT_DIR
from durable.host.monotonic import HELPER_WASM
from tests.guests.wat import wasm_tools


def test_the_shipped_helper_is_built_from_its_source(tmp_path: Path) -> None:
    source = HELPER_WASM.parent
    wit = tmp_path / "wit"
    (wit / "deps").mkdir(parents=True)
    shutil.copy(source / "helper.wit", wit)
    for dep in ("wasi-clocks.wit", "wasi-io.wit"):
        shutil.copy(WIT_DIR / "deps" / dep, wit / "deps")
    wasm_tools("parse", source / "helper.wat", "-o", tmp_path / "core.wasm")
    wasm_tools("component", "embed", wit, "-w", "helper", tmp_path / "core.wasm",
               "-o", tmp_path / "embedded.wasm")  # fmt: skip
    wasm_tools("component", "new", tmp_path / "embedded.wasm", "-o", tmp_path / "helper.wasm")
    assert (tmp_path / "helper.wasm").read_bytes() == HELPER_WASM.read_bytes(), (
        "rebuild durable/host/timer_helper/helper.wasm with the commands in this test"
    )
