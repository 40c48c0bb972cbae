//! The same tasks in six languages: module size, first compile, and run time against the
//! native Rust kernel measured in the same run.
//!
//! Run with `cargo bench -p wasmhive-tests --bench languages` (after scripts/setup; it
//! builds the modules with scripts/build-task-languages). Asserts only that every output
//! equals the native one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig};
use wasmhive_tests::{run_unit, task_module};

const REPEATS: usize = 3;
/// A native kernel: input text to output bytes.
type Kernel = fn(&str) -> Result<Vec<u8>, String>;

const TASKS: [(&str, &str, Kernel); 2] = [
    ("primes", "0 3000000", task_kernels::primes::run),
    ("collatz", "1 1000000", task_kernels::collatz::run),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/wasm-languages");
    let built = Command::new(root.join("scripts/build-task-languages")).arg(&out).status().expect("bash");
    assert!(built.success(), "scripts/build-task-languages failed; run scripts/setup");
    println!("wasmhive languages benchmark · wasmtime {}", wasmhive_sandbox::wasmtime_version());
    println!(
        "{:<9} {:<15} {:>10} {:>13} {:>10} {:>10}",
        "task", "language", "size", "first run", "run", "vs native"
    );
    for (task, input, native) in TASKS {
        let expected = native(input).unwrap();
        let native_time = best_of(|| {
            assert_eq!(native(input).unwrap(), expected);
        });
        println!(
            "{task:<9} {:<15} {:>10} {:>13} {:>8.1}ms {:>9.2}x",
            "native Rust",
            "-",
            "-",
            millis(native_time),
            1.0
        );
        for language in ["rust", "c", "zig", "go", "assemblyscript", "wat"] {
            let module = match language {
                "rust" => task_module(task),
                _ => ModuleBytes::new(std::fs::read(out.join(format!("{language}-{task}.wasm"))).unwrap()),
            };
            let sandbox = Sandbox::new(SandboxConfig::default());
            let limits = Limits { wall_time_max: Duration::from_secs(120), ..Limits::default() };
            let started = Instant::now();
            assert_eq!(
                run_unit(&sandbox, &module, input.as_bytes(), &[], &limits).stdout,
                expected,
                "{language}"
            );
            let first = started.elapsed();
            let run = best_of(|| {
                assert_eq!(run_unit(&sandbox, &module, input.as_bytes(), &[], &limits).stdout, expected);
            });
            println!(
                "{task:<9} {language:<15} {:>8}KB {:>11.1}ms {:>8.1}ms {:>9.2}x",
                module.bytes.len() / 1024,
                millis(first),
                millis(run),
                run.as_secs_f64() / native_time.as_secs_f64()
            );
        }
    }
}

fn best_of(mut work: impl FnMut()) -> Duration {
    (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .min()
        .unwrap()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
