"""Checks on a Python workflow's source that run before any build or write.

A build takes from seconds to a minute or more; a mistake it would only find at the
end (a module the sandbox lacks), or that would only show as a failed task (an entry
that does not exist), is found here instead by reading the source with `ast`, in
milliseconds. The scan covers the workflow file and the `.py` files beside it that it
imports, since those are bundled with it.

The checks are conservative: when the source does something they cannot follow (an
entry registered by a call rather than a decorator, a computed entry name), they
check nothing rather than refuse a workflow that would work.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass, field
from pathlib import Path

from durable._sandbox_stdlib import MISSING, STDLIB
from durable.errors import BuildError, ConfigurationError

#: Modules every workflow can import besides the standard library and its own files:
#: the guest SDK and what the build generates (see `durable.builder`).
_PROVIDED = frozenset({"durable", "wit_world", "componentize_py_types", "componentize_py_runtime"})
#: Popular HTTP clients: importing one gets a pointer to durable.http.
_HTTP_CLIENTS = frozenset({"requests", "httpx", "urllib3", "aiohttp", "httplib2", "pycurl"})
#: Exceptions whose handler makes an import optional (`try: import x / except ImportError`).
_IMPORT_GUARDS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
#: Beyond these, a module graph is too large to be a workflow's own files: stop looking.
_MAX_FILES = 200


@dataclass(slots=True)
class _Scan:
    """What the workflow's files say about their imports and entries."""

    # (file, line, module) of every import that is not guarded or under TYPE_CHECKING
    imports: list[tuple[str, int, str]] = field(default_factory=list)
    entries: dict[str, str] = field(default_factory=dict)  # entry name -> "file:line"
    uncertain: bool = False  # an entry registered in a way this scan cannot follow
    plain_main: bool = False  # the workflow file defines `main` without decorating it


def check_imports(source: Path) -> None:
    """Refuse a workflow that imports a module the sandbox cannot provide.

    Raises:
        BuildError: one line naming the file, line and module, what a workflow can
            import instead, and `durable.http` for HTTP clients.
    """
    scan = _scan(source)
    local = _local_modules(source.parent)
    for file, line, module in scan.imports:
        if module in STDLIB or module in _PROVIDED or module in local:
            continue
        raise BuildError(f"{file}:{line}: {_why_missing(module, source)}")


def check_entry(source: Path, entry: str) -> str | None:
    """Check that `entry` ("" = the default) names an entry of the workflow at `source`.

    Returns a note for the user when the choice is not explicit (an undecorated
    `main`), else None.

    Raises:
        ConfigurationError: no such entry (the known ones are listed), no entry at
            all, or several with none called `main` and no `entry` given.
    """
    scanned = scan_entries(source)
    if scanned is None:
        return None
    entries, plain_main = scanned
    return decide_entry(source.name, entries, plain_main, entry)


def scan_entries(source: Path) -> tuple[list[str], bool] | None:
    """The workflow's decorated entries and whether it defines an undecorated `main`;
    None when an entry is registered in a way the scan cannot follow."""
    scan = _scan(source)
    if scan.uncertain:
        return None
    return sorted(scan.entries), scan.plain_main


def decide_entry(file: str, entries: list[str], plain_main: bool, entry: str) -> str | None:
    """`check_entry`'s rule, for a workflow named `file` with these entries (also used
    for a `.wasm` whose build recorded them: `durable.entry_section`)."""
    known = sorted(entries)
    listed = ", ".join(known)
    if entry:
        if entry in known:
            return None
        if not known:
            raise ConfigurationError(
                f"{file} has no entry {entry!r}: it has no @durable.workflow function"
                + (" (its main() runs when --entry is not given)" if plain_main else "")
            )
        raise ConfigurationError(f"{file} has no entry {entry!r} (its entries: {listed})")
    if len(known) == 1 or "main" in known:
        return None
    if known:
        raise ConfigurationError(
            f"{file} has several entries ({listed}) and none is called main: "
            "choose one with --entry"
        )
    if plain_main:
        return (
            f"{file} has no @durable.workflow function: running its main() "
            "(decorate it with @durable.workflow to say so)"
        )
    raise ConfigurationError(
        f"{file} has no entry: decorate the function a task runs with @durable.workflow"
    )


def _why_missing(module: str, source: Path) -> str:
    """One line: why `module` is not there, and what a workflow can use instead."""
    if module in MISSING:
        head = f"the sandbox's Python has no {module!r} module"
    else:
        head = f"no module named {module!r} in the sandbox"
    tail = (
        f"a workflow can import the standard library, the .py files and packages beside "
        f"{source.name}, and durable"
    )
    if module in _HTTP_CLIENTS:
        return f"{head}: make HTTP requests with durable.http (recorded, replay-safe); {tail}"
    return f"{head}: {tail} (HTTP: durable.http)"


def _local_modules(folder: Path) -> frozenset[str]:
    """The modules the build bundles from the workflow's folder: `.py` files, packages."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return frozenset()
    names = set()
    for child in children:
        if child.suffix == ".py" and child.is_file():
            names.add(child.stem)
        elif child.is_dir() and child.name.isidentifier():
            names.add(child.name)  # a package, or a namespace package
    return frozenset(names)


def _scan(source: Path) -> _Scan:
    """Read the workflow file and the sibling modules it imports (transitively)."""
    scan = _Scan()
    folder = source.parent
    queue = [source]
    seen: set[Path] = set()
    while queue and len(seen) < _MAX_FILES:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = _parse(path)
        if tree is None:
            if path == source:
                scan.uncertain = True  # unreadable: the build reports it
            continue
        visitor = _Visitor(path.name, scan, is_workflow=path == source)
        visitor.visit(tree)
        for module in visitor.modules:
            sibling = folder / f"{module}.py"
            if sibling.is_file():
                queue.append(sibling)
            elif (folder / module).is_dir():
                scan.uncertain = True  # a package's entries are not read: check nothing
    return scan


#: One parse at a time in a process: CPython 3.11's parser keeps the AST's recursion
#: depth in state the threads share, and two workflows checked at once in threads (a
#: worker's, or a test's) can fail with "SystemError: AST constructor recursion depth
#: mismatch". A parse takes milliseconds.
_PARSE_LOCK = threading.Lock()


def _parse(path: Path) -> ast.Module | None:
    try:
        data = path.read_bytes()
        with _PARSE_LOCK:
            return ast.parse(data, filename=path.name)
    except (OSError, SyntaxError, ValueError):
        return None  # the build says what is wrong with it, with file and line


class _Visitor(ast.NodeVisitor):
    """Collects one file's imports and `@durable.workflow` entries."""

    def __init__(self, file: str, scan: _Scan, *, is_workflow: bool) -> None:
        self.file = file
        self.scan = scan
        self.is_workflow = is_workflow
        self.modules: list[str] = []  # every top-level module imported, guarded or not
        self.durable_names = {"durable"}  # `import durable as d`
        self.workflow_names: set[str] = set()  # `from durable import workflow as wf`
        self.guarded = 0  # inside `try/except ImportError` or `if TYPE_CHECKING`
        self.decorators: set[int] = set()  # id() of nodes used as a decorator

    def _record(self, node: ast.stmt, module: str) -> None:
        self.modules.append(module)
        if not self.guarded:
            self.scan.imports.append((self.file, node.lineno, module))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self._record(node, top)
            if alias.name == "durable" and alias.asname:
                self.durable_names.add(alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return  # relative: the workflow is a top-level module, the build says so
        self._record(node, node.module.split(".")[0])
        if self.is_workflow and any((a.asname or a.name) in {"main", "*"} for a in node.names):
            self.scan.uncertain = True  # a `main` from elsewhere, decorated or not
        if node.module == "durable":
            for alias in node.names:
                if alias.name == "workflow":
                    self.workflow_names.add(alias.asname or "workflow")

    def visit_Try(self, node: ast.Try) -> None:
        if any(_catches_import_error(handler) for handler in node.handlers):
            self.guarded += 1
            for stmt in node.body:
                self.visit(stmt)
            self.guarded -= 1
            for handler in node.handlers:
                self.visit(handler)
            for stmt in [*node.orelse, *node.finalbody]:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.guarded += 1
            for stmt in node.body:
                self.visit(stmt)
            self.guarded -= 1
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if not self._is_workflow(target):
                continue
            self.decorators.add(id(target))
            name = _entry_name(decorator, node.name)
            if name is None:
                self.scan.uncertain = True
            else:
                self.scan.entries.setdefault(name, f"{self.file}:{node.lineno}")
        if self.is_workflow and node.name == "main" and node.col_offset == 0:
            self.scan.plain_main = True
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # `durable.workflow` anywhere but in a decorator: an entry registered by a call.
        if self._is_workflow(node) and id(node) not in self.decorators:
            self.scan.uncertain = True
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if self._is_workflow(node) and id(node) not in self.decorators:
            self.scan.uncertain = True

    def visit_Assign(self, node: ast.Assign) -> None:
        # `main = something`: a callable main the scan cannot see; the build decides.
        if self.is_workflow and any(
            isinstance(t, ast.Name) and t.id == "main" for t in node.targets
        ):
            self.scan.uncertain = True
        self.generic_visit(node)

    def _is_workflow(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Attribute):
            return (
                node.attr == "workflow"
                and isinstance(node.value, ast.Name)
                and node.value.id in self.durable_names
            )
        return isinstance(node, ast.Name) and node.id in self.workflow_names


def _entry_name(decorator: ast.expr, default: str) -> str | None:
    """The entry name a decorator gives, or None when it is computed."""
    if not isinstance(decorator, ast.Call):
        return default
    for keyword in decorator.keywords:
        if keyword.arg == "name":
            value = keyword.value
            if isinstance(value, ast.Constant) and value.value is None:
                return default
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value or default
            return None
    return default if not decorator.args else None


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (isinstance(t, ast.Name) and t.id in _IMPORT_GUARDS)
        or (isinstance(t, ast.Attribute) and t.attr in _IMPORT_GUARDS)
        for t in types
    )


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
