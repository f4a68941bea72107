"""The checks made on a workflow's source before any build: entries, imports, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable._sandbox_stdlib import MISSING, STDLIB
from durable.client import Client
from durable.errors import BuildError, ConfigurationError
from durable.preflight import check_entry, check_imports
from durable.storage import open_store
from durable.task_names import name_problem
from tests.helpers import EXAMPLES

HEADER = "import durable\n\n"


def _write(folder: Path, body: str, name: str = "wf.py") -> Path:
    path = folder / name
    path.write_text(body)
    return path


# -- entries ---------------------------------------------------------------------------


def test_an_unknown_entry_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        HEADER + "@durable.workflow\ndef main(x): ...\n\n"
        "@durable.workflow(name='other')\ndef f(x): ...\n",
    )
    with pytest.raises(ConfigurationError, match=r"no entry 'nosuch' \(its entries: main, other\)"):
        check_entry(src, "nosuch")
    assert check_entry(src, "other") is None
    assert check_entry(src, "main") is None
    assert check_entry(src, "") is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("def helper(x): ...\n", "has no entry: decorate"),
        ("@durable.workflow\ndef a(x): ...\n@durable.workflow\ndef b(x): ...\n", "several"),
    ],
)
def test_a_file_without_a_default_entry_is_refused(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        check_entry(_write(tmp_path, HEADER + body), "")


def test_an_undecorated_main_is_named_when_chosen(tmp_path: Path) -> None:
    src = _write(tmp_path, HEADER + "def main(x):\n    return x\n")
    note = check_entry(src, "")
    assert note is not None
    assert "running its main()" in note
    with pytest.raises(ConfigurationError, match=r"no @durable\.workflow function"):
        check_entry(src, "main")  # the runtime looks an explicit entry up in the registry


def test_aliases_and_entries_in_sibling_modules_are_seen(tmp_path: Path) -> None:
    _write(tmp_path, "from durable import workflow as wf\n\n@wf\ndef side(x): ...\n", "lib.py")
    src = _write(tmp_path, "import durable as d\nimport lib\n\n@d.workflow()\ndef main(x): ...\n")
    assert check_entry(src, "side") is None
    with pytest.raises(ConfigurationError, match="its entries: main, side"):
        check_entry(src, "nope")


@pytest.mark.parametrize(
    "body",
    [
        "def f(x): ...\ndurable.workflow(f)\n",  # registered by a call
        "NAME = 'x'\n@durable.workflow(name=NAME)\ndef f(x): ...\n",  # a computed name
        "main = durable.step(lambda x: x)\n",  # a callable main the scan cannot see
    ],
)
def test_what_the_scan_cannot_follow_is_not_refused(tmp_path: Path, body: str) -> None:
    assert check_entry(_write(tmp_path, HEADER + body), "anything") is None


@pytest.mark.parametrize(
    "body", ["from lib import main\n", "from lib import *\n", "from pkg.flows import run\n"]
)
def test_entries_from_elsewhere_are_not_refused(tmp_path: Path, body: str) -> None:
    _write(tmp_path, "def main(x):\n    return x\n", "lib.py")
    (tmp_path / "pkg").mkdir()
    _write(tmp_path / "pkg", "", "__init__.py")
    _write(tmp_path / "pkg", "import durable\n@durable.workflow\ndef run(x): ...\n", "flows.py")
    assert check_entry(_write(tmp_path, HEADER + body), "") is None


def test_every_example_passes(tmp_path: Path) -> None:
    for example in sorted(EXAMPLES.glob("*.py")):
        check_imports(example)
        if example.name not in {"embedded_app.py", "run_here.py"}:  # applications
            assert check_entry(example, "") is None, example


# -- imports ---------------------------------------------------------------------------


def test_a_module_the_sandbox_lacks_is_refused_with_a_hint(tmp_path: Path) -> None:
    src = _write(tmp_path, HEADER + "import json\nimport requests\n")
    with pytest.raises(BuildError) as info:
        check_imports(src)
    message = str(info.value)
    assert message.startswith("wf.py:4: no module named 'requests' in the sandbox")
    assert "durable.http" in message
    assert "standard library" in message
    assert "\n" not in message


def test_a_stdlib_module_the_sandbox_lacks_is_named(tmp_path: Path) -> None:
    assert "ssl" in MISSING
    assert "ssl" not in STDLIB
    with pytest.raises(BuildError, match="the sandbox's Python has no 'ssl' module"):
        check_imports(_write(tmp_path, "import ssl\n"))


def test_local_modules_and_packages_and_guarded_imports_pass(tmp_path: Path) -> None:
    _write(tmp_path, "import json\n", "helpers.py")
    (tmp_path / "pkg").mkdir()
    _write(tmp_path / "pkg", "", "__init__.py")
    src = _write(
        tmp_path,
        HEADER + "import helpers\nfrom pkg import thing\nimport os.path\n"
        "from durable import http\n"
        "try:\n    import numpy\nexcept ImportError:\n    numpy = None\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n",
    )
    check_imports(src)


def test_imports_of_sibling_modules_are_checked_too(tmp_path: Path) -> None:
    _write(tmp_path, "import httpx\n", "helpers.py")
    src = _write(tmp_path, HEADER + "import helpers\n")
    with pytest.raises(BuildError, match=r"helpers.py:1: no module named 'httpx'.*durable\.http"):
        check_imports(src)


# -- task names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("a\nb", "U+000A"),
        ("a\0b", "U+0000"),
        ("evil\u202etxt", "U+202E"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 1001, "at most 1000"),
    ],
)
def test_bad_task_names(name: str, needle: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert needle in problem


@pytest.mark.parametrize("name", ["greet", "order-7/charge", "café ☕", "x" * 1000])
def test_good_task_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.anyio
async def test_launch_refuses_a_bad_name_and_writes_nothing() -> None:
    client = Client(await open_store("memory://"))
    try:
        workflow = await client.store.put_workflow(b"\0asm", name="w")
        with pytest.raises(ConfigurationError, match="one line of printable text"):
            await client.launch(workflow, name="two\nlines")
        assert await client.list() == []
        await client.launch(workflow, name="fine")
        assert len(await client.list()) == 1
    finally:
        await client.close()
