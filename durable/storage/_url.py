"""Parsing of database URLs: `sqlite:///path`, a plain path, `postgres://...`, `memory://`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from durable import settings
from durable.errors import ConfigurationError

#: Used when neither --db nor DURABLE_DATABASE_URL is given: a file in the current directory.
DEFAULT_URL = "sqlite:///.durable/durable.db"
#: Names the login workflow SQL runs as on Postgres (a URL of the same database).
GUEST_URL_ENV = settings.GUEST_DATABASE_URL


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreURL:
    """A database URL, split into the backend and what the backend needs."""

    scheme: str  # "sqlite", "postgres" or "memory"
    path: Path | None  # the SQLite file, for "sqlite"
    dsn: str | None  # the full URL, for "postgres"

    def display(self) -> str:
        """The URL with any password masked, for messages and logs."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        if self.scheme == "postgres" and self.dsn is not None:
            parts = urlsplit(self.dsn)
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
                return parts._replace(netloc=netloc).geturl()
            return self.dsn
        return "memory://"


def parse_url(url: str | None) -> StoreURL:
    """Parse `url` (or DURABLE_DATABASE_URL, or the default) into a `StoreURL`.

    Raises:
        ConfigurationError: the URL has an unknown scheme or no path.
    """
    if not url:
        url = settings.database_url() or DEFAULT_URL
    if url.startswith("memory:"):
        return StoreURL(scheme="memory", path=None, dsn=None)
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigurationError(f"database URL {url!r} names no host")
        return StoreURL(scheme="postgres", path=None, dsn=url)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("///"):
            rest = rest[3:]  # sqlite:///relative and sqlite:////absolute
        elif rest.startswith("//"):
            raise ConfigurationError(
                f"database URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path"
            )
        if not rest:
            raise ConfigurationError(f"database URL {url!r} names no file")
        return StoreURL(scheme="sqlite", path=Path(rest), dsn=None)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH, a file path, "
            "or postgres://..."
        )
    return StoreURL(scheme="sqlite", path=Path(url), dsn=None)
