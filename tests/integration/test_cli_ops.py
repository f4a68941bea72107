"""`durable list`, `show`, `replay`, `logs`, `cancel`, `notify`, `migrate` and `worker`'s
settings, run through click's CliRunner on a SQLite file; subprocesses where a real
process matters (the embedded-worker example, the local time zone).

One module-wide database holds a task in each interesting state; tests that change
tasks work on a copy of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from durable.cli import cli
from durable.client import Client
from durable.history import TaskHistory
from durable.host import HostConfig, Runtime
from durable.storage import open_store
from durable.worker import Worker, WorkerConfig
from tests.helpers import EXAMPLES, IDLE_WITHIN, ROOT, WORKFLOWS, built, run_cli, without_progress

HISTORIES = ROOT / "tests" / "fixtures" / "histories"
FAST = HostConfig(suspend_after=0.3)
COMMANDS_WITH_TASK = ["show", "logs", "cancel", "notify", "replay"]

# The tasks of the module database.
GREETED, FAILED, WAITING, READY = 1, 2, 3, 4


async def _run_until_idle(db: str, runtime: Runtime) -> None:
    store = await open_store(db)
    try:
        config = WorkerConfig(exit_when_idle=True, lease_seconds=5, host=FAST)
        with anyio.fail_after(IDLE_WITHIN):
            await Worker(store, config, runtime=runtime).run()
    finally:
        await store.close()


async def _populate(db: str, runtime: Runtime) -> None:
    async with await Client.open(db) as client:
        greeter = await client.register(built(WORKFLOWS / "greeter.py")[0], name="greeter")
        failing = await client.register(built(WORKFLOWS / "failing.py")[0], name="failing")
        hello = await client.register(built(EXAMPLES / "hello_world.py")[0], name="hello")
        await client.launch(greeter, name="greeter", input=7)
        await client.launch(failing, name="failing", input=7)
        await client.launch(greeter, name="greeter-patient", input=7, entry="patient")
    await _run_until_idle(db, runtime)
    async with await Client.open(db) as client:
        await client.launch(hello, name="hello", input="later")  # stays ready


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(FAST)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory, runtime: Runtime) -> Path:
    path = tmp_path_factory.mktemp("ops") / "ops.db"
    anyio.run(_populate, str(path), runtime)
    return path


@pytest.fixture
def db(module_db: Path, tmp_path: Path) -> str:
    """A copy of the module database, for tests that change it."""
    copy = tmp_path / "ops.db"
    shutil.copyfile(module_db, copy)
    return str(copy)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `durable ARGS` in-process, as the console script would."""
    runner = CliRunner()
    variables: dict[str, str | None] = {"DURABLE_DATABASE_URL": None, **(env or {})}
    return runner.invoke(cli, list(args), env=variables, prog_name="durable")


def one_line_error(result: Result, needle: str, code: int = 2) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = without_progress(result.stderr)  # a slow load may announce itself
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def dump(path: str | Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


# -- list ------------------------------------------------------------------------------


def test_list_shows_a_table_newest_first(module_db: Path) -> None:
    result = invoke("list", "--db", str(module_db))
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "CREATED", "UPDATED", "DURATION"]
    cells = [row.split() for row in rows]
    assert [(c[0], c[1], c[2]) for c in cells] == [
        ("4", "hello", "ready"),
        ("3", "greeter-patient", "suspended"),
        ("2", "failing", "failed"),
        ("1", "greeter", "complete"),
    ]
    assert [c[-1] for c in cells[:2]] == ["-", "-"]  # not ended: no duration
    assert re.fullmatch(r"\d+ms|\d+\.\ds", cells[3][-1])
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+"  # local time with its zone
    assert re.search(rf"complete +{stamp}  {stamp}  ", rows[3])
    assert "\x1b[" not in result.output  # no colour off a terminal


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (["--state", "failed"], [FAILED]),
        (["--state", "ready", "--state", "suspended"], [READY, WAITING]),
        (["--name", "greeter*"], [WAITING, GREETED]),
        (["--name", "greeter"], [GREETED]),
        (["--limit", "2"], [READY, WAITING]),
    ],
)
def test_list_filters(module_db: Path, args: list[str], ids: list[int]) -> None:
    result = invoke("list", "--db", str(module_db), "--json", *args)
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)
    assert [t["id"] for t in tasks] == ids


def test_list_json_has_the_task_objects_of_the_history_format(module_db: Path) -> None:
    tasks = json.loads(invoke("list", "--db", str(module_db), "--json").stdout)
    shown = json.loads(invoke("show", str(GREETED), "--db", str(module_db), "--json").stdout)
    assert tasks[-1] == shown["task"]


def test_list_of_an_empty_database(tmp_path: Path) -> None:
    assert invoke("migrate", "--db", str(tmp_path / "empty.db")).exit_code == 0
    result = invoke("list", "--db", str(tmp_path / "empty.db"))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no tasks\n"
    assert json.loads(invoke("list", "--db", str(tmp_path / "empty.db"), "--json").stdout) == []


def test_colour_only_on_a_terminal_and_columns_still_line_up(
    module_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = invoke("list", "--db", str(module_db)).stdout
    monkeypatch.setattr("durable.cli._format.colour_enabled", lambda: True)
    runner = CliRunner()
    args = ["list", "--db", str(module_db)]
    coloured = runner.invoke(cli, args, color=True, prog_name="durable").stdout
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_times_are_local_with_the_zone(module_db: Path) -> None:
    env = {"TZ": "XYZ-9"}  # a made-up zone, nine hours east of UTC
    proc = run_cli("list", "--db", str(module_db), "--json", cwd=module_db.parent, env=env)
    created = json.loads(proc.stdout)[-1]["created_at"]  # UTC, ISO 8601
    table = run_cli("list", "--db", str(module_db), cwd=module_db.parent, env=env).stdout
    utc_hour = int(created[11:13])
    row = table.splitlines()[-1]
    local = re.search(r"\d{4}-\d\d-\d\d (\d\d):\d\d:\d\d XYZ", row)
    assert local is not None, row
    assert int(local.group(1)) == (utc_hour + 9) % 24


# -- show ------------------------------------------------------------------------------


def test_show_a_complete_task(module_db: Path) -> None:
    result = invoke("show", str(GREETED), "--db", str(module_db))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("task 1  greeter\n")
    assert re.search(r"^state +complete$", out, re.M)
    assert re.search(r"^input +7$", out, re.M)
    assert re.search(r'^result +"Hello, user-7!"$', out, re.M)
    assert re.search(r"^attempts +1$", out, re.M)
    assert "3 events (times in " in out
    events = out.split("INDEX")[1].splitlines()[1:]
    assert [line.split()[:2] for line in events] == [
        ["0", "step"],
        ["1", "wasi:clocks/wall-clock.now"],
        ["2", "step"],
    ]
    assert '{"ok": "user-7"}' in events[0]
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}$", events[0])


def test_show_a_failed_and_a_waiting_task(module_db: Path) -> None:
    failed = invoke("show", str(FAILED), "--db", str(module_db)).stdout
    assert re.search(r"^error +ValueError: bad value 7 .*durable logs 2", failed, re.M)
    assert "result" not in failed
    waiting = invoke("show", str(WAITING), "--db", str(module_db)).stdout
    assert re.search(r"^state +suspended$", waiting, re.M)
    assert "1 event (times in " in waiting
    ready = invoke("show", str(READY), "--db", str(module_db)).stdout
    assert ready.rstrip().endswith("no events recorded")


def test_show_json_exports_the_whole_history(module_db: Path) -> None:
    result = invoke("show", str(GREETED), "--db", str(module_db), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["format"] == 1
    exported = TaskHistory.from_dict(data)

    async def stored() -> TaskHistory:
        async with await Client.open(str(module_db)) as client:
            return await client.history(GREETED)

    assert exported == anyio.run(stored)


# -- replay ----------------------------------------------------------------------------


def test_replay_against_its_own_code(module_db: Path) -> None:
    before = dump(module_db)
    result = invoke("replay", str(GREETED), "--db", str(module_db))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "task 1 replays cleanly to event 2 (3 events)\n"
        'then it completes: "Hello, user-7!" (as recorded)\n'
    )
    waiting = invoke("replay", str(WAITING), "--db", str(module_db))
    assert waiting.exit_code == 0, waiting.output
    assert "replays cleanly to event 0 (1 event)" in waiting.stdout
    assert "goes on past the history, to 'durable:notify.wait'" in waiting.stdout
    assert dump(module_db) == before  # no writes


def test_replay_against_refactored_code_passes(module_db: Path) -> None:
    result = invoke(
        "replay", str(GREETED), str(WORKFLOWS / "greeter_refactored.py"), "--db", str(module_db)
    )
    assert result.exit_code == 0, result.output
    assert "replays cleanly to event 2" in result.stdout


def test_replay_against_changed_behaviour_names_the_event(module_db: Path) -> None:
    before = dump(module_db)
    changed = str(WORKFLOWS / "greeter_changed.py")
    result = invoke("replay", str(GREETED), changed, "--db", str(module_db))
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        "task 1 diverges at event 1\n"
        "  recorded  'wasi:clocks/wall-clock.now'\n"
        "  found     'step audit'\n"
    )
    report = json.loads(invoke("replay", "1", changed, "--db", str(module_db), "--json").stdout)
    assert report["clean"] is False
    assert report["divergence"] == {
        "index": 1,
        "expected": "'wasi:clocks/wall-clock.now'",
        "found": "'step audit'",
    }
    # The waiting task has not reached the change yet: it can be upgraded.
    waiting = invoke("replay", str(WAITING), changed, "--db", str(module_db))
    assert waiting.exit_code == 0, waiting.output
    assert "to 'step audit'" in waiting.stdout
    assert dump(module_db) == before


def test_replay_with_wasm_option(module_db: Path, tmp_path: Path) -> None:
    wasm = tmp_path / "changed.wasm"
    wasm.write_bytes(built(WORKFLOWS / "greeter_changed.py")[0])
    result = invoke("replay", str(GREETED), "--wasm", str(wasm), "--db", str(module_db))
    assert result.exit_code == 1
    assert "diverges at event 1" in result.stdout


def test_golden_complete_history_replays_cleanly() -> None:
    history = str(HISTORIES / "greeter_complete.json")
    result = invoke("replay", "--history", history, str(WORKFLOWS / "greeter.py"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["clean"], report["last_index"], report["end"]) == (True, 2, "complete")
    assert report["same_end"] is True


def test_golden_nondeterministic_history_reports_its_divergence() -> None:
    history = str(HISTORIES / "greeter_nondeterministic.json")
    result = invoke("replay", "--history", history, str(WORKFLOWS / "greeter.py"))
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        "task 2 diverges at event 1\n"
        "  recorded  'step audit'\n"
        "  found     'wasi:clocks/wall-clock.now'\n"
    )


def test_replay_from_a_history_opens_no_database(tmp_path: Path) -> None:
    proc = run_cli(
        "replay",
        "--history",
        str(HISTORIES / "greeter_complete.json"),
        str(WORKFLOWS / "greeter_refactored.py"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no .durable/ created


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "which task?"),
        (["one"], "TASK must be a task id"),
        (["1", "a.py", "b.py"], "unexpected argument 'b.py'"),
        (["1", "a.py", "--wasm", "b.wasm"], "either WORKFLOW or --wasm"),
        (["--history", "h.json"], "--history needs the WORKFLOW"),
        (["--history", "missing.json", "x.py"], "x.py: no such file"),
    ],
)
def test_replay_usage_errors(args: list[str], needle: str, tmp_path: Path) -> None:
    one_line_error(invoke("replay", *args, "--db", str(tmp_path / "x.db")), needle)


def test_replay_of_a_file_that_is_not_a_history(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tasks": []}')
    result = invoke("replay", "--history", str(bad), str(WORKFLOWS / "greeter.py"))
    one_line_error(result, "not a durable history")


# -- logs, cancel, notify, migrate -----------------------------------------------------


def test_logs(module_db: Path) -> None:
    assert invoke("logs", str(GREETED), "--db", str(module_db)).stdout == (
        "Hello, user-7! after True\n"
    )
    failed = invoke("logs", str(FAILED), "--db", str(module_db))
    assert failed.stdout == "about to fail\n"
    assert "ValueError: bad value 7" in failed.stderr


def test_cancel_a_waiting_task_then_again(db: str) -> None:
    result = invoke("cancel", str(WAITING), "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stderr == "task 3: cancelled\n"
    states = {t["id"]: t["state"] for t in json.loads(invoke("list", "--db", db, "--json").stdout)}
    assert states[WAITING] == "cancelled"
    one_line_error(invoke("cancel", str(WAITING), "--db", db), "task 3 is already cancelled")
    one_line_error(invoke("cancel", str(GREETED), "--db", db), "task 1 is already complete")
    # Cancelled while it waited: there is no traceback in its log to point to.
    shown = invoke("show", str(WAITING), "--db", db).stdout
    assert re.search(r"^error +Cancelled", shown, re.M), shown
    assert "durable logs" not in shown


def test_notify_wakes_a_waiting_task(db: str, runtime: Runtime) -> None:
    result = invoke("notify", str(WAITING), "go", '{"by": "test"}', "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stderr == "notified task 3: go (#1)\n"
    anyio.run(_run_until_idle, db, runtime)
    shown = json.loads(invoke("show", str(WAITING), "--db", db, "--json").stdout)
    assert shown["task"]["state"] == "complete"
    assert json.loads(shown["task"]["result"]) == "Hello, user-7!"
    one_line_error(invoke("notify", str(WAITING), "go", "--db", db), "task 3 is already complete")


def test_notify_with_bad_json(db: str) -> None:
    result = invoke("notify", str(WAITING), "go", "{nope", "--db", db)
    one_line_error(result, "the notification data is not valid JSON")


def test_migrate_prints_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    result = invoke("migrate", "--db", str(path))
    assert result.exit_code == 0, result.output

    async def version() -> tuple[int, int]:
        async with await Client.open(str(path), migrate=False) as client:
            return await client.schema_version()

    current, latest = anyio.run(version)
    assert current == latest
    assert result.stdout == f"sqlite:///{path}: schema version {latest}\n"
    assert invoke("migrate", "--db", str(path)).stdout == result.stdout  # idempotent


def test_bare_durable_shows_the_help() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert "Commands:" in result.output
    assert "error:" not in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"durable, version \d+\.\d+\.\d+.*\n", result.stdout)


# -- errors: one line, non-zero, no traceback ------------------------------------------


@pytest.mark.parametrize("command", COMMANDS_WITH_TASK)
def test_unknown_task(command: str, module_db: Path) -> None:
    extra = ["go"] if command == "notify" else []
    result = invoke(command, "99", *extra, "--db", str(module_db))
    one_line_error(result, "task 99 does not exist")


@pytest.mark.parametrize(
    "command", [*COMMANDS_WITH_TASK, "list", "migrate", "worker", "launch", "run"]
)
def test_bad_database_url(command: str, tmp_path: Path) -> None:
    args = {
        "notify": ["1", "go"],
        "launch": ["x", str(EXAMPLES / "hello_world.py")],
        "run": [str(EXAMPLES / "hello_world.py")],
    }.get(command, ["1"] if command in COMMANDS_WITH_TASK else [])
    result = invoke(command, *args, "--db", "mysql://db/durable")
    one_line_error(result, "unsupported database URL scheme 'mysql'")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_unknown_flag(command: str) -> None:
    result = invoke(command, "--no-such-flag")
    one_line_error(result, "No such option")
    assert f"durable {command} --help" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["list", "--state", "done"], {}, "'done' is not one of"),
        (["list", "--limit", "0"], {}, "--limit"),
        (["show", "seven"], {}, "'seven' is not a valid integer"),
        (["show"], {}, "Missing argument 'TASK'"),
        (["worker", "--memory-limit", "lots"], {}, "'lots' is not a size"),
        (["worker", "--concurrency", "0"], {}, "--concurrency"),
        (["worker"], {"DURABLE_CONCURRENCY": "many"}, "--concurrency"),
        (["worker"], {"DURABLE_LEASE_SECONDS": "0"}, "--lease-seconds"),
    ],
)
def test_bad_values(args: list[str], env: dict[str, str], needle: str, tmp_path: Path) -> None:
    result = invoke(*args, "--db", str(tmp_path / "x.db"), env=env)
    one_line_error(result, needle)


# -- worker settings -------------------------------------------------------------------


def test_worker_settings_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    class FakeWorker:
        def __init__(self, store: object, config: WorkerConfig) -> None:
            seen["config"] = config

        async def run(self) -> None:
            return None

        def stop(self) -> None:
            return None

    # The command imports `Worker` when it runs (not at the top: `durable --help` loads
    # no engine), so the class is replaced where it is defined.
    import durable.worker.worker

    monkeypatch.setattr(durable.worker.worker, "Worker", FakeWorker)
    env = {
        "DURABLE_MEMORY_LIMIT": "64M",
        "DURABLE_MAX_EVENTS": "500",
        "DURABLE_SUSPEND_AFTER": "2.5",
        "DURABLE_CONCURRENCY": "3",
    }
    args = ["worker", "--db", str(tmp_path / "w.db"), "--lease-seconds", "4", "--concurrency", "5"]
    result = invoke(*args, "--max-payload", "1K", "--exit-when-idle", env=env)
    assert result.exit_code == 0, result.output
    config: WorkerConfig = seen["config"]
    assert (config.concurrency, config.lease_seconds, config.exit_when_idle) == (5, 4.0, True)
    host = config.host
    assert (host.memory_limit, host.max_events, host.suspend_after) == (64 * 2**20, 500, 2.5)
    assert host.max_payload_bytes == 1024


# -- the embedded worker example -------------------------------------------------------


def test_embedded_app_example(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'app.db'}"
    # The checkout's `durable`, however (or whether) it is installed.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DURABLE_DATABASE_URL", None)
    command = [sys.executable, str(EXAMPLES / "embedded_app.py"), "--db", db, "Ada"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "launched task 1\nHello, Ada!\ntask 1 is complete\n"
    # The same name again: the idempotency key finds the first task.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    listed = run_cli("list", "--db", db, "--json", cwd=tmp_path)
    assert [(t["id"], t["state"]) for t in json.loads(listed.stdout)] == [(1, "complete")]


def test_embedded_app_example_writes_nothing_where_it_runs(tmp_path: Path) -> None:
    here = tmp_path / "checkout"
    here.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    env.pop("DURABLE_DATABASE_URL", None)
    (tmp_path / "tmp").mkdir()
    command = [sys.executable, str(EXAMPLES / "embedded_app.py"), "Ada"]
    proc = subprocess.run(command, cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    db = tmp_path / "tmp" / "durable-embedded-app" / "app.db"
    assert proc.stderr == f"database: sqlite:///{db}\n"
    assert proc.stdout == "launched task 1\nHello, Ada!\ntask 1 is complete\n"
    assert db.exists()
    assert list(here.iterdir()) == []
