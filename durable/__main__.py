"""`python -m durable` is the `durable` command."""

from __future__ import annotations

from durable.cli import main

if __name__ == "__main__":
    main()
