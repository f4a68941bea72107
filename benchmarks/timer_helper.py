"""What the derived monotonic clock's timer pollables cost an attempt.

    python -m benchmarks.timer_helper [--repeat N]

The host makes a guest's timer pollables with a helper component
(`durable.host.monotonic`): compiled once per engine, instantiated in an attempt's
store when its guest first subscribes to a timer, then called once per timer. Reports
the median of each, and for scale the median time to make a store with WASI, which
every attempt pays anyway.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import wasmtime

from durable.host.cache import engine_config
from durable.host.monotonic import ReadyPollables, TimerHelper


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _store(engine: wasmtime.Engine) -> wasmtime.Store:
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_epoch_deadline(1 << 40)  # the engine interrupts on epochs, as the host's does
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    engine = wasmtime.Engine(engine_config())
    helper = TimerHelper(engine)
    started = time.perf_counter()
    helper.subscriber(_store(engine))  # compiles it
    compile_ms = (time.perf_counter() - started) * 1000

    def first_timer() -> None:
        ReadyPollables(helper, _store(engine)).ready()

    pollables = ReadyPollables(helper, _store(engine))
    pollables.ready()
    rows = [
        ("timer helper, compile once per engine", compile_ms),
        ("a store with WASI (every attempt)", _median_ms(lambda: _store(engine), repeat)),
        ("store + helper instance + first timer", _median_ms(first_timer, repeat)),
        ("each further timer", _median_ms(pollables.ready, repeat * 10)),
    ]
    for label, ms in rows:
        print(f"{label + ':':40} {ms:8.4f} ms")


if __name__ == "__main__":
    main()
