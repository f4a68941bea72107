// The script interpreter of tests/property/workflows/script.py, in JavaScript: the
// same operations, labels and digests (the SDK's step digests are Python's), so the
// model in tests/property/scripts.py holds for it too. `now` and `notify_wait` are
// left out: Date.now() has millisecond precision, and the model digests the
// notification's JSON as Python writes it.
import { workflow, step, sleep, wait, spawn, http, transaction, info } from "durable";

const SLEEP_SECONDS = 0.01; // blocks in place
const LONG_SLEEP_SECONDS = 0.1; // suspends the task

const scriptStep = (arg) => ({ arg, square: arg * arg, text: `step-${arg}` });

function scriptStepError(arg) {
  throw new RangeError(`missing-${arg}`);
}

const scriptStepRandom = (arg) => arg + Math.floor(Math.random() * 1000);

function scriptStepPrint(arg) {
  const line = `in step ${arg}`;
  console.log(line);
  return line;
}

function uuid() {
  if (typeof crypto !== "undefined" && typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const hex = Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16));
  return hex.join("");
}

const OPS = {
  random: () => Math.random(),
  uuid: () => uuid(),
  print: (i, op) => {
    const line = `line ${i}: ${op.text ?? ""}`;
    console.log(line);
    return line;
  },
  step: (i, op) => step("script_step", scriptStep, op.arg),
  step_error: (i, op) => {
    try {
      step("script_step_error", scriptStepError, op.arg);
    } catch (e) {
      return `${e.name} ${e.message}`;
    }
    return "no error";
  },
  step_random: (i, op) => step("script_step_random", scriptStepRandom, op.arg),
  step_print: (i, op) => step("script_step_print", scriptStepPrint, op.arg),
  sleep: () => {
    sleep(SLEEP_SECONDS);
    return null;
  },
  long_sleep: () => {
    sleep(LONG_SLEEP_SECONDS);
    return null;
  },
  http: (i, op) => {
    const response = http.get(op.url);
    return { status: response.status, body: response.text() };
  },
  wait: (i) => {
    const got = wait(`ext-${i}`);
    return got === null ? null : got.data;
  },
  spawn: (i, op) => spawn({ entry: "child", input: op.arg }).result(),
  sql_insert: (i, op) => {
    const task = info().id;
    return transaction(`insert ${i}`, (tx) => {
      tx.execute("CREATE TABLE IF NOT EXISTS prop_rows (task INTEGER, op INTEGER, arg INTEGER)");
      tx.execute("INSERT INTO prop_rows VALUES (?, ?, ?)", [task, i, op.arg]);
      return tx.query("SELECT count(*) AS n FROM prop_rows WHERE task = ?", [task])[0].n;
    });
  },
  raise: (i) => {
    const e = new Error(`script raised at op ${i}`);
    e.name = "ScriptRaised";
    throw e;
  },
};

export const run = workflow({
  main: (script) => script.map((op, i) => OPS[op.op](i, op)),
  child: (arg) => ({ child: arg, square: arg * arg }),
});
