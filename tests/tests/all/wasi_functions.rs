//! The sandbox defines every WASI preview 1 function itself (no wasmtime-wasi): a module
//! may import any of them, and the ones that are not about files answer hostile arguments
//! with errnos, never a trap of the host.

use wasmhive_protocol::Status;
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig};
use wasmhive_tests::run_unit;

/// (name, parameter types, result) of every function of `wasi_snapshot_preview1`.
const PREVIEW1_FUNCTIONS: &[(&str, &str, &str)] = &[
    ("args_get", "i32 i32", "i32"),
    ("args_sizes_get", "i32 i32", "i32"),
    ("environ_get", "i32 i32", "i32"),
    ("environ_sizes_get", "i32 i32", "i32"),
    ("clock_res_get", "i32 i32", "i32"),
    ("clock_time_get", "i32 i64 i32", "i32"),
    ("fd_advise", "i32 i64 i64 i32", "i32"),
    ("fd_allocate", "i32 i64 i64", "i32"),
    ("fd_close", "i32", "i32"),
    ("fd_datasync", "i32", "i32"),
    ("fd_fdstat_get", "i32 i32", "i32"),
    ("fd_fdstat_set_flags", "i32 i32", "i32"),
    ("fd_fdstat_set_rights", "i32 i64 i64", "i32"),
    ("fd_filestat_get", "i32 i32", "i32"),
    ("fd_filestat_set_size", "i32 i64", "i32"),
    ("fd_filestat_set_times", "i32 i64 i64 i32", "i32"),
    ("fd_pread", "i32 i32 i32 i64 i32", "i32"),
    ("fd_prestat_get", "i32 i32", "i32"),
    ("fd_prestat_dir_name", "i32 i32 i32", "i32"),
    ("fd_pwrite", "i32 i32 i32 i64 i32", "i32"),
    ("fd_read", "i32 i32 i32 i32", "i32"),
    ("fd_readdir", "i32 i32 i32 i64 i32", "i32"),
    ("fd_renumber", "i32 i32", "i32"),
    ("fd_seek", "i32 i64 i32 i32", "i32"),
    ("fd_sync", "i32", "i32"),
    ("fd_tell", "i32 i32", "i32"),
    ("fd_write", "i32 i32 i32 i32", "i32"),
    ("path_create_directory", "i32 i32 i32", "i32"),
    ("path_filestat_get", "i32 i32 i32 i32 i32", "i32"),
    ("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32", "i32"),
    ("path_link", "i32 i32 i32 i32 i32 i32 i32", "i32"),
    ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32", "i32"),
    ("path_readlink", "i32 i32 i32 i32 i32 i32", "i32"),
    ("path_remove_directory", "i32 i32 i32", "i32"),
    ("path_rename", "i32 i32 i32 i32 i32 i32", "i32"),
    ("path_symlink", "i32 i32 i32 i32 i32", "i32"),
    ("path_unlink_file", "i32 i32 i32", "i32"),
    ("poll_oneoff", "i32 i32 i32 i32", "i32"),
    ("proc_exit", "i32", ""),
    ("proc_raise", "i32", "i32"),
    ("sched_yield", "", "i32"),
    ("random_get", "i32 i32", "i32"),
    ("sock_accept", "i32 i32 i32", "i32"),
    ("sock_recv", "i32 i32 i32 i32 i32 i32", "i32"),
    ("sock_send", "i32 i32 i32 i32 i32", "i32"),
    ("sock_shutdown", "i32 i32", "i32"),
];

fn import_every_function() -> String {
    PREVIEW1_FUNCTIONS
        .iter()
        .map(|(name, parameters, result)| {
            let result = if result.is_empty() { String::new() } else { format!("(result {result})") };
            format!("(import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param {parameters}) {result}))\n")
        })
        .collect()
}

fn run_wat(body: &str) -> wasmhive_sandbox::Outcome {
    let text = format!("(module\n{}{body})", import_every_function());
    let guest = ModuleBytes::new(wat::parse_str(&text).expect("the test module parses"));
    run_unit(&Sandbox::new(SandboxConfig::default()), &guest, b"", &["one"], &Limits::default())
}

#[test]
fn a_module_importing_every_preview1_function_runs() {
    let outcome = run_wat(r#"(memory (export "memory") 1) (func (export "_start"))"#);
    assert_eq!(outcome.status, Status::Success, "{}", outcome.message);
}

/// Each call's errno (or one byte of what it wrote) is printed as one byte.
#[test]
fn hostile_environment_calls_get_errnos() {
    let outcome = run_wat(HOSTILE_ENVIRONMENT_CALLS);
    assert_eq!(outcome.status, Status::Success, "{}", outcome.message);
    // args_sizes_get: 0, then 2 args of 9 bytes ("task", "one"); past the end: EFAULT;
    // args_get: 0 and the second arg's first byte, strings past the end: EFAULT;
    // environ_sizes_get: 0, 2 variables; environ_get with pointers past the end: EFAULT;
    // clock_time_get: wall 0 (the job's time, 0 here), monotonic 0 then 1 ms later,
    // the CPU clocks EBADF, clock 4 and -1 EINVAL, a result past the end EFAULT;
    // clock_res_get: monotonic 0 (1 ms), CPU EBADF; random_get past the end: EFAULT;
    // proc_raise: SIGINT ENOTSUP, signal 99 EINVAL; sock_send on stdout ENOTSOCK, sock_recv
    // on fd 99 EBADF, sock_shutdown on the root ENOTSOCK, sock_accept on fd -1 EBADF;
    // fd_fdstat_set_rights on stdin ENOTSUP and on fd 50 EBADF.
    let expected = [
        0, 2, 9, 21, //
        0, b'o', 21, //
        0, 2, 21, //
        0, 0, 0, 1, 8, 8, 28, 28, 21, //
        0, 8, 21, //
        58, 28, 57, 8, 57, 8, //
        58, 8,
    ];
    assert_eq!(outcome.stdout, expected, "{:?}", outcome.stdout);
}

const HOSTILE_ENVIRONMENT_CALLS: &str = r#"
  (memory (export "memory") 1)
  (global $out (mut i32) (i32.const 1000))
  (func $record (param $byte i32)
    (i32.store8 (global.get $out) (local.get $byte))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $time (param $clock i32) (result i32)
    (call $clock_time_get (local.get $clock) (i64.const 0) (i32.const 200)))
  (func (export "_start")
    (call $record (call $args_sizes_get (i32.const 200) (i32.const 204)))
    (call $record (i32.load (i32.const 200)))
    (call $record (i32.load (i32.const 204)))
    (call $record (call $args_sizes_get (i32.const 65534) (i32.const 204)))
    (call $record (call $args_get (i32.const 300) (i32.const 400)))
    (call $record (i32.load8_u (i32.load (i32.const 304))))
    (call $record (call $args_get (i32.const 300) (i32.const 65530)))
    (call $record (call $environ_sizes_get (i32.const 200) (i32.const 204)))
    (call $record (i32.load (i32.const 200)))
    (call $record (call $environ_get (i32.const 65532) (i32.const 400)))
    (call $record (call $time (i32.const 0)))
    (call $record (i32.wrap_i64 (i64.load (i32.const 200))))
    (drop (call $time (i32.const 1)))
    (call $record (i32.wrap_i64 (i64.div_u (i64.load (i32.const 200)) (i64.const 1000000))))
    (drop (call $time (i32.const 1)))
    (call $record (i32.wrap_i64 (i64.div_u (i64.load (i32.const 200)) (i64.const 1000000))))
    (call $record (call $time (i32.const 2)))
    (call $record (call $time (i32.const 3)))
    (call $record (call $time (i32.const 4)))
    (call $record (call $time (i32.const -1)))
    (call $record (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 65530)))
    (call $record (call $clock_res_get (i32.const 1) (i32.const 200)))
    (call $record (call $clock_res_get (i32.const 2) (i32.const 200)))
    (call $record (call $random_get (i32.const 65530) (i32.const 100)))
    (call $record (call $proc_raise (i32.const 2)))
    (call $record (call $proc_raise (i32.const 99)))
    (call $record (call $sock_send (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200)))
    (call $record (call $sock_recv (i32.const 99) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 204)))
    (call $record (call $sock_shutdown (i32.const 3) (i32.const 0)))
    (call $record (call $sock_accept (i32.const -1) (i32.const 0) (i32.const 200)))
    (call $record (call $fd_fdstat_set_rights (i32.const 0) (i64.const 0) (i64.const 0)))
    (call $record (call $fd_fdstat_set_rights (i32.const 50) (i64.const 0) (i64.const 0)))
    (i32.store (i32.const 300) (i32.const 1000))
    (i32.store (i32.const 304) (i32.sub (global.get $out) (i32.const 1000)))
    (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 400))))
"#;
