"""stdout and stderr that write everything they are given.

In the component, `sys.stdout` is a `TextIOWrapper` straight over an unbuffered
`FileIO` (write-through), and one WASI write takes at most 8 KiB. `FileIO.write`
reports the short count, but `TextIOWrapper` ignores it: a `print` of more than 8 KiB
lost the rest without an error. Here the raw stream loops until every byte is written,
so each `write` still reaches the host at once (nothing waits in a buffer inside the
guest, where the host could not see it), and whole.
"""

from __future__ import annotations

import errno
import io
import sys
from typing import Any


class _WriteAll(io.RawIOBase):
    """A raw stream over `raw` whose `write` writes all of `data`, in as many calls as
    `raw` needs."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self._raw.fileno())

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            n = self._raw.write(view[done:])
            if not n:  # a blocking stream never writes nothing: do not spin
                raise OSError(errno.EIO, "short write to a standard stream")
            done += n
        return done


def _whole(stream: Any) -> io.TextIOWrapper:
    encoding, errors, lines = stream.encoding, stream.errors, stream.line_buffering
    raw = stream.detach()  # else the old wrapper closes the file when it is collected
    return io.TextIOWrapper(
        _WriteAll(raw), encoding=encoding, errors=errors, line_buffering=lines, write_through=True
    )


def install() -> None:
    """Replace `sys.stdout` and `sys.stderr` (and their `__stdout__`/`__stderr__`)."""
    sys.stdout = sys.__stdout__ = _whole(sys.stdout)
    sys.stderr = sys.__stderr__ = _whole(sys.stderr)
