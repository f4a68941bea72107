"""Every environment variable durable reads, in one place.

Each setting has one accessor here, and nothing else in the package reads `os.environ`
for a setting of its own. The value is read when the accessor is called (at the point
of use, as before), not cached at import: a process that sets a variable before it
opens a store or a cache is honoured, and tests that set one with `monkeypatch` see it.
Parsing and its one-line error stay with the code that uses the value (a size, a URL).

The worker's CLI options (`DURABLE_CONCURRENCY` and the like) are read by click through
their `envvar`, and are listed in `durable worker --help`. The test harness reads its
own variables (`durable.testing`), which production code does not know about.
"""

from __future__ import annotations

import os

#: The database to use when no URL is given.
DATABASE_URL = "DURABLE_DATABASE_URL"
#: Postgres: the login workflow SQL runs as.
GUEST_DATABASE_URL = "DURABLE_GUEST_DATABASE_URL"
#: The compile cache's directory (else `$XDG_CACHE_HOME/durable`, else ~/.cache/durable).
CACHE_DIR = "DURABLE_CACHE_DIR"
#: The compile cache's bound, a size such as `4G`.
CACHE_MAX_BYTES = "DURABLE_CACHE_MAX_BYTES"
#: `1`: use wasmtime-py's public API only (see `durable.host._wasmtime`).
WASMTIME_FALLBACK = "DURABLE_WASMTIME_FALLBACK"
#: The convention (no-color.org) that turns off styled output.
NO_COLOR = "NO_COLOR"
#: The base of per-user cache directories (XDG base directory specification).
XDG_CACHE_HOME = "XDG_CACHE_HOME"

_TRUE = {"1", "true", "yes", "on"}


def _text(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def database_url() -> str | None:
    return _text(DATABASE_URL)


def guest_database_url() -> str | None:
    return _text(GUEST_DATABASE_URL)


def cache_dir() -> str | None:
    return _text(CACHE_DIR)


def xdg_cache_home() -> str | None:
    return _text(XDG_CACHE_HOME)


def cache_max_bytes() -> str | None:
    return _text(CACHE_MAX_BYTES)


def wasmtime_fallback() -> bool:
    return (_text(WASMTIME_FALLBACK) or "").lower() in _TRUE


def no_color() -> bool:
    # no-color.org: present and not empty, whatever its value
    return bool(os.environ.get(NO_COLOR))
