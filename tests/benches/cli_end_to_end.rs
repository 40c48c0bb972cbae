//! End to end as a user runs it (issue 15, item 4): `wasmhive coordinator` and workers as
//! processes of the release build, then `wasmhive submit SPEC --wait` and `wasmhive results
//! JOB --jsonl` as separate processes, for 10,000 tiny `sum` units (1,000 integers each)
//! at quorum 1 and 2 (one worker of 2 cores per replica). Prints submit-to-end and
//! results times, units/s over both, against native rayon measured in the same run;
//! checks every sum.
//!
//! Needs `target/release/wasmhive`: `cargo build --profile bench -p wasmhive` first.
//! `cargo bench -p wasmhive-tests --bench cli_end_to_end [-- RUNS [UNITS]]`

use rayon::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmhive_tests::grid::{TempDir, start_coordinator, start_worker, wasmhive};

const STEP: u64 = 1_000;

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(5);
    let units = numbers.get(1).copied().unwrap_or(10_000);
    let binary = wasmhive_tests::wasmhive_binary();
    println!("end to end through the CLI · {} · {units} `sum` units · {runs} runs", binary.display());
    let native = native_time(units);
    println!(
        "native rayon: {:.4} s · {:.0} units/s",
        native.as_secs_f64(),
        units as f64 / native.as_secs_f64()
    );
    for quorum in [1, 2] {
        let mut rates = Vec::new();
        for run in 1..=runs {
            let (wait, results) = one_run(units, quorum);
            let rate = units as f64 / (wait + results).as_secs_f64();
            println!(
                "  quorum {quorum} run {run}: submit --wait {:.3} s · results --jsonl {:.3} s · {rate:.0} units/s \
                 · {:.0}× native",
                wait.as_secs_f64(),
                results.as_secs_f64(),
                (wait + results).as_secs_f64() / native.as_secs_f64()
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "quorum {quorum}: median {:.0} units/s (min {:.0}, max {:.0})",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
}

fn native_time(units: u64) -> Duration {
    let run = || (0..units).into_par_iter().for_each(|unit| drop(task_kernels::sum::run(&input(unit))));
    run();
    let started = Instant::now();
    run();
    started.elapsed()
}

fn input(unit: u64) -> String {
    format!("{} {}", unit * STEP, unit * STEP + STEP)
}

/// One grid (an owner and `quorum` workers of 2 cores), one job: (submit --wait, results).
fn one_run(units: u64, quorum: u32) -> (Duration, Duration) {
    let directory = TempDir::new("bench-cli");
    let data = directory.path().join("owner");
    let (_owner, address) = start_coordinator(&data, "127.0.0.1:0");
    let _workers: Vec<_> = (0..quorum)
        .map(|index| start_worker(address, &directory.path().join(format!("worker-{index}")), 2))
        .collect();
    let spec = write_spec(directory.path(), units, quorum);
    let connection =
        ["--to".to_string(), address.to_string(), "--data".into(), data.to_str().unwrap().into()];
    let warm_up = write_spec(directory.path(), 2 * quorum as u64, quorum);
    run_cli(&["submit", &warm_up, "--wait"], &connection);
    let started = Instant::now();
    let submitted = run_cli(&["submit", &spec, "--wait"], &connection);
    let wait = started.elapsed();
    let job_id = submitted.lines().last().expect("the job id").trim().to_string();
    let started = Instant::now();
    let lines = run_cli(&["results", &job_id, "--jsonl"], &connection);
    let results = started.elapsed();
    check(&lines, units);
    (wait, results)
}

fn write_spec(directory: &Path, units: u64, quorum: u32) -> String {
    let path = directory.join(format!("sum-{units}-{quorum}.toml"));
    let text = format!(
        "name = \"sum\"\nmodule = \"sum\"\n[inputs]\nrange = {{ start = 0, end = {}, step = {STEP} }}\n\
         [verify]\nquorum = {quorum}\nmax_replicas = {}\n[limits]\nlease = \"10m\"\n",
        units * STEP,
        quorum + 2
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn run_cli(args: &[&str], connection: &[String]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(connection.iter().map(String::as_str));
    let output = wasmhive(&all);
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Every unit once, in order, with the right sum.
fn check(lines: &str, units: u64) {
    let mut count = 0;
    for (index, line) in lines.lines().enumerate() {
        let result: wasmhive_protocol::api::UnitResult = serde_json::from_str(line).expect("a result line");
        assert_eq!(result.unit, index as u64);
        let expected = String::from_utf8(task_kernels::sum::run(&input(result.unit)).unwrap()).unwrap();
        assert_eq!(result.output.as_deref(), Some(expected.as_str()), "unit {}", result.unit);
        count += 1;
    }
    assert_eq!(count, units, "one result per unit");
}
