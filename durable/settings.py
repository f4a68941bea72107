"""Every environment variable durable reads, read in one place, once.

The environment is read into one `Settings` value the first time a setting is asked
for (`current()`), and every accessor here answers from that snapshot: nothing else in
the package reads `os.environ` for a setting of its own, and a process sees one
consistent set of values for its whole life. `reload()` takes a new snapshot: for a
program that changes its own environment before it opens a store or a cache, and for
tests (the test suite's `monkeypatch` fixture reloads after each `setenv`/`delenv`).
Parsing and its one-line error stay with the code that uses the value (a size, a URL).

The worker's CLI options (`DURABLE_CONCURRENCY` and the like) are read by click through
their `envvar`, and are listed in `durable worker --help`. The test harness reads its
own variables (`durable.testing`), which production code does not know about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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
#: OpenTelemetry's standard variables: where to export spans (either turns export on),
#: the switch that turns the SDK off, and the service name spans carry.
OTEL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"

_TRUE = {"1", "true", "yes", "on"}


def _text(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when it is unset or blank."""
    value = environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting durable takes from the environment, as read at one moment."""

    database_url: str | None = None
    guest_database_url: str | None = None
    cache_dir: str | None = None
    xdg_cache_home: str | None = None
    cache_max_bytes: str | None = None
    wasmtime_fallback: bool = False
    no_color: bool = False
    otel_export: bool = False  # an OTLP endpoint is set and the SDK is not disabled
    otel_service_name: str = "durable-worker"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=_text(env, DATABASE_URL),
            guest_database_url=_text(env, GUEST_DATABASE_URL),
            cache_dir=_text(env, CACHE_DIR),
            xdg_cache_home=_text(env, XDG_CACHE_HOME),
            cache_max_bytes=_text(env, CACHE_MAX_BYTES),
            wasmtime_fallback=(_text(env, WASMTIME_FALLBACK) or "").lower() in _TRUE,
            # no-color.org: present and not empty, whatever its value
            no_color=bool(env.get(NO_COLOR)),
            otel_export=any(_text(env, name) for name in OTEL_ENDPOINTS)
            and (_text(env, OTEL_SDK_DISABLED) or "").lower() != "true",
            otel_service_name=_text(env, OTEL_SERVICE_NAME) or "durable-worker",
        )


_current: Settings | None = None


def current() -> Settings:
    """The process's settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def reload(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings again (from `environ`, default the process's environment)."""
    global _current
    _current = Settings.from_env(environ)
    return _current


def database_url() -> str | None:
    return current().database_url


def guest_database_url() -> str | None:
    return current().guest_database_url


def cache_dir() -> str | None:
    return current().cache_dir


def xdg_cache_home() -> str | None:
    return current().xdg_cache_home


def cache_max_bytes() -> str | None:
    return current().cache_max_bytes


def wasmtime_fallback() -> bool:
    return current().wasmtime_fallback


def no_color() -> bool:
    return current().no_color


def otel_export() -> bool:
    return current().otel_export


def otel_service_name() -> str:
    return current().otel_service_name
