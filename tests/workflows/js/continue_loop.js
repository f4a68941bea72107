// A loop of `runs` runs through `continueAsNew`, for tests/integration/test_continue_as_new.py.
import { workflow, step, continueAsNew, DurableError } from "durable";

export const run = workflow({
  loop: (state) => {
    const count = step("tick", (n) => n + 1, state.count ?? 0);
    if (count >= state.runs) {
      return count;
    }
    continueAsNew({ ...state, count });
    return "not reached";
  },
  misuse: () => {
    try {
      step("inside", () => continueAsNew(1));
      return "accepted";
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  },
});
