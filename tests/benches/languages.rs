//! The same tasks in six languages: module size, first compile, and run time against the
//! native Rust kernel measured in the same run, and the C modules also against the same C
//! source compiled natively (`clang -O2`, run as a process; its start-up is included): the
//! sandbox's cost for one program, division and all.
//!
//! Run with `cargo bench -p wasmhive-tests --bench languages` (after scripts/setup; it
//! builds the modules with scripts/build-task-languages). Every time is the median (min–max)
//! of `REPEATS` runs after a first one. Asserts only that every output equals the native one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig};
use wasmhive_tests::{run_unit, task_module};

const REPEATS: usize = 5;
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
        "{:<9} {:<15} {:>8} {:>11} {:>26} {:>10} {:>10}",
        "task", "language", "size", "first run", "run: median (min–max)", "vs Rust", "vs same C"
    );
    for (task, input, native) in TASKS {
        let expected = native(input).unwrap();
        let native_times = repeated(|| {
            assert_eq!(native(input).unwrap(), expected);
        });
        let native_median = native_times.median;
        println!("{task:<9} {:<15} {:>8} {:>11} {native_times} {:>9.2}x", "native Rust", "-", "-", 1.0);
        let native_c = native_c_binary(&root, &out, task);
        let native_c_times = repeated(|| {
            assert_eq!(run_native(&native_c, input), expected, "native C");
        });
        println!(
            "{task:<9} {:<15} {:>8} {:>11} {native_c_times} {:>9.2}x {:>9.2}x",
            "native C",
            "-",
            "-",
            native_c_times.median / native_median,
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
            let times = repeated(|| {
                assert_eq!(run_unit(&sandbox, &module, input.as_bytes(), &[], &limits).stdout, expected);
            });
            let against_c = if language == "c" {
                format!("{:>9.2}x", times.median / native_c_times.median)
            } else {
                String::new()
            };
            println!(
                "{task:<9} {language:<15} {:>6}KB {:>9.1}ms {times} {:>9.2}x {against_c}",
                module.bytes.len() / 1024,
                millis(first),
                times.median / native_median,
            );
        }
    }
}

/// Run times of one piece of work, in milliseconds.
struct Times {
    median: f64,
    min: f64,
    max: f64,
}

impl std::fmt::Display for Times {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = format!("{:.1}ms ({:.1}–{:.1})", self.median, self.min, self.max);
        write!(formatter, "{text:>26}")
    }
}

fn repeated(mut work: impl FnMut()) -> Times {
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            work();
            millis(started.elapsed())
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Times { median: times[REPEATS / 2], min: times[0], max: times[REPEATS - 1] }
}

/// The task's C source compiled for this machine with `clang -O2`.
fn native_c_binary(root: &Path, out: &Path, task: &str) -> std::path::PathBuf {
    let binary = out.join(format!("native-c-{task}"));
    let source = root.join(format!("tasks/languages/c/{task}.c"));
    let built = Command::new("clang").arg("-O2").arg("-o").arg(&binary).arg(&source).status().expect("clang");
    assert!(built.success(), "clang -O2 {} failed", source.display());
    binary
}

fn run_native(binary: &Path, input: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(binary)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("native C task");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "native C task failed");
    output.stdout
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
