// primes: how many primes lie in [START, END), by trial division. Output: the count.
package main

import "wasmhive.tasks/wasmhive"

func isPrime(candidate uint64) bool {
	if candidate < 4 {
		return candidate >= 2
	}
	if candidate%2 == 0 {
		return false
	}
	for divisor := uint64(3); divisor <= candidate/divisor; divisor += 2 {
		if candidate%divisor == 0 {
			return false
		}
	}
	return true
}

func main() {
	bounds := wasmhive.Numbers(2, "START END")
	if bounds[0] > bounds[1] {
		wasmhive.Fail("START is after END")
	}
	count := uint64(0)
	for candidate := bounds[0]; candidate < bounds[1]; candidate++ {
		if isPrime(candidate) {
			count++
		}
	}
	wasmhive.Output("%d\n", count)
}
