// collatz: the number in [START, END) with the longest Collatz trajectory. Output: N STEPS.
import { fail, output, readNumbers } from "./wasmhive";

function trajectorySteps(start: u64): u64 {
  let number = start;
  let steps: u64 = 0;
  while (number != 1) {
    number = number % 2 == 0 ? number / 2 : 3 * number + 1;
    steps++;
  }
  return steps;
}

const range = readNumbers(2, "START END");
if (range[0] == 0 || range[0] > range[1]) fail("START must be at least 1 and not after END");
let best: u64 = 0;
let bestSteps: u64 = 0;
for (let number = range[0]; number < range[1]; number++) {
  const steps = trajectorySteps(number);
  if (best == 0 || steps > bestSteps) {
    best = number;
    bestSteps = steps;
  }
}
output(best.toString() + " " + bestSteps.toString() + "\n");
