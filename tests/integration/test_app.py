"""`durable.app`: the calls behind the CLI, for applications too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from durable.app import migrates_on_open
from tests.helpers import ROOT, run_cli

EXAMPLES = ROOT / "examples"


def test_the_migrate_rule_is_sqlite_and_memory_yes_postgres_no() -> None:
    assert migrates_on_open("sqlite:///x.db")
    assert migrates_on_open("memory://")
    assert migrates_on_open("plain/path.db")
    assert not migrates_on_open("postgresql://user@host/db")
    assert not migrates_on_open("postgres://user@host/db")


def test_run_here_example(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'here.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DURABLE_DATABASE_URL", None)
    command = [sys.executable, str(EXAMPLES / "run_here.py"), "--db", db, "Ada"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "task 1 launched\nHello, Ada!\ntask 1 is complete\n"
    listed = run_cli("list", "--db", db, "--json", cwd=tmp_path)
    assert [(t["id"], t["state"]) for t in json.loads(listed.stdout)] == [(1, "complete")]


def test_a_run_stores_its_binary_only_when_its_name_names_another() -> None:
    import hashlib

    import anyio

    from durable.app import _register
    from durable.client import Client
    from durable.loader import WorkflowBinary
    from durable.storage.memory import MemoryStore

    old, new = b"old binary", b"new binary"

    async def main() -> None:
        store = MemoryStore()
        puts: list[bytes] = []
        real_put = store.put_workflow

        async def counting_put(wasm: bytes, *, name: str | None = None) -> str:
            puts.append(wasm)
            return await real_put(wasm, name=name)

        store.put_workflow = counting_put  # type: ignore[method-assign]
        client = Client(store)
        await client.register(old, name="flow", compile=False)
        binary = WorkflowBinary(wasm=new, hash=hashlib.sha256(new).hexdigest(), name="flow")
        assert await _register(client, binary) == binary.hash  # the name moves to it
        assert await store.find_workflow("flow") == binary.hash
        assert await _register(client, binary) == binary.hash  # already named: no write
        assert puts == [old, new]

    anyio.run(main)
