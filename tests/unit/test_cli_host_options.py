"""`durable run` and `durable worker` build their HostConfig from their options in one
place (`host_config_from_options`): the same flags give the same settings."""

from __future__ import annotations

import click
import pytest

from durable.cli._common import host_config_from_options
from durable.cli.run import run
from durable.cli.worker import worker
from durable.host import HostConfig

SHARED = ("suspend_after", "memory_limit", "max_events", "max_payload", "max_output")
FLAGS = [
    "--suspend-after", "0.25", "--memory-limit", "1G", "--max-events", "9",
    "--max-payload", "3M", "--max-output", "5M",
]  # fmt: skip
EXPECTED = HostConfig(
    suspend_after=0.25,
    memory_limit=1024**3,
    max_events=9,
    max_payload_bytes=3 * 1024**2,
    max_output_bytes=5 * 1024**2,
)


def _host(command: click.Command, args: list[str]) -> HostConfig:
    """The HostConfig the command's parsed options make."""
    with command.make_context(command.name or "", args) as ctx:
        params = ctx.params
    extra = {"cancel_grace": params["cancel_grace"]} if "cancel_grace" in params else {}
    return host_config_from_options(**{k: params[k] for k in SHARED}, **extra)


@pytest.mark.parametrize(
    ("command", "args"), [(run, ["flow.py"]), (worker, [])], ids=["run", "worker"]
)
def test_defaults_are_the_host_defaults(command: click.Command, args: list[str]) -> None:
    assert _host(command, args) == HostConfig()


@pytest.mark.parametrize(
    ("command", "args"), [(run, ["flow.py"]), (worker, [])], ids=["run", "worker"]
)
def test_each_option_reaches_its_field(command: click.Command, args: list[str]) -> None:
    assert _host(command, [*args, *FLAGS]) == EXPECTED


def test_the_worker_adds_its_cancel_grace() -> None:
    assert _host(worker, ["--cancel-grace", "4"]).cancel_grace == 4.0
    with pytest.raises(TypeError):
        host_config_from_options(**dict.fromkeys(SHARED, 1), no_such_field=1)
