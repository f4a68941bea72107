"""`durable debug`'s stand-ins for the WIT interfaces of effects: child tasks, HTTP
requests and SQL transactions, answered from the history by the host's own functions.

Each stand-in is what componentize-py's bindings are to the SDK (`wit_world.imports.*`:
records, variants as `Name_Case` classes with `.value`, enums, an `err` result raised
as `Err`), and calls the host function a worker would (`host.coordination`,
`host.child_control`, `host.http`, `host.sql`). In a replay-only attempt those answer
from the history and, past its end, stop the run (`HistoryExhausted`): nothing is
spawned, requested or written.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

from durable.host import child_control, coordination, sql
from durable.host import http as host_http
from durable.host._sql_values import to_wit as sql_value_to_wit
from durable.host.context import AttemptContext
from durable.storage.guest import JsonForm

__all__ = ["Datetime", "effect_modules"]

_S64 = (-(2**63), 2**63 - 1)
_U64 = 2**64 - 1


class Record:
    """A WIT record as the SDK reads it: attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class Datetime:
    """`durable:core/types.datetime`, built positionally (as the SDK's SQL does) or by
    name."""

    def __init__(self, seconds: int, nanoseconds: int) -> None:
        self.seconds = seconds
        self.nanoseconds = nanoseconds


def _case(prefix: str, name: str) -> type:
    """A variant case class, `Prefix_CaseName`, holding `.value`."""

    def init(self: Any, value: Any = None) -> None:
        self.value = value

    title = "".join(part.title() for part in name.split("-"))
    return type(f"{prefix}_{title}", (), {"__init__": init, "tag": name})


_HTTP_ERRORS = ("timeout", "connect", "name-resolution", "invalid-url", "too-large", "other")
_SQL_VALUES = (
    "null",
    "boolean",
    "integer",
    "real",
    "numeric",
    "text",
    "blob",
    "json",
    "timestamp",
    "uuid",
)
_SPAWN_ERRORS = ("workflow-not-found", "other")


class ErrorKind(enum.Enum):
    """`durable:core/sql.error-kind`."""

    SYNTAX = "syntax"
    DATA = "data"
    CONSTRAINT = "constraint"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too-large"
    ABORTED = "aborted"
    OTHER = "other"


def effect_modules(
    ctx: AttemptContext,
    err: Callable[[Any], Exception],
    host: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> dict[str, types.ModuleType]:
    """The `children`, `child_control`, `http` and `sql` stand-ins. `err` makes the
    exception of an `err` result; `host` wraps a host call (parks a host exception)."""
    http_errors = {name: _case("HttpError", name) for name in _HTTP_ERRORS}
    values = {name: _case("Value", name) for name in _SQL_VALUES}
    spawn_errors = {name: _case("SpawnError", name) for name in _SPAWN_ERRORS}

    # -- children ----------------------------------------------------------------------

    def spawn(request: Any, options: Any = None) -> int:
        placement = None
        if options is not None:  # spawn-options.spawn-queued, as the SDK builds it
            placement = (options.queue, options.queue_key, options.priority)
        out = coordination.spawn_child(
            ctx, request.workflow, request.entry, request.input, request.name, placement
        )
        if "id" in out:
            return int(out["id"])
        kind, detail = out["error"]
        raise err(spawn_errors.get(kind, spawn_errors["other"])(detail))

    def join(child: int, timeout_ns: int | None) -> Record | None:
        outcome = coordination.join_child(ctx, child, timeout_ns)
        if outcome is None:
            return None
        return Record(state=outcome["state"], value=outcome["value"], error=outcome["error"])

    def cancel(child: int) -> bool:
        running = child_control.cancel_child(ctx, child)
        if isinstance(running, str):
            raise err(running)
        return running

    # -- HTTP --------------------------------------------------------------------------

    def fetch(request: Any) -> Any:
        wanted = host_http.Request(
            method=request.method,
            url=request.url,
            headers=[(str(k), str(v)) for k, v in request.headers],
            body=None if request.body is None else bytes(request.body),
            timeout_ms=request.timeout_ms,
        )

        def not_here() -> str:  # pragma: no cover - a replay-only attempt never performs
            raise AssertionError("durable debug performed a request")

        payload = ctx.effect(wanted.label(), wanted.digest(), not_here)
        answer = host_http.to_wit(json.loads(payload))
        if isinstance(answer, wc.Variant):
            raise err(http_errors.get(answer.tag, http_errors["other"])(answer.payload))
        return answer

    # -- SQL ---------------------------------------------------------------------------

    def to_host(value: Any) -> wc.Variant:
        """An SDK `Value_*` as the WIT variant the host's SQL functions read."""
        tag: str = type(value).tag
        payload = getattr(value, "value", None)
        return wc.Variant(tag) if tag == "null" else wc.Variant(tag, payload)

    def to_sdk(form: JsonForm) -> Any:
        """A recorded value as the SDK's `Value_*`."""
        variant = sql_value_to_wit(form)
        payload: Any = variant.payload
        if variant.tag == "timestamp":
            payload = Datetime(payload.seconds, payload.nanoseconds)
        case = values[variant.tag]
        return case() if variant.tag == "null" else case(payload)

    def sql_error(error: dict[str, Any]) -> Exception:
        known = {k.value for k in ErrorKind}
        kind = ErrorKind(error["kind"]) if error["kind"] in known else ErrorKind.OTHER
        return err(Record(kind=kind, message=error["message"], code=error.get("code")))

    def execute(statement: str, params: list[Any]) -> Record:
        entry = sql.execute(ctx, statement, [to_host(p) for p in params])
        if "error" in entry:
            raise sql_error(entry["error"])
        ok = entry["ok"]
        rows = [[to_sdk(v) for v in row] for row in ok["rows"]]
        return Record(columns=list(ok["columns"]), rows=rows, rowcount=ok["rowcount"])

    def commit() -> None:
        error = sql.commit(ctx)
        if error is not None:
            raise sql_error(error)

    def module(name: str, funcs: dict[str, Callable[..., Any]], **names: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        for key, fn in funcs.items():
            setattr(mod, key, host(fn))
        for key, value in names.items():
            setattr(mod, key, value)
        return mod

    return {
        "wit_world.imports.children": module(
            "children",
            {"spawn": spawn, "join": join},
            SpawnRequest=Record,
            **{c.__name__: c for c in spawn_errors.values()},
        ),
        "wit_world.imports.child_control": module("child_control", {"cancel": cancel}),
        "wit_world.imports.spawn_options": module(
            "spawn_options",
            {"spawn_queued": spawn},
            QueueOptions=Record,
            **{c.__name__: c for c in spawn_errors.values()},
        ),
        "wit_world.imports.http": module(
            "http",
            {"fetch": fetch},
            Request=Record,
            **{c.__name__: c for c in http_errors.values()},
        ),
        "wit_world.imports.sql": module(
            "sql",
            {
                "begin": lambda label: sql.begin(ctx, label),
                "execute": execute,
                "commit": commit,
                "rollback": lambda reason: sql.rollback(ctx, reason),
            },
            ErrorKind=ErrorKind,
            SqlError=Record,
            ResultSet=Record,
            Value=object,
            **{c.__name__: c for c in values.values()},
        ),
    }
