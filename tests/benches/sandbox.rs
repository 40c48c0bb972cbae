//! Sandbox benchmark: tiny-unit overhead and wasm-versus-native speed.
//!
//! Run with `cargo bench -p wasmhive-tests --bench sandbox`. Prints figures and ratios
//! against the native kernels, measured in the same run on the same machine. It asserts
//! nothing about speed; it does check that every run's output equals the native one.

use rayon::prelude::*;
use std::time::{Duration, Instant};
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig, Status};
use wasmhive_tests::{run_unit, task_module};

const TINY_UNITS: usize = 20_000;
const REPEATS: usize = 3;
const PRIMES_INPUT: &str = "0 3000000";
const MANDELBROT_INPUT: &str = "1200 800 0 800 2000";

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
        println!("{:<12} {:<28} {:>10} {:>10}", "task", "configuration", "time", "vs native");
        kernel_ratios(&sandbox, "primes", PRIMES_INPUT, task_kernels::primes::run);
        kernel_ratios(&sandbox, "mandelbrot", MANDELBROT_INPUT, task_kernels::mandelbrot::run);
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

fn kernel_ratios(sandbox: &Sandbox, task: &str, input: &str, native: fn(&str) -> Result<Vec<u8>, String>) {
    let expected = native(input).unwrap();
    let native_time = fastest(|| assert_eq!(native(input).unwrap(), expected));
    println!("{task:<12} {:<28} {:>8.1}ms {:>10}", "native", millis(native_time), "1.00x");
    let module = task_module(task);
    for (fuel, nan) in [(false, false), (false, true), (true, false), (true, true)] {
        let time = fastest(|| {
            let outcome = run_configured(sandbox, &module, input, fuel, nan);
            assert_eq!(outcome.0, Status::Success);
            assert_eq!(outcome.1, expected, "{task} output differs from native");
        });
        let label = format!("wasm fuel {} nan-canon {}", on_off(fuel), on_off(nan));
        println!(
            "{task:<12} {label:<28} {:>8.1}ms {:>9.2}x",
            millis(time),
            time.as_secs_f64() / native_time.as_secs_f64()
        );
    }
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
        input: input.as_bytes(),
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

/// Fastest of [`REPEATS`] runs after one warm-up (which also compiles the module).
fn fastest(mut run: impl FnMut()) -> Duration {
    run();
    (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .min()
        .expect("at least one repeat")
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
