//! Sandbox benchmark: tiny-unit overhead and wasm-versus-native speed.
//!
//! Run with `cargo bench -p wasmhive-tests --bench sandbox [-- tiny|kernels]`. Prints
//! figures and ratios against the native kernels, measured in the same run on the same
//! machine: an integer kernel (`collatz`), a u64-division kernel (`primes`), a float kernel
//! (`mandelbrot`), a hashing kernel (`hashcash`: blake3 of a short message per try, whose
//! native build picks the CPU's widest vector code at run time) and a SIMD-friendly kernel
//! (`heat`: a stencil the compiler vectorises, with SSE2 natively and `simd128` in wasm).
//! Each configuration runs [`REPEATS`] times, interleaved with the native kernel; medians
//! with (min–max). It asserts nothing about speed; it does
//! check that every run's output equals the native one.

use rayon::prelude::*;
use std::time::{Duration, Instant};
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig, Status};
use wasmhive_tests::{run_unit, task_module};

const TINY_UNITS: usize = 20_000;
const REPEATS: usize = 5;
/// A native kernel: input to output, as the task module computes it.
type NativeKernel = fn(&str) -> Result<Vec<u8>, String>;

const KERNELS: [(&str, &str, NativeKernel); 5] = [
    ("collatz", "1 300000", task_kernels::collatz::run),
    ("primes", "0 3000000", task_kernels::primes::run),
    ("mandelbrot", "1200 800 0 800 2000", task_kernels::mandelbrot::run),
    ("hashcash", "wasmhive 19", task_kernels::hashcash::run),
    ("heat", "300 300 3000", task_kernels::heat::run),
];

/// (fuel, NaN canonicalisation): the job default first.
const CONFIGURATIONS: [(bool, bool); 3] = [(false, false), (false, true), (true, false)];

/// `cargo bench -p wasmhive-tests --bench sandbox [-- tiny|kernels]` runs one section.
fn main() {
    let section = std::env::args().skip(1).find(|arg| !arg.starts_with('-')).unwrap_or_default();
    let sandbox = Sandbox::new(SandboxConfig::default());
    println!(
        "wasmhive sandbox benchmark · wasmtime {} · {} cores",
        wasmhive_sandbox::wasmtime_version(),
        rayon::current_num_threads()
    );
    if section.is_empty() || section == "tiny" {
        tiny_units(&sandbox);
    }
    if section.is_empty() || section == "kernels" {
        println!();
        println!(
            "{:<12} {:<30} {:>26} {:>22}",
            "task", "configuration", "time, median (min–max)", "vs native"
        );
        for (task, input, native) in KERNELS {
            kernel_ratios(&sandbox, task, input, native);
        }
    }
}

fn tiny_units(sandbox: &Sandbox) {
    let module = task_module("sum");
    let limits = Limits::default();
    let expected = task_kernels::sum::run("0 10").unwrap();
    for _ in 0..100 {
        run_unit(sandbox, &module, b"0 10", &[], &limits);
    }
    let started = Instant::now();
    for _ in 0..TINY_UNITS {
        let outcome = run_unit(sandbox, &module, b"0 10", &[], &limits);
        assert_eq!(outcome.stdout, expected);
    }
    let one_thread = started.elapsed();
    let started = Instant::now();
    (0..TINY_UNITS).into_par_iter().for_each(|_| {
        let outcome = run_unit(sandbox, &module, b"0 10", &[], &limits);
        assert_eq!(outcome.stdout, expected);
    });
    let pool = started.elapsed();
    let cores = rayon::current_num_threads() as f64;
    println!("tiny unit (`sum 0 10`, instantiate + run, {TINY_UNITS} units):");
    println!(
        "  1 thread:        {:>7.1} µs/unit   {:>9.0} units/s",
        micros_per(one_thread, TINY_UNITS),
        TINY_UNITS as f64 / one_thread.as_secs_f64()
    );
    println!(
        "  rayon, {} cores:  {:>7.1} µs/unit/core {:>7.0} units/s",
        cores,
        micros_per(pool, TINY_UNITS) * cores,
        TINY_UNITS as f64 / pool.as_secs_f64()
    );
}

fn kernel_ratios(sandbox: &Sandbox, task: &str, input: &str, native: NativeKernel) {
    let expected = native(input).unwrap();
    let module = task_module(task);
    let mut native_times = Vec::new();
    let mut wasm_times = vec![Vec::new(); CONFIGURATIONS.len()];
    for repeat in 0..=REPEATS {
        let native_time = timed(|| assert_eq!(native(input).unwrap(), expected));
        let configured_times = CONFIGURATIONS.map(|(fuel, nan)| {
            timed(|| {
                let outcome = run_configured(sandbox, &module, input, fuel, nan);
                assert_eq!(outcome.0, Status::Success);
                assert_eq!(outcome.1, expected, "{task} output differs from native");
            })
        });
        if repeat == 0 {
            continue; // the warm-up, which also compiles the module
        }
        native_times.push(native_time);
        for (times, time) in wasm_times.iter_mut().zip(configured_times) {
            times.push(time);
        }
    }
    let native_median = spread(&mut native_times).0;
    println!("{task:<12} {:<30} {:>26} {:>22}", "native", spread_text(&mut native_times), "1.00x");
    for ((fuel, nan), times) in CONFIGURATIONS.into_iter().zip(&mut wasm_times) {
        let label = format!("wasm fuel {} nan-canon {}", on_off(fuel), on_off(nan));
        let ratios: Vec<f64> =
            times.iter().map(|time| time.as_secs_f64() / native_median.as_secs_f64()).collect();
        let (low, high) =
            ratios.iter().fold((f64::MAX, 0.0f64), |(low, high), ratio| (low.min(*ratio), high.max(*ratio)));
        let median = spread(times).0.as_secs_f64() / native_median.as_secs_f64();
        println!(
            "{task:<12} {label:<30} {:>26} {:>22}",
            spread_text(times),
            format!("{median:.2}x ({low:.2}–{high:.2})")
        );
    }
}

/// Median, min and max.
fn spread(times: &mut [Duration]) -> (Duration, Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn spread_text(times: &mut [Duration]) -> String {
    let (median, low, high) = spread(times);
    format!("{:.1}ms ({:.1}–{:.1})", millis(median), millis(low), millis(high))
}

fn timed(run: impl FnOnce()) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

fn run_configured(
    sandbox: &Sandbox,
    module: &ModuleBytes,
    input: &str,
    fuel: bool,
    nan: bool,
) -> (Status, Vec<u8>) {
    let limits = Limits {
        fuel: fuel.then_some(u64::MAX / 2),
        wall_time_max: Duration::from_secs(600),
        stdout_bytes_max: 16 << 20,
        ..Limits::default()
    };
    let request = wasmhive_sandbox::UnitRequest {
        module,
        input: wasmhive_sandbox::FileSource::Memory(input.as_bytes().into()),
        shared: &[],
        task_name: "bench",
        args: &[],
        job_id: "bench",
        unit_index: 0,
        job_time: Duration::ZERO,
        limits: &limits,
        nan_canonicalization: nan,
    };
    let outcome = sandbox.run(&request).unwrap();
    (outcome.status, outcome.stdout)
}

fn micros_per(total: Duration, count: usize) -> f64 {
    total.as_secs_f64() * 1e6 / count as f64
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}
