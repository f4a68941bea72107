"""The README's console transcripts, run: what they show is what durable prints.

Every ```console block of the README is preceded by a marker: `<!-- console: checked
-->`, `<!-- console: checked in the ops session -->`, or `<!-- console: not checked:
WHY -->`. A checked block runs here, command by command, in a fresh directory (with
`examples/` and the input files it names); the blocks of the ops session run one after
the other in one directory, after `OPS_SETUP` made the tasks they show. Each command's
output (stdout and stderr, as a terminal shows them) must match the lines below it. In
the documented lines, `...` stands for any number of lines, and readings that differ
per run (decimal numbers, durations, clock times and zones, nanosecond timestamps and
seeds, long hex digests, worker ids) match any reading of their kind; other whole numbers (task
ids, versions, counts) must match exactly. A command commented `# killed with kill -9
after line N` is SIGKILLed once it has printed N lines; a command ending in `&` runs in
the background, and what it prints meanwhile completes the next commands' output.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from durable.builder import build_workflow
from durable.loader import prepare_workflow
from tests.helpers import EXAMPLES, ROOT, cli_env

README = (ROOT / "README.md").read_text(encoding="utf-8")
_BLOCK = re.compile(
    r"^(?:<!-- console: (?P<marker>[^\n]*?) -->\n)?```console\n(?P<body>.*?)^```", re.M | re.S
)
#: Commands a checked block may show without running them: the install step.
_NOT_RUN = ("pip install",)
#: Files the checked blocks read.
FIXTURES = {
    "name.json": '"world"\n',
    "big.json": '"' + "x" * 2048 + '"\n',
    "fetch.py": "import durable\nimport requests\n\n\n@durable.workflow\n"
    "def main(url):\n    return requests.get(url).text\n",
}
#: What the ops session's blocks show: 1 hello_world, 2 countdown (input 3), both
#: complete, and 3 approval, suspended in its one-day wait.
OPS_SETUP = [
    """durable run examples/hello_world.py --input '"world"'""",
    "durable run examples/countdown.py --input 3",
    """durable launch approval examples/approval.py --input '{"request": "deploy v3"}'""",
    "durable worker --exit-when-idle",
]
OPS = "checked in the ops session"
#: What the replay session's block shows: 2 countdown (input 3), 4 approval waiting,
#: and edited copies of the two examples.
REPLAY_SETUP = [*OPS_SETUP[:3], OPS_SETUP[2], OPS_SETUP[3]]
REPLAY = "checked in the replay session"
EDITS = {  # copy name: (example, text replaced, replacement)
    "countdown_reworded.py": ("countdown.py", 'f"{i:2d} at', 'f"T-{i} at'),
    "countdown_slower.py": ("countdown.py", "time.sleep(1)", "time.sleep(2)"),
    "approval_two_days.py": ("approval.py", "ONE_DAY = 24 * 60 * 60", "ONE_DAY = 48 * 60 * 60"),
}
#: Readings that differ per run, and what they become before comparing.
_VARYING = [
    (re.compile(r"\(times in [A-Z]{2,5}\)"), "(times in <zone>)"),
    (
        re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d| [A-Z]{2,5})?"),
        "<time>",
    ),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d+\b"), "<time>"),
    (re.compile(r"\b[\w.-]+:\d+:[0-9a-f]{8}\b"), "<worker>"),  # HOST:PID:ID
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"),
    (re.compile(r"\b\d{13,}\b"), "<big>"),  # nanoseconds since 1970, seeds
    (re.compile(r"\b\d+(\.\d+)?(ms|s)$"), "<duration>"),  # a table's last column
    (re.compile(r"\d+\.\d+"), "<decimal>"),
]


@dataclass(frozen=True)
class Block:
    """One console block: where it is, whether it is checked, its commands and outputs."""

    line: int
    marker: str | None
    body: str

    @property
    def checked(self) -> bool:
        return self.marker == "checked"

    @property
    def in_session(self) -> bool:
        return self.marker in (OPS, REPLAY)

    def steps(self) -> list[tuple[str, list[str]]]:
        """(command, documented output lines) for each `$ ` line."""
        steps: list[tuple[str, list[str]]] = []
        for line in self.body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        return steps


def _blocks() -> list[Block]:
    return [
        Block(README[: m.start()].count("\n") + 1, m.group("marker"), m.group("body"))
        for m in _BLOCK.finditer(README)
    ]


def _normal(line: str) -> str:
    for pattern, placeholder in _VARYING:
        line = pattern.sub(placeholder, line)
    return line.rstrip()


def _matches(documented: list[str], actual: list[str]) -> bool:
    """Whether `actual` lines fit `documented` ones, `...` standing for any lines."""
    if not documented:
        return not actual
    head, rest = documented[0], documented[1:]
    if head.strip() == "...":
        return any(_matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and _normal(head) == _normal(actual[0]) and _matches(rest, actual[1:])


def _argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    assert not {"|", ">>", "&&", ";"} & set(words), (
        f"a checked block runs `{command}`: pipes, redirections and background jobs "
        "cannot be checked; mark the block `not checked: WHY`"
    )
    program, args = words[0], words[1:]
    if program == "durable":
        return [sys.executable, "-m", "durable", *args]
    assert program == "python", f"a checked block runs `{program}`, which this test cannot"
    return [sys.executable, *args]


def _prebuild(command: str) -> None:
    # A first build and compile print progress lines no transcript shows: do them first.
    words = shlex.split(command, comments=True)
    if words[:1] != ["durable"]:
        return  # `python examples/APP.py`: an application, not a workflow
    for word in words:
        if word.startswith("examples/") and word.endswith((".py", ".js")):
            prepare_workflow(ROOT / word)
            if words[1:2] == ["build"] and word.endswith(".py"):
                build_workflow(ROOT / word)  # `durable build`'s standalone component


def _prepare(where: Path) -> None:
    (where / "tmp").mkdir()
    (where / "examples").symlink_to(EXAMPLES)
    for name, text in FIXTURES.items():
        (where / name).write_text(text)


class _Background:
    """A command run with `&`: its output lines, as they come, read by a thread."""

    def __init__(self, command: str, where: Path) -> None:
        env = {**cli_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            _argv(command), cwd=where, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.taken = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def take(self, count: int) -> list[str]:
        """Up to `count` new lines: waits for them while the command still runs."""
        deadline = time.monotonic() + 120  # a bound on a hang, not on speed
        while len(self.lines) - self.taken < count and time.monotonic() < deadline:
            if not self._reader.is_alive():
                break
            time.sleep(0.02)
        new = self.lines[self.taken : self.taken + count]
        self.taken += len(new)
        return new

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _run(command: str, where: Path, last: list[int]) -> list[str]:
    """Run one documented command in `where`; its output lines, as a terminal shows them.

    `echo $?` shows the previous command's status (`last`, updated here), and
    `COMMAND > FILE` writes the command's stdout to FILE, as a shell would.
    """
    if command.strip() == "echo $?":
        return [str(last[0])]
    killed = re.search(r"#\s*killed with kill -9 after line (\d+)", command)
    if killed:
        return _kill_after(command, int(killed.group(1)), where)
    target = None
    if " > " in command:
        command, target = (part.strip() for part in command.split(" > "))
    _prebuild(command)
    env = {**cli_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env["TMPDIR"] = str(where / "tmp")  # shown as /tmp: nothing goes to the real one
    proc = subprocess.run(
        _argv(command),
        cwd=where,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if target else subprocess.STDOUT,  # as on a terminal
        text=True,
        timeout=300,
        check=False,
    )
    last[0] = proc.returncode
    if target:
        (where / target).write_text(proc.stdout)
        return proc.stderr.replace(str(where), "").splitlines()
    return proc.stdout.replace(str(where), "").splitlines()


def _kill_after(command: str, lines: int, where: Path) -> list[str]:
    """Run `command`, SIGKILL it once it has printed `lines` lines; show no output."""
    _prebuild(command)
    env = {**cli_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        _argv(command), cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        try:
            for _ in range(lines):
                assert proc.stdout.readline(), f"`{command}` ended before line {lines}"
        finally:
            proc.kill()  # SIGKILL
    return []


def _run_block(block: Block, where: Path) -> None:
    last = [0]
    background: _Background | None = None
    try:
        for command, documented in block.steps():
            if command.startswith(_NOT_RUN):
                continue
            if command.rstrip().endswith("&"):
                _prebuild(command)
                background = _Background(command.rstrip().removesuffix("&"), where)
                actual = background.take(len(documented))
            else:
                actual = _run(command, where, last)
                if background is not None and len(actual) < len(documented):
                    # The rest is what the background command printed meanwhile.
                    actual += background.take(len(documented) - len(actual))
            _check(block, command, documented, actual)
    finally:
        if background is not None:
            background.end()


def _check(block: Block, command: str, documented: list[str], actual: list[str]) -> None:
    assert _matches(documented, actual), (
        f"README line {block.line}: `{command}` printed\n"
        + "\n".join(actual)
        + "\n-- but the README shows --\n"
        + "\n".join(documented)
    )


def test_every_console_block_is_checked_or_says_why_not() -> None:
    blocks = _blocks()
    assert len(blocks) == README.count("```console"), "a console block the pattern missed"
    for block in blocks:
        assert block.marker is not None, (
            f"README line {block.line}: a console block without a marker; put "
            "`<!-- console: checked -->` or `<!-- console: not checked: WHY -->` above it"
        )
        assert (
            block.checked or block.in_session or re.fullmatch(r"not checked: .{10,}", block.marker)
        ), f"README line {block.line}: {block.marker!r} (say why it is not checked)"
    assert sum(b.checked for b in blocks) >= 5
    assert sum(b.in_session for b in blocks) >= 5


def test_the_matcher_can_fail() -> None:
    assert _matches(["task 1", "...", '"liftoff"'], ["task 1", "10 at 1.5", '"liftoff"'])
    assert _matches(["at 1795489960.123456"], ["at 1795492694.501480"])
    assert not _matches(["schema version 1"], ["schema version 2"])  # whole numbers count
    assert not _matches(["task 1", "Hello"], ["task 1"])
    assert not _matches(["a"], ["a", "b"])


@pytest.mark.parametrize(
    "block", [b for b in _blocks() if b.checked], ids=lambda b: f"README-line-{b.line}"
)
def test_a_checked_block_prints_what_it_shows(block: Block, tmp_path: Path) -> None:
    _prepare(tmp_path)
    _run_block(block, tmp_path)


@pytest.mark.parametrize(("session", "setup"), [(OPS, OPS_SETUP), (REPLAY, REPLAY_SETUP)])
def test_a_session_prints_what_it_shows(session: str, setup: list[str], tmp_path: Path) -> None:
    _prepare(tmp_path)
    for command in setup:
        _run(command, tmp_path, [0])
    for copy, (example, old, new) in EDITS.items():
        text = (EXAMPLES / example).read_text()
        assert old in text, f"{example} no longer has {old!r}"
        (tmp_path / copy).write_text(text.replace(old, new))
    for copy in EDITS:  # once all are written: the files beside a workflow are in its hash
        prepare_workflow(tmp_path / copy)  # no build's progress lines in the transcript
    blocks = [b for b in _blocks() if b.marker == session]
    assert blocks
    for block in blocks:
        _run_block(block, tmp_path)
