// The JavaScript SDK, one entry per feature, for tests/integration/test_js.py.
import {
  workflow,
  step,
  sleep,
  wait,
  notify,
  spawn,
  info,
  setStatus,
  Cancelled,
  StepFailed,
  ChildFailed,
  DurableError,
} from "durable";
import * as durable from "durable";

function steps(n) {
  const a = step("double", (x) => x * 2, n);
  let failed = "";
  try {
    step("fail", () => {
      throw new RangeError("no good");
    });
  } catch (e) {
    failed = `${e.name}: ${e.message}`;
  }
  return { a, failed, t: Date.now(), r: Math.random() };
}

function boom() {
  null.field;
}

function sleepy(n) {
  for (let i = 0; i < n; i++) {
    console.log(`tick ${i} ${Date.now()} ${Math.random()}`);
    sleep(0.2);
  }
  return n;
}

function cancellable() {
  try {
    for (;;) sleep(0.1);
  } catch (e) {
    if (!(e instanceof Cancelled)) throw e;
    step("cleanup", () => "cleaned");
    throw e;
  }
}

function inbox() {
  const got = wait("ping", { timeout: 60 });
  return got === null ? null : [got.event, got.data];
}

function parent(n) {
  const child = spawn({ entry: "steps", input: n });
  return { child: child.id, result: child.result(), me: info().id };
}

function queuedParent(n) {
  const child = spawn({ entry: "steps", input: n, queue: "js", queueKey: "k", priority: 3 });
  return { child: child.id, result: child.result() };
}

function fetcher(url) {
  const res = durable.http.get(url);
  let error = "";
  try {
    durable.http.get("http://127.0.0.1:1/refused", { timeout: 5 });
  } catch (e) {
    error = e.name + " " + e.kind;
  }
  return { status: res.status, text: res.text(), error };
}

function sql(x) {
  return durable.transaction("tx", (tx) => {
    tx.execute("CREATE TABLE IF NOT EXISTS js_items (n INTEGER, s TEXT, b BLOB)");
    tx.execute("INSERT INTO js_items VALUES (?, ?, ?)", [x, "s" + x, new Uint8Array([1, 2])]);
    let error = "";
    try {
      tx.execute("SELECT * FROM durable_task");
    } catch (e) {
      error = e.name + " " + e.kind;
    }
    return { rows: tx.query("SELECT n, s FROM js_items"), error };
  });
}

function notifier(target) {
  notify(target, "ping", { from: info().id });
  return "sent";
}

function impatient(seconds) {
  const child = spawn({ entry: "sleepy", input: seconds });
  let timedOut = "";
  try {
    child.result({ timeout: 0.2, cancelOnTimeout: true });
  } catch (e) {
    if (!(e instanceof DurableError)) throw e;
    timedOut = e.message;
  }
  try {
    child.result();
  } catch (e) {
    if (!(e instanceof ChildFailed)) throw e;
    return { child: child.id, timedOut, then: e.state, again: child.cancel() };
  }
  return { child: child.id, timedOut, then: "not cancelled" };
}

function progress(n) {
  setStatus("phase", "counting");
  for (let i = 1; i <= n; i++) {
    step("count", () => i);
    setStatus("progress", { done: i, of: n });
  }
  let refused = "";
  try {
    step("inside", () => setStatus("nope", 1));
  } catch (e) {
    refused = e.message;
  }
  setStatus("phase", "done");
  return refused;
}

export const run = workflow({
  impatient,
  progress,
  steps,
  boom,
  sleepy,
  cancellable,
  inbox,
  parent,
  queuedParent,
  fetcher,
  sql,
  notifier,
  stepFailedIsExported: () => typeof StepFailed,
});
