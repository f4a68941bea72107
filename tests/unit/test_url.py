"""`parse_url` and `open_store`: which URL picks which backend, and what a bad one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.errors import ConfigurationError
from durable.storage import DEFAULT_URL, open_store, parse_url
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore


def test_plain_path_is_sqlite() -> None:
    url = parse_url("some/dir/durable.db")
    assert (url.scheme, url.path, url.dsn) == ("sqlite", Path("some/dir/durable.db"), None)


def test_sqlite_three_slashes_is_relative_four_is_absolute() -> None:
    assert parse_url("sqlite:///rel/x.db").path == Path("rel/x.db")
    assert parse_url("sqlite:////abs/x.db").path == Path("/abs/x.db")
    assert parse_url("sqlite:////abs/x.db").display() == "sqlite:////abs/x.db"


@pytest.mark.parametrize("bad", ["sqlite://host/x.db", "sqlite:///", "sqlite:"])
def test_malformed_sqlite_url_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite"):
        parse_url(bad)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_url_keeps_the_dsn_and_masks_the_password(scheme: str) -> None:
    dsn = f"{scheme}://me:secret@db.example:5432/durable"
    url = parse_url(dsn)
    assert (url.scheme, url.path, url.dsn) == ("postgres", None, dsn)
    assert "secret" not in url.display()
    assert url.display() == f"{scheme}://me:***@db.example:5432/durable"


def test_postgres_url_without_host_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no host"):
        parse_url("postgres:///durable")
    assert parse_url("postgres:///durable?host=/run/pg").scheme == "postgres"


def test_memory_url() -> None:
    assert parse_url("memory://").scheme == "memory"
    assert parse_url("memory:").display() == "memory://"


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported database URL scheme 'mysql'"):
        parse_url("mysql://db/durable")


def test_default_comes_from_the_environment_then_the_constant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DURABLE_DATABASE_URL", raising=False)
    assert parse_url(None) == parse_url(DEFAULT_URL)
    assert parse_url(None).path == Path(".durable/durable.db")
    monkeypatch.setenv("DURABLE_DATABASE_URL", "memory://")
    assert parse_url("").scheme == "memory"


@pytest.mark.anyio
async def test_open_store_picks_the_backend_and_migrates(tmp_path: Path) -> None:
    memory = await open_store("memory://")
    assert isinstance(memory, MemoryStore)
    await memory.close()
    store = await open_store(f"sqlite:///{tmp_path / 'db' / 'x.db'}")
    try:
        assert isinstance(store, SQLiteStore)
        current, latest = await store.schema_version()
        assert current == latest >= 1
    finally:
        await store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/proc/durable/x.db", "/proc/x.db"])
async def test_open_store_on_an_unwritable_path_is_a_configuration_error(path: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await open_store(f"sqlite:///{path}")
    assert "\n" not in str(caught.value)
    assert str(Path(path).parent) in str(caught.value)
