//! {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not counting
//! the words of the shared file `ignore.txt` if the job has one (Task ABI v2: a job's
//! shared files are read-only files under /shared; `[inputs] shared = ["ignore.txt"]` in a
//! job spec, `--shared ignore.txt` with `wasmhive run`).

const std = @import("std");
const wasmhive = @import("wasmhive.zig");

pub fn main(init: std.process.Init) void {
    // On WASI, Zig's cwd is the sandbox's one preopened directory, `/`: the path is
    // relative to it. No such file (the job shares none): nothing is ignored.
    const ignored = std.Io.Dir.cwd().readFileAlloc(init.io, "shared/ignore.txt", init.gpa, .limited(1 << 16)) catch "";
    var words = std.mem.tokenizeAny(u8, wasmhive.readInput(init), " \t\r\n");
    var count: u64 = 0;
    while (words.next()) |word| {
        if (!isIgnored(ignored, word)) count += 1;
    }
    wasmhive.output(init, "{d} words\n", .{count});
}

/// Whether `word` is one of the whitespace-separated words of `ignored`.
fn isIgnored(ignored: []const u8, word: []const u8) bool {
    var candidates = std.mem.tokenizeAny(u8, ignored, " \t\r\n");
    while (candidates.next()) |candidate| {
        if (std.mem.eql(u8, candidate, word)) return true;
    }
    return false;
}
