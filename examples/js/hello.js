// Hello world in JavaScript: one recorded step.
//
//   durable run examples/js/hello.js --input '"world"'
import { workflow, step } from "durable";

export const run = workflow((name) => {
  const greeting = step("greet", (who) => `Hello, ${who}!`, name);
  console.log(greeting);
  return greeting;
});
