//! Issue 16's data workload (`grid -- data`): 1 GiB of 4 MiB inputs through the grid,
//! against native rayon and the sandbox alone.

use super::{FinishedJob, InProcessOwner, finish};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmhive_protocol::api::{BlobInput, JobInputs};
use wasmhive_tests::grid::TempDir;
use wasmhive_tests::{ThreadCpu, bench_job};

/// Units of a data workload: 256 inputs of 4 MiB (1 GiB).
const DATA_UNITS: usize = 256;
const DATA_UNIT_BYTES: usize = 4 << 20;

/// Issue 16's data workload: 256 units of 4 MiB, each digested by `kernel` (`sha256`:
/// the first 8 bytes of its SHA-256; `checksum`: a cheap multiply-add, so moving the data
/// is what shows), `runs` times: native rayon, the sandbox alone reading the same files
/// from disk on a rayon pool, and the grid at quorum 1 and 2 (inputs uploaded to the
/// owner beforehand, fetched by the workers in verified pieces during the job).
pub fn data(runtime: &tokio::runtime::Runtime, cores: usize, kernel: &str, runs: usize) {
    let directory = TempDir::new("bench-data");
    let paths = write_data_files(directory.path());
    let native_kernel = |path: &Path| {
        let file = std::fs::File::open(path).unwrap();
        match kernel {
            "sha256" => task_kernels::digest::sha256_prefix(file).unwrap(),
            _ => task_kernels::digest::checksum(file).unwrap(),
        }
    };
    let expected: Vec<String> = paths.par_iter().map(|path| native_kernel(path)).collect();
    println!(
        "data workload: {DATA_UNITS} units of {} MiB ({} MiB), `digest {kernel}`, {runs} runs, median (min–max)",
        DATA_UNIT_BYTES >> 20,
        (DATA_UNITS * DATA_UNIT_BYTES) >> 20
    );
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut grid_cpu: [Vec<ThreadCpu>; 2] = Default::default();
    for _ in 0..runs {
        let started = Instant::now();
        let outputs: Vec<String> = paths.par_iter().map(|path| native_kernel(path)).collect();
        times[0].push(started.elapsed().as_secs_f64());
        assert_eq!(outputs, expected);
        times[1].push(sandbox_data_time(&paths, kernel, &expected).as_secs_f64());
        for quorum in [1, 2] {
            let (time, cpu) = runtime.block_on(run_data_job(&paths, kernel, &expected, quorum, cores));
            times[1 + quorum as usize].push(time.as_secs_f64());
            grid_cpu[quorum as usize - 1].push(cpu);
        }
    }
    let [native, sandbox, quorum_1, quorum_2] = times.map(|mut values| {
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[0], values[values.len() - 1])
    });
    let line = |name: &str, (median, min, max): (f64, f64, f64)| {
        let rate = (DATA_UNITS * DATA_UNIT_BYTES) as f64 / median / (1 << 20) as f64;
        println!(
            "  {name:<22} {median:>7.2} s ({min:.2}–{max:.2}) {rate:>7.0} MiB/s · {:.2}× sandbox only · {:.2}× native",
            median / sandbox.0,
            median / native.0
        );
    };
    line("native rayon", native);
    line("sandbox only, rayon", sandbox);
    line("grid, quorum 1", quorum_1);
    line("grid, quorum 2", quorum_2);
    for (quorum, cpu) in grid_cpu.iter_mut().enumerate() {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let units = median(cpu.iter().map(|cpu| cpu.units_s).collect());
        let others = median(cpu.iter().map(|cpu| cpu.others_s).collect());
        println!(
            "  grid, quorum {} CPU: unit threads {units:.2} s, every other thread (moving the data, the owner) {others:.2} s (medians)",
            quorum + 1
        );
    }
}

/// `DATA_UNITS` files of `DATA_UNIT_BYTES` each, distinct bytes.
fn write_data_files(directory: &Path) -> Vec<std::path::PathBuf> {
    (0..DATA_UNITS)
        .into_par_iter()
        .map(|unit| {
            // xorshift64: distinct, incompressible-looking bytes per unit.
            let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (unit as u64 + 1);
            let bytes: Vec<u8> = (0..DATA_UNIT_BYTES / 8)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            let path = directory.join(format!("{unit:03}.bin"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// Every unit through the sandbox alone, its input read from its file as it runs.
fn sandbox_data_time(paths: &[std::path::PathBuf], kernel: &str, expected: &[String]) -> Duration {
    let sandbox = wasmhive_sandbox::Sandbox::new(wasmhive_sandbox::SandboxConfig::default());
    let module = wasmhive_tests::task_module("digest");
    let limits = wasmhive_sandbox::Limits::default();
    let run = |(path, expected): (&std::path::PathBuf, &String)| {
        let file = Arc::new(std::fs::File::open(path).unwrap());
        let input = wasmhive_sandbox::FileSource::Disk { file, size: DATA_UNIT_BYTES as u64 };
        let files = wasmhive_tests::UnitFiles { input, shared: &[] };
        let outcome = wasmhive_tests::run_unit_with_files(&sandbox, &module, files, &[kernel], &limits, 0);
        assert_eq!(String::from_utf8_lossy(&outcome.stdout), *expected);
    };
    run((&paths[0], &expected[0]));
    let started = Instant::now();
    paths.par_iter().zip(expected).for_each(run);
    started.elapsed()
}

/// One data job on a fresh owner (inputs uploaded first, not timed) and `quorum` workers
/// of `cores` threads each: submission to completion, every output checked, and the CPU
/// the process used meanwhile.
async fn run_data_job(
    paths: &[std::path::PathBuf],
    kernel: &str,
    expected: &[String],
    quorum: u32,
    cores: usize,
) -> (Duration, ThreadCpu) {
    let directory = TempDir::new("bench-data-grid");
    let owner = InProcessOwner::start(&directory).await;
    let coordinator = owner.coordinator.clone();
    let blobs: Vec<BlobInput> = paths
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).unwrap().len();
            let hash = coordinator.blob_store().import(std::fs::File::open(path).unwrap(), size).unwrap();
            BlobInput { name: path.file_name().unwrap().to_string_lossy().into(), hash, size }
        })
        .collect();
    let workers = owner.start_workers(&directory, quorum, cores);
    let mut submission = bench_job("digest", task_modules::DIGEST, JobInputs::Blobs { blobs }, quorum);
    submission.args = vec![kernel.to_string()];
    submission.limits.timeout_ms = 120_000;
    let mut warm_up = submission.clone();
    warm_up.inputs = JobInputs::Range { start: 0, end: 2 * quorum as u64, step: 1 };
    finish(&coordinator, warm_up).await;
    let FinishedJob { job_id, elapsed, cpu, .. } = finish(&coordinator, submission).await;
    let results =
        coordinator.results_page(&job_id, 0, DATA_UNITS as u32).map_err(|problem| problem.message).unwrap();
    let outputs: Vec<String> =
        results.iter().map(|(_, result)| String::from_utf8_lossy(&result.output).into_owned()).collect();
    assert_eq!(outputs, expected, "every unit's digest");
    let _ = owner.stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    owner.stop().await;
    (elapsed, cpu)
}
