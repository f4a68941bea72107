"""The CLI and the README, checked against each other (after sqlite-utils' test_docs).

Every command has help text and a README section under "## Commands" that names each
of its options and environment variables and shows it in a console transcript; every
`$ durable ...` line in the README parses with the real CLI, so no example can use a
flag that does not exist (any more).
"""

from __future__ import annotations

import re
import shlex

import click
import pytest

from durable.cli import cli
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)
_SECTION = re.compile(r"^### `durable ([a-z-]+)[^`\n]*`\n.*?(?=^#{2,3} |\Z)", re.M | re.S)


def _sections() -> dict[str, str]:
    """The README's `### \\`durable NAME ...\\`` sections, by command name."""
    return {m.group(1): m.group(0) for m in _SECTION.finditer(README)}


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]


def _invocations() -> list[list[str]]:
    """The argv of every `$ durable ...` line of the README's console blocks."""
    found = []
    for line in README.splitlines():
        if not line.startswith("$ durable"):
            continue
        words = shlex.split(line[2:], comments=True)
        for i, word in enumerate(words):
            if word in {"|", "&", ">", ">>", ";", "&&"}:
                words = words[:i]
                break
        found.append(words[1:])
    return found


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    command = cli.commands[name]
    assert command.help, f"`durable {name}` has no help"
    assert len(command.help.strip()) > 20, f"`durable {name}` has too little help"
    for option in _options(command):
        assert option.help, f"`durable {name} {option.opts[0]}` has no help text"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_readme_section(name: str) -> None:
    section = _sections().get(name)
    assert section is not None, f"README has no section ### `durable {name} ...`"
    assert "```console" in section, f"the README section on `durable {name}` has no transcript"
    assert f"$ durable {name}" in section, f"the transcript does not run `durable {name}`"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_variable_is_documented(name: str) -> None:
    section = _sections().get(name, "")
    for option in _options(cli.commands[name]):
        assert any(opt in section for opt in option.opts), (
            f"README section on `durable {name}` does not mention {option.opts[0]}"
        )
        for variable in [option.envvar] if isinstance(option.envvar, str) else []:
            assert variable in README, f"README does not mention {variable}"


def test_readme_documents_only_real_commands() -> None:
    assert set(_sections()) <= set(COMMANDS)
    assert _sections(), "the section pattern found nothing: has the README's layout changed?"


@pytest.mark.parametrize("argv", _invocations(), ids=lambda argv: " ".join(argv)[:60])
def test_every_readme_invocation_parses(argv: list[str]) -> None:
    if argv and argv[0].startswith("-"):
        with pytest.raises(click.exceptions.Exit):
            cli.make_context("durable", list(argv))
        return
    assert argv, "a README line runs `durable` with no command"
    assert argv[0] in cli.commands, f"unknown command in README: durable {argv}"
    command = cli.commands[argv[0]]
    try:
        command.make_context(argv[0], list(argv[1:]))
    except click.exceptions.Exit:
        pass  # --help
    except click.UsageError as exc:
        pytest.fail(f"README runs `durable {' '.join(argv)}`: {exc.format_message()}")


def test_the_invocation_check_can_fail() -> None:
    with pytest.raises(click.UsageError):
        cli.commands["list"].make_context("list", ["--no-such-flag"])
