//! {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has.

const std = @import("std");
const wasmhive = @import("wasmhive.zig");

pub fn main(init: std.process.Init) void {
    var words = std.mem.tokenizeAny(u8, wasmhive.readInput(init), " \t\r\n");
    var count: u64 = 0;
    while (words.next() != null) count += 1;
    wasmhive.output(init, "{d} words\n", .{count});
}
