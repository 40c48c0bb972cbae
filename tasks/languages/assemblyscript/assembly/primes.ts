// primes: how many primes lie in [START, END), by trial division. Output: the count.
import { fail, output, readNumbers } from "./wasmhive";

function isPrime(candidate: u64): bool {
  if (candidate < 4) return candidate >= 2;
  if (candidate % 2 == 0) return false;
  for (let divisor: u64 = 3; divisor <= candidate / divisor; divisor += 2) {
    if (candidate % divisor == 0) return false;
  }
  return true;
}

const range = readNumbers(2, "START END");
if (range[0] > range[1]) fail("START is after END");
let count: u64 = 0;
for (let candidate = range[0]; candidate < range[1]; candidate++) {
  if (isPrime(candidate)) count++;
}
output(count.toString() + "\n");
