//! The hostile-guest catalogue: each misbehaviour ends with its expected status and a
//! readable message, and the host (this test process) survives all of them.

use std::time::Duration;
use wasmhive_sandbox::{
    Limits, ModuleBytes, Outcome, Sandbox, SandboxConfig, Status, TrapKind, WALL_TIME_MAX_DEFAULT,
};
use wasmhive_tests::{run_unit, task_module};

/// Runs `module` with `args` and checks the status and that `needle` is in the outcome's
/// message, stdout or stderr.
fn check(
    name: &str,
    module: &ModuleBytes,
    args: &[&str],
    limits: &Limits,
    expected: Status,
    needle: &str,
) -> Outcome {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let outcome = run_unit(&sandbox, module, b"", args, limits);
    let same_kind = match (&expected, &outcome.status) {
        (Status::InvalidModule { .. }, Status::InvalidModule { .. }) => true,
        (expected, actual) => expected == actual,
    };
    assert!(same_kind, "{name}: expected {expected:?}, got {:?}: {}", outcome.status, outcome.message);
    let text = format!(
        "{} | {} | {} | {}",
        outcome.status,
        outcome.message,
        String::from_utf8_lossy(&outcome.stdout),
        String::from_utf8_lossy(&outcome.stderr)
    );
    assert!(text.contains(needle), "{name}: expected {needle:?} in {text:?}");
    outcome
}

fn wat(text: &str) -> ModuleBytes {
    ModuleBytes::new(wat::parse_str(text).expect("test WAT parses"))
}

fn trap(trap: TrapKind) -> Status {
    Status::Trap { trap }
}

#[test]
fn runaway_loops_are_stopped_by_fuel_or_by_the_wall_clock_guard() {
    let probe = task_module("probe");
    let metered = Limits { fuel: Some(50_000_000), ..Limits::default() };
    let outcome = check("loop with fuel", &probe, &["loop"], &metered, Status::FuelExhausted, "fuel");
    assert_eq!(outcome.fuel_used, Some(50_000_000));
    let short_guard = Limits { wall_time_max: Duration::from_millis(200), ..Limits::default() };
    check("loop with a short guard", &probe, &["loop"], &short_guard, Status::HostTimeout, "interrupt");
}

/// Endless float loops of the shapes whose bodies the host repeats before compiling
/// (`loop_unrolling.rs`): a plain one, one that continues only from inside nested blocks,
/// and one that continues through a `br_table`. Each still meets the guard.
#[test]
fn endless_float_loops_whose_bodies_are_repeated_still_meet_the_wall_clock_guard() {
    let loops = [
        "(loop $l (local.set $x (f64.add (f64.mul (local.get $x) (local.get $x)) (f64.const 0.25))) (br $l))",
        "(loop $l (block (block (local.set $x (f64.sqrt (local.get $x))) (br_if $l (i32.const 1)))))",
        "(loop $l (block $a (br_table $a $l (i32.trunc_sat_f64_u (f64.add (local.get $x) (f64.const 1))))))",
    ];
    let short_guard = Limits { wall_time_max: Duration::from_millis(200), ..Limits::default() };
    for (index, endless) in loops.iter().enumerate() {
        let module = wat(&format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "_start") (local $x f64) (local.set $x (f64.const 0.5)) {endless}))"#
        ));
        check(
            &format!("endless float loop {index}"),
            &module,
            &[],
            &short_guard,
            Status::HostTimeout,
            "interrupt",
        );
    }
}

#[test]
fn with_default_limits_an_infinite_loop_ends_at_the_documented_guard() {
    let outcome = check(
        "loop, defaults",
        &task_module("probe"),
        &["loop"],
        &Limits::default(),
        Status::HostTimeout,
        "host timeout",
    );
    assert!(outcome.wall_time >= WALL_TIME_MAX_DEFAULT, "stopped early: {:?}", outcome.wall_time);
    assert!(
        outcome.wall_time < WALL_TIME_MAX_DEFAULT + Duration::from_secs(5),
        "stopped late: {:?}",
        outcome.wall_time
    );
}

#[test]
fn memory_bombs_hit_the_memory_limit() {
    let limits = Limits { memory_bytes_max: 64 << 20, ..Limits::default() };
    check(
        "memory bomb",
        &task_module("probe"),
        &["memory-bomb"],
        &limits,
        Status::MemoryLimit,
        "memory limit",
    );
    let big_initial = wat(r#"(module (memory 2000) (func (export "_start")))"#);
    check("large initial memory", &big_initial, &[], &limits, Status::MemoryLimit, "memory limit");
}

#[test]
fn deep_recursion_overflows_the_wasm_stack_or_the_shadow_stack() {
    let recursion = wat(r#"(module (func $down (export "_start") (call $down)))"#);
    check("wasm recursion", &recursion, &[], &Limits::default(), trap(TrapKind::StackOverflow), "stack");
    // Rust keeps large frames on a shadow stack in linear memory (1 MiB by default) whose
    // overflow runs below address 0: an out-of-bounds access, not a wasm stack overflow.
    let probe = task_module("probe");
    check(
        "rust recursion",
        &probe,
        &["recursion"],
        &Limits::default(),
        trap(TrapKind::MemoryOutOfBounds),
        "out of bounds",
    );
}

#[test]
fn a_stdout_flood_hits_the_output_limit_and_a_stderr_flood_is_truncated() {
    let limits = Limits { stdout_bytes_max: 100_000, stderr_bytes_max: 10_000, ..Limits::default() };
    let probe = task_module("probe");
    let stdout =
        check("stdout flood", &probe, &["stdout-flood"], &limits, Status::OutputLimit, "output limit");
    assert_eq!(stdout.stdout.len(), 100_000);
    let stderr = check("stderr flood", &probe, &["stderr-flood"], &limits, Status::Success, "survived");
    assert_eq!(stderr.stderr.len(), 10_000);
}

#[test]
fn wasm_traps_have_their_own_kinds() {
    let limits = Limits::default();
    let unreachable = wat(r#"(module (func (export "_start") unreachable))"#);
    check("unreachable", &unreachable, &[], &limits, trap(TrapKind::Unreachable), "unreachable");
    let divide_by_zero =
        wat(r#"(module (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#);
    check(
        "divide by zero",
        &divide_by_zero,
        &[],
        &limits,
        trap(TrapKind::IntegerDivisionByZero),
        "divide by zero",
    );
    let out_of_bounds =
        wat(r#"(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 70000)))))"#);
    check("out of bounds", &out_of_bounds, &[], &limits, trap(TrapKind::MemoryOutOfBounds), "out of bounds");
}

#[test]
fn exit_codes_are_statuses() {
    let probe = task_module("probe");
    check("exit 3", &probe, &["exit", "3"], &Limits::default(), Status::ExitCode { code: 3 }, "proc_exit(3)");
    check(
        "exit 255",
        &probe,
        &["exit", "255"],
        &Limits::default(),
        Status::ExitCode { code: 255 },
        "proc_exit(255)",
    );
    check("exit 0", &probe, &["exit", "0"], &Limits::default(), Status::Success, "proc_exit(0)");
}

#[test]
fn files_and_sockets_are_not_there() {
    let probe = task_module("probe");
    let file = check(
        "read a file",
        &probe,
        &["read-file"],
        &Limits::default(),
        Status::Success,
        "read-file refused",
    );
    assert!(!String::from_utf8_lossy(&file.stdout).contains("root"));
    check("open a socket", &probe, &["socket"], &Limits::default(), Status::Success, "socket refused");
}

#[test]
fn a_guest_that_sleeps_an_hour_returns_at_once_on_its_virtual_clock() {
    // An hour's sleep under the default 10 s wall-clock guard: it must neither hang inside
    // the host call (where the guard cannot reach) nor depend on the host. The monotonic
    // clock reads 0 before, moves 1 ms per read, and the sleep advances it by exactly 3600 s.
    check(
        "sleep",
        &task_module("probe"),
        &["sleep"],
        &Limits::default(),
        Status::Success,
        "slept_ns=3600001000000\n",
    );
}

#[test]
fn clocks_are_virtual() {
    check(
        "clocks",
        &task_module("probe"),
        &["clocks"],
        &Limits::default(),
        Status::Success,
        "wall_ns=0 monotonic_step_ns=1000000\n",
    );
}

#[test]
fn modules_that_are_not_task_modules_are_invalid_with_a_reason() {
    let limits = Limits::default();
    let no_start = wat(r#"(module (func (export "main")))"#);
    check("no _start", &no_start, &[], &limits, invalid_module(), "_start");
    let unknown_import = wat(r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#);
    check("unknown import", &unknown_import, &[], &limits, invalid_module(), "launch_missiles");
    check(
        "not wasm",
        &ModuleBytes::new(b"#!/bin/sh\nrm -rf /\n".to_vec()),
        &[],
        &limits,
        invalid_module(),
        "\\0asm",
    );
    let mut garbage = b"\0asm\x01\0\0\0".to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    check(
        "garbage after the header",
        &ModuleBytes::new(garbage),
        &[],
        &limits,
        invalid_module(),
        "compilation failed",
    );
}

#[test]
fn huge_and_slow_to_compile_modules_are_refused() {
    let small_modules = Limits { module_bytes_max: 1 << 20, ..Limits::default() };
    let huge = wat(&format!(
        r#"(module (memory 40) (data (i32.const 0) "{}") (func (export "_start")))"#,
        "x".repeat(2 << 20)
    ));
    check("huge module", &huge, &[], &small_modules, invalid_module(), "module size limit");
    let quick_compile = Limits { compile_time_max: Duration::from_millis(20), ..Limits::default() };
    let body =
        "(local.set 0 (i64.mul (local.get 0) (i64.add (local.get 0) (i64.const 7))))\n".repeat(200_000);
    let slow = wat(&format!(r#"(module (func (export "_start") (local i64) {body}))"#));
    // How long compiling takes depends on the host and its load: never a result.
    check("slow to compile", &slow, &[], &quick_compile, Status::HostTimeout, "compile-time limit");
}

#[test]
fn a_module_too_slow_to_compile_here_is_retried_not_failed_and_its_late_artifact_is_used() {
    let directory = wasmhive_tests::grid::TempDir::new("slow-compile");
    let sandbox = Sandbox::new(SandboxConfig {
        artifact_dir: Some(directory.path().to_path_buf()),
        ..SandboxConfig::default()
    });
    let quick_compile = Limits { compile_time_max: Duration::from_millis(20), ..Limits::default() };
    let body = "(local.set 0 (i64.add (local.get 0) (i64.const 7)))\n".repeat(100_000);
    let slow = wat(&format!(r#"(module (func (export "_start") (local i64) {body}))"#));
    let first = run_unit(&sandbox, &slow, b"", &[], &quick_compile);
    assert_eq!(first.status, Status::HostTimeout, "{}", first.message);
    let artifact = directory.path().join(&*first.engine_class).join(format!("{}.cwasm", slow.hash.to_hex()));
    wasmhive_tests::grid::wait_until(Duration::from_secs(60), "the background compilation", || {
        artifact.exists()
    });
    let again = run_unit(&sandbox, &slow, b"", &[], &quick_compile);
    assert_eq!(again.status, Status::Success, "the failure was not remembered: {}", again.message);
}

/// `InvalidModule`, whatever the reason (`check` looks for the reason by substring).
fn invalid_module() -> Status {
    Status::InvalidModule { reason: String::new() }
}

#[test]
fn a_host_compiles_a_bounded_number_of_modules_at_once() {
    // An owner can send leases for many slow-to-compile modules; each overrun keeps
    // compiling in the background, so without a bound they would pile up.
    let sandbox = Sandbox::new(SandboxConfig::default());
    let quick_compile = Limits { compile_time_max: Duration::from_millis(20), ..Limits::default() };
    let slow = |seed: u32| {
        let body =
            format!("(local.set 0 (i64.mul (local.get 0) (i64.add (local.get 0) (i64.const {seed}))))\n")
                .repeat(200_000);
        wat(&format!(r#"(module (func (export "_start") (local i64) {body}))"#))
    };
    let most = wasmhive_sandbox::compilations_in_flight_max();
    let modules: Vec<ModuleBytes> = (1..=most as u32 + 1).map(slow).collect();
    let outcomes: Vec<Outcome> =
        modules.iter().map(|module| run_unit(&sandbox, module, b"", &[], &quick_compile)).collect();
    assert!(
        outcomes.iter().all(|outcome| outcome.status == Status::HostTimeout),
        "retried elsewhere, never a result"
    );
    assert!(outcomes[0].message.contains("compile-time limit"), "{}", outcomes[0].message);
    assert!(outcomes[most].message.contains("already compiling"), "{}", outcomes[most].message);
}
