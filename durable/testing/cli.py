"""The `durable` command with the test harness's hooks installed, for test subprocesses.

    python -m durable.testing.cli worker --db ...

Production code knows nothing of the hooks: this entry point installs them
(`durable.testing.faults.install`: a process-killing store when `DURABLE_TEST_CRASH_AT`
is set), then runs the same CLI as `durable`.
"""

from __future__ import annotations


def main() -> None:
    """Install the test hooks, then run the CLI."""
    from durable.testing import faults

    faults.install()
    from durable.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
