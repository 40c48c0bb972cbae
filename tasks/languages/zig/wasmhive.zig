//! wasmhive task helper for Zig (Task ABI v1; Zig 0.17, the std.Io API): read all of
//! stdin, parse numbers, write the output, fail with a message. Build with
//!   zig build-exe task.zig -target wasm32-wasi -O ReleaseSmall
//! wasm32 trap: `usize` is 32 bits there; use u64 for anything that can pass 2^32.

const std = @import("std");

/// Prints "error: MESSAGE" to stderr and exits with code 2 (a deterministic failure).
pub fn fail(init: std.process.Init, comptime format: []const u8, arguments: anytype) noreturn {
    var buffer: [512]u8 = undefined;
    var stderr = std.Io.File.stderr().writer(init.io, &buffer);
    stderr.interface.print("error: " ++ format ++ "\n", arguments) catch {};
    stderr.interface.flush() catch {};
    std.process.exit(2);
}

/// All of stdin.
pub fn readInput(init: std.process.Init) []u8 {
    var buffer: [4096]u8 = undefined;
    var stdin = std.Io.File.stdin().reader(init.io, &buffer);
    return stdin.interface.allocRemaining(init.gpa, .unlimited) catch fail(init, "cannot read stdin", .{});
}

/// Exactly `count` whitespace-separated whole numbers from stdin; `names` (e.g.
/// "START END") is used in the error message.
pub fn readNumbers(init: std.process.Init, comptime count: usize, names: []const u8) [count]u64 {
    var words = std.mem.tokenizeAny(u8, readInput(init), " \t\r\n");
    var numbers: [count]u64 = undefined;
    for (&numbers) |*number| {
        const word = words.next() orelse fail(init, "expected {d} numbers `{s}`", .{ count, names });
        number.* = std.fmt.parseInt(u64, word, 10) catch fail(init, "expected {d} numbers `{s}`", .{ count, names });
    }
    if (words.next() != null) fail(init, "expected {d} numbers `{s}`", .{ count, names });
    return numbers;
}

/// Writes formatted output to stdout.
pub fn output(init: std.process.Init, comptime format: []const u8, arguments: anytype) void {
    var buffer: [4096]u8 = undefined;
    var stdout = std.Io.File.stdout().writer(init.io, &buffer);
    stdout.interface.print(format, arguments) catch fail(init, "cannot write stdout", .{});
    stdout.interface.flush() catch fail(init, "cannot write stdout", .{});
}
