"""What a process loads for what it does: each case runs in a fresh interpreter and
reports which heavy modules ended up in `sys.modules`.

An application that only launches and inspects tasks does not load wasmtime (it needs
no guest), and `durable --version` or `--help` loads neither wasmtime nor a database
driver: start-up time is import time (issue 15, item 19; timings are in
`benchmarks/startup.py`, not here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("wasmtime", "asyncpg", "aiosqlite")

_REPORT = (
    f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
)


def _loaded(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    loaded: list[str] = json.loads(last)
    return loaded


def test_the_probe_sees_a_loaded_module() -> None:
    # The check itself can fail: a process that does load wasmtime is reported.
    assert "wasmtime" in _loaded("import durable.host.runtime")


def test_a_launching_application_does_not_load_wasmtime() -> None:
    code = (
        "import durable\n"
        "from durable.client import Client\n"
        "from durable.app import open_client, migrates_on_open\n"
        "assert durable.Client is Client and durable.TaskState and durable.WorkerConfig\n"
    )
    assert "wasmtime" not in _loaded(code)


def test_opening_a_sqlite_client_does_not_load_wasmtime(tmp_path: Path) -> None:
    code = (
        "import anyio\n"
        "from durable.app import open_client\n"
        "async def main():\n"
        f"    client = await open_client('sqlite:///{tmp_path}/lazy.db')\n"
        "    await client.list()\n"
        "    await client.close()\n"
        "anyio.run(main)\n"
    )
    assert _loaded(code) == ["aiosqlite"]


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_engine_and_no_driver(flag: str) -> None:
    code = (
        "import sys\n"
        "from durable.cli import cli\n"
        "try:\n"
        f"    cli.main([{flag!r}], prog_name='durable')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    assert _loaded(code) == []


def test_each_command_help_loads_no_engine() -> None:
    code = (
        "from durable.cli import cli\n"
        "for name in sorted(cli.commands):\n"
        "    try:\n"
        "        cli.main([name, '--help'], prog_name='durable')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (name, exc.code)\n"
    )
    assert "wasmtime" not in _loaded(code)


def test_version_and_help_import_no_command_module() -> None:
    code = (
        "import sys\n"
        "from durable.cli import cli\n"
        "for flag in ('--version', '--help'):\n"
        "    try:\n"
        "        cli.main([flag], prog_name='durable')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('durable.cli.') and\n"
        "                m not in ('durable.cli._common',))\n"
        "assert loaded == [], loaded\n"
    )
    _loaded(code)


def test_the_command_table_matches_each_command() -> None:
    from durable.cli import COMMANDS, cli

    assert sorted(cli.commands) == sorted(COMMANDS)
    for name, (module, _attr, summary) in COMMANDS.items():
        command = cli.commands[name]
        assert command.name == name
        assert command.callback is not None
        assert command.callback.__module__ == module
        # `durable --help` shows this summary, abbreviated as click abbreviates the help.
        assert " ".join((command.help or "").split("\n\n")[0].split()) == summary, name
