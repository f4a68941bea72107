"""A faster trampoline for host functions, in place of wasmtime-py's generic one.

Why: every guest call of a host function goes through wasmtime-py's generic callback
(`wasmtime/component/_linker.py:func_impl`). On every call it wraps the function type,
lifts each parameter type and the result type through the C API (walking every nested
type: records, options, variants...), and its converters lift nested types again for
each value (a record's fields, an option's payload, a variant's cases, several times
over). A `list<u8>` result is lowered one byte at a time. Most of the host-call cost of
a replay was there.

Here each registered function keeps a *plan*: its parameter and result types, lifted
once, and a tree of converters built from them. A plan is reused only for a call whose
function type is equal to the one it was built from. Why a check is needed: the linker
does not type-check dynamically defined functions, and the type a callback receives is
the type of the import as the calling component declared it. Two components may import
one name with different types (say, built against different revisions of a WIT package
that kept its version), and the type object is a temporary on the native stack (the
same address for every call, whatever the type), so its address is no key. Each call
therefore compares its types with the plan's, with wasmtime's own structural equality
(`wasmtime_component_valtype_equal`, quick when both sides come from one component, as
they share its type tables): one FFI call per parameter, two more for a compound type,
about 1.5 us for `step.enter`. Another type gets a plan of its own. Within a
`plan_scope` (the runtime opens one per attempt: one store, one component calling us)
a function's type cannot change, so only its first call there is checked.

Why cached types stay valid: a lifted compound type (`ListType`, `RecordType`...) owns
its C handle, a boxed clone of wasmtime's type that holds its own reference to the
component's type tables. It borrows nothing from the callback's function type or the
store, so it outlives both; the plans keep their own clones for the equality checks.

The converters copy arguments out without taking them (wasmtime drops the arguments
after the callback) and build results with the C API's own allocators, as wasmtime-py
does. A Python exception still becomes a trap as in wasmtime-py's `catch_exceptions`.
Shapes this module does not convert itself (flags, resources, streams, futures) make the
plan call wasmtime-py's converters on the cached types instead.

It needs wasmtime-py's private parts, which `durable.host._wasmtime` holds behind its
version check; when they are not in use (`_wasmtime.FAST` is false), `add_func` falls
back to the public `LinkerInstance.add_func`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import operator
import threading
from collections.abc import Callable, Iterator
from ctypes import byref, string_at
from typing import Any

import wasmtime
from wasmtime import component as wc

from durable.host import _wasmtime
from durable.host._wasmtime import WRITTEN_FOR as WRITTEN_FOR

_Variant = wc.Variant

Lift = Callable[[Any], Any]  # a C value (a view, not taken) -> its Python value
Lower = Callable[[Any, Any], None]  # (Python value, C value to fill)
HostFunc = Callable[..., Any]

#: Per thread: the plans already checked in the current `plan_scope`, by entry.
_scope = threading.local()

#: Whether `add_func` uses this trampoline (else wasmtime-py's public `add_func`).
FAST = _wasmtime.FAST
ffi: Any = _wasmtime.ffi  # wasmtime-py's C bindings, when FAST
#: What a host function gets for its store here: durable's host functions take the
#: store first, as wasmtime-py passes it, and use none of it, so none is made per call
#: (the converters this module leaves to wasmtime-py get the real one). Any use of this
#: one raises, as a store used after its call does.
NO_STORE = wasmtime.StoreContext(None)  # type: ignore[arg-type]


def add_func(inst: wc.LinkerInstance, name: str, fn: HostFunc) -> None:
    """Define `fn` as `name` in `inst`: through the fast trampoline when it is active."""
    if not FAST:
        inst.add_func(name, fn)
        return
    _wasmtime.assert_not_locked(inst)
    idx = next(_ids)
    _ENTRIES[idx] = _Entry(fn)
    name_bytes = name.encode("utf-8")
    name_buf = ctypes.create_string_buffer(name_bytes)
    err = ffi.wasmtime_component_linker_instance_add_func(
        inst.ptr(), name_buf, len(name_bytes), _callback, idx, _finalize
    )
    if err:
        _ENTRIES.pop(idx, None)
        raise _wasmtime.error_from_ptr(err)


class _Entry:
    """One registered function and its plans, one per distinct function type seen."""

    __slots__ = ("fn", "plans")

    def __init__(self, fn: HostFunc) -> None:
        self.fn = fn
        self.plans: list[_Plan] = []

    def call(
        self, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, nresults: int
    ) -> None:
        scope: dict[_Entry, _Plan] | None = _scope.__dict__.get("plans")
        plan = None if scope is None else scope.get(self)
        if plan is None or plan.nparams != nargs:
            plan = self.plan(ty_raw, nargs, nresults)
            if scope is not None:
                scope[self] = plan
        lifts = plan.lifts
        if nargs == 0:
            result = self.fn(NO_STORE)
        elif nargs == 1:
            result = self.fn(NO_STORE, lifts[0](args[0]))
        else:
            result = self.fn(NO_STORE, *[lifts[i](args[i]) for i in range(nargs)])
        images = plan.images
        if images is not None and type(result) is _Variant:
            # `_image_finish`, without its frame (`take-ahead`, once per replayed step).
            image = images.get(result.tag)
            if image is not None:
                results[0] = image
                return
        plan.finish(context, result, results)

    def plan(self, ty_raw: Any, nargs: int, nresults: int) -> _Plan:
        """The plan for the function type `ty_raw`, checked type by type (or new)."""
        for plan in self.plans:
            if plan.matches(ty_raw, nargs, nresults):
                return plan
        plan = _Plan(ty_raw)
        self.plans.append(plan)
        return plan


@contextlib.contextmanager
def plan_scope() -> Iterator[None]:
    """Within this block, on this thread, each function's plan is checked once.

    For a block in which this thread runs guest code of one store holding one
    component instance (one attempt): a function's import type cannot change inside
    it, so the type check of its first call covers the rest. Outside any scope, or
    in a nested one, every call is checked as before.
    """
    saved = _scope.__dict__.get("plans")
    _scope.plans = {}
    try:
        yield
    finally:
        _scope.plans = saved


class _Plan:
    """A function type's lifted types, their converters, and clones for equality checks."""

    def __init__(self, ty_raw: Any) -> None:
        self.keys: list[Any] = []  # owned clones of the C types: params, then the result
        types: list[wc.ValType] = []
        for i in range(ffi.wasmtime_component_func_type_param_count(ty_raw)):
            raw = ffi.wasmtime_component_valtype_t()
            found = ffi.wasmtime_component_func_type_param_nth(
                ty_raw, i, byref(ctypes.POINTER(ctypes.c_char)()), byref(ctypes.c_size_t()), raw
            )
            assert found
            types.append(self._keep(raw))
        raw = ffi.wasmtime_component_valtype_t()
        result = self._keep(raw) if ffi.wasmtime_component_func_type_result(ty_raw, raw) else None
        self.nparams = len(types)
        # (index, kind, key for a compound type) per parameter, then for the result
        self.checks = [
            (i, ctypes.c_size_t(i), key.kind, byref(key) if key.kind >= _FIRST_COMPOUND else None)
            for i, key in enumerate(self.keys)
        ]
        self.types = types  # keeps the lifted types (and their C handles) alive
        # A result's lowered C value per tag, copied in by `_Entry.call` (see `_images`).
        self.images: dict[str, Any] | None = None
        try:
            self.lifts = [_lift(t) for t in types]
            lower = None if result is None else _lower(result)
        except _Unsupported:  # wasmtime-py's own converters, on the cached types
            self.lifts = [t.convert_from_c for t in types]
            self.finish = _generic_finish(result)
        else:
            images = None if result is None or lower is None else _images(result, lower)
            if lower is None or images is None:
                self.finish = _fast_finish(lower)
            else:
                self.images = images
                self.finish = _image_finish(lower, images)

    def _keep(self, raw: Any) -> wc.ValType:
        key = ffi.wasmtime_component_valtype_t()
        ffi.wasmtime_component_valtype_clone(raw, key)
        self.keys.append(key)
        return _wasmtime.valtype_from_ptr(raw)  # takes `raw`

    def matches(self, ty_raw: Any, nargs: int, nresults: int) -> bool:
        """Whether `ty_raw` is the function type this plan was built from."""
        if nargs != self.nparams or nresults != len(self.keys) - nargs:
            return False
        scratch = _scratch.__dict__.get("refs") or _new_scratch()
        raw, out, name_out, len_out = scratch
        for i, index, kind, key in self.checks:
            if i < nargs:
                _param_nth(ty_raw, index, name_out, len_out, out)
            elif not _result(ty_raw, out):
                return False
            if raw.kind != kind:
                if raw.kind >= _FIRST_COMPOUND:
                    _valtype_delete(out)
                return False
            if key is not None:  # compound: compare in full, then free our copy
                equal = _valtype_equal(out, key)
                _valtype_delete(out)
                if not equal:
                    return False
        return True

    def __del__(self) -> None:
        for key in getattr(self, "keys", ()):
            try:
                ffi.wasmtime_component_valtype_delete(key)
            except Exception:  # pragma: no cover - interpreter shutdown
                return


def _fast_finish(lower: Lower | None) -> Callable[[Any, Any, Any], None]:
    if lower is None:
        return _no_result

    def finish(_store: Any, result: Any, results: Any) -> None:
        lower(result, results[0])

    return finish


def _images(ty: wc.ValType, lower: Lower) -> dict[str, Any] | None:
    """For a `result` without payloads (`take-ahead`'s), each case's lowered C value, by
    tag: such a value owns no C memory, so one copy of it is the whole lowering. None
    for any other type."""
    if not isinstance(ty, wc.ResultType):
        return None
    tagged, cases = _wasmtime.variant_cases(ty)
    if not tagged or any(t is not None for _, t in cases):
        return None
    images = {}
    for tag, _ in cases:
        images[tag] = val = ffi.wasmtime_component_val_t()
        lower(wc.Variant(tag), val)
    return images


def _image_finish(lower: Lower, images: dict[str, Any]) -> Callable[[Any, Any, Any], None]:
    """`_fast_finish(lower)` for a type `_images` has images of: a `Variant` (which is
    what `lower` takes) is copied in, by its tag (a payload it carries is ignored, as
    `lower` ignores it); anything else goes to `lower`, which refuses it as before."""
    get = images.get

    def finish(_store: Any, result: Any, results: Any) -> None:
        image = get(result.tag) if type(result) is wc.Variant else None
        if image is None:
            lower(result, results[0])
        else:
            results[0] = image  # a copy of its bytes, made in C (no foreign call)

    return finish


def _generic_finish(ty: wc.ValType | None) -> Callable[[Any, Any, Any], None]:
    if ty is None:
        return _no_result

    def finish(context: Any, result: Any, results: Any) -> None:
        store = _store_context(context)  # wasmtime-py's converters may need it
        try:
            ty.convert_to_c(store, result, results)
        finally:
            store._invalidate()

    return finish


def _no_result(_store: Any, result: Any, _results: Any) -> None:
    if result is not None:
        raise AssertionError(f"a host function without a result returned {result!r}")


class _Unsupported(Exception):
    """A type this module leaves to wasmtime-py's converters."""


def _mismatch(kind: int) -> TypeError:
    return TypeError(f"host call: unexpected value kind {kind}")


# Lifting: read a C value in place; wasmtime frees the arguments after the callback.


def _lift(ty: wc.ValType) -> Lift:
    prim = _PRIMITIVES.get(type(ty))
    if prim is not None:
        kind, field, _ = prim
        getter = _FIELD_GETTERS[field]

        def lift_prim(c: Any) -> Any:
            if c.kind != kind:
                raise _mismatch(c.kind)
            return getter(c.of)

        return lift_prim
    if isinstance(ty, wc.Char):
        return lambda c: chr(_checked(c, _K.CHAR).of.character)
    if isinstance(ty, wc.String):
        return _lift_string
    if isinstance(ty, wc.EnumType):
        return lambda c: _str(_checked(c, _K.ENUM).of.enumeration)
    if isinstance(ty, wc.ListType):
        element = ty.element
        if isinstance(element, wc.U8):
            return _lift_bytes
        lift_element = _lift(element)

        def lift_list(c: Any) -> list[Any]:
            vec = _checked(c, _K.LIST).of.list
            data = vec.data
            return [lift_element(data[i]) for i in range(vec.size)]

        return lift_list
    if isinstance(ty, wc.TupleType):
        lifts = [_lift(t) for t in ty.elements]

        def lift_tuple(c: Any) -> tuple[Any, ...]:
            vec = _checked(c, _K.TUPLE).of.tuple
            if vec.size != len(lifts):
                raise _mismatch(c.kind)
            data = vec.data
            return tuple(lift(data[i]) for i, lift in enumerate(lifts))

        return lift_tuple
    if isinstance(ty, wc.RecordType):
        fields = [(name, _lift(t)) for name, t in ty.fields]

        def lift_record(c: Any) -> wc.Record:
            vec = _checked(c, _K.RECORD).of.record
            if vec.size != len(fields):
                raise _mismatch(c.kind)
            data = vec.data
            rec = wc.Record()
            rec.__dict__.update((name, lift(data[i].val)) for i, (name, lift) in enumerate(fields))
            return rec

        return lift_record
    if isinstance(ty, wc.VariantType | wc.OptionType | wc.ResultType):
        return _lift_variant_like(ty)
    raise _Unsupported(type(ty).__name__)


def _lift_variant_like(ty: wc.VariantType | wc.OptionType | wc.ResultType) -> Lift:
    tagged, all_cases = _wasmtime.variant_cases(ty)
    cases = {name: None if t is None else _lift(t) for name, t in all_cases}

    def finish(tag: str, payload: Any) -> Any:
        lift = cases[tag]
        if lift is None:
            return wc.Variant(tag) if tagged else None
        value = lift(payload.contents)
        return wc.Variant(tag, value) if tagged else value

    if isinstance(ty, wc.OptionType):
        lift_some = cases["some"]
        assert lift_some is not None  # option<T> always has a payload type
        option = _K.OPTION

        def lift_option(c: Any) -> Any:  # the commonest compound type: a short path
            if c.kind != option:
                raise _mismatch(c.kind)
            payload = c.of.option
            return lift_some(payload.contents) if payload else None

        return lift_option
    if isinstance(ty, wc.ResultType):

        def lift_result(c: Any) -> Any:
            res = _checked(c, _K.RESULT).of.result
            return finish("ok" if res.is_ok else "err", res.val)

        return lift_result

    def lift_variant(c: Any) -> Any:
        var = _checked(c, _K.VARIANT).of.variant
        return finish(_str(var.discriminant), var.val)

    return lift_variant


def _lift_string(c: Any) -> str:
    if c.kind != _K.STRING:
        raise _mismatch(c.kind)
    vec = c.of.string
    return string_at(vec.data, vec.size).decode("utf-8")


def _lift_bytes(c: Any) -> bytes:
    vec = _checked(c, _K.LIST).of.list
    n = vec.size
    if n == 0:
        return b""
    image = string_at(vec.data, n * _VAL_SIZE)
    if image[::_VAL_SIZE] != _U8_KIND * n:
        raise _mismatch(_K.LIST)
    return image[_VAL_OFFSET::_VAL_SIZE]


# Lowering: fill a C value that the caller owns and frees. The kind is written last, once
# the value is complete; a failure on the way frees what was built and leaves `out` as it
# was (a bool, as wasmtime initialises results and vector elements).


def _lower(ty: wc.ValType) -> Lower:
    prim = _PRIMITIVES.get(type(ty))
    if prim is not None:
        kind, field, pytype = prim
        message = f"expected {pytype.__name__} for {type(ty).__name__} type"

        def lower_prim(value: Any, out: Any) -> None:
            if not isinstance(value, pytype):
                raise TypeError(message)
            setattr(out.of, field, value)
            out.kind = kind

        return lower_prim
    if isinstance(ty, wc.Char):

        def lower_char(value: Any, out: Any) -> None:
            if not isinstance(value, str) or len(value) != 1:
                raise TypeError("expected single-character string for Char type")
            out.of.character = ord(value)
            out.kind = _K.CHAR

        return lower_char
    if isinstance(ty, wc.String):
        return _lower_text("string", _K.STRING, "expected string type")
    if isinstance(ty, wc.EnumType):
        return _lower_text("enumeration", _K.ENUM, "expected str type")
    if isinstance(ty, wc.ListType):
        element = ty.element
        if isinstance(element, wc.U8):
            return _lower_bytes
        lower_element = _lower(element)

        def lower_list(value: Any, out: Any) -> None:
            if not isinstance(value, list):
                raise TypeError("expected list value")
            out.of.list = _vector(
                _LIST_VEC, len(value), lambda data, i: lower_element(value[i], data[i])
            )
            out.kind = _K.LIST

        return lower_list
    if isinstance(ty, wc.TupleType):
        lowers = [_lower(t) for t in ty.elements]

        def lower_tuple(value: Any, out: Any) -> None:
            if not isinstance(value, tuple):
                raise TypeError("expected tuple type")
            if len(value) != len(lowers):
                raise TypeError("tuple length mismatch")
            out.of.tuple = _vector(
                _TUPLE_VEC, len(value), lambda data, i: lowers[i](value[i], data[i])
            )
            out.kind = _K.TUPLE

        return lower_tuple
    if isinstance(ty, wc.RecordType):
        fields = [(name, name.encode("utf-8"), _lower(t)) for name, t in ty.fields]

        def lower_record(value: Any, out: Any) -> None:
            def fill(data: Any, i: int) -> None:
                name, encoded, lower = fields[i]
                entry = data[i]
                lower(getattr(value, name), entry.val)
                entry.name = _name(encoded)

            out.of.record = _vector(_RECORD_VEC, len(fields), fill)
            out.kind = _K.RECORD

        return lower_record
    if isinstance(ty, wc.VariantType | wc.OptionType | wc.ResultType):
        return _lower_variant_like(ty)
    raise _Unsupported(type(ty).__name__)


def _lower_text(field: str, kind: int, message: str) -> Lower:
    """A string or an enum case: UTF-8 bytes in a new C vector."""

    def lower_text(value: Any, out: Any) -> None:
        if not isinstance(value, str):
            raise TypeError(message)
        setattr(out.of, field, _name(value.encode("utf-8")))
        out.kind = kind

    return lower_text


def _lower_variant_like(ty: wc.VariantType | wc.OptionType | wc.ResultType) -> Lower:
    """As wasmtime-py's `VariantLikeType._lower`: the first case that fits, in order."""
    tagged, all_cases = _wasmtime.variant_cases(ty)
    cases: list[tuple[str, Lower | None, tuple[type, ...]]] = []
    for name, t in all_cases:
        classes: set[type] = set()
        if t is not None:
            t.add_classes(classes)
        cases.append((name, None if t is None else _lower(t), tuple(classes)))

    def choose(value: Any) -> tuple[str, Any]:
        if tagged and not isinstance(value, wc.Variant):
            raise TypeError("expected Variant type")
        for name, lower, classes in cases:
            if tagged:
                if name != value.tag:
                    continue
            elif lower is None:
                if value is not None:
                    continue
            elif not isinstance(value, classes):
                continue
            if lower is None:
                return name, None
            payload = ffi.wasmtime_component_val_t()
            lower(value.payload if tagged else value, payload)
            return name, _val_new(byref(payload))  # moves `payload` into a new box
        raise ValueError("value not valid for this variant")

    if isinstance(ty, wc.OptionType):
        # As `choose` does for an option, without its loop: none for None, else some.
        _, lower_some, some_classes = cases[1]
        assert lower_some is not None  # option<T> always has a payload type
        new_val = ffi.wasmtime_component_val_t
        option = _K.OPTION

        def lower_option(value: Any, out: Any) -> None:
            if value is None:
                out.of.option = None
            elif isinstance(value, some_classes):
                payload = new_val()
                lower_some(value, payload)
                out.of.option = _val_new(byref(payload))  # moves `payload` into a new box
            else:
                raise ValueError("value not valid for this variant")
            out.kind = option

        return lower_option
    if isinstance(ty, wc.ResultType) and tagged:
        # As `choose` does for a tagged result, without its loop.
        by_tag = {name: lower for name, lower, _ in cases}
        new_result_val = ffi.wasmtime_component_val_t
        result_kind = _K.RESULT

        def lower_tagged_result(value: Any, out: Any) -> None:
            if not isinstance(value, wc.Variant):
                raise TypeError("expected Variant type")
            tag = value.tag
            if tag not in by_tag:
                raise ValueError("value not valid for this variant")
            lower = by_tag[tag]
            payload = None
            if lower is not None:
                val = new_result_val()
                lower(value.payload, val)
                payload = _val_new(byref(val))  # moves `val` into a new box
            res = out.of.result
            res.is_ok = tag == "ok"
            res.val = payload
            out.kind = result_kind

        return lower_tagged_result
    if isinstance(ty, wc.ResultType):

        def lower_result(value: Any, out: Any) -> None:
            name, payload = choose(value)
            res = out.of.result
            res.is_ok = name == "ok"
            res.val = payload
            out.kind = _K.RESULT

        return lower_result

    def lower_variant(value: Any, out: Any) -> None:
        name, payload = choose(value)
        var = out.of.variant
        var.discriminant = _name(name.encode("utf-8"))
        var.val = payload
        out.kind = _K.VARIANT

    return lower_variant


def _vector(kind: tuple[Any, Any, Any], n: int, fill: Callable[[Any, int], None]) -> Any:
    """A C vector of `n` values, element `i` filled by `fill(data, i)`; `kind` is the
    vector's (type, constructor, destructor), one of the `_*_VEC` triples."""
    vec_type, new_uninit, delete = kind
    vec = vec_type()
    new_uninit(vec, n)  # every element starts as a bool: safe to free
    data = vec.data
    try:
        for i in range(n):
            fill(data, i)
    except BaseException:
        delete(vec)
        raise
    return vec


def _lower_bytes(value: Any, out: Any) -> None:
    """`list<u8>` in one copy: the vector's image built with slice assignments."""
    if not isinstance(value, bytes):
        raise TypeError("expected bytes value")
    n = len(value)
    vec = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(vec, n)
    if n:
        image = bytearray(n * _VAL_SIZE)
        image[::_VAL_SIZE] = _U8_KIND * n
        image[_VAL_OFFSET::_VAL_SIZE] = value
        ctypes.memmove(vec.data, (ctypes.c_char * len(image)).from_buffer(image), len(image))
    out.of.list = vec
    out.kind = _K.LIST


def _checked(c: Any, kind: int) -> Any:
    if c.kind != kind:
        raise _mismatch(c.kind)
    return c


def _str(vec: Any) -> str:
    return string_at(vec.data, vec.size).decode("utf-8")


def _name(data: bytes) -> Any:
    """A new C byte vector holding `data` (owned by whatever it is stored in)."""
    vec = ffi.wasm_byte_vec_t()
    _byte_vec_new(byref(vec), ctypes.c_size_t(len(data)), data)  # copies `data`
    return vec


if FAST:

    class _K:
        """Value kinds (`wasmtime_component_val_t.kind`)."""

        BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
        CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
        STRING = ffi.WASMTIME_COMPONENT_STRING.value
        LIST = ffi.WASMTIME_COMPONENT_LIST.value
        RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
        TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
        VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
        ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
        OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
        RESULT = ffi.WASMTIME_COMPONENT_RESULT.value

    #: Primitive types: their value kind, union field and accepted Python type.
    _PRIMITIVES: dict[type, tuple[int, str, type]] = {
        wc.Bool: (_K.BOOL, "boolean", bool),
        wc.S8: (ffi.WASMTIME_COMPONENT_S8.value, "s8", int),
        wc.U8: (ffi.WASMTIME_COMPONENT_U8.value, "u8", int),
        wc.S16: (ffi.WASMTIME_COMPONENT_S16.value, "s16", int),
        wc.U16: (ffi.WASMTIME_COMPONENT_U16.value, "u16", int),
        wc.S32: (ffi.WASMTIME_COMPONENT_S32.value, "s32", int),
        wc.U32: (ffi.WASMTIME_COMPONENT_U32.value, "u32", int),
        wc.S64: (ffi.WASMTIME_COMPONENT_S64.value, "s64", int),
        wc.U64: (ffi.WASMTIME_COMPONENT_U64.value, "u64", int),
        wc.F32: (ffi.WASMTIME_COMPONENT_F32.value, "f32", float),
        wc.F64: (ffi.WASMTIME_COMPONENT_F64.value, "f64", float),
    }
    _FIELD_GETTERS = {field: operator.attrgetter(field) for _, field, _ in _PRIMITIVES.values()}
    #: Type kinds from here on own a C handle (list, record, ...); those before do not.
    _FIRST_COMPOUND = ffi.WASMTIME_COMPONENT_VALTYPE_LIST.value
    _VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
    _VAL_OFFSET = ffi.wasmtime_component_val_t.of.offset
    _U8_KIND = bytes([ffi.WASMTIME_COMPONENT_U8.value])
    #: Each C vector of values: its type, constructor and destructor (see `_vector`).
    _LIST_VEC = (
        ffi.wasmtime_component_vallist_t,
        ffi.wasmtime_component_vallist_new_uninit,
        ffi.wasmtime_component_vallist_delete,
    )
    _TUPLE_VEC = (
        ffi.wasmtime_component_valtuple_t,
        ffi.wasmtime_component_valtuple_new_uninit,
        ffi.wasmtime_component_valtuple_delete,
    )
    _RECORD_VEC = (
        ffi.wasmtime_component_valrecord_t,
        ffi.wasmtime_component_valrecord_new_uninit,
        ffi.wasmtime_component_valrecord_delete,
    )

    def _lean(name: str, restype: Any) -> Any:
        """A C function of wasmtime's library without `argtypes`: no per-argument
        conversion (about half the cost of a call). Callers pass only ctypes objects,
        `byref`s and pointers, never bare Python ints."""
        fn = ffi.dll[name]  # a new function object, not the one wasmtime-py configured
        fn.restype = restype
        return fn

    _param_nth = _lean("wasmtime_component_func_type_param_nth", ctypes.c_bool)
    _result = _lean("wasmtime_component_func_type_result", ctypes.c_bool)
    _valtype_equal = _lean("wasmtime_component_valtype_equal", ctypes.c_bool)
    _valtype_delete = _lean("wasmtime_component_valtype_delete", None)
    _byte_vec_new = _lean("wasm_byte_vec_new", None)
    _val_new = _lean("wasmtime_component_val_new", ctypes.POINTER(ffi.wasmtime_component_val_t))
    _scratch = threading.local()  # per thread: out-parameters of the check, reused

    def _new_scratch() -> tuple[Any, Any, Any, Any]:
        raw = ffi.wasmtime_component_valtype_t()
        name, name_len = ctypes.POINTER(ctypes.c_char)(), ctypes.c_size_t()
        refs = (raw, byref(raw), byref(name), byref(name_len))
        _scratch.refs = refs
        return refs

    _store_context = _wasmtime.store_context
    _trap_for = _wasmtime.trap_for
    _ENTRIES: dict[int, _Entry] = {}
    _ids = itertools.count(1)

    @ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
    def _callback(
        idx: int | None,
        context: Any,
        ty_raw: Any,
        args: Any,
        nargs: int,
        results: Any,
        nresults: int,
    ) -> Any:
        # wasmtime-py's `catch_exceptions`, inlined: no closure, two frames fewer a call.
        try:
            _ENTRIES[idx or 0].call(context, ty_raw, args, nargs, results, nresults)
        except Exception as exc:
            return _trap_for(exc)
        return 0

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
    def _finalize(idx: int | None) -> None:
        entries = _ENTRIES
        if entries:  # None once the interpreter is shutting down
            entries.pop(idx or 0, None)
