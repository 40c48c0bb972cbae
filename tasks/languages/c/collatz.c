/* collatz: the number in [START, END) with the longest Collatz trajectory. Output: N STEPS. */
#include "wasmhive.h"

static uint64_t trajectory_steps(uint64_t number) {
    uint64_t steps = 0;
    while (number != 1) {
        number = number % 2 == 0 ? number / 2 : 3 * number + 1;
        steps++;
    }
    return steps;
}

int main(void) {
    uint64_t range[2];
    wasmhive_read_numbers(range, 2, "START END");
    if (range[0] == 0 || range[0] > range[1]) wasmhive_fail("START must be at least 1 and not after END");
    uint64_t best = 0, best_steps = 0;
    for (uint64_t number = range[0]; number < range[1]; number++) {
        uint64_t steps = trajectory_steps(number);
        if (best == 0 || steps > best_steps) {
            best = number;
            best_steps = steps;
        }
    }
    printf("%llu %llu\n", (unsigned long long)best, (unsigned long long)best_steps);
    return 0;
}
