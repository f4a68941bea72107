"""A failed workflow's traceback, as its author needs to read it.

Inside the component, modules live under the build's numbered module-path entries
(`/2/countdown.py`, `/1/durable/_runtime.py`). A user's file is shown by its path
relative to the workflow's folder, the SDK's own frames are left out (they are the
same in every traceback and say nothing about the user's code), and an error that is
the sandbox refusing something (a file, the environment, the network) gets a hint.
"""

from __future__ import annotations

import errno
import os
import re
import traceback

#: The SDK's own directory inside the component: its frames are hidden.
_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + "/"
#: The import system's frames, above a workflow module the interpreter imports.
_IMPORT_MACHINERY = "<frozen importlib._bootstrap"
#: A module-path entry of the build: `/0/`, `/1/`, ...
_ENTRY = re.compile(r"^/\d+/")
#: errno values WASI gives for what the sandbox does not grant.
_DENIED = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EBADF, errno.ENOTSUP, 76}

HINT_FILES = (
    "hint: a workflow runs in a sandbox with no files: pass the data (or a reference "
    "to it) in the task's input"
)
HINT_ENV = (
    "hint: a workflow runs in a sandbox with no environment variables: pass settings "
    "in the task's input"
)
HINT_NETWORK = "hint: a workflow runs in a sandbox with no network: use durable.http"


def format_failure(exc: BaseException) -> str:
    """The traceback of `exc` with user paths, without SDK frames, plus a hint."""
    summary = traceback.TracebackException.from_exception(exc)
    _tidy(summary, set())
    text = "".join(summary.format())
    hint = _hint(exc)
    return f"{text}{hint}\n" if hint else text


def _tidy(summary: traceback.TracebackException, seen: set[int]) -> None:
    if id(summary) in seen:
        return
    seen.add(id(summary))
    frames = []
    for frame in summary.stack:
        if frame.filename.startswith((_SDK_DIR, _IMPORT_MACHINERY)):
            continue
        frame.filename = _ENTRY.sub("", frame.filename)
        frames.append(frame)
    summary.stack = traceback.StackSummary.from_list(frames)
    for linked in (summary.__cause__, summary.__context__):
        if linked is not None:
            _tidy(linked, seen)


def _hint(exc: BaseException) -> str | None:
    """A one-line hint when `exc` is the sandbox refusing something."""
    innermost = _innermost_file(exc)
    if isinstance(exc, OSError) and innermost.endswith(("socket.py", "<frozen socket>")):
        return HINT_NETWORK
    if isinstance(exc, OSError) and exc.errno in _DENIED and exc.filename is not None:
        return HINT_FILES
    if isinstance(exc, KeyError) and innermost.endswith(("os.py", "<frozen os>")):
        return HINT_ENV  # os.environ[...]: the innermost frame is os's __getitem__
    return None


def _innermost_file(exc: BaseException) -> str:
    """The file name of the traceback's innermost frame ("" when there is none)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename
