// The `durable` API a JavaScript workflow uses inside its component.
//
// Same shape as the Python SDK: `workflow` wraps the entry function, `step` records a
// computation, `sleep`, `wait`, `notify`, `spawn`, `http`, `transaction`,
// `setStatus`, `patched`, `deprecatePatch` and `continueAsNew` are the durable calls.
// Every call goes through the durable:core imports; on replay the host answers them
// from the task's history. The WIT protocol is in docs/guests.md.
//
// `durable build` bundles this module with the workflow (componentize-js takes one
// module), so it may import only WIT interfaces.

import { info as taskInfo, cancelled as taskCancelled } from "durable:core/task@0.1.0";
import { enter as stepEnter, exit as stepExit } from "durable:core/step@0.1.0";
import { sleep as timerSleep, sleepUntil as timerSleepUntil } from "durable:core/timer@0.1.0";
import { fetch as httpFetch } from "durable:core/http@0.1.0";
import { wait as notifyWait, send as notifySend } from "durable:core/notify@0.1.0";
import { spawn as childSpawn, join as childJoin } from "durable:core/children@0.1.0";
import { cancel as childCancel } from "durable:core/child-control@0.1.0";
import { spawnQueued as childSpawnQueued } from "durable:core/spawn-options@0.1.0";
import { set as statusSet } from "durable:core/status@0.1.0";
import { patched as patchPatched, deprecate as patchDeprecate } from "durable:core/patch@0.1.0";
import { continueAsNew as continuationContinueAsNew } from "durable:core/continuation@0.1.0";
import {
  begin as sqlBegin,
  execute as sqlExecute,
  commit as sqlCommit,
  rollback as sqlRollback,
} from "durable:core/sql@0.1.0";

let inStep = false;
let openTransaction = null;

// -- errors ---------------------------------------------------------------------------

/** The task is being cancelled: run cleanup in `finally`, the task ends cancelled. */
export class Cancelled extends Error {
  constructor(message) {
    super(message);
    this.name = "Cancelled";
  }
}

/** A step's body failed (on the first run, or as recorded, on replay). */
export class StepFailed extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.name = "StepFailed";
    this.kind = kind;
  }
}

/** A child task failed or was cancelled. */
export class ChildFailed extends Error {
  constructor(id, state, kind, message) {
    super(`child task ${id} ${state}: ${kind}: ${message}`);
    this.name = "ChildFailed";
    this.childId = id;
    this.state = state;
    this.kind = kind;
  }
}

/** An HTTP request got no response (timeout, connection, DNS, URL, size). */
export class HttpError extends Error {
  constructor(kind, message) {
    super(message ? `${kind}: ${message}` : kind);
    this.name = "HttpError";
    this.kind = kind;
  }
}

/** A SQL statement failed; `kind` is the WIT error-kind ("constraint", ...). */
export class SqlError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "SqlError";
    this.kind = kind;
  }
}

/** Sending a notification or spawning a child failed. */
export class DurableError extends Error {
  constructor(message) {
    super(message);
    this.name = "DurableError";
  }
}

// componentize-js throws an imported function's `err` case as an Error whose
// `payload` is the WIT value.
function payloadOf(e) {
  return e !== null && typeof e === "object" && "payload" in e ? e.payload : e;
}

function checkCancelled() {
  if (!inStep && taskCancelled()) {
    throw new Cancelled("the task is being cancelled");
  }
}

function durationNs(seconds, what) {
  if (typeof seconds !== "number" || !(seconds >= 0) || !Number.isFinite(seconds)) {
    throw new RangeError(`${what} must be a non-negative number of seconds`);
  }
  return BigInt(Math.round(seconds * 1e9));
}

// -- the entry point ------------------------------------------------------------------

function errorRecord(e) {
  if (e instanceof Error) {
    return { kind: e.name || "Error", message: String(e.message), traceback: String(e.stack || "") };
  }
  let message;
  try {
    message = typeof e === "string" ? e : JSON.stringify(e);
  } catch {
    message = String(e);
  }
  return { kind: "Error", message: String(message), traceback: "" };
}

/**
 * Wrap the workflow's entry function: `export const run = workflow((input) => ...)`.
 * With an object, each key is an entry name (`durable run --entry NAME`); "default"
 * or the first one is the default. The function takes the task's input (decoded
 * JSON) and returns its result (any JSON value); an exception fails the task with
 * its name, message and stack.
 */
export function workflow(entries) {
  const table = typeof entries === "function" ? { default: entries } : entries;
  const names = Object.keys(table);
  return function run(entry, input) {
    const fn = entry === "" ? table.default ?? table[names[0]] : table[entry];
    try {
      if (typeof fn !== "function") {
        throw new TypeError(`no entry ${JSON.stringify(entry)} (entries: ${names.join(", ")})`);
      }
      const value = fn(JSON.parse(input));
      // An async function may await timers (`setTimeout`): componentize-js runs the
      // event loop until the promise settles. Durable calls still block in place.
      if (value instanceof Promise) return value.then(resultText, failWith);
      return resultText(value);
    } catch (e) {
      failWith(e);
    }
  };
}

function resultText(value) {
  return JSON.stringify(value === undefined ? null : value);
}

function failWith(e) {
  // As the Python SDK prints its traceback: the log says why the task failed.
  const err = errorRecord(e);
  console.error(`${err.kind}: ${err.message}` + (err.traceback ? `\n${err.traceback}` : ""));
  // componentize-js turns a thrown workflow-error record into `err`; anything
  // else would trap.
  throw err;
}

// -- timers ---------------------------------------------------------------------------

// The host's monotonic clock is virtual (docs/guests.md): every timer's pollable is
// ready at once, and the event loop would run ready timers in the order they were set,
// not by deadline. So the SDK keeps the timers itself: each `setTimeout` queues one
// native zero-delay timer, and each of those runs the pending timer with the earliest
// deadline (ties: the first set), after moving the clock to that deadline.
const nativeSetTimeout = globalThis.setTimeout;
const nativeClearTimeout = globalThis.clearTimeout;
const timers = new Map();
let timerIds = 0;
let timerOrder = 0;

function fireNextTimer() {
  let next = null;
  for (const t of timers.values()) {
    if (next === null || t.deadline < next.deadline
        || (t.deadline === next.deadline && t.order < next.order)) {
      next = t;
    }
  }
  if (next === null) return; // cleared
  const wait = next.deadline - performance.now();
  // A native timer for the rest of the wait moves the virtual clock to the deadline
  // (its delay is whole milliseconds: round up).
  if (wait > 0) nativeClearTimeout(nativeSetTimeout(() => {}, Math.ceil(wait)));
  if (next.every === null) {
    timers.delete(next.id);
  } else {
    next.deadline += next.every;
    next.order = timerOrder++;
    nativeSetTimeout(fireNextTimer, 0);
  }
  next.fn(...next.args);
}

function addTimer(fn, delay, args, repeat) {
  if (typeof fn !== "function") throw new TypeError("a timer's callback must be a function");
  const ms = Math.max(0, Number(delay) || 0);
  const id = ++timerIds;
  const every = repeat ? Math.max(ms, 1) : null;
  timers.set(id, { id, fn, args, every, deadline: performance.now() + ms, order: timerOrder++ });
  nativeSetTimeout(fireNextTimer, 0);
  return id;
}

globalThis.setTimeout = (fn, delay, ...args) => addTimer(fn, delay, args, false);
globalThis.setInterval = (fn, delay, ...args) => addTimer(fn, delay, args, true);
globalThis.clearTimeout = (id) => void timers.delete(id);
globalThis.clearInterval = globalThis.clearTimeout;

// -- steps ----------------------------------------------------------------------------

// A step's digest is the Python SDK's: the first 16 hex digits of the SHA-256 of
// `json.dumps([args, kwargs], sort_keys=True)` (kwargs: {}), so one history checks
// the same in either language. No JSON value (a function, NaN): no digest.
function digestOf(args) {
  const text = pyJson([args, {}]);
  return text === undefined ? undefined : sha256Hex(new TextEncoder().encode(text)).slice(0, 16);
}

// JSON as Python's json.dumps writes it: ", " and ": " separators, sorted keys,
// non-ASCII escaped. Undefined for what Python would refuse.
function pyJson(v) {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return undefined;
    return Number.isInteger(v) ? String(v) : pyFloat(v);
  }
  if (typeof v === "string") {
    return '"' + v.replace(/[\\"\u0000-\u001f\u007f-\uffff]/g, (c) => {
      const short = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" }[c];
      return short ?? "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
    }) + '"';
  }
  if (Array.isArray(v)) {
    const items = v.map(pyJson);
    return items.includes(undefined) ? undefined : "[" + items.join(", ") + "]";
  }
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const items = Object.keys(v).sort().map((k) => {
      const item = pyJson(v[k]);
      return item === undefined ? undefined : pyJson(k) + ": " + item;
    });
    return items.includes(undefined) ? undefined : "{" + items.join(", ") + "}";
  }
  return undefined;
}

function pyFloat(v) {
  // Python's repr: shortest round-trip digits, like JS, but "1e+21" is "1e+21" in
  // both and "1e-7" is "1e-07" in Python.
  return String(v).replace(/e([+-])(\d)$/, (_, sign, digit) => `e${sign}0${digit}`);
}

// SHA-256 (FIPS 180-4), for step digests: the guest has no crypto module to trust.
const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function sha256Hex(bytes) {
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bytes.length / 0x20000000));
  view.setUint32(padded.length - 4, (bytes.length << 3) >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    const next = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + next[i]) >>> 0;
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, "0")).join("");
}

// Error types every run can rebuild: a step that threw one throws the same type again
// on replay. Any other error becomes `StepFailed`, on the first run as on replay.
const BUILTIN_ERRORS = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

function rebuilt(kind, message) {
  const type = Object.hasOwn(BUILTIN_ERRORS, kind) ? BUILTIN_ERRORS[kind] : null;
  return type === null ? new StepFailed(kind, message) : new type(message);
}

function outcome(payload) {
  if ("ok" in payload) return payload.ok;
  throw rebuilt(payload.error.kind, payload.error.message);
}

/**
 * Run `fn(...args)` as the recorded step `label`: once; on replay its recorded result
 * (or failure) comes back and `fn` does not run. A step inside a step runs as plain
 * code. The result must be JSON.
 */
export function step(label, fn, ...args) {
  if (inStep) return fn(...args);
  checkCancelled();
  const name = "step " + label;
  const recorded = stepEnter(name, digestOf(args));
  if (recorded !== undefined && recorded !== null) return outcome(JSON.parse(recorded));
  inStep = true;
  let text;
  try {
    const value = fn(...args);
    text = JSON.stringify({ ok: value === undefined ? null : value });
  } catch (e) {
    const err = errorRecord(e);
    inStep = false;
    stepExit(JSON.stringify({ error: { kind: err.kind, message: err.message, args: null } }));
    const again = rebuilt(err.kind, err.message);
    throw e instanceof Error && again.constructor === e.constructor ? e : again;
  } finally {
    inStep = false;
  }
  stepExit(text);
  return JSON.parse(text).ok;
}

// -- time -----------------------------------------------------------------------------

/** Sleep `seconds`, durably: the deadline is recorded; a long sleep suspends the task. */
export function sleep(seconds) {
  checkCancelled();
  timerSleep(durationNs(seconds, "sleep"));
  checkCancelled();
}

/** Sleep until `when` (a Date), durably. */
export function sleepUntil(when) {
  checkCancelled();
  const ms = when.getTime();
  timerSleepUntil({ seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1e6 });
  checkCancelled();
}

/** Facts about the running task: id, name, entry, input, createdAt, attempt. */
export function info() {
  const t = taskInfo();
  return {
    id: Number(t.id),
    name: t.name,
    entry: t.entry,
    input: JSON.parse(t.input),
    createdAt: dateOf(t.createdAt),
    attempt: t.attempt,
  };
}

function dateOf(dt) {
  return new Date(Number(dt.seconds) * 1000 + Math.floor(dt.nanoseconds / 1e6));
}

// -- notifications and children ------------------------------------------------------

/**
 * Wait for the next notification (only `event`, when given): `{event, data,
 * createdAt}`, or null when `timeout` seconds pass first.
 */
export function wait(event = undefined, { timeout = undefined } = {}) {
  checkCancelled();
  const ns = timeout === undefined ? undefined : durationNs(timeout, "timeout");
  const got = notifyWait(event ?? undefined, ns);
  checkCancelled();
  if (got === undefined || got === null) return null;
  return { event: got.event, data: JSON.parse(got.data), createdAt: dateOf(got.createdAt) };
}

/** Send `data` (JSON) to task `taskId` as `event`; exactly once. */
export function notify(taskId, event, data = null) {
  checkCancelled();
  try {
    notifySend(BigInt(taskId), event, JSON.stringify(data));
  } catch (e) {
    const why = payloadOf(e);
    const text = {
      "task-not-found": `task ${taskId} does not exist`,
      "task-ended": `task ${taskId} has ended`,
    }[why?.tag];
    throw new DurableError(text ?? String(why?.val ?? why));
  }
}

/**
 * Start a child task: `spawn({entry, input, workflow, name})`. Returns a handle with
 * `id`, `result({timeout, cancelOnTimeout})` and `cancel()`. Its id is recorded: it is never spawned twice.
 * `queue`, `queueKey` and `priority` place the child on a named queue, as
 * `durable launch --queue` does: it starts within the queue's limits.
 */
export function spawn({
  entry = "",
  input = null,
  workflow = undefined,
  name = "",
  queue = undefined,
  queueKey = undefined,
  priority = undefined,
} = {}) {
  checkCancelled();
  let id;
  try {
    const request = { workflow, entry, input: JSON.stringify(input), name };
    if (queue === undefined && queueKey === undefined && priority === undefined) {
      id = childSpawn(request);
    } else {
      id = childSpawnQueued(request, { queue, queueKey, priority });
    }
  } catch (e) {
    const why = payloadOf(e);
    if (why?.tag === "workflow-not-found") {
      throw new DurableError(`no workflow is registered as ${JSON.stringify(why.val)}`);
    }
    throw new DurableError(String(why?.val ?? why));
  }
  return new ChildHandle(Number(id));
}

class ChildHandle {
  constructor(id) {
    this.id = id;
  }

  /**
   * Wait for the child to end; its result, or `ChildFailed`. When `timeout` seconds
   * pass first it throws, and the child goes on running unless `cancelOnTimeout`.
   */
  result({ timeout = undefined, cancelOnTimeout = false } = {}) {
    checkCancelled();
    const ns = timeout === undefined ? undefined : durationNs(timeout, "timeout");
    const out = childJoin(BigInt(this.id), ns);
    checkCancelled();
    if (out === undefined || out === null) {
      if (cancelOnTimeout) {
        this.cancel();
        throw new DurableError(
          `child task ${this.id} did not end within ${timeout} s; it was cancelled`,
        );
      }
      throw new DurableError(`child task ${this.id} did not end within ${timeout} s`);
    }
    if (out.state === "complete") return JSON.parse(out.value ?? "null");
    const err = JSON.parse(out.error ?? "{}");
    throw new ChildFailed(this.id, out.state, err.kind ?? "Error", err.message ?? "");
  }

  /**
   * Cancel the child and its unfinished descendants, exactly once (recorded). Returns
   * whether it was still running; one that has ended is left as it was.
   */
  cancel() {
    try {
      return childCancel(BigInt(this.id));
    } catch (e) {
      throw new DurableError(String(payloadOf(e)));
    }
  }
}

// -- status values --------------------------------------------------------------------

/**
 * Publish `value` (any JSON) as this task's status under `key`: readable from outside
 * while the task runs (`durable status`, `durable show`, `Client.status`). Recorded:
 * a replay sets nothing again. Throws `DurableError` with the host's reason when a
 * bound is passed (an empty or long key, a value over 64 KiB, more than 1000 keys) or
 * inside a step.
 */
export function setStatus(key, value) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new DurableError(`status value for ${JSON.stringify(key)} is not JSON: ${value}`);
  }
  try {
    statusSet(String(key), text);
  } catch (e) {
    throw new DurableError(String(payloadOf(e)));
  }
}

// -- versioned changes ----------------------------------------------------------------

/**
 * Whether this task takes the new branch of the change named `id`:
 * `if (patched("charge-v2")) { chargeV2(order) } else { charge(order) }`. True for a
 * task that reaches this call after the change was deployed (a marker is recorded, so
 * its replays take the new branch too); false for a task whose history, recorded by
 * the old code, had already passed this point. Once no such task is left, call
 * `deprecatePatch(id)` instead and drop the old branch. Throws `DurableError` with the
 * host's reason for an id that is empty, over 200 bytes or not printable, and inside
 * a step or a SQL transaction.
 */
export function patched(id) {
  if (typeof id !== "string") {
    throw new TypeError(`patch id must be a string, not ${typeof id}`);
  }
  checkCancelled();
  try {
    return patchPatched(id);
  } catch (e) {
    throw new DurableError(String(payloadOf(e)));
  }
}

/**
 * Mark the change `id` as done: every task now runs the new code. Consumes the
 * change's marker in histories that hold one here; records nothing. Throws like
 * `patched`.
 */
export function deprecatePatch(id) {
  if (typeof id !== "string") {
    throw new TypeError(`patch id must be a string, not ${typeof id}`);
  }
  checkCancelled();
  try {
    patchDeprecate(id);
  } catch (e) {
    throw new DurableError(String(payloadOf(e)));
  }
}

// -- endless loops --------------------------------------------------------------------

/**
 * End this run and start the task again on `input`, with a fresh history:
 * `continueAsNew({ count })`. Like a return, it ends the run (nothing after it runs);
 * the task keeps its id, its next run calls the same entry with `input` (anything
 * JSON can encode), and the old run's history is kept as run n of the task. Throws
 * `DurableError` with the host's reason inside a step or a SQL transaction, or for an
 * input over the payload limit.
 */
export function continueAsNew(input = null) {
  const text = JSON.stringify(input === undefined ? null : input);
  if (text === undefined) {
    throw new TypeError("continueAsNew input is not JSON-serialisable");
  }
  checkCancelled();
  try {
    continuationContinueAsNew(text);
  } catch (e) {
    throw new DurableError(String(payloadOf(e)));
  }
  throw new Error("the host did not end the run");
}

// -- HTTP -----------------------------------------------------------------------------

/**
 * Send an HTTP request, at least once; its outcome is recorded. Options: method,
 * headers (object or [name, value] pairs), body (string or Uint8Array), json,
 * timeout (seconds). Returns `{status, headers, body, text(), json()}`; a 4xx or 5xx is
 * a response. No response: `HttpError`.
 */
function request(url, { method = "GET", headers = {}, body = undefined, json = undefined, timeout = undefined } = {}) {
  checkCancelled();
  const pairs = Array.isArray(headers) ? headers.map(([k, v]) => [k, String(v)]) : Object.entries(headers).map(([k, v]) => [k, String(v)]);
  let bytes;
  if (json !== undefined) {
    bytes = new TextEncoder().encode(JSON.stringify(json));
    if (!pairs.some(([k]) => k.toLowerCase() === "content-type")) pairs.push(["content-type", "application/json"]);
  } else if (typeof body === "string") {
    bytes = new TextEncoder().encode(body);
  } else {
    bytes = body;
  }
  let res;
  try {
    res = httpFetch({
      method: method.toUpperCase(),
      url,
      headers: pairs,
      body: bytes,
      timeoutMs: timeout === undefined ? undefined : Math.max(0, Math.round(timeout * 1000)),
    });
  } catch (e) {
    const why = payloadOf(e);
    throw new HttpError(why?.tag ?? "other", why?.val === undefined ? "" : String(why.val));
  }
  const raw = res.body;
  return {
    status: res.status,
    headers: res.headers,
    body: raw,
    text: () => new TextDecoder().decode(raw),
    json: () => JSON.parse(new TextDecoder().decode(raw)),
  };
}

export const http = {
  request,
  get: (url, options = {}) => request(url, { ...options, method: "GET" }),
  post: (url, options = {}) => request(url, { ...options, method: "POST" }),
  put: (url, options = {}) => request(url, { ...options, method: "PUT" }),
  delete: (url, options = {}) => request(url, { ...options, method: "DELETE" }),
};

// -- SQL ------------------------------------------------------------------------------

function toValue(v) {
  if (v === null || v === undefined) return { tag: "null" };
  if (typeof v === "boolean") return { tag: "boolean", val: v };
  if (typeof v === "bigint") return { tag: "integer", val: v };
  if (typeof v === "number") return Number.isInteger(v) ? { tag: "integer", val: BigInt(v) } : { tag: "real", val: v };
  if (typeof v === "string") return { tag: "text", val: v };
  if (v instanceof Uint8Array) return { tag: "blob", val: v };
  if (v instanceof Date) {
    const ms = v.getTime();
    return { tag: "timestamp", val: { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (((ms % 1000) + 1000) % 1000) * 1e6 } };
  }
  return { tag: "json", val: JSON.stringify(v) };
}

function fromValue(v) {
  switch (v.tag) {
    case "null":
      return null;
    case "integer": {
      const n = Number(v.val);
      return Number.isSafeInteger(n) ? n : v.val;
    }
    case "timestamp":
      return dateOf(v.val);
    case "json":
      return JSON.parse(v.val);
    case "uuid": {
      const hex = ((BigInt(v.val[0]) << 64n) | BigInt(v.val[1])).toString(16).padStart(32, "0");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    default:
      return v.val;
  }
}

class Transaction {
  constructor(label) {
    this.label = label;
  }

  /** Run `statement` (parameters written `?`); `{columns, rows, rowcount}`. */
  execute(statement, params = []) {
    let result;
    try {
      result = sqlExecute(statement, params.map(toValue));
    } catch (e) {
      const why = payloadOf(e);
      throw new SqlError(why?.kind ?? "other", why?.message ?? String(why));
    }
    return {
      columns: result.columns,
      rows: result.rows.map((row) => row.map(fromValue)),
      rowcount: Number(result.rowcount),
    };
  }

  /** The rows of `statement` as objects keyed by column name. */
  query(statement, params = []) {
    const { columns, rows } = this.execute(statement, params);
    return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]])));
  }
}

/**
 * Run `fn(tx)` as one SQL transaction on the worker's database, exactly once: its
 * changes and its record commit together. An exception rolls it back and is rethrown.
 */
export function transaction(label, fn) {
  if (inStep) throw new Error(`transaction ${JSON.stringify(label)} inside a step: open it outside the step`);
  if (openTransaction !== null) throw new Error(`transaction ${JSON.stringify(label)} inside transaction ${JSON.stringify(openTransaction)}: transactions do not nest`);
  checkCancelled();
  sqlBegin(label);
  openTransaction = label;
  let value;
  try {
    value = fn(new Transaction(label));
  } catch (e) {
    openTransaction = null;
    sqlRollback(errorRecord(e).message);
    throw e;
  }
  openTransaction = null;
  try {
    sqlCommit();
  } catch (e) {
    const why = payloadOf(e);
    throw new SqlError(why?.kind ?? "other", why?.message ?? String(why));
  }
  return value;
}
