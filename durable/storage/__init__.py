"""Storage backends behind one `Store` protocol, chosen by URL scheme.

Each driver is imported only in its own branch of `open_store`, so nothing above this
package imports aiosqlite or asyncpg, and a missing driver is a clear configuration error.
"""

from __future__ import annotations

from durable.storage._url import DEFAULT_URL, StoreURL, parse_url
from durable.storage.base import Store
from durable.storage.open import add_store_wrapper, open_store

__all__ = ["DEFAULT_URL", "Store", "StoreURL", "add_store_wrapper", "open_store", "parse_url"]
