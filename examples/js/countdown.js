// Count down from 10, one line a second; kill it at any point and resume it.
//
// Each line shows Date.now() and Math.random(). The clock is recorded and randomness
// is derived from the task's seed, so after `kill -9` and `durable worker` the lines
// printed before the kill are byte-identical, and none is printed twice.
//
//   durable run examples/js/countdown.js
import { workflow, sleep } from "durable";

export const run = workflow((start) => {
  const n = start || 10;
  for (let i = n; i > 0; i--) {
    console.log(`${String(i).padStart(2)} at ${Date.now()} random ${Math.random().toFixed(12)}`);
    sleep(1);
  }
  return "liftoff";
});
