"""Settings are read from the environment once, into one value, and reloaded on demand."""

from __future__ import annotations

import os
import pathlib

import pytest

from durable import settings


def test_from_env_reads_every_setting() -> None:
    env = {
        "DURABLE_DATABASE_URL": " sqlite:///x.db ",
        "DURABLE_GUEST_DATABASE_URL": "",
        "DURABLE_CACHE_DIR": "/c",
        "XDG_CACHE_HOME": "/x",
        "DURABLE_CACHE_MAX_BYTES": "1G",
        "DURABLE_WASMTIME_FALLBACK": "Yes",
        "NO_COLOR": "0",
    }
    assert settings.Settings.from_env(env) == settings.Settings(
        database_url="sqlite:///x.db",
        guest_database_url=None,  # blank is unset
        cache_dir="/c",
        xdg_cache_home="/x",
        cache_max_bytes="1G",
        wasmtime_fallback=True,
        no_color=True,  # no-color.org: any non-empty value
    )
    assert settings.Settings.from_env({}) == settings.Settings()


def test_read_once_until_reloaded() -> None:
    before = settings.reload()
    os.environ["DURABLE_CACHE_MAX_BYTES"] = "7M"  # behind the snapshot's back
    try:
        assert settings.current() is before
        assert settings.cache_max_bytes() == before.cache_max_bytes
        assert settings.reload().cache_max_bytes == "7M"
        assert settings.cache_max_bytes() == "7M"
    finally:
        del os.environ["DURABLE_CACHE_MAX_BYTES"]
        settings.reload()
    assert settings.cache_max_bytes() == before.cache_max_bytes


def test_the_suites_monkeypatch_reloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", "memory://")
    assert settings.database_url() == "memory://"
    monkeypatch.delenv("DURABLE_DATABASE_URL")
    assert settings.database_url() is None


def test_no_module_reads_the_environment_for_a_setting() -> None:
    root = pathlib.Path(settings.__file__).parent
    readers = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "os.environ.get(" in path.read_text() or "os.getenv(" in path.read_text()
    ]
    # The settings module itself reads the environment; the test harness and the
    # guest SDK (inside the sandbox) have their own variables.
    allowed = {"settings.py"}
    assert [
        r for r in readers if r not in allowed and not r.startswith(("testing/", "guest/"))
    ] == []
