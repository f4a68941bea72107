"""The names `durable` exports: each one exists, and the operating API is among them."""

from __future__ import annotations

import durable


def test_every_exported_name_exists() -> None:
    missing = [name for name in durable.__all__ if not hasattr(durable, name)]
    assert missing == []


def test_the_operating_api_is_exported() -> None:
    wanted = {"Client", "Worker", "WorkerConfig", "Replayer", "ReplayReport", "TaskHistory"}
    assert wanted <= set(durable.__all__)
