"""The fast host-call trampoline: active on the pinned wasmtime-py, keyed by function type,
and failing the way the generic one does.

The components here are written in WAT (no build needed). The value conversions are
checked against wasmtime-py's own, shape by shape, in tests/integration/test_trampoline.py;
the integration tests run every host function through the trampoline end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from types import SimpleNamespace
from typing import Any

import pytest
import wasmtime
from wasmtime import component as wc

from durable.host import trampoline
from durable.host._wit import guarded

Register = Callable[[wc.LinkerInstance, str, Callable[..., Any]], None]


def _component(param: str, result: str, core: str, typedefs: str = "") -> str:
    """A component importing `test:t/host` `f: func(x: PARAM) -> RESULT` and exporting
    `run: func(x: PARAM) -> PARAM`, which returns `f(x)` (both flatten to one CORE)."""
    return f"""
(component
  (import "test:t/host" (instance $host
    {typedefs}
    (export "f" (func (param "x" {param}) (result {result})))))
  (alias export $host "f" (func $f))
  (core func $f_low (canon lower (func $f)))
  (core module $m
    (import "host" "f" (func $f (param {core}) (result {core})))
    (func (export "run") (param {core}) (result {core}) local.get 0 call $f))
  (core instance $i (instantiate $m (with "host" (instance (export "f" (func $f_low))))))
  (alias core export $i "run" (core func $run))
  (func (export "run") (param "x" {param}) (result {param}) (canon lift (core func $run)))
)"""


def _record(field: str) -> str:
    """A component whose `f` returns `record { FIELD: u32 }`."""
    typedefs = f'(type $r (record (field "{field}" u32))) (export "r" (type $r2 (eq $r)))'
    return _component("u32", "$r2", "i32", typedefs)


@pytest.fixture
def engine() -> wasmtime.Engine:
    return wasmtime.Engine()


def _linker(engine: wasmtime.Engine, fn: Callable[..., Any], register: Register) -> wc.Linker:
    linker = wc.Linker(engine)
    with linker.root() as root, root.add_instance("test:t/host") as inst:
        register(inst, "f", fn)
    return linker


def _run(engine: wasmtime.Engine, linker: wc.Linker, wat: str, x: int) -> Any:
    store = wasmtime.Store(engine)
    try:
        instance = linker.instantiate(store, wc.Component(engine, wat))
        run = instance.get_func(store, "run")
        assert run is not None
        return run(store, x)
    finally:
        store.close()


def _generic(inst: wc.LinkerInstance, name: str, fn: Callable[..., Any]) -> None:
    inst.add_func(name, fn)


REGISTRATIONS: dict[str, Register] = {"fast": trampoline.add_func, "generic": _generic}


def test_the_fast_path_is_active_with_the_pinned_wasmtime() -> None:
    # The fast path is written for one wasmtime-py release; pyproject.toml pins it.
    assert metadata.version("wasmtime") == trampoline.WRITTEN_FOR
    assert trampoline.FAST


def test_the_fast_path_serves_calls(engine: wasmtime.Engine) -> None:
    before = set(trampoline._ENTRIES)
    linker = _linker(engine, lambda _store, x: x + 1, trampoline.add_func)
    (new,) = set(trampoline._ENTRIES) - before
    assert _run(engine, linker, _component("u32", "u32", "i32"), 41) == 42
    assert len(trampoline._ENTRIES[new].plans) == 1
    assert _run(engine, linker, _component("u32", "u32", "i32"), 1) == 2
    assert len(trampoline._ENTRIES[new].plans) == 1  # another store: the same plan


def test_other_versions_take_the_generic_path(
    engine: wasmtime.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trampoline, "FAST", False)
    before = set(trampoline._ENTRIES)
    linker = _linker(engine, lambda _store, x: x * 2, trampoline.add_func)
    assert set(trampoline._ENTRIES) == before
    assert _run(engine, linker, _component("u32", "u32", "i32"), 21) == 42


def _plus(offsets: dict[str, int]) -> Callable[..., Any]:
    """A host function returning `x + offset` as a number and as a record."""

    def f(_store: object, x: int) -> Any:
        rec = wc.Record()
        for field, offset in offsets.items():
            setattr(rec, field, x + offset)
        return rec if len(offsets) > 1 else x + offsets["n"]

    return f


#: Two components importing `f` with different types, and `f`'s offsets for each.
TWO_TYPES = pytest.mark.parametrize(
    ("first", "second", "offsets"),
    [
        (_component("u32", "u32", "i32"), _component("u64", "u64", "i64"), {"n": 1}),
        (_record("a"), _record("b"), {"a": 1, "b": 2}),
    ],
    ids=["primitive", "record"],
)


@TWO_TYPES
def test_one_import_with_two_types_gets_two_plans(
    engine: wasmtime.Engine, first: str, second: str, offsets: dict[str, int]
) -> None:
    """Two components import `f` with different types: each call is converted by its own
    type, as wasmtime-py's generic path does (one cached plan would trap the second)."""
    before = set(trampoline._ENTRIES)
    linker = _linker(engine, _plus(offsets), trampoline.add_func)
    (new,) = set(trampoline._ENTRIES) - before
    for _ in range(2):
        assert _run(engine, linker, first, 10) == 10 + offsets.get("a", 1)
        assert _run(engine, linker, second, 10) == 10 + offsets.get("b", 1)
    assert len(trampoline._ENTRIES[new].plans) == 2


def _counting_matches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the full type checks (`_Plan.matches` calls) from here on."""
    calls: list[int] = []
    matches = trampoline._Plan.matches

    def counted(self: Any, *args: Any) -> bool:
        calls.append(1)
        return matches(self, *args)

    monkeypatch.setattr(trampoline._Plan, "matches", counted)
    return calls


def _run_twice(engine: wasmtime.Engine, linker: wc.Linker, wat: str) -> list[int]:
    """Call `f` twice in one store: the guest's `run` once per call."""
    store = wasmtime.Store(engine)
    try:
        instance = linker.instantiate(store, wc.Component(engine, wat))
        results = []
        for x in (1, 2):
            run = instance.get_func(store, "run")
            assert run is not None
            results.append(run(store, x))
            run.post_return(store)
        return results
    finally:
        store.close()


def test_a_plan_scope_checks_each_function_type_once(
    engine: wasmtime.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    linker = _linker(engine, lambda _store, x: x + 1, trampoline.add_func)
    wat = _component("u32", "u32", "i32")
    assert _run(engine, linker, wat, 0) == 1  # the plan exists from here on
    calls = _counting_matches(monkeypatch)
    assert _run_twice(engine, linker, wat) == [2, 3]
    assert len(calls) == 2  # outside a scope: every call is checked
    calls.clear()
    with trampoline.plan_scope():
        assert _run_twice(engine, linker, wat) == [2, 3]
    assert len(calls) == 1  # inside: the first call only


@TWO_TYPES
def test_each_plan_scope_checks_its_own_types(
    engine: wasmtime.Engine, first: str, second: str, offsets: dict[str, int]
) -> None:
    """Components importing `f` with different types, one per scope (one attempt each,
    as the runtime runs them): each scope converts by its own component's type."""
    linker = _linker(engine, _plus(offsets), trampoline.add_func)
    for _ in range(2):
        for wat, key in ((first, "a"), (second, "b")):
            with trampoline.plan_scope():
                assert _run(engine, linker, wat, 10) == 10 + offsets.get(key, 1)
                with trampoline.plan_scope():  # nested: checks again, then restores
                    assert _run(engine, linker, wat, 20) == 20 + offsets.get(key, 1)
                assert _run(engine, linker, wat, 30) == 30 + offsets.get(key, 1)


@pytest.fixture(params=sorted(REGISTRATIONS))
def register(request: pytest.FixtureRequest) -> Register:
    return REGISTRATIONS[request.param]


def test_an_exception_traps_the_guest_as_before(
    engine: wasmtime.Engine, register: Register
) -> None:
    """A Python exception from a host function comes out of the guest call (wasmtime-py
    re-raises it after the trap); the linker stays usable."""
    calls = []

    def f(_store: object, x: int) -> int:
        calls.append(x)
        if x == 0:
            raise ValueError("host function failed")
        return x

    linker = _linker(engine, f, register)
    wat = _component("u32", "u32", "i32")
    with pytest.raises(ValueError, match="host function failed"):
        _run(engine, linker, wat, 0)
    assert _run(engine, linker, wat, 7) == 7
    assert calls == [0, 7]


def test_a_wrong_result_traps_the_guest(engine: wasmtime.Engine, register: Register) -> None:
    linker = _linker(engine, lambda _store, x: "not a number", register)
    with pytest.raises(TypeError, match="expected int"):
        _run(engine, linker, _component("u32", "u32", "i32"), 1)


class Stop(BaseException):
    """Like the runtime's control signals: not an `Exception`."""


def test_a_guarded_base_exception_is_parked_and_the_guest_unwound(
    engine: wasmtime.Engine, register: Register
) -> None:
    attempt = SimpleNamespace(unwinding=None)

    def f(_store: object, x: int) -> int:
        raise Stop()

    linker = _linker(engine, guarded(lambda: attempt, f), register)  # type: ignore[arg-type,return-value]
    with pytest.raises(wasmtime.WasmtimeError, match=r"durable: unwinding \(Stop\)"):
        _run(engine, linker, _component("u32", "u32", "i32"), 1)
    assert isinstance(attempt.unwinding, Stop)
