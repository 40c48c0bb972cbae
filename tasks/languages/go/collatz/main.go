// collatz: the number in [START, END) with the longest Collatz trajectory. Output: N STEPS.
package main

import "wasmhive.tasks/wasmhive"

func trajectorySteps(number uint64) uint64 {
	steps := uint64(0)
	for number != 1 {
		if number%2 == 0 {
			number /= 2
		} else {
			number = 3*number + 1
		}
		steps++
	}
	return steps
}

func main() {
	bounds := wasmhive.Numbers(2, "START END")
	if bounds[0] == 0 || bounds[0] > bounds[1] {
		wasmhive.Fail("START must be at least 1 and not after END")
	}
	best, bestSteps := uint64(0), uint64(0)
	for number := bounds[0]; number < bounds[1]; number++ {
		steps := trajectorySteps(number)
		if best == 0 || steps > bestSteps {
			best, bestSteps = number, steps
		}
	}
	wasmhive.Output("%d %d\n", best, bestSteps)
}
