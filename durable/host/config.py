"""Host settings: when to suspend, how often to commit, resource limits, the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from durable import settings
from durable.errors import ConfigurationError

#: The cache directory's bound when `DURABLE_CACHE_MAX_BYTES` is not set: about a
#: hundred compiled workflows (36 MB each) and their builds (19 MB each).
DEFAULT_CACHE_MAX_BYTES = 4 * 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def default_cache_dir() -> Path:
    """`$DURABLE_CACHE_DIR`, else `$XDG_CACHE_HOME/durable`, else `~/.cache/durable`."""
    explicit = settings.cache_dir()
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = settings.xdg_cache_home() or str(Path.home() / ".cache")
    return Path(base) / "durable"


def parse_size(text: str) -> int:
    """`4294967296`, or with a unit: `512M`, `4G`, `4GiB` (powers of 1024).

    Raises:
        ValueError: not a positive size.
    """
    clean = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = clean[-1:] if clean[-1:] in _UNITS else ""
    try:
        size = int(float(clean[: len(clean) - len(unit)]) * _UNITS[unit])
    except (ValueError, OverflowError):  # OverflowError: "inf"
        raise ValueError(f"{text!r} is not a size") from None
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def cache_max_bytes(explicit: int | None = None) -> int:
    """The cache directory's bound: `explicit`, else `$DURABLE_CACHE_MAX_BYTES`, else 4 GiB.

    Read when a cache is opened, not when settings are made, so that a bad value is
    one clear error from the command that uses the cache.

    Raises:
        ConfigurationError: `DURABLE_CACHE_MAX_BYTES` is not a positive size.
    """
    if explicit is not None:
        if explicit <= 0:
            raise ConfigurationError(f"the cache bound must be positive, not {explicit}")
        return explicit
    text = settings.cache_max_bytes() or ""
    if not text:
        return DEFAULT_CACHE_MAX_BYTES
    try:
        return parse_size(text)
    except ValueError:
        raise ConfigurationError(
            f"DURABLE_CACHE_MAX_BYTES={text!r} is not a size (like 4G or 512M)"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig:
    """How the host runs guests. Every field has a production default."""

    # A sleep longer than this suspends the task instead of blocking a thread.
    suspend_after: float = 10.0
    # Recorded events wait at most this long (seconds) before being committed.
    flush_interval: float = 0.2
    # ... or until this many are pending.
    max_pending_events: int = 1000
    # Linear memory limit per instance, in bytes.
    memory_limit: int = 256 * 1024 * 1024
    # A task that records more events than this fails (a runaway loop, not a workflow).
    max_events: int = 100_000
    # A single recorded payload (a step's result, a response body...) may not be larger.
    max_payload_bytes: int = 16 * 1024 * 1024
    # A task that prints more than this many bytes (stdout and stderr together) fails
    # with `OutputLimitExceeded`.
    max_output_bytes: int = 64 * 1024 * 1024
    # Guest output is committed to the log (with the events before it) once this many
    # bytes are pending ...
    output_flush_bytes: int = 1024 * 1024
    # ... or once it has waited this long (seconds): how late `durable logs -f` shows it.
    output_flush_interval: float = 0.5
    # A step body's output waits for the step's result, up to this many bytes (and
    # `output_flush_interval`), so that a body run again after a crash logs once.
    # With `output_flush_bytes`, the most output a task holds in host memory.
    output_hold_bytes: int = 1024 * 1024
    # After a cancellation reaches a running guest, how long it may take to reach its
    # next durable call (where it is told) before it is stopped where it is.
    cancel_grace: float = 1.0
    # Where compiled components (and builds) are cached across processes.
    cache_dir: Path = field(default_factory=default_cache_dir)
    # The most bytes the cache directory may hold; the least recently used entries go
    # first. None: `$DURABLE_CACHE_MAX_BYTES`, else 4 GiB (see `cache_max_bytes`).
    cache_max_bytes: int | None = None
    # How long a process waits for a compile (its own, or another process's on this
    # machine) before giving up; also the compiler's CPU-time limit.
    compile_timeout: float = 600.0
    # Bytes of suspended instances a worker keeps live, so that a task woken on the
    # same worker goes on without replaying its history (`durable.host.instances`).
    # 0: none kept (every wake-up replays).
    instance_cache: int = 0
    # Fresh instances kept ready per compiled workflow, made after an attempt ends, so
    # that the next attempt does not instantiate on its way to its first instruction
    # (`durable.host.instance_pool`). 0: every attempt instantiates its own.
    instance_pool: int = 1
    # Outbound HTTP (`durable.http`): a response body larger than this many bytes is
    # cut off and recorded as a `too-large` error, so one request cannot bloat the log.
    http_max_response_bytes: int = 10 * 1024 * 1024
    # Seconds a request may take when the workflow gives no timeout ...
    http_default_timeout: float = 30.0
    # ... and the most it may ask for: longer timeouts are lowered to this.
    http_max_timeout: float = 300.0
