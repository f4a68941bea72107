"""A module beside the workflow: its frames show under its own name."""

from __future__ import annotations


def read_settings() -> str:
    with open("/data/settings.json") as fh:
        return fh.read()
