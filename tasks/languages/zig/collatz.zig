//! collatz: the number in [START, END) with the longest Collatz trajectory. Output: N STEPS.

const std = @import("std");
const wasmhive = @import("wasmhive.zig");

fn trajectorySteps(start: u64) u64 {
    var number = start;
    var steps: u64 = 0;
    while (number != 1) : (steps += 1) {
        number = if (number % 2 == 0) number / 2 else 3 * number + 1;
    }
    return steps;
}

pub fn main(init: std.process.Init) void {
    const range = wasmhive.readNumbers(init, 2, "START END");
    if (range[0] == 0 or range[0] > range[1]) wasmhive.fail(init, "START must be at least 1 and not after END", .{});
    var best: u64 = 0;
    var best_steps: u64 = 0;
    var number = range[0];
    while (number < range[1]) : (number += 1) {
        const steps = trajectorySteps(number);
        if (best == 0 or steps > best_steps) {
            best = number;
            best_steps = steps;
        }
    }
    wasmhive.output(init, "{d} {d}\n", .{ best, best_steps });
}
