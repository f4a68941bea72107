"""Checks that a component targets the `durable:core` workflow world."""

from __future__ import annotations

import wasmtime
from wasmtime import component as wc

from durable.errors import ComponentError

#: The durable interfaces this host provides, by unversioned name.
DURABLE_INTERFACES = (
    "durable:core/types",
    "durable:core/task",
    "durable:core/step",
    "durable:core/timer",
    "durable:core/http",
    "durable:core/notify",
    "durable:core/children",
    "durable:core/sql",
    "durable:core/status",
    "durable:core/child-control",
    "durable:core/patch",
    "durable:core/source",
    "durable:core/spawn-options",
    "durable:core/continuation",
)
#: The package version this host implements. Components built against an older minor
#: version still link, because interfaces only ever gain functions.
DURABLE_VERSION = "0.1.0"
#: WASI packages the host links (through wasmtime's WASI p2 implementation).
WASI_PREFIXES = (
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
)


def check_world(engine: wasmtime.Engine, component: wc.Component) -> None:
    """Raise `ComponentError` naming what is missing or unknown.

    A workflow component exports `run` and imports only durable interfaces and WASI.
    """
    ctype = component.type
    exports = ctype.exports(engine)
    if "run" not in exports:
        found = ", ".join(sorted(exports)) or "nothing"
        raise ComponentError(
            "component does not target the durable:core workflow world: it does not export "
            f"`run` (it exports {found})"
        )
    unknown = []
    for name in ctype.imports(engine):
        base, _, ver = name.partition("@")
        if base in DURABLE_INTERFACES:
            if ver and ver.split(".")[:1] != DURABLE_VERSION.split(".")[:1]:
                unknown.append(name)
            continue
        if name.startswith(WASI_PREFIXES):
            continue
        unknown.append(name)
    if unknown:
        raise ComponentError(
            "component imports interfaces this host does not provide: " + ", ".join(unknown)
        )
