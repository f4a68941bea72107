// performance.now() and setTimeout under the host's virtual monotonic clock, for
// tests/integration/test_js.py: every value printed and returned is the same on every
// run, and on every replay after a crash.
import { workflow, step, sleep } from "durable";

// Resolve after `ms`, noting the order and the clock when the timer fired.
function after(ms, fired, t0) {
  return new Promise((resolve) => {
    setTimeout(() => {
      fired.push([ms, performance.now() - t0]);
      resolve();
    }, ms);
  });
}

export const run = workflow({
  async timers(rounds) {
    const t0 = performance.now();
    const lines = [];
    for (let i = 0; i < (rounds || 6); i++) {
      const fired = [];
      await Promise.all([30, 10, 20, 0, 10].map((ms) => after(ms, fired, t0)));
      // A step's body runs once: its readings must not move the readings after it.
      const inside = step("inside", () => {
        let t = 0;
        for (let k = 0; k < 100; k++) t = performance.now();
        return t - t0;
      });
      const line = { i, fired, inside, now: performance.now() - t0 };
      console.log(JSON.stringify(line));
      lines.push(line);
      sleep(0.2);
    }
    return lines;
  },
  // An async workflow's rejection fails the task as a thrown error does.
  async late() {
    await new Promise((resolve) => setTimeout(resolve, 5));
    throw new RangeError("too late");
  },
  spin(ms) {
    const t0 = performance.now();
    let spins = 0;
    while (performance.now() < t0 + ms) spins++;
    return spins;
  },
});
