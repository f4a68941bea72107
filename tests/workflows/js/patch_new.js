// `patch_old.js` after a change: charge with a fee, behind `patched`; `deprecatePatch`
// and the host's refusals for the tests of tests/integration/test_patched.py.
import { workflow, step, wait, patched, deprecatePatch, DurableError } from "durable";

const charge = (cents) => `charged ${cents}`;
const chargeWithFee = (cents, fee) => `charged ${cents} + fee ${fee}`;

function refusal(call) {
  try {
    call();
    return "accepted";
  } catch (e) {
    return `${e instanceof DurableError ? "DurableError" : e.name}: ${e.message}`;
  }
}

export const run = workflow({
  order: (cents) => {
    const receipt = patched("charge-fee")
      ? step("charge_with_fee", chargeWithFee, cents, 30)
      : step("charge", charge, cents);
    const approval = wait("approve");
    return { receipt, approved: approval !== null };
  },
  done: (cents) => {
    deprecatePatch("charge-fee");
    return step("charge_with_fee", chargeWithFee, cents, 30);
  },
  misuse: () => ({
    empty: refusal(() => patched("")),
    notString: refusal(() => patched(3)),
    inStep: refusal(() => step("inside", () => patched("inside"))),
  }),
});
