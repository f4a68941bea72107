"""Every use of wasmtime-py's private API, behind one version check.

The host reaches below wasmtime-py's public API in three places, each for a reason the
public API cannot serve:

- the host-call trampoline (`durable.host.trampoline`): wasmtime-py's generic callback
  re-lifts every type on every call; ours caches plans. Needs the C bindings (`_ffi`),
  `StoreContext` and `LAST_EXCEPTION` (as wasmtime-py's `catch_exceptions` uses them),
  `valtype_from_ptr`, `LinkerInstance._assert_not_locked`,
  `WasmtimeError._from_ptr` and the case lists of variant-like types;
- the watchdog (`durable.host.watchdog`): an epoch deadline *callback*, so that a guest
  running without host calls gets another slice (and its output committed) or is
  stopped. wasmtime-py wraps only `set_epoch_deadline`, whose deadline traps;
- guest output (`durable.host.lifecycle`): a custom output stream whose finalizer is
  plain C, so that no Python runs when wasmtime drops a stream on a tokio thread, and
  whose release Python can see.

All of it was written against one release, `WRITTEN_FOR`. `FAST` says whether it is in
use: true only for that release, when the private names import, and when
`DURABLE_WASMTIME_FALLBACK` is not set. Otherwise every caller takes its fallback, which
uses only public API (slower, see each module), and an unexpected release says so in
one warning line. Nothing outside this module names a private part of wasmtime-py; the
trampoline calls the C API through `ffi`, the module of C bindings wasmtime-py ships.

What upstream could add to make this module unnecessary: `Store` wrapping
`wasmtime_store_epoch_deadline_callback` (a Python callback returning "continue for N
ticks" or an error to trap with); custom WASI output whose release runs no Python (or
is observable, or happens at `Store.close()`); and, for component host functions, a
callback that reuses its lifted types per function type, converts `list<u8>` as bytes
in one copy, and public accessors for variant-like types' cases.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component as wc

from durable import _dist, settings

#: The wasmtime-py release the private uses below were written and checked against.
WRITTEN_FOR = "50.0.1"

log = logging.getLogger("durable.host")


def installed_version() -> str | None:
    return _dist.version("wasmtime")


def _choose() -> bool:
    if settings.wasmtime_fallback():
        return False  # asked for: no warning
    found = installed_version()
    if found != WRITTEN_FOR:
        log.warning(
            "durable: wasmtime-py %s is not %s, the release its fast paths were written "
            "for: using its public API only (slower)",
            found,
            WRITTEN_FOR,
        )
        return False
    return True


FAST = _choose()
ffi: Any = None  # the C bindings (`wasmtime._ffi`), when FAST
if FAST:
    try:
        from wasmtime import _bindings
        from wasmtime import _ffi as ffi
        from wasmtime.component import _enter
        from wasmtime.component._types import valtype_from_ptr as _valtype_from_ptr

        # Checked here, once, rather than failing at a first guest call.
        _DEADLINE_CALLBACK = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
        _DEADLINE_FINALIZER = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]
        _WRITE = _bindings._wasi_config_set_stdout_custom.argtypes[1]
        _WRITE_FINALIZER = _bindings._wasi_config_set_stdout_custom.argtypes[3]
        getattr(_enter, "LAST_EXCEPTION")  # noqa: B009 - where `trap_for` keeps it
        for _name in ("_assert_not_locked",):
            getattr(wc.LinkerInstance, _name)
        for _name in ("_tagged", "_cases"):
            getattr(wc.VariantType, _name)
        getattr(wasmtime.WasmtimeError, "_from_ptr")  # noqa: B009 - a presence check
        getattr(wasmtime.WasmtimeError, "_consume")  # noqa: B009
    except (ImportError, AttributeError, IndexError, TypeError) as exc:
        log.warning(
            "durable: wasmtime-py %s lacks a private part its fast paths use (%s): "
            "using its public API only (slower)",
            WRITTEN_FOR,
            exc,
        )
        FAST = False
        ffi = None


# -- the trampoline ---------------------------------------------------------------------


def store_context(context: Any) -> wasmtime.StoreContext:
    """The store a host function receives, as wasmtime-py's `catch_exceptions` makes
    it (callers invalidate it when the call returns)."""
    return wasmtime.StoreContext(context)


def trap_for(exc: Exception) -> Any:
    """What a host callback returns for `exc`, as wasmtime-py's `catch_exceptions` does:
    the error itself, or a stand-in, `exc` kept for wasmtime-py to re-raise after the call."""
    if not isinstance(exc, wasmtime.WasmtimeError):
        _enter.LAST_EXCEPTION = exc
        exc = wasmtime.WasmtimeError("python exception")
    return ctypes.cast(exc._consume(), ctypes.c_void_p).value


def valtype_from_ptr(raw: Any) -> wc.ValType:
    """Lift a C value type into wasmtime-py's type object (takes `raw`)."""
    ty: wc.ValType = _valtype_from_ptr(raw)
    return ty


def assert_not_locked(inst: wc.LinkerInstance) -> None:
    """Raise as `LinkerInstance.add_func` does when the instance is in use."""
    inst._assert_not_locked()


def error_from_ptr(ptr: Any) -> wasmtime.WasmtimeError:
    """The `WasmtimeError` for an error the C API returned (takes it)."""
    error: wasmtime.WasmtimeError = wasmtime.WasmtimeError._from_ptr(ptr)
    return error


def variant_cases(
    ty: wc.VariantType | wc.OptionType | wc.ResultType,
) -> tuple[bool, list[tuple[str, wc.ValType | None]]]:
    """Whether values of `ty` are tagged (`Variant`), and its cases in order."""
    return ty._tagged(), list(ty._cases())


# -- the watchdog -----------------------------------------------------------------------

#: wasmtime's `WASMTIME_UPDATE_DEADLINE_CONTINUE`.
DEADLINE_CONTINUE = 0
#: Called on the guest's thread when its epoch deadline passes: (delta, kind) are
#: out-parameters to fill to continue; returns 0 to continue, or an error to trap with.
DeadlineCallback = Callable[[Any, Any], int]


def on_epoch_deadline(store: wasmtime.Store, callback: DeadlineCallback) -> object:
    """Have wasmtime call `callback` instead of trapping when `store`'s deadline passes.

    Returns the C callback: keep it alive as long as the store.
    """

    def raw(_context: object, _data: object, delta: object, kind: object) -> int:
        return callback(delta, kind)

    c_callback = _DEADLINE_CALLBACK(raw)
    _bindings.wasmtime_store_epoch_deadline_callback(
        store.ptr(),
        c_callback,
        None,
        _DEADLINE_FINALIZER(),  # a null finalizer
    )
    return c_callback


def trap_error(message: str) -> int:
    """A new error for wasmtime to raise as a trap; its ownership passes to wasmtime."""
    error = wasmtime.WasmtimeError(message)
    return ctypes.cast(error._consume(), ctypes.c_void_p).value or 0


# -- guest output -----------------------------------------------------------------------

#: Receives each write of the guest to one of its output streams.
Write = Callable[[bytes], None]


class OutputStream:
    """One output stream handed to wasmtime; `released` once wasmtime dropped it."""

    __slots__ = ()

    @property
    def released(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def attach_output(wasi: wasmtime.WasiConfig, *, stdout: Write, stderr: Write) -> list[OutputStream]:
    """Send the guest's stdout and stderr writes to `stdout` and `stderr`."""
    if FAST:
        return [_attach_token(wasi, stdout, True), _attach_token(wasi, stderr, False)]
    return [_attach_public(wasi, stdout, True), _attach_public(wasi, stderr, False)]


class _TokenStream(OutputStream):
    """Fast: wasmtime passes a token's address to every write and, once, to the
    finalizer (wasmtime's own `wasm_byte_vec_delete`, plain C), which frees the token's
    one-byte buffer and sets its size to 0: the release, without any Python."""

    __slots__ = ("token", "write")

    def __init__(self, write: Write) -> None:
        self.write = write
        self.token = _bindings.wasm_byte_vec_t()
        _bindings.wasm_byte_vec_new_uninitialized(ctypes.byref(self.token), 1)

    @property
    def address(self) -> int:
        return ctypes.addressof(self.token)

    @property
    def released(self) -> bool:
        return bool(self.token.size == 0)


# Token streams not yet released, by token address: the write callback finds its own.
_TOKENS: dict[int, _TokenStream] = {}
_TOKENS_LOCK = threading.Lock()


def _attach_token(wasi: wasmtime.WasiConfig, write: Write, stdout: bool) -> OutputStream:
    stream = _TokenStream(write)
    with _TOKENS_LOCK:
        # Released ones are forgotten only now that the new token exists: a token's
        # address is not reused while its stream is still in the map.
        for address in [a for a, s in _TOKENS.items() if s.released]:
            del _TOKENS[address]
        _TOKENS[stream.address] = stream
    if stdout:
        attach = _bindings.wasi_config_set_stdout_custom
    else:
        attach = _bindings.wasi_config_set_stderr_custom
    attach(wasi.ptr(), _ON_WRITE, stream.address, _RELEASE)
    return stream


if FAST:
    # The finalizer: wasmtime's own C function, which empties the token it is given.
    _RELEASE = _WRITE_FINALIZER(
        ctypes.cast(ffi.dll.wasm_byte_vec_delete, ctypes.c_void_p).value or 0
    )

    @_WRITE  # type: ignore[untyped-decorator]
    def _ON_WRITE(data: int | None, ptr: Any, size: int) -> int:
        # Runs on a tokio thread of wasmtime's; it must never raise into it.
        try:
            _TOKENS[data or 0].write(ctypes.string_at(ptr, size))
        except BaseException:
            return -5  # -EIO
        return size


class _PublicStream(OutputStream):
    """Fallback: wasmtime-py's `stdout_custom`. wasmtime-py holds the callable (this
    object) until wasmtime drops the stream and its Python finalizer lets go of it; we
    hold only a weak reference, so its death is the release. That finalizer is Python
    code on a tokio thread: an interpreter that exits before it runs risks the abort
    `durable.host.lifecycle` describes, which the fast path avoids."""

    __slots__ = ("__weakref__", "write")

    def __init__(self, write: Write) -> None:
        self.write = write

    def __call__(self, data: bytes) -> int:
        try:  # wasmtime-py would print an exception: fail the write quietly instead
            self.write(data)
        except BaseException:
            return -5  # -EIO
        return len(data)


class _WeakHandle(OutputStream):
    __slots__ = ("ref",)

    def __init__(self, stream: _PublicStream) -> None:
        self.ref = weakref.ref(stream)

    @property
    def released(self) -> bool:
        return self.ref() is None


def _attach_public(wasi: wasmtime.WasiConfig, write: Write, stdout: bool) -> OutputStream:
    stream = _PublicStream(write)
    handle = _WeakHandle(stream)
    if stdout:
        wasi.stdout_custom = stream
    else:
        wasi.stderr_custom = stream
    return handle
