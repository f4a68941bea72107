"""The host-side model of the script workflow (`workflows/script.py`) and its scripts.

A script is a list of operations, each a JSON object `{"op": NAME, ...arguments}`. For
every operation, an `OpSpec` says how Hypothesis generates its arguments, which events
(label and digest) performing it records, what it prints, and how its observation in
the workflow's result is checked:

* a live value (`from_events` set: a clock reading) differs from task to task; it
  must equal what the task's own recorded events say;
* any other value is a function of the script and the task's seed: two tasks with
  the same seed and script must observe the same value (and, with
  `stable_payloads`, record the same payloads).

`patched` records a marker (`patch p<index>`) and observes True; `deprecate_patch`
records nothing, also when the marker of the next op follows it.

Operations with effects: `status` (a status value, which commits with its event),
`http` (a GET to the session's counting server; `bind` fills
in its URL at launch), `notify_wait` (the task notifies itself, then waits), `wait` (for
a notification the harness sends at launch), `spawn` (a child task running this
binary's `child` entry, joined), and `sql_insert` (a row in the store's own database,
through `durable.transaction`; not on the memory store: `NO_SQL` is the default set).
Digests derived from a task's id or its child's (VARIES in the model) are computed
from the task's own events by `OpSpec.digests` and masked when two tasks are compared.

To add an operation: implement it in
`workflows/script.py` (`OPS`) and add an `OpSpec` to `SPECS` here; every property test
then generates it, crashes around it and checks it. Each test first checks an
uninterrupted run against this model, so a model that disagrees with the workflow
fails at the "reference run", not somewhere obscure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from durable.core.model import Event

#: Where the workflow lives; it is built once per test session.
WORKFLOW_FILE = "workflows/script.py"

#: Mirrors of the workflow's constants (checked through the recorded sleep digests).
SLEEP_NS = 10_000_000  # SLEEP_SECONDS = 0.01: blocks in place
LONG_SLEEP_NS = 100_000_000  # LONG_SLEEP_SECONDS = 0.1: suspends the task
#: The `HostConfig.suspend_after` the tests use: between the two sleeps.
SUSPEND_AFTER = 0.05

CLOCK = "wasi:clocks/wall-clock.now"
SLEEP = "durable:timer.sleep"
NOTIFY_SEND = "durable:notify.send"
NOTIFY_WAIT = "durable:notify.wait"
SPAWN = "durable:children.spawn"
JOIN = "durable:children.join"
STATUS = "durable:status.set"

#: In a predicted (label, digest): a digest that depends on the task (its id, or its
#: child's id). `OpSpec.digests` computes the real one from the task's own history;
#: comparisons between two tasks mask it.
VARIES = "<varies by task>"

#: The session's counting HTTP server (`http_server.py`), set by its fixture before any
#: script is launched: `bind` points each `http` op at it.
HTTP_BASE: list[str] = []

Op = dict[str, Any]
Script = list[Op]
Label = tuple[str, str | None]  # an event's (label, digest)


def step_digest(*args: Any, **kwargs: Any) -> str:
    """The digest the guest SDK gives a step called with these arguments."""
    text = json.dumps([list(args), kwargs], sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def coordination_digest(*parts: object) -> str:
    """The digest the host gives notifications and child tasks (`host/coordination.py`)."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def status_digest(key: str, value: Any) -> str:
    """The digest the host gives a status value (`host/status.py`): of the key and the
    value's JSON text, as the SDK sends it."""
    text = json.dumps(value, allow_nan=False)
    return hashlib.sha256(json.dumps([key, text]).encode()).hexdigest()[:16]


def expected_status(prediction: Prediction, events: int) -> dict[str, tuple[str, int]]:
    """The status values a task must have when its first `events` events are durable:
    by key, the value's JSON text and the index of the event that set it. A value
    commits with its event, so exactly the `status` ops among those events count."""
    out: dict[str, tuple[str, int]] = {}
    for p in prediction.performed:
        if p.spec.name == "status" and p.first_event < events:
            out[p.op["key"]] = (json.dumps(p.op["value"], allow_nan=False), p.first_event)
    return out


def http_digest(method: str, url: str) -> str:
    """The digest of a request without headers or body (`host/http.py`)."""
    return hashlib.sha256(json.dumps([method, url, []]).encode() + b"\0-").hexdigest()[:16]


def http_path(i: int) -> str:
    """The counting server's path the `http` op at script index `i` requests."""
    return f"/hit/{i}"


def bind(script: Sequence[Op]) -> Script:
    """`script` with each `http` op given its URL on the session's counting server."""
    if any(op["op"] == "http" for op in script) and not HTTP_BASE:
        raise RuntimeError("an http op, but no counting server: use the `http_server` fixture")
    return [
        {**op, "url": HTTP_BASE[0] + http_path(i)} if op["op"] == "http" else op
        for i, op in enumerate(script)
    ]


def _notify_send_digest(i: int, op: Op, task_id: int, own: Sequence[Event]) -> list[str | None]:
    data = json.dumps({"op": i, "data": op["data"]})
    return [coordination_digest(task_id, f"self-{i}", data), own[1].digest]


def _join_digest(i: int, op: Op, task_id: int, own: Sequence[Event]) -> list[str | None]:
    child_id = json.loads(own[0].payload)["id"]
    return [own[0].digest, coordination_digest(child_id, None)]


def _clock_reading(events: Sequence[Event]) -> Any:
    """`time.time()` as the guest computes it from the recorded nanoseconds."""
    return int(json.loads(events[0].payload)) / 1e9


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSpec:
    """How one operation is generated, what it records and how it is checked."""

    name: str
    # Hypothesis strategy for the operation's arguments (merged into the op object).
    args: st.SearchStrategy[dict[str, Any]] = field(default_factory=lambda: st.just({}))
    # The (label, digest) of each event performing the op (at this index) records.
    events: Callable[[int, Op], list[Label]] = lambda i, op: []
    # For live values: the observation, derived from the op's own recorded events.
    from_events: Callable[[Sequence[Event]], Any] | None = None
    # The lines it prints on stdout, given its index in the script.
    prints: Callable[[int, Op], list[str]] = lambda i, op: []
    # Whether the events' payloads are the same for any two tasks with the same seed.
    stable_payloads: bool = True
    # Whether performing it ends the workflow (it raises).
    raises: bool = False
    # Whether performing it suspends the task (a replay follows).
    suspends: bool = False
    # For digests marked VARIES: the real ones, from (index, op, task id, own events).
    digests: Callable[[int, Op, int, Sequence[Event]], list[str | None]] | None = None
    # Whether it needs SQL on the store's database (not the memory store).
    needs_sql: bool = False


_ARG = st.integers(min_value=0, max_value=20)

SPECS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec(
            name="now",
            events=lambda i, op: [(CLOCK, None)],
            from_events=_clock_reading,
            stable_payloads=False,
        ),
        OpSpec(name="random"),
        OpSpec(name="uuid"),
        OpSpec(
            name="print",
            args=st.fixed_dictionaries({"text": st.sampled_from(["a", "bb", "hello world"])}),
            prints=lambda i, op: [f"line {i}: {op['text']}"],
        ),
        OpSpec(
            name="step",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [("step script_step", step_digest(op["arg"]))],
        ),
        OpSpec(
            name="step_error",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [("step script_step_error", step_digest(op["arg"]))],
        ),
        OpSpec(
            name="step_random",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [("step script_step_random", step_digest(op["arg"]))],
        ),
        OpSpec(
            name="step_print",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [("step script_step_print", step_digest(op["arg"]))],
            prints=lambda i, op: [f"in step {op['arg']}"],
        ),
        OpSpec(
            name="sleep",
            events=lambda i, op: [(SLEEP, str(SLEEP_NS))],
            stable_payloads=False,  # the payload is the deadline: clock-derived
        ),
        OpSpec(
            name="long_sleep",
            events=lambda i, op: [(SLEEP, str(LONG_SLEEP_NS))],
            stable_payloads=False,
            suspends=True,
        ),
        OpSpec(
            name="http",
            events=lambda i, op: [(f"http GET {op['url']}", http_digest("GET", op["url"]))],
            stable_payloads=False,  # the response's Date header
        ),
        OpSpec(
            name="notify_wait",
            args=st.fixed_dictionaries({"data": _ARG}),
            events=lambda i, op: [
                (NOTIFY_SEND, VARIES),
                (NOTIFY_WAIT, coordination_digest(f"self-{i}", None)),
            ],
            digests=_notify_send_digest,
            stable_payloads=False,  # the notification's send time
        ),
        OpSpec(
            name="wait",  # the harness sends the notification when it launches the task
            events=lambda i, op: [(NOTIFY_WAIT, coordination_digest(f"ext-{i}", None))],
            stable_payloads=False,
        ),
        OpSpec(
            name="spawn",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [
                (SPAWN, coordination_digest(None, "child", json.dumps(op["arg"]), "")),
                (JOIN, VARIES),
            ],
            digests=_join_digest,
            stable_payloads=False,  # the child's id
            suspends=True,  # usually: the join waits for the child
        ),
        OpSpec(
            name="sql_insert",
            args=st.fixed_dictionaries({"arg": _ARG}),
            events=lambda i, op: [(f"sql insert {i}", None)],
            stable_payloads=False,  # statement digests cover the task id parameter
            needs_sql=True,
        ),
        OpSpec(
            name="status",
            args=st.fixed_dictionaries({"key": st.sampled_from(["a", "b"]), "value": _ARG}),
            events=lambda i, op: [(STATUS, status_digest(op["key"], op["value"]))],
        ),
        OpSpec(name="patched", events=lambda i, op: [(f"patch p{i}", None)]),
        OpSpec(name="deprecate_patch"),  # records nothing; consumes no marker of others
        OpSpec(name="raise", raises=True),
    ]
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Performed:
    """One operation the workflow performs, and where its events fall in the history."""

    index: int  # position in the script
    op: Op
    spec: OpSpec
    first_event: int  # index of its first event
    labels: list[Label]  # its events' (label, digest)

    @property
    def event_range(self) -> range:
        """The history indexes of its events."""
        return range(self.first_event, self.first_event + len(self.labels))


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """What running a script does, according to the model."""

    performed: list[Performed]  # the ops that run (up to and including a `raise`)
    labels: list[Label]  # every event's (label, digest), in history order
    raises_at: int | None  # the script index of the `raise` that ends it, if any

    @property
    def fails(self) -> bool:
        """Whether the task ends `failed`."""
        return self.raises_at is not None

    def print_lines(self) -> list[str]:
        """The lines the script prints, in order."""
        return [line for p in self.performed for line in p.spec.prints(p.index, p.op)]


def predict(script: Sequence[Op]) -> Prediction:
    """Run the model: which ops are performed and which events they record."""
    script = bind(script)
    performed: list[Performed] = []
    labels: list[Label] = []
    raises_at: int | None = None
    for i, op in enumerate(script):
        spec = SPECS[op["op"]]
        own = spec.events(i, op)
        performed.append(Performed(index=i, op=op, spec=spec, first_event=len(labels), labels=own))
        labels.extend(own)
        if spec.raises:
            raises_at = i
            break
    return Prediction(performed=performed, labels=labels, raises_at=raises_at)


#: Every operation, and those the memory store can run (no SQL).
ALL_OPS: list[str] = sorted(SPECS)
NO_SQL: list[str] = sorted(name for name, spec in SPECS.items() if not spec.needs_sql)


def external_notifications(script: Sequence[Op]) -> list[tuple[str, str]]:
    """The (event, JSON data) the harness sends a task at launch: one per `wait` op."""
    return [
        (f"ext-{i}", json.dumps({"ext": i})) for i, op in enumerate(script) if op["op"] == "wait"
    ]


def resolve_labels(prediction: Prediction, task_id: int, history: Sequence[Event]) -> list[Label]:
    """The predicted labels with each VARIES digest computed from the task's own events."""
    labels = list(prediction.labels)
    for p in prediction.performed:
        if p.spec.digests is None or p.event_range.stop > len(history):
            continue
        own = [history[i] for i in p.event_range]
        for i, digest in zip(
            p.event_range, p.spec.digests(p.index, p.op, task_id, own), strict=True
        ):
            labels[i] = (labels[i][0], digest)
    return labels


def masked(labels: Sequence[Label], prediction: Prediction) -> list[Label]:
    """`labels` with the task-dependent digests (VARIES in the model) masked."""
    return [
        (label, VARIES if i < len(prediction.labels) and prediction.labels[i][1] == VARIES else d)
        for i, (label, d) in enumerate(labels)
    ]


@st.composite
def ops(draw: st.DrawFn, names: Sequence[str] | None = None) -> Op:
    """One operation, drawn from `names` (default: every operation in `SPECS`)."""
    name = draw(st.sampled_from(sorted(names if names is not None else SPECS)))
    return {"op": name, **draw(SPECS[name].args)}


@st.composite
def scripts(
    draw: st.DrawFn,
    *,
    min_ops: int = 1,
    max_ops: int = 8,
    max_long_sleeps: int = 2,
    names: Sequence[str] | None = None,
) -> Script:
    """A script of `min_ops` to `max_ops` operations.

    At most `max_long_sleeps` long sleeps (each costs a suspension and 0.1 s of wall
    time per run, and a crash test makes dozens of runs per script), and a `raise` only
    as the last operation (anything after it would never run).
    """
    allowed = sorted(names if names is not None else NO_SQL)
    # The length first, uniformly: Hypothesis' lists favour short ones, and long
    # scripts are where operations interact.
    size = draw(st.integers(min_value=max(0, min_ops - 1), max_value=max_ops - 1))
    drawn = draw(st.lists(ops([n for n in allowed if n != "raise"]), min_size=size, max_size=size))
    body: Script = []
    for op in drawn:
        if op["op"] == "long_sleep" and max_long_sleeps <= sum(
            o["op"] == "long_sleep" for o in body
        ):
            op = {"op": "sleep"}  # over the limit: a short sleep instead
        body.append(op)
    if "raise" in allowed and draw(st.integers(min_value=0, max_value=5)) == 0:
        body.append({"op": "raise"})
    elif len(body) < min_ops:
        # Padded with a reading of the clock, or, where the guest has none (the JS
        # script), with any cheap operation it has.
        cheap = [n for n in allowed if n not in ("raise", "long_sleep")]
        body.append({"op": "now"} if "now" in allowed else draw(ops(cheap)))
    return body
