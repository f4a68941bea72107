"""How many worker processes `durable worker` runs by default: the cores it may use,
capped by its cgroup's CPU quota."""

from __future__ import annotations

import os

import pytest

from durable.worker import supervisor
from durable.worker.supervisor import default_processes, quota_cpus


@pytest.mark.parametrize(
    ("fields", "cpus"),
    [
        (["max", "100000"], None),  # cgroup v2, no limit
        (["-1", "100000"], None),  # cgroup v1, no limit
        (["200000", "100000"], 2),
        (["150000", "100000"], 2),  # 1.5 CPUs: rounded up
        (["50000", "100000"], 1),  # half a CPU: still one process
        (["400000", "50000"], 8),
    ],
)
def test_a_quota_in_cpus(fields: list[str], cpus: int | None) -> None:
    assert quota_cpus(fields) == cpus


@pytest.mark.parametrize("fields", [[], ["max"], ["a", "b"], ["1", "2", "3"]])
def test_not_a_quota(fields: list[str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (int()'s and unpacking's own messages)
        quota_cpus(fields)


def test_the_default_is_at_least_one_and_at_most_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cores = len(os.sched_getaffinity(0))
    assert 1 <= default_processes() <= cores
    monkeypatch.setattr(supervisor, "cgroup_cpu_quota", lambda: 1)
    assert default_processes() == 1, "a quota of one CPU: one process"
    monkeypatch.setattr(supervisor, "cgroup_cpu_quota", lambda: None)
    assert default_processes() == cores
    monkeypatch.setattr(supervisor, "cgroup_cpu_quota", lambda: cores + 8)
    assert default_processes() == cores, "never more than it may run on"
