/* primes: how many primes lie in [START, END), by trial division. Output: the count. */
#include "wasmhive.h"

static int is_prime(uint64_t candidate) {
    if (candidate < 4) return candidate >= 2;
    if (candidate % 2 == 0) return 0;
    for (uint64_t divisor = 3; divisor <= candidate / divisor; divisor += 2)
        if (candidate % divisor == 0) return 0;
    return 1;
}

int main(void) {
    uint64_t range[2];
    wasmhive_read_numbers(range, 2, "START END");
    if (range[0] > range[1]) wasmhive_fail("START is after END");
    uint64_t count = 0;
    for (uint64_t candidate = range[0]; candidate < range[1]; candidate++) count += is_prime(candidate);
    printf("%llu\n", (unsigned long long)count);
    return 0;
}
