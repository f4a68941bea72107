"""The host functions: WASI shadows and the durable:core interfaces.

wasmtime's WASI p2 is linked first; then, with shadowing allowed, the clocks and the
random source are replaced by ours so that the guest's `time.time()` is recorded, its
monotonic clock and timers are derived (`durable.host.monotonic`: a virtual clock, and
timer pollables that are ready at once) and its `os.urandom()` is derived from the
task's seed. Shadowing replaces a whole interface instance, so every function of each
shadowed interface is defined here. `wasi:io/poll` stays wasmtime's: the timer
pollables the host hands out are wasmtime's own, made by a helper component.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component as wc

from durable.host import step_ahead, trampoline, watchdog
from durable.host._wit import Current, Definer, add_funcs, parked, record
from durable.host.child_control import define_child_control
from durable.host.context import AttemptContext
from durable.host.continuation import define_continuation
from durable.host.coordination import define_coordination
from durable.host.http import define_http
from durable.host.monotonic import define_monotonic_clock
from durable.host.patch import define_patch
from durable.host.source import define_source
from durable.host.spawn_options import define_spawn_options
from durable.host.sql import define_sql
from durable.host.status import define_status
from durable.host.world import DURABLE_VERSION

# Components built by different componentize-py releases import different WASI 0.2.x
# versions; shadow them all so that none falls through to a live clock.
WASI_VERSIONS = tuple(f"0.2.{minor}" for minor in range(13))
#: `step.enter-checked`'s answer when the task is being cancelled.
_CANCELLED = wc.Variant("err")
_OK = wc.Variant("ok")


def build_linker(engine: wasmtime.Engine, current: Callable[[], AttemptContext]) -> wc.Linker:
    """A Linker with WASI p2 and every durable host function, for all attempts."""
    linker = wc.Linker(engine)
    linker.add_wasip2()
    linker.allow_shadowing = True
    with linker.root() as root:
        for version in WASI_VERSIONS:
            with root.add_instance(f"wasi:clocks/wall-clock@{version}") as clock:
                _define_wall_clock(clock, current)
            with root.add_instance(f"wasi:clocks/monotonic-clock@{version}") as mono:
                define_monotonic_clock(mono, current)
            with root.add_instance(f"wasi:random/random@{version}") as rand:
                _define_random(rand, current)
        for define in INTERFACES:
            define(root, current)
    return linker


def _define_wall_clock(inst: wc.LinkerInstance, current: Callable[[], AttemptContext]) -> None:
    def now(_store: object) -> wc.Record:
        ns = current().now_ns()
        return record(seconds=ns // 1_000_000_000, nanoseconds=ns % 1_000_000_000)

    def resolution(_store: object) -> wc.Record:
        return record(seconds=0, nanoseconds=1000)

    add_funcs(inst, current, {"now": now, "resolution": resolution})


def _define_random(inst: wc.LinkerInstance, current: Callable[[], AttemptContext]) -> None:
    def get_random_bytes(_store: object, length: int) -> bytes:
        return current().random_bytes(length)

    def get_random_u64(_store: object) -> int:
        return int.from_bytes(current().random_bytes(8), "little")

    add_funcs(
        inst, current, {"get-random-bytes": get_random_bytes, "get-random-u64": get_random_u64}
    )


def guarded_take_ahead(current: Current) -> Callable[[object], wc.Variant]:
    """`step.take-ahead` as `guarded(current, ...)` makes it, in one frame: the trampoline
    calls it once per replayed step. (The watchdog's fallback needs `guarded` itself.)"""

    def take_ahead(_store: object) -> wc.Variant:
        try:
            step_ahead.take_ahead(current())
        except step_ahead.Cancelled:
            return _CANCELLED
        except BaseException as exc:  # what `guarded` does
            raise parked(current, exc) from None
        return _OK

    return take_ahead


def _define_core(root: wc.LinkerInstance, current: Current) -> None:
    with root.add_instance(f"durable:core/types@{DURABLE_VERSION}"):
        pass  # types only

    def info(_store: object) -> wc.Record:
        ctx = current()
        task = ctx.task
        created = task.created_at.timestamp()
        seconds = int(created // 1)
        return record(
            id=task.id,
            name=task.name,
            entry=task.entry,
            input=task.input,
            created_at=record(seconds=seconds, nanoseconds=int((created - seconds) * 1e9)),
            attempt=ctx.attempt,
        )

    def cancelled(_store: object) -> bool:
        return current().cancelled()

    with root.add_instance(f"durable:core/task@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"info": info, "cancelled": cancelled})

    def enter(_store: object, label: str, digest: str | None) -> str | None:
        return current().step_enter(label, digest)

    def exit_(_store: object, payload: str) -> None:
        current().step_exit(payload)

    # `cancelled` then `enter`, as the guest would call them (`enter` behind its gate),
    # in one host crossing: half the crossings of a replay. The same as `enter-ahead`
    # without the entries after it (so it, too, forgets any handed out before).
    def enter_checked(_store: object, label: str, digest: str | None) -> wc.Variant:
        try:
            return wc.Variant("ok", step_ahead.enter_ahead(current(), label, digest))
        except step_ahead.Cancelled:
            return _CANCELLED

    # The replay buffer (`durable.host.step_ahead`): `enter-checked` and the steps after.
    # Its result is untagged in wasmtime-py (no Python value fits both cases): `ok` is
    # the tuple itself, `err` is None.
    def enter_ahead(
        _store: object, label: str, digest: str | None, limit: int
    ) -> tuple[str | None, str] | None:
        ctx = current()
        try:
            payload = step_ahead.enter_ahead(ctx, label, digest)
        except step_ahead.Cancelled:
            return None
        return payload, step_ahead.handed_out(ctx, limit)

    def take_ahead(_store: object) -> wc.Variant:
        try:
            step_ahead.take_ahead(current())
        except step_ahead.Cancelled:
            return _CANCELLED
        return _OK

    with root.add_instance(f"durable:core/step@{DURABLE_VERSION}") as inst:
        # (`enter-checked` and the buffer's calls are not gated as a whole: their
        # `enter` half is, as above.)
        add_funcs(
            inst,
            current,
            {
                "enter": enter,
                "exit": exit_,
                "enter-checked": enter_checked,
                "enter-ahead": enter_ahead,
            },
        )
        if watchdog.CALLBACKS:
            trampoline.add_func(inst, "take-ahead", guarded_take_ahead(current))
        else:
            add_funcs(inst, current, {"take-ahead": take_ahead})

    def sleep(_store: object, duration_ns: int) -> None:
        current().sleep(duration_ns)

    def sleep_until(_store: object, deadline: Any) -> None:
        current().sleep_until(deadline.seconds * 1_000_000_000 + deadline.nanoseconds)

    with root.add_instance(f"durable:core/timer@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"sleep": sleep, "sleep-until": sleep_until})


#: Each durable interface's host functions. An interface with its own module (HTTP,
#: SQL, ...) adds its definer here.
INTERFACES: list[Definer] = [
    _define_core,
    define_http,
    define_coordination,
    define_sql,
    define_status,
    define_child_control,
    define_patch,
    define_source,
    define_spawn_options,
    define_continuation,
]
