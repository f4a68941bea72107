"""Installed distributions' versions, without `importlib.metadata` at start-up.

The versions of wasmtime-py and componentize-py are part of cache keys and of the
check of wasmtime-py's private API, so every `durable run` needs them; importing
`importlib.metadata` alone costs more CPU than the rest of `durable --version`. A
distribution installed from a wheel has a `NAME-VERSION.dist-info` directory on
`sys.path`, so its name says the version; anything else (an egg-info, a zip) is asked
of `importlib.metadata` as before.
"""

from __future__ import annotations

import functools
import os
import re
import sys

_SEPARATORS = re.compile(r"[-_.]+")


def _normal(name: str) -> str:
    return _SEPARATORS.sub("_", name).lower()


@functools.cache
def version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    wanted = _normal(name)
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for found in names:
            if not found.endswith(".dist-info"):
                continue
            dist, _, ver = found.removesuffix(".dist-info").partition("-")
            if ver and _normal(dist) == wanted:
                return ver  # the first on sys.path, as importlib.metadata finds it
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
