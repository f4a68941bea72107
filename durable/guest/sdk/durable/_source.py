"""Loading a workflow's modules from memory, in the shared interpreter component.

The interpreter component is built once per SDK version; each task's code arrives
from the host as text (`prepare`, or `durable:core/source.get` for an older host). No
filesystem is granted for this: the modules never leave memory.

The files are served by a finder placed first. With no filesystem, the standard
finders find only built-in and frozen modules, and the finder declines those names, so
the outcome is as with it placed last, without each of the workflow's imports first
looking at every entry of `sys.path` through WASI calls that fail. The standard
library's other modules were imported when the interpreter was built, so `sys.modules`
has them: they win over a file beside the workflow that shares their name, as in a
component built with its workflow.
"""

from __future__ import annotations

import _imp
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import sys
from types import ModuleType
from typing import Any

from wit_world.imports import source

#: Modules the standard finders find with no filesystem: never the workflow's own.
_BUILT_IN = frozenset(sys.builtin_module_names)


class _MemoryFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Modules and packages by dotted name, from `{relative path: text}`."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files = files
        self._dirs = {name.rsplit("/", 1)[0] for name in files if "/" in name}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in _BUILT_IN or _imp.is_frozen(fullname):
            return None
        rel = fullname.replace(".", "/")
        if f"{rel}.py" in self._files:
            return importlib.machinery.ModuleSpec(fullname, self, origin=f"{rel}.py")
        if rel in self._dirs:  # a package (or a namespace package, with no __init__)
            spec = importlib.machinery.ModuleSpec(
                fullname, self, origin=f"{rel}/__init__.py", is_package=True
            )
            spec.submodule_search_locations = [rel]
            return spec
        return None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        assert spec.origin is not None
        filename = spec.origin
        text = self._files.get(filename, "")
        module.__file__ = filename  # tracebacks name the user's file, as they wrote it
        exec(compile(text, filename, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, fullname: str) -> str:
        spec = self.find_spec(fullname)
        return "" if spec is None else self._files.get(spec.origin, "")


def load() -> ModuleType | None:
    """Import the task's workflow module from the host's source; None if there is none.

    For a host that does not call `prepare` (see `durable._runtime`)."""
    given = source.get()
    return None if given is None else load_given(given)


def load_given(given: source.WorkflowSource) -> ModuleType:
    """Import the workflow module of `given`, the files the host handed over."""
    files: dict[str, str] = {}
    for file in given.files:
        files[file.name] = file.text
        # Source lines for tracebacks; no modification time, so never checked on disk.
        linecache.cache[file.name] = (len(file.text), None, file.text.splitlines(True), file.name)
    sys.meta_path.insert(0, _MemoryFinder(files))
    return importlib.import_module(given.main)
