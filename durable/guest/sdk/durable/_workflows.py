"""The `@durable.workflow` decorator and the registry of entry functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

#: entry name -> function, filled in when the workflow module is imported.
registry: dict[str, Callable[..., Any]] = {}


@overload
def workflow(fn: F) -> F: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[F], F]: ...


def workflow(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark an entry function: it takes the task's input and returns its result.

    A file may define several; a task names the one it runs (children can use another
    entry of the same binary). With exactly one, or one called `main`, that is the
    default entry.
    """

    def register(f: F) -> F:
        registry[name or f.__name__] = f
        return f

    return register(fn) if fn is not None else register


def entry_name(fn: Callable[..., Any]) -> str:
    """The entry name a registered function is known by."""
    for name, registered in registry.items():
        if registered is fn or getattr(registered, "__wrapped__", None) is fn:
            return name
    raise ValueError(
        f"{getattr(fn, '__name__', fn)!r} is not a workflow entry: "
        "decorate it with @durable.workflow"
    )


def resolve(entry: str, module: Any) -> Callable[..., Any]:
    """Find the function for `entry` ("" = the default) in the registry or `module`."""
    if entry:
        if entry in registry:
            return registry[entry]
        raise LookupError(f"workflow has no entry {entry!r} (known: {sorted(registry) or 'none'})")
    if len(registry) == 1:
        return next(iter(registry.values()))
    if "main" in registry:
        return registry["main"]
    if registry:
        raise LookupError(
            f"workflow has several entries {sorted(registry)} and none is called 'main': "
            "name one with --entry"
        )
    fn = getattr(module, "main", None)
    if callable(fn):
        return fn
    raise LookupError("workflow defines no entry: decorate a function with @durable.workflow")
