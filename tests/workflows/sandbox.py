"""Probes what a workflow can reach outside its sandbox: it should reach nothing."""

from __future__ import annotations

import os
import socket

import durable


def attempt(fn) -> str:
    try:
        return f"allowed: {fn()!r}"[:80]
    except Exception as exc:
        return f"refused: {type(exc).__name__}"


@durable.workflow
def main(_: object) -> dict:
    return {
        "read_file": attempt(lambda: open("/etc/hostname").read()),
        "list_root": attempt(lambda: os.listdir("/")),
        "environ": dict(os.environ),
        "argv_env": attempt(lambda: os.getenv("HOME")),
        "socket": attempt(lambda: socket.create_connection(("127.0.0.1", 22), timeout=1)),
    }
