"""The guard of the technique behind the derived monotonic clock (issue 19 item 4):
what wasmtime-py's component API allows, so that whoever upgrades wasmtime-py finds out
at once if it changes (`durable.host.monotonic` relies on both facts):

1. Shadowing is per instance, not per function: defining `now` alone in
   `wasi:clocks/monotonic-clock` replaces the whole built-in instance, and a guest that
   also imports `subscribe-duration` no longer links. So a derived `now` needs
   `subscribe-duration` and `subscribe-instant` defined by the host too, and they must
   return a `pollable`, a resource of wasmtime's built-in WASI that the C API offers no
   way to create.
2. A host function can still return one: it calls the export of a tiny helper
   component, instantiated in the same store with the built-in WASI, which forwards to
   the real `subscribe-duration`; the pollable it returns is passed on to the guest,
   whose `pollable.block` (built-in) then waits the real duration, while `now` is the
   host's own. (The host asks for 0 ns: a pollable that is ready at once.)

The feature itself is tested in test_monotonic_clock.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from wasmtime import component as wc

from durable.component_check import WIT_DIR
from tests.guests.wat import wasm_tools

V = "0.2.9"  # the WASI version vendored in durable/wit/deps
WIT = f"""package probe:t;

world probe {{
    import wasi:clocks/monotonic-clock@{V};
    import wasi:io/poll@{V};
    export run: func() -> u64;
}}

world helper {{
    import wasi:clocks/monotonic-clock@{V};
    use wasi:io/poll@{V}.{{pollable}};
    export subscribe: func(d: u64) -> pollable;
}}
"""
CLOCK = f"wasi:clocks/monotonic-clock@{V}"
#: now, a 50 ms timer, block on it, now again: returns the difference of the readings.
PROBE = f"""(module
  (import "{CLOCK}" "now" (func $now (result i64)))
  (import "{CLOCK}" "subscribe-duration" (func $sub (param i64) (result i32)))
  (import "wasi:io/poll@{V}" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/poll@{V}" "[resource-drop]pollable" (func $drop (param i32)))
  (func (export "run") (result i64)
    (local $p i32) (local $t0 i64)
    call $now
    local.set $t0
    i64.const 50000000
    call $sub
    local.tee $p
    call $block
    local.get $p
    call $drop
    call $now
    local.get $t0
    i64.sub))
"""
HELPER = f"""(module
  (import "{CLOCK}" "subscribe-duration" (func $sub (param i64) (result i32)))
  (func (export "subscribe") (param i64) (result i32)
    local.get 0
    call $sub))
"""


def _component(tmp: Path, name: str, wat: str) -> Path:
    wit = tmp / "wit"
    (wit / "deps").mkdir(parents=True, exist_ok=True)
    for dep in ("wasi-clocks.wit", "wasi-io.wit"):
        (wit / "deps" / dep).write_text((WIT_DIR / "deps" / dep).read_text())
    (wit / "probe.wit").write_text(WIT)
    (tmp / f"{name}.wat").write_text(wat)
    wasm_tools("parse", tmp / f"{name}.wat", "-o", tmp / f"{name}.core.wasm")
    wasm_tools("component", "embed", wit, "-w", name, tmp / f"{name}.core.wasm", "-o",
               tmp / f"{name}.embedded.wasm")  # fmt: skip
    wasm_tools("component", "new", tmp / f"{name}.embedded.wasm", "-o", tmp / f"{name}.wasm")
    return tmp / f"{name}.wasm"


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("probe")
    return _component(tmp, "probe", PROBE), _component(tmp, "helper", HELPER)


def test_shadowing_now_alone_drops_the_rest_of_the_interface(
    components: tuple[Path, Path],
) -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())  # without it, a WASI call aborts the process
    linker = wc.Linker(engine)
    linker.add_wasip2()
    linker.allow_shadowing = True
    with linker.root() as root, root.add_instance(CLOCK) as inst:
        inst.add_func("now", lambda _store: 1)
    probe = wc.Component.from_file(engine, str(components[0]))
    with pytest.raises(wasmtime.WasmtimeError, match="matching implementation was not found"):
        linker.instantiate(store, probe)


def test_a_derived_now_with_real_timer_pollables_through_a_helper_component(
    components: tuple[Path, Path],
) -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())  # without it, a WASI call aborts the process
    helper_linker = wc.Linker(engine)
    helper_linker.add_wasip2()
    helper = helper_linker.instantiate(store, wc.Component.from_file(engine, str(components[1])))
    subscribe = helper.get_func(store, "subscribe")
    assert subscribe is not None
    calls: list[object] = []

    def now(_store: object) -> int:
        calls.append("now")
        return 1_000_000 * calls.count("now")  # derived: 1 ms per reading

    def subscribe_duration(store_: wasmtime.Store, duration: int) -> object:
        calls.append(("subscribe", duration))
        pollable = subscribe(store_, duration)  # a real WASI pollable, from the helper
        subscribe.post_return(store_)
        return pollable

    linker = wc.Linker(engine)
    linker.add_wasip2()
    linker.allow_shadowing = True
    with linker.root() as root, root.add_instance(CLOCK) as inst:
        inst.add_func("now", now)
        inst.add_func("subscribe-duration", subscribe_duration)
        inst.add_func("subscribe-instant", lambda _store, _when: None)  # unused by the probe
        inst.add_func("resolution", lambda _store: 1)
    instance = linker.instantiate(store, wc.Component.from_file(engine, str(components[0])))
    run = instance.get_func(store, "run")
    assert run is not None
    started = time.monotonic()
    elapsed = run(store)
    run.post_return(store)
    waited = time.monotonic() - started
    assert elapsed == 1_000_000  # the two readings the host made up, not the live clock
    assert calls == ["now", ("subscribe", 50_000_000), "now"]
    assert waited >= 0.05  # the guest blocked on the real timer for its duration
