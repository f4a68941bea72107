"""The dashboard: a Starlette application over a `Client` (reads of tasks, histories,
logs; cancel, notify, retry, pause, resume, replay) and a `Reader` (the list, overview
and workers queries).

Pages are rendered on the server; the script (`assets.JS`) only confirms actions and
polls two JSON endpoints, one for the task list and one for a task's state and log.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from durable.client import Client
from durable.core.model import RunInfo, TaskState
from durable.core.task_error import TaskError
from durable.errors import DurableError, NotFoundError, TaskNotFoundError
from durable.metrics import Metrics
from durable.metrics_http import metrics_route
from durable.replayer import Replayer
from durable.storage.fork import ForkStore, TaskOrigin, of_run
from durable.ui import assets
from durable.ui.charts import bars
from durable.ui.counts import SharedCounts
from durable.ui.html import badge, e, page, pretty_json, seconds, table, td, when
from durable.ui.reader import Bucket, Reader, TaskFilter, TaskRow
from durable.ui.security import Guard, GuardMiddleware
from durable.worker.worker import HEARTBEAT_SECONDS

PAGE_SIZE = 50
#: How long after a minute is over the tasks that ended in it are taken as all counted
#: (a task's end commits a moment after the time it records).
SETTLED = timedelta(minutes=2)
#: A lease that ends sooner than this is shown as about to lapse.
LAPSING = timedelta(seconds=2)
#: The most of a form body read (a notification's data is bounded by the store anyway).
MAX_FORM_BYTES = 1 << 20
#: The largest workflow binary the replay check takes as an upload.
MAX_UPLOAD_BYTES = 64 << 20
_LOG_PAGE = 2000


class BadInput(ValueError):
    """A filter or form value the dashboard cannot use; shown to the user."""


@dataclass
class Dashboard:
    """What the routes share: the database handles and the process's secrets."""

    client: Client
    reader: Reader
    guard: Guard
    metrics: Metrics = field(default_factory=Metrics)
    replayer: Replayer | None = None
    # The overview's counts of tasks ended per minute, for minutes that are over: an
    # ended task's row is never written again, so they stand (see `ended_per_minute`).
    _minutes: dict[datetime, list[Bucket]] = field(default_factory=dict, init=False)
    replaying: anyio.Lock = field(default_factory=anyio.Lock, init=False)
    # Tasks by state, for the overview and /metrics: one grouped count per moment.
    counts: SharedCounts = field(init=False)

    def __post_init__(self) -> None:
        self.counts = SharedCounts(self.reader.count_by_state)

    async def ended_per_minute(self, start: datetime, now: datetime) -> list[Bucket]:
        """Tasks ended per minute and state from `start` (a whole minute) to `now`.

        Minutes that ended more than `SETTLED` ago are read once and kept; each call
        reads only the rest, so the overview does not count the whole hour again on
        every load.
        """
        settled = (now - SETTLED).replace(second=0, microsecond=0)
        self._minutes = {m: b for m, b in self._minutes.items() if m >= start}
        first_unread = start
        while first_unread < settled and first_unread in self._minutes:
            first_unread += timedelta(minutes=1)
        fresh = await self.reader.ended(first_unread, 60)
        by_minute: dict[datetime, list[Bucket]] = defaultdict(list)
        for bucket in fresh:
            by_minute[bucket.start].append(bucket)
        minute = first_unread
        while minute < settled:
            self._minutes[minute] = by_minute.get(minute, [])
            minute += timedelta(minutes=1)
        kept = [b for m, bs in self._minutes.items() if m < first_unread for b in bs]
        return kept + fresh

    def close(self) -> None:
        """Close the replayer's runtime, if a replay check opened one."""
        if self.replayer is not None:
            self.replayer.close()


def create_app(dash: Dashboard) -> Starlette:
    """The ASGI application for `dash`."""
    routes = [
        Route("/", _handler(dash, overview)),
        Route("/tasks", _handler(dash, tasks_page)),
        Route("/api/tasks", _handler(dash, tasks_api)),
        Route("/tasks/{task_id:int}", _handler(dash, task_page)),
        Route("/api/tasks/{task_id:int}", _handler(dash, task_api)),
        Route("/tasks/{task_id:int}/cancel", _handler(dash, cancel), methods=["POST"]),
        Route("/tasks/{task_id:int}/notify", _handler(dash, notify), methods=["POST"]),
        Route("/tasks/{task_id:int}/retry", _handler(dash, retry), methods=["POST"]),
        Route("/tasks/{task_id:int}/pause", _handler(dash, pause), methods=["POST"]),
        Route("/tasks/{task_id:int}/resume", _handler(dash, resume), methods=["POST"]),
        Route("/tasks/{task_id:int}/replay", _handler(dash, replay), methods=["POST"]),
        Route("/workers", _handler(dash, workers_page)),
        Route("/static/app.css", _static(assets.CSS, "text/css")),
        Route("/static/app.js", _static(assets.JS, "text/javascript")),
        metrics_route(dash.metrics, dash.counts),
    ]
    return Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=dash.guard)])


def _handler(dash: Dashboard, fn: Any) -> Any:
    async def handle(request: Request) -> Response:
        try:
            response: Response = await fn(dash, request)
        except TaskNotFoundError as exc:
            return HTMLResponse(page("Not found", f"<p>{e(exc)}</p>"), status_code=404)
        except BadInput as exc:
            return HTMLResponse(page("Bad request", f"<p>{e(exc)}</p>"), status_code=400)
        return response

    return handle


def _static(text: str, media_type: str) -> Any:
    body = text.encode()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=media_type)

    return serve


# -- the task list --------------------------------------------------------------------


def task_filter(params: Any) -> TaskFilter:
    """The filter the query string asks for.

    Raises:
        BadInput: an unknown state, a parent or key that is not a number, a bad time.
    """
    states = []
    for value in params.getlist("state"):
        if value:
            try:
                states.append(TaskState(value))
            except ValueError:
                raise BadInput(f"unknown state {value!r}") from None
    return TaskFilter(
        states=tuple(states),
        name_glob=params.get("name") or None,
        parent_id=_int(params.get("parent"), "parent"),
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
        before_id=_int(params.get("before"), "before"),
        limit=PAGE_SIZE,
    )


def _int(value: str | None, what: str, kind: str = "a task id") -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{what} must be {kind}, not {value!r}") from None


def _time(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{what} must be a time like 2026-01-31T12:00, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(row: TaskRow) -> str:
    ended = row.state in {"complete", "failed", "cancelled"}
    end = row.updated_at if ended else datetime.now(UTC)
    return seconds(max(0.0, (end - row.created_at).total_seconds()))


def _row_json(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "state": row.state,
        "created_at": when(row.created_at),
        "updated_at": when(row.updated_at),
        "duration": _duration(row),
        "attempts": row.attempts,
        "parent_id": row.parent_id,
    }


async def tasks_page(dash: Dashboard, request: Request) -> Response:
    """GET /tasks: the filtered list, a page at a time, live on the first page."""
    params = request.query_params
    wanted_id = params.get("id", "").strip()
    if wanted_id:
        return RedirectResponse(f"/tasks/{_int(wanted_id, 'id')}", status_code=303)
    where = task_filter(params)
    rows = await dash.reader.tasks(where)
    chosen = {s.value for s in where.states}
    options = "".join(
        f'<option value="{s.value}"{" selected" if s.value in chosen else ""}>{s.value}</option>'
        for s in TaskState
    )
    form = (
        '<form class="filters" method="get" action="/tasks">'
        f'<label>id<input name="id" size="8" inputmode="numeric"></label>'
        f'<label>state<select name="state"><option value="">any</option>{options}</select></label>'
        f'<label>name<input name="name" value="{e(params.get("name", ""))}" '
        'placeholder="pattern, e.g. order-*"></label>'
        f'<label>parent<input name="parent" size="8" value="{e(params.get("parent", ""))}">'
        "</label>"
        f'<label>created from (UTC)<input type="datetime-local" name="since" '
        f'value="{e(params.get("since", ""))}"></label>'
        f'<label>to<input type="datetime-local" name="until" '
        f'value="{e(params.get("until", ""))}"></label>'
        "<button>Filter</button></form>"
    )
    body_rows = [
        [
            td(f'<a href="/tasks/{r.id}">{r.id}</a>', num=True),
            td(e(r.name)),
            td(badge(r.state)),
            td(e(when(r.created_at))),
            td(e(when(r.updated_at))),
            td(e(_duration(r)), num=True),
            td(str(r.attempts), num=True),
            td(
                "" if r.parent_id is None else f'<a href="/tasks/{r.parent_id}">{r.parent_id}</a>',
                num=True,
            ),
        ]
        for r in rows
    ]
    kept = [(k, v) for k, v in params.multi_items() if k not in ("before", "id")]
    live = ""
    if where.before_id is None:  # the newest page follows new tasks; older pages stay put
        live = f' data-live="/api/tasks?{e(urlencode(kept))}"'
    headers = [
        "#id",
        "name",
        "state",
        "created (UTC)",
        "updated",
        "#duration",
        "#attempts",
        "#parent",
    ]
    pager = ""
    if len(rows) == PAGE_SIZE:
        older = urlencode([*kept, ("before", str(rows[-1].id))])
        pager = f'<p class="pager"><a href="/tasks?{e(older)}" id="older">Older tasks →</a></p>'
    if where.before_id is not None:
        pager += f'<p class="pager"><a href="/tasks?{e(urlencode(kept))}">Newest tasks</a></p>'
    empty = "" if rows else '<p class="muted">No tasks match.</p>'
    body = form + table(headers, body_rows, body_attrs=live) + empty + pager
    return HTMLResponse(page("Tasks", body, here="/tasks"))


async def tasks_api(dash: Dashboard, request: Request) -> Response:
    """GET /api/tasks: the same list as JSON, for the page's live updates."""
    rows = await dash.reader.tasks(task_filter(request.query_params))
    return JSONResponse({"tasks": [_row_json(r) for r in rows]})


# -- one task -------------------------------------------------------------------------


async def task_page(dash: Dashboard, request: Request) -> Response:
    """GET /tasks/N: everything about one task."""
    task_id = int(request.path_params["task_id"])
    client = dash.client
    task = await client.get(task_id)
    runs = await client.runs(task_id) if task.run > 1 else []
    shown_run = _int(request.query_params.get("run"), "run", "a run number") or task.run
    if shown_run == task.run:
        history = await client.store.load_history(task_id)
    else:
        try:
            history = list((await client.run_history(task_id, shown_run)).events)
        except NotFoundError as exc:
            raise BadInput(str(exc)) from None
    children = await client.store.list_tasks(parent_id=task_id, limit=100)
    notes = await dash.reader.notifications(task_id)
    status = await client.store.read_status(task_id)
    logs = await client.store.read_logs(task_id, limit=_LOG_PAGE)
    flow = await dash.reader.flow(task_id)
    origin = await _origin(client, task_id)
    flash, failed = request.query_params.get("msg", ""), False
    if request.query_params.get("err"):
        flash, failed = request.query_params["err"], True

    parent = (
        "" if task.parent_id is None else f'<a href="/tasks/{task.parent_id}">{task.parent_id}</a>'
    )
    entry = e(task.entry or "(default entry)")
    meta = [
        ("state", badge(task.state.value, element_id="state")),
        ("name", e(task.name)),
        ("workflow", f"<code>{e(task.workflow_hash[:16])}</code> {entry}"),
        ("created", e(when(task.created_at))),
        ("updated", e(when(task.updated_at))),
        ("attempts", str(task.attempts)),
        *([("run", f'<span id="run">run {task.run} of {task.run}</span>')] if runs else []),
        ("parent", parent or '<span class="muted">none</span>'),
    ]
    if task.owner:
        meta.append(("worker", e(task.owner)))
    if task.wakeup_at:
        meta.append(("wakes at", e(when(task.wakeup_at))))
    if task.deadline_at:
        meta.append(("deadline", e(when(task.deadline_at))))
    if task.deaths:
        meta.append(("worker deaths", str(task.deaths)))
    if task.cancel_requested:
        meta.append(("cancel", "requested"))
    if flow is not None and flow.queue is not None:
        key = f", key {task.queue_key}" if task.queue_key is not None else ""
        meta.append(("queue", f'<span id="queue">{e(flow.queue)}</span>{e(key)}'))
    paused = flow is not None and flow.paused and not task.state.is_terminal
    if flow is not None and not task.state.is_terminal:
        shown = "yes: no worker runs it until it is resumed" if paused else "no"
        meta.append(("paused", f'<span id="paused">{shown}</span>'))
    if origin is not None:
        link = f'<a href="/tasks/{origin.origin_id}">{origin.origin_id}</a>'
        where = f"task {link}, at event {origin.at}{of_run(origin.run)}"
        meta.append(("forked from", f'<span id="origin">{where}</span>'))
    parts = ['<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl>"]
    parts.append(_actions(dash, task_id, task.state, paused=paused))
    parts.append(_replay_form(dash, task_id))
    parts.append(f"<h2>Input</h2><pre id=input>{pretty_json(task.input)}</pre>")
    if task.result is not None:
        parts.append(f"<h2>Result</h2><pre id=result>{pretty_json(task.result)}</pre>")
    if task.error is not None:
        parts.append(_error_html(task.error))
    if status:
        rows = [
            [td(e(v.key)), td(f"<pre>{pretty_json(v.value)}</pre>"), td(e(when(v.updated_at)))]
            for v in status
        ]
        parts.append("<h2>Status</h2>" + table(["key", "value", "set at"], rows))
    if children:
        rows = [
            [
                td(f'<a href="/tasks/{c.id}">{c.id}</a>', num=True),
                td(e(c.name)),
                td(badge(c.state.value)),
                td(e(when(c.created_at))),
            ]
            for c in children
        ]
        parts.append("<h2>Children</h2>" + table(["#id", "name", "state", "created"], rows))
    if notes:
        rows = [
            [
                td(str(n.seq), num=True),
                td(e(n.event)),
                td(f"<pre>{pretty_json(n.data, 2_000)}</pre>"),
                td(e(when(n.created_at))),
                td(e(when(n.consumed_at)) or '<span class="muted">pending</span>'),
            ]
            for n in notes
        ]
        parts.append(
            "<h2>Notifications</h2>"
            + table(["#seq", "event", "data", "sent", "consumed"], rows, body_attrs=" id=notes")
        )
    if runs:
        parts.append(_runs(task_id, runs, shown_run))
    parts.append(_timeline(history, task.created_at, run=shown_run if runs else None))
    after = logs[-1].seq if logs else 0
    text = "".join(
        f'<span class="muted">{e(c.data.decode(errors="replace"))}</span>'
        if c.stream.value == "stderr"
        else e(c.data.decode(errors="replace"))
        for c in logs
    )
    parts.append(
        f'<h2>Log</h2><div data-live="/api/tasks/{task_id}" data-after="{after}" '
        f'data-state="{e(task.state.value)}"><pre id="log">{text}</pre></div>'
    )
    title = f"Task {task_id}"
    return HTMLResponse(page(title, "".join(parts), here="/tasks", flash=flash, error=failed))


def _error_html(error: str) -> str:
    try:
        err = TaskError.from_json(error)
    except (ValueError, TypeError, KeyError):
        return f"<h2>Error</h2><pre id=error>{pretty_json(error)}</pre>"
    trace = f"<pre id=traceback>{e(err.traceback)}</pre>" if err.traceback else ""
    return f"<h2>Error</h2><p id=error><b>{e(err.kind)}</b>: {e(err.message)}</p>{trace}"


def _runs(task_id: int, runs: list[RunInfo], shown: int) -> str:
    """The runs of a task that continued as new, each linking to its history."""
    rows = []
    for r in runs:
        label = f"{r.run} (current)" if r.ended_at is None else str(r.run)
        link = label if r.run == shown else f'<a href="/tasks/{task_id}?run={r.run}">{label}</a>'
        ended = e(when(r.ended_at)) if r.ended_at else '<span class="muted">running</span>'
        rows.append(
            [
                td(link, num=True),
                td(str(r.events), num=True),
                td(ended),
                td(f"<pre>{pretty_json(r.input, 2_000)}</pre>"),
            ]
        )
    headers = ["#run", "events", "ended", "input"]
    return "<h2>Runs</h2>" + table(headers, rows, body_attrs=" id=runs")


def _timeline(history: list[Any], launched: datetime, *, run: int | None = None) -> str:
    """The history, each event with the time since the one before (the first: since
    the launch), drawn to scale. `run`: the run it is, for a task that has several."""
    title = "History" if run is None else f"History of run {run}"
    if not history:
        return f'<h2>{title}</h2><p class="muted">No events recorded.</p>'
    gaps: list[float] = []
    previous: datetime | None = launched
    for event in history:
        at = event.created_at
        gaps.append(0.0 if previous is None or at is None else (at - previous).total_seconds())
        previous = at or previous
    longest = max(gaps) or 1.0
    rows = []
    for event, gap in zip(history, gaps, strict=True):
        width = 1 + int(160 * gap / longest)
        bar = (
            f'<svg width="{width}" height="8" aria-hidden="true">'
            f'<rect width="{width}" height="8" fill="#2f6fde"/></svg>'
        )
        payload = event.payload if len(event.payload) <= 300 else event.payload[:300] + " ..."
        rows.append(
            [
                td(str(event.index), num=True),
                td(f"<code>{e(event.label)}</code>"),
                td(f"<code>{e(payload)}</code>"),
                td(e(when(event.created_at))),
                td(f"{bar} +{e(seconds(gap))}"),
            ]
        )
    headers = ["#index", "operation", "payload", "time (UTC)", "since the event before"]
    return f"<h2>{title}</h2>" + table(headers, rows, body_attrs=" id=history")


def _csrf(dash: Dashboard) -> str:
    return f'<input type="hidden" name="csrf" value="{e(dash.guard.csrf())}">'


async def _origin(client: Client, task_id: int) -> TaskOrigin | None:
    """Where the task was forked (or retried) from, if the store keeps forks."""
    store = client.store
    return await store.task_origin(task_id) if isinstance(store, ForkStore) else None


def _button(dash: Dashboard, task_id: int, action: str, label: str, question: str) -> str:
    """A one-button form that posts `action` once confirmed."""
    return (
        f'<form method="post" action="/tasks/{task_id}/{action}" id="{action}-form" '
        f'data-confirm="{e(question)}">{_csrf(dash)}'
        f'<button id="{action}">{e(label)}</button></form>'
    )


def _actions(dash: Dashboard, task_id: int, state: TaskState, *, paused: bool) -> str:
    """The forms for what can be done to the task in its state; only those that apply,
    so that a button never leads to a refusal that the page could have foreseen."""
    forms = []
    if state is TaskState.FAILED:
        forms.append(
            _button(
                dash,
                task_id,
                "retry",
                "Retry as a new task",
                f"Re-run task {task_id} from its last clean event, as a new task?",
            )
        )
    if paused:
        forms.append(_button(dash, task_id, "resume", "Resume", f"Let task {task_id} run again?"))
    elif state in (TaskState.READY, TaskState.ACTIVE, TaskState.SUSPENDED):
        forms.append(
            _button(
                dash,
                task_id,
                "pause",
                "Pause",
                f"Pause task {task_id}? No worker runs it until it is resumed.",
            )
        )
    if not state.is_terminal:
        forms.append(
            f'<form method="post" action="/tasks/{task_id}/cancel" id="cancel-form" '
            f'data-confirm="Cancel task {task_id} and its unfinished children?">{_csrf(dash)}'
            '<button class="danger" id="cancel">Cancel task</button></form>'
            f'<form method="post" action="/tasks/{task_id}/notify" id="notify-form" '
            f'data-confirm="Send this notification to task {task_id}?">{_csrf(dash)}'
            '<label>event <input name="event" required maxlength="200"></label>'
            '<label>data (JSON) <textarea name="data" rows="2" cols="30">null</textarea></label>'
            '<button id="notify">Notify</button></form>'
        )
    if not forms:
        return ""
    return '<h2>Actions</h2><div class="actions">' + "".join(forms) + "</div>"


def _replay_form(dash: Dashboard, task_id: int) -> str:
    return (
        f'<h2>Replay check</h2><form method="post" action="/tasks/{task_id}/replay" '
        f'class="filters" id="replay-form" enctype="multipart/form-data">{_csrf(dash)}'
        "<label>against the stored workflow named (empty: the task's own code)"
        '<input name="workflow" placeholder="its own code"></label>'
        '<label>or an uploaded one<input type="file" name="wasm" accept=".wasm"></label>'
        '<button id="replay">Replay</button></form>'
    )


async def task_api(dash: Dashboard, request: Request) -> Response:
    """GET /api/tasks/N?after=SEQ: the task's state and its log after chunk SEQ."""
    task_id = int(request.path_params["task_id"])
    after = _int(request.query_params.get("after"), "after") or 0
    task = await dash.client.get(task_id)
    chunks = await dash.client.store.read_logs(task_id, after_seq=after, limit=_LOG_PAGE)
    return JSONResponse(
        {
            "state": task.state.value,
            "ended": task.state.is_terminal,
            "after": chunks[-1].seq if chunks else after,
            "logs": [
                {"stream": c.stream.value, "text": c.data.decode(errors="replace")} for c in chunks
            ],
        }
    )


# -- actions --------------------------------------------------------------------------


async def _form(dash: Dashboard, request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token is checked.

    Raises:
        BadInput: too large, or the CSRF token is missing or wrong.
    """
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise BadInput("the form is too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
    if not dash.guard.csrf_ok(fields.get("csrf")):
        raise BadInput("the form's security token is missing or stale: reload the page")
    return fields


async def _replay_form_fields(
    dash: Dashboard, request: Request
) -> tuple[dict[str, str], bytes | None]:
    """The replay form, urlencoded or with an uploaded workflow; the CSRF token checked.

    Raises:
        BadInput: no or a wrong CSRF token, an upload over `MAX_UPLOAD_BYTES` (or of
            unknown length), or a malformed form.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form(dash, request), None
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_UPLOAD_BYTES:
        raise BadInput(f"an uploaded workflow may be at most {MAX_UPLOAD_BYTES >> 20} MiB")
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_FORM_BYTES)
    except Exception as exc:  # starlette's MultiPartException, or a broken stream
        raise BadInput(f"the form could not be read: {exc}") from None
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not dash.guard.csrf_ok(fields.get("csrf")):
            raise BadInput("the form's security token is missing or stale: reload the page")
        upload = form.get("wasm")
        wasm = None
        if upload is not None and not isinstance(upload, str) and upload.filename:
            wasm = await upload.read()
        return fields, wasm
    finally:
        await form.close()


def _back(task_id: int, *, msg: str = "", err: str = "") -> Response:
    query = urlencode({"err": err} if err else {"msg": msg})
    return RedirectResponse(f"/tasks/{task_id}?{query}", status_code=303)


async def cancel(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/cancel."""
    task_id = int(request.path_params["task_id"])
    await _form(dash, request)
    try:
        task = await dash.client.cancel(task_id)
    except DurableError as exc:
        return _back(task_id, err=str(exc))
    done = "cancelled" if task.state.is_terminal else "cancel requested"
    return _back(task_id, msg=f"task {task_id}: {done}")


async def notify(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/notify with `event` and `data` (JSON text)."""
    task_id = int(request.path_params["task_id"])
    fields = await _form(dash, request)
    event = fields.get("event", "").strip()
    if not event:
        return _back(task_id, err="a notification needs an event name")
    try:
        data = json.loads(fields.get("data") or "null")
    except ValueError as exc:
        return _back(task_id, err=f"the data is not JSON: {exc}")
    try:
        note = await dash.client.notify(task_id, event, data)
    except DurableError as exc:
        return _back(task_id, err=str(exc))
    return _back(task_id, msg=f"sent {event!r} to task {task_id} (notification {note.seq})")


async def retry(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/retry: a failed task re-run as a new task, whose page is shown."""
    task_id = int(request.path_params["task_id"])
    await _form(dash, request)
    try:
        task = await dash.client.retry(task_id)
    except DurableError as exc:
        return _back(task_id, err=f"retry: {exc}")
    # The new task's page: the flash names both tasks, and its meta links back.
    return _back(task.id, msg=f"task {task.id}: retrying task {task_id}")


async def pause(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/pause."""
    return await _park(dash, request, resume=False)


async def resume(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/resume."""
    return await _park(dash, request, resume=True)


async def _park(dash: Dashboard, request: Request, *, resume: bool) -> Response:
    """Pause the task, or resume it: the same form, call and answer, one word apart."""
    task_id = int(request.path_params["task_id"])
    await _form(dash, request)
    verb = "resume" if resume else "pause"
    try:
        call = dash.client.resume if resume else dash.client.pause
        task = await call(task_id)
    except DurableError as exc:
        return _back(task_id, err=f"{verb}: {exc}")
    return _back(task_id, msg=f"task {task_id}: {verb}d ({task.state.value})")


async def replay(dash: Dashboard, request: Request) -> Response:
    """POST /tasks/N/replay: replay the history against its own code or a stored one,
    and show the first divergence as `durable replay` does."""
    from durable.cli.replay import _describe

    task_id = int(request.path_params["task_id"])
    fields, uploaded = await _replay_form_fields(dash, request)
    name = fields.get("workflow", "").strip()
    client = dash.client
    try:
        wasm = uploaded
        if wasm is None and name:
            wasm = await client.store.get_workflow(await client.store.find_workflow(name))
        async with dash.replaying:  # one at a time: the replayer is not shared by threads
            if dash.replayer is None:
                dash.replayer = Replayer()
            report = await client.replay(task_id, wasm=wasm, replayer=dash.replayer)
    except DurableError as exc:
        return _back(task_id, err=f"replay check: {exc}")
    against = f"the workflow {name!r}" if name else "its own code"
    if uploaded is not None:
        against = f"the uploaded workflow ({len(uploaded)} bytes)"
    verdict = "clean" if report.clean else "diverges"
    body = (
        f'<p>Task <a href="/tasks/{task_id}">{task_id}</a> replayed against {e(against)}: '
        f'<b id="verdict">{verdict}</b></p><pre id="report">{e(_describe(report))}</pre>'
    )
    return HTMLResponse(page(f"Replay check of task {task_id}", body, here="/tasks"))


# -- workers and overview -------------------------------------------------------------


async def workers_page(dash: Dashboard, request: Request) -> Response:
    """GET /workers: registered workers, their tasks and leases."""
    now = datetime.now(UTC)
    workers = await dash.client.store.list_workers()
    beats = await dash.reader.heartbeats()
    leases = await dash.reader.leases()
    held = defaultdict(list)
    for lease in leases:
        held[lease.owner].append(lease)

    def left(at: datetime | None) -> str:
        if at is None:
            return ""
        remaining = (at - now).total_seconds()
        text = f"in {seconds(remaining)}" if remaining >= 0 else f"{seconds(-remaining)} ago"
        cls = ' class="lapsing"' if at - now < LAPSING else ""
        return f"<span{cls}>{e(text)}</span>"

    rows = []
    for w in sorted(workers, key=lambda w: w.started_at):
        mine = held.pop(w.id, [])
        tasks = " ".join(f'<a href="/tasks/{x.task_id}">{x.task_id}</a>' for x in mine)
        latest = max((x.expires_at for x in mine if x.expires_at), default=None)
        lapsing = sum(1 for x in mine if x.expires_at and x.expires_at - now < LAPSING)
        rows.append(
            [
                td(f"<code>{e(w.id)}</code>"),
                td(e(w.hostname)),
                td(str(w.pid), num=True),
                td(e(when(w.started_at))),
                td(_beat(beats.get(w.id), now)),
                td(str(len(mine)), num=True),
                td(tasks or '<span class="muted">idle</span>'),
                td(left(latest) if latest else '<span class="muted">no lease</span>'),
                td(f'<span class="lapsing">{lapsing}</span>' if lapsing else "0", num=True),
            ]
        )
    headers = [
        "worker",
        "host",
        "#pid",
        "started (UTC)",
        "last heartbeat",
        "#tasks",
        "running",
        "leases renewed until",
        "#about to lapse",
    ]
    body = table(headers, rows, body_attrs=" id=workers")
    if not workers:
        body += '<p class="muted">No worker is registered.</p>'
    orphans = [x for xs in held.values() for x in xs]
    if orphans:
        rows = [
            [
                td(f'<a href="/tasks/{x.task_id}">{x.task_id}</a>', num=True),
                td(e(x.name)),
                td(f"<code>{e(x.owner)}</code>"),
                td(left(x.expires_at)),
            ]
            for x in orphans
        ]
        body += "<h2>Leases of workers no longer registered</h2>" + table(
            ["#task", "name", "owner", "lease ends"], rows
        )
    note = (
        f'<p class="muted">A running worker beats every {HEARTBEAT_SECONDS:g} s (marked when '
        "three are missed), and renews its leases about every second; a lease that is "
        f"not renewed within its term passes the task on. Leases ending within "
        f"{LAPSING.total_seconds():g} s are marked.</p>"
    )
    return HTMLResponse(page("Workers", body + note, here="/workers"))


def _beat(at: datetime | None, now: datetime) -> str:
    """How long ago a worker last said it is alive; marked when it is overdue."""
    if at is None:
        return '<span class="muted">never</span>'
    ago = max(0.0, (now - at).total_seconds())
    overdue = ' class="lapsing"' if ago > 3 * HEARTBEAT_SECONDS else ""
    return f"<span{overdue}>{e(seconds(ago))} ago</span>"


async def overview(dash: Dashboard, request: Request) -> Response:
    """GET /: counts by state, and what ended in the last hour, minute by minute."""
    counts = await dash.counts()
    total = sum(counts.values())
    cards = "".join(
        f'<a class="card" href="/tasks?state={s.value}" id="count-{s.value}">'
        f"<b>{counts.get(s.value, 0)}</b>{badge(s.value)}</a>"
        for s in TaskState
    )
    cards = f'<div class="card"><b id="count-total">{total}</b>tasks</div>' + cards
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    buckets = await dash.ended_per_minute(start, now)
    minutes = [start + timedelta(minutes=i) for i in range(60)]
    index = {m: i for i, m in enumerate(minutes)}
    per_state: dict[str, list[int]] = {s: [0] * 60 for s in ("complete", "failed", "cancelled")}
    for b in buckets:
        i = index.get(b.start)
        if i is not None and b.state in per_state:
            per_state[b.state][i] += b.count
    labels = [m.strftime("%H:%M") for m in minutes]
    ended = bars(
        [
            ("complete", per_state["complete"], "#2a9d5c"),
            ("failed", per_state["failed"], "#d1453b"),
            ("cancelled", per_state["cancelled"], "#8a939e"),
        ],
        labels,
        title="Tasks ended per minute",
    )
    failures = bars(
        [("failed", per_state["failed"], "#d1453b")], labels, title="Failures per minute"
    )
    done = sum(per_state["complete"])
    failed = sum(per_state["failed"])
    body = (
        f'<div class="cards">{cards}</div>'
        f"<h2>Throughput: tasks ended per minute, last hour (UTC)</h2>"
        f'<p class="muted" id="hour">{done} completed, {failed} failed in the last hour</p>'
        f"{ended}<h2>Failures per minute</h2>{failures}"
    )
    return HTMLResponse(page("Overview", body, here="/"))
