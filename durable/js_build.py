"""`durable build workflow.js`: a JavaScript workflow -> a workflow component.

componentize-js (SpiderMonkey in a component) does the build; it is an npm package,
installed the first time into the durable cache directory (`npm/`), with npm, and
said so on stderr, since it takes half a minute and about 220 MB. It is pinned: a
build is a function of the workflow, the SDK, the WIT and this version.

componentize-js takes one ES module that may import only WIT interfaces, so the SDK
(`durable/guest/js/index.js`) is bundled with the workflow here: each
`import ... from "durable"` becomes a `const` that takes the SDK's exports, on the
same line, so line numbers in errors still point into the workflow file, and the SDK
follows the workflow inside one function scope (its names cannot clash with the
workflow's). Any other import is refused: a workflow is one module.

Builds are cached like Python builds, in `builds/` under the same bound and locks.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from durable.builder import WIT_DIR, WORLD, BuildResult
from durable.errors import BuildError
from durable.host._cache_files import evict, lock_entry, touch
from durable.host.config import cache_max_bytes, default_cache_dir

#: The componentize-js release builds use (npm package name and version).
COMPONENTIZE_JS = "@bytecodealliance/componentize-js"
COMPONENTIZE_JS_VERSION = "0.23.0"
SDK_DIR = Path(__file__).parent / "guest" / "js"
#: WASI features componentize-js would otherwise import: the host has no wasi:http.
_DISABLED = ("http", "fetch-event")
_IMPORT = re.compile(r"""^[ \t]*import\s+([^;'"]*?)\s*from\s*(["'])([^"']+)\2[ \t]*;?""", re.M)
_BARE_IMPORT = re.compile(r"""^[ \t]*import\s*(["'])([^"']+)\1[ \t]*;?""", re.M)
_EXPORTED = re.compile(r"^export\s+(?:class|function|const|let)\s+([A-Za-z_$][\w$]*)", re.M)
_SDK_NAME = "__durable_sdk"

Report = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_js_workflow(
    source: Path,
    *,
    cache_dir: Path | None = None,
    max_bytes: int | None = None,
    report: Report = _stderr,
) -> BuildResult:
    """Build `source` (an ES module) into a workflow component, or return the cached build.

    `report` gets one line before a first-time install of componentize-js.

    Raises:
        BuildError: a missing file, a syntax error (with file and line), a forbidden
            import, no Node.js or npm, or a failed build.
        ConfigurationError: `DURABLE_CACHE_MAX_BYTES` is not a size.
    """
    started = time.perf_counter()
    source = source.resolve()
    text = _read_source(source)
    bound = cache_max_bytes(max_bytes)
    root = cache_dir or default_cache_dir()
    key = _cache_key(source, text)
    out_dir = root / "builds"
    target = out_dir / f"{key}.wasm"
    if target.exists():
        touch(target)
        return BuildResult(wasm_path=target, cached=True, seconds=time.perf_counter() - started)
    bundle = bundle_workflow(source, text)  # refuse bad imports before any install
    _check_syntax(source, text)
    tool = ensure_componentize_js(root, report)
    lock = out_dir / f"{key}.lock"
    try:
        fd: int | None = lock_entry(lock)  # another process building it: wait for it
    except OSError:
        fd = None
    try:
        if target.exists():
            touch(target)
            return BuildResult(wasm_path=target, cached=True, seconds=time.perf_counter() - started)
        _build(source, bundle, tool, key, out_dir, target)
    finally:
        if fd is not None:
            os.close(fd)
    evict(root, bound, keep=lock)
    return BuildResult(wasm_path=target, cached=False, seconds=time.perf_counter() - started)


def bundle_workflow(source: Path, text: str) -> str:
    """The workflow and the SDK as one module (see the module docstring).

    Raises:
        BuildError: the workflow imports something other than "durable" or a WIT interface.
    """
    for match in _BARE_IMPORT.finditer(text):
        _check_specifier(source, text, match.start(), match.group(2))

    def replace(match: re.Match[str]) -> str:
        clause, specifier = match.group(1), match.group(3)
        _check_specifier(source, text, match.start(), specifier)
        if specifier != "durable":
            return match.group(0)
        newlines = "\n" * match.group(0).count("\n")  # keep the workflow's line numbers
        return _bind(source, text, match.start(), clause) + newlines

    body = _IMPORT.sub(replace, text)
    sdk = (SDK_DIR / "index.js").read_text(encoding="utf-8")
    names = _EXPORTED.findall(sdk)
    sdk_imports = "\n".join(m.group(0) for m in _IMPORT.finditer(sdk))
    sdk_body = _EXPORTED.sub(lambda m: m.group(0).removeprefix("export "), _IMPORT.sub("", sdk))
    return (
        f"{body}\n\n// -- the durable SDK, bundled by `durable build` --\n{sdk_imports}\n"
        f"var {_SDK_NAME}_cache;\n"
        f"function {_SDK_NAME}() {{\n"
        f"  if ({_SDK_NAME}_cache === undefined) {{\n"
        f"    {_SDK_NAME}_cache = (() => {{\n{sdk_body}\n"
        f"      return {{ {', '.join(names)} }};\n"
        f"    }})();\n"
        f"  }}\n"
        f"  return {_SDK_NAME}_cache;\n"
        f"}}\n"
    )


def _bind(source: Path, text: str, at: int, clause: str) -> str:
    """`import CLAUSE from "durable"` as a `const` over the SDK's exports."""
    clause = " ".join(clause.split())
    parts: list[str] = []
    if clause.startswith("* as "):
        return f"const {clause[5:].strip()} = {_SDK_NAME}();"
    default, _, named = clause.partition("{")
    default = default.strip().rstrip(",").strip()
    if default:
        if default.startswith("* as "):
            return f"const {default[5:].strip()} = {_SDK_NAME}();"
        parts.append(f"const {default} = {_SDK_NAME}();")
    if named:
        if not named.rstrip().endswith("}"):
            raise BuildError(f"{_where(source, text, at)}: cannot read this import")
        fields = []
        for item in named.rstrip()[:-1].split(","):
            words = item.split()
            if not words:
                continue
            if len(words) == 3 and words[1] == "as":
                fields.append(f"{words[0]}: {words[2]}")
            elif len(words) == 1:
                fields.append(words[0])
            else:
                raise BuildError(f"{_where(source, text, at)}: cannot read this import")
        parts.append(f"const {{ {', '.join(fields)} }} = {_SDK_NAME}();")
    return " ".join(parts)


def _check_specifier(source: Path, text: str, at: int, specifier: str) -> None:
    if specifier == "durable" or specifier.startswith("durable:core/"):
        return
    raise BuildError(
        f"{_where(source, text, at)}: cannot import {specifier!r}: a workflow is one module, "
        'importing only "durable" (or durable:core interfaces)'
    )


def _where(source: Path, text: str, at: int) -> str:
    return f"{source.name}:{text.count(chr(10), 0, at) + 1}"


def ensure_componentize_js(root: Path, report: Report = _stderr) -> Path:
    """The componentize-js command, installed with npm into `root/npm` the first time.

    Raises:
        BuildError: npm is missing, or the install failed.
    """
    home = root / "npm" / f"componentize-js-{COMPONENTIZE_JS_VERSION}"
    tool = home / "node_modules" / ".bin" / "componentize-js"
    if tool.exists():
        return tool
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BuildError(
            "building a JavaScript workflow needs Node.js and npm (to install componentize-js)"
        )
    try:
        fd = lock_entry(home.with_suffix(".lock"))  # one install per machine at a time
    except OSError as exc:
        raise BuildError(f"cannot write the cache directory {root}: {exc.strerror}") from None
    if fd is None:  # pragma: no cover - a waiting lock always returns a descriptor
        raise BuildError(f"cannot lock {home}")
    try:
        if tool.exists():
            return tool
        report(
            f"installing componentize-js {COMPONENTIZE_JS_VERSION} with npm into {home} "
            "(first JavaScript build only; about 30 s and 220 MB)"
        )
        with tempfile.TemporaryDirectory(prefix=".install-", dir=home.parent) as tmp:
            proc = subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                    tmp,
                    f"{COMPONENTIZE_JS}@{COMPONENTIZE_JS_VERSION}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not (Path(tmp) / "node_modules" / ".bin").exists():
                lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
                why = next((ln for ln in lines if "ERR!" in ln and "code" not in ln), "")
                raise BuildError(
                    "npm could not install componentize-js: "
                    + (why or (lines[-1] if lines else "no message"))
                )
            shutil.rmtree(home, ignore_errors=True)
            os.replace(tmp, home)  # whole or not at all
            Path(tmp).mkdir()  # for TemporaryDirectory's cleanup
    finally:
        os.close(fd)
    return tool


def _build(source: Path, bundle: str, tool: Path, key: str, out_dir: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="durable-jsbuild-") as tmp:
        work = Path(tmp)
        entry = work / "workflow.js"
        entry.write_text(bundle, encoding="utf-8")
        output = work / "out.wasm"
        proc = subprocess.run(
            [
                str(tool),
                str(entry),
                "--wit",
                str(WIT_DIR),
                "--world-name",
                WORLD,
                "--disable",
                *_DISABLED,
                "--out",
                str(output),
            ],
            capture_output=True,
            text=True,
            cwd=work,
            check=False,
        )
        if proc.returncode != 0 or not output.exists():
            raise BuildError(f"{source.name}: {_explain(proc.stderr + proc.stdout)}")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            partial = out_dir / f".{key}.{os.getpid()}.tmp"
            shutil.copyfile(output, partial)
            os.replace(partial, target)
        except OSError as exc:
            raise BuildError(f"cannot write the build cache {out_dir}: {exc.strerror}") from exc


def _explain(text: str) -> str:
    """The line of componentize-js's output that says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if re.match(r"^(\w*Error|error)\b", line):
            return line
    return lines[-1] if lines else "componentize-js failed with no message"


def _read_source(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BuildError(f"{source}: no such file") from None
    except UnicodeDecodeError:
        raise BuildError(f"{source}: not a UTF-8 JavaScript file") from None
    except OSError as exc:
        raise BuildError(f"{source}: {exc.strerror}") from None


def _check_syntax(source: Path, text: str) -> None:
    """Report syntax errors with file and line (`node --check`), before a long build."""
    node = shutil.which("node")
    if node is None:
        return  # the build itself says that Node.js is missing
    with tempfile.TemporaryDirectory(prefix="durable-jscheck-") as tmp:
        copy = Path(tmp) / (source.stem + ".mjs")  # parsed as an ES module
        copy.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            [node, "--check", str(copy)], capture_output=True, text=True, check=False
        )
    if proc.returncode == 0:
        return
    lines = [ln.rstrip() for ln in proc.stderr.splitlines() if ln.strip()]
    line_no = next((ln.rsplit(":", 1)[1] for ln in lines if ln.startswith(str(copy) + ":")), "")
    message = next((ln for ln in lines if "Error:" in ln), lines[-1] if lines else "")
    where = f"{source.name}:{line_no}" if line_no.isdigit() else source.name
    raise BuildError(f"{where}: {message.strip()}")


def _cache_key(source: Path, text: str) -> str:
    h = hashlib.sha256()
    h.update(f"durable-js-build-1|{COMPONENTIZE_JS_VERSION}|{WORLD}|{_DISABLED}\n".encode())
    h.update(source.name.encode() + b"\0" + text.encode() + b"\0")
    for root in (WIT_DIR, SDK_DIR):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".js", ".wit", ".json"}:
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32]
