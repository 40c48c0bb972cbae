//! primes: how many primes lie in [START, END), by trial division. Output: the count.

const std = @import("std");
const wasmhive = @import("wasmhive.zig");

fn isPrime(candidate: u64) bool {
    if (candidate < 4) return candidate >= 2;
    if (candidate % 2 == 0) return false;
    var divisor: u64 = 3;
    while (divisor <= candidate / divisor) : (divisor += 2) {
        if (candidate % divisor == 0) return false;
    }
    return true;
}

pub fn main(init: std.process.Init) void {
    const range = wasmhive.readNumbers(init, 2, "START END");
    if (range[0] > range[1]) wasmhive.fail(init, "START is after END", .{});
    var count: u64 = 0;
    var candidate = range[0];
    while (candidate < range[1]) : (candidate += 1) {
        if (isPrime(candidate)) count += 1;
    }
    wasmhive.output(init, "{d}\n", .{count});
}
