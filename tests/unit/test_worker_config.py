"""A worker's settings: what it is given is what its attempts and its own loop use."""

from __future__ import annotations

from durable.host import HostConfig, Runtime
from durable.storage.memory import MemoryStore
from durable.worker import Worker, WorkerConfig


def test_a_shared_runtime_brings_its_host_settings() -> None:
    runtime = Runtime(HostConfig(suspend_after=0.5))
    try:
        worker = Worker(MemoryStore(), WorkerConfig(concurrency=3), runtime=runtime)
        assert worker.runtime is runtime
        assert worker.config.host is runtime.config  # not the default HostConfig()
        assert worker.config.concurrency == 3
    finally:
        runtime.close()


def test_without_a_runtime_the_worker_builds_one_from_its_config() -> None:
    host = HostConfig(suspend_after=2.0)
    worker = Worker(MemoryStore(), WorkerConfig(host=host))
    try:
        assert worker.runtime.config is host
        assert worker.config.host is host
    finally:
        worker.runtime.close()
