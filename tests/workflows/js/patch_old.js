// An order workflow before a change, in JavaScript: `patch_new.js` is the same with
// `patched` (tests/integration/test_patched.py).
import { workflow, step, wait } from "durable";

const charge = (cents) => `charged ${cents}`;

export const run = workflow({
  order: (cents) => {
    const receipt = step("charge", charge, cents);
    const approval = wait("approve");
    return { receipt, approved: approval !== null };
  },
});
