"""A newcomer's mistakes inside a workflow, and a probe of what the sandbox provides.

`modules` reports which standard-library modules import in the component: every name
in the guest's `sys.stdlib_module_names` is tried here, at module level, because the
component has no files at run time (imports happen when it is built).
"""

from __future__ import annotations

import importlib
import os
import sys

from newcomer_helpers import read_settings

import durable

IMPORTED: list[str] = []
REFUSED: list[str] = []
for _name in sorted(sys.stdlib_module_names):
    try:
        importlib.import_module(_name)
        IMPORTED.append(_name)
    except BaseException:  # a probe: any failure means "not available"
        REFUSED.append(_name)


@durable.workflow
def modules(_: object = None) -> dict:
    return {"python": sys.version.split()[0], "imported": IMPORTED, "refused": REFUSED}


@durable.workflow
def reads_file(_: object = None) -> str:
    return read_settings()


@durable.workflow
def reads_env(_: object = None) -> str:
    return os.environ["API_TOKEN"]


@durable.workflow
def child(value: object) -> object:
    return value


@durable.workflow
def bad_child_name(_: object = None) -> str:
    try:
        durable.spawn(child, 1, name="two\nlines")
    except durable.SpawnError as exc:
        return str(exc)
    return "spawned"
