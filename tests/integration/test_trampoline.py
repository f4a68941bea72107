"""The trampoline's value conversions give what wasmtime-py's own give, for every type of
every host function a workflow component imports (the real component, so the shapes
follow the WIT: strings, options, `list<u8>`, records, variants, results, enums...)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pytest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from durable.host import HostConfig, Runtime, trampoline
from tests.helpers import WORKFLOWS, built, load_component

#: The imports durable defines host functions for (the rest is wasmtime's WASI).
HOSTED = ("durable:core/", "wasi:clocks/wall-clock@", "wasi:random/random@")


def _host_types() -> Iterator[tuple[str, wc.ValType]]:
    runtime = Runtime(HostConfig())
    try:
        component = load_component(runtime, built(WORKFLOWS / "greeter.py")[0])
        for name, item in component.type.imports(runtime.engine).items():
            iface = item.ty
            if not name.startswith(HOSTED) or not isinstance(iface, wc.ComponentInstanceType):
                continue
            for func_name, export in iface.exports(runtime.engine).items():
                fty = export.ty
                if not isinstance(fty, wc.FuncType):
                    continue  # a type the interface exports
                for param, ty in fty.params:
                    yield f"{name}#{func_name}({param})", ty
                if fty.result is not None:
                    yield f"{name}#{func_name}->", fty.result
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def host_types() -> list[tuple[str, wc.ValType]]:
    types = list(_host_types())
    assert len(types) > 20  # every durable interface is imported
    return types


def _samples(ty: wc.ValType, depth: int = 0) -> list[Any]:
    """Valid Python values of `ty`, as wasmtime-py's converters take and give them."""
    simple: dict[type, list[Any]] = {
        wc.Bool: [True, False],
        wc.U8: [0, 255],
        wc.U16: [0, 404],
        wc.U32: [0, 7, 2**32 - 1],
        wc.U64: [0, 2**64 - 1],
        wc.S32: [-(2**31), 5],
        wc.S64: [-(2**63), -1, 2**63 - 1],
        wc.F32: [0.5, -2.0],
        wc.F64: [0.1, -1e300, float("inf")],
        wc.Char: ["x", "é"],
        wc.String: ["", "héllo ✓ 世界", "x" * 5000],
    }
    if type(ty) in simple:
        return simple[type(ty)]
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return [b"", b"\x00\x01\xff", bytes(range(256)) * 11]
        return [[], _samples(ty.element, depth + 1)[:2]]
    if isinstance(ty, wc.TupleType):
        return [tuple(_samples(t, depth + 1)[-1] for t in ty.elements)]
    if isinstance(ty, wc.EnumType):
        return ty.names
    if isinstance(ty, wc.RecordType):
        out = []
        for pick in (0, -1):
            rec = wc.Record()
            for name, t in ty.fields:
                setattr(rec, name, _samples(t, depth + 1)[pick])
            out.append(rec)
        return out
    if isinstance(ty, wc.VariantType | wc.OptionType | wc.ResultType):
        tagged = ty._tagged()
        out = []
        for name, t in ty._cases():
            payloads = [None] if t is None else _samples(t, depth + 1)[:2]
            for payload in payloads:
                if tagged:
                    out.append(wc.Variant(name) if t is None else wc.Variant(name, payload))
                else:
                    out.append(payload)
        return out
    raise AssertionError(f"no samples for {ty!r}")


#: Values of the wrong shape for most types (and of the right one for a few).
ODD_VALUES: list[Any] = [None, object(), "text", 1.5, 7, True, b"x", bytearray(b"x"), [1], (1,)]


def _generic_lower(ty: wc.ValType, value: Any) -> Any:
    val = ffi.wasmtime_component_val_t()
    ty.convert_to_c(None, value, ctypes.pointer(val))  # type: ignore[arg-type]
    return val


def _fast_lower(ty: wc.ValType, value: Any) -> Any:
    val = ffi.wasmtime_component_val_t()
    trampoline._lower(ty)(value, val)
    return val


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, wc.Record):
        return (
            isinstance(b, wc.Record)
            and a.__dict__.keys() == b.__dict__.keys()
            and all(_same(v, getattr(b, k)) for k, v in a.__dict__.items())
        )
    if isinstance(a, wc.Variant):
        return isinstance(b, wc.Variant) and a.tag == b.tag and _same(a.payload, b.payload)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def test_lowering_and_lifting_match_wasmtime_py(host_types: list[tuple[str, wc.ValType]]) -> None:
    checked = 0
    for where, ty in host_types:
        lift = trampoline._lift(ty)
        for value in _samples(ty):
            expected = ty.convert_from_c(_generic_lower(ty, value))
            # lowering: ours, read back by wasmtime-py
            assert _same(ty.convert_from_c(_fast_lower(ty, value)), expected), (where, value)
            # lifting: ours reads without taking; wasmtime-py then takes the same value
            val = _generic_lower(ty, value)
            assert _same(lift(val), expected), (where, value)
            assert _same(ty.convert_from_c(val), expected), (where, value)
            checked += 1
    assert checked > 80


def test_odd_values_behave_as_in_wasmtime_py(host_types: list[tuple[str, wc.ValType]]) -> None:
    """Refused with the same exception type, or accepted with the same result."""
    refused = 0
    for where, ty in host_types:
        for value in [*ODD_VALUES, wc.Record(), wc.Variant("nope")]:
            try:
                expected = ty.convert_from_c(_generic_lower(ty, value))
            except Exception as exc:
                with pytest.raises(type(exc)):
                    _fast_lower(ty, value)
                refused += 1
            else:
                assert _same(ty.convert_from_c(_fast_lower(ty, value)), expected), (where, value)
    assert refused > 100


def test_a_result_without_payloads_is_copied_as_it_is_lowered(
    host_types: list[tuple[str, wc.ValType]],
) -> None:
    """`take-ahead`'s result is lowered by copying its case's value, made once: the
    same value as lowering it, and the same refusals."""
    copied = 0
    for where, ty in host_types:
        lower = trampoline._lower(ty)
        images = trampoline._images(ty, lower)
        if images is None:
            continue
        finish = trampoline._image_finish(lower, images)
        for value in [*_samples(ty), wc.Variant("ok", 5), wc.Variant("nope"), *ODD_VALUES]:
            out = ffi.wasmtime_component_val_t()
            try:
                expected = ty.convert_from_c(_fast_lower(ty, value))
            except Exception as exc:
                with pytest.raises(type(exc)):
                    finish(None, value, ctypes.pointer(out))
                continue
            finish(None, value, ctypes.pointer(out))
            assert _same(ty.convert_from_c(out), expected), (where, value)
            copied += 1
    assert copied >= 3  # take-ahead's ok (twice: with a payload it ignores) and err


def test_a_failed_element_frees_what_was_built() -> None:
    """`list<string>` with a bad element: the strings already copied are freed with the
    vector, and the value being filled is left as it was."""
    engine = wasmtime.Engine()
    wat = """(component (import "t" (instance (export "f" (func (param "x" (list string)))))))"""
    (iface,) = wc.Component(engine, wat).type.imports(engine).values()
    fty = iface.ty.exports(engine)["f"].ty
    ((_, ty),) = fty.params
    val = ffi.wasmtime_component_val_t()
    with pytest.raises(TypeError):
        trampoline._lower(ty)(["a", "b", 3], val)
    assert val.kind == ffi.WASMTIME_COMPONENT_BOOL.value
