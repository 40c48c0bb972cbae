//! Helpers shared by wasmhive's integration tests and benchmarks.

pub mod grid;
pub mod netns;
pub mod scripted_owner;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;
use wasmhive_sandbox::{FileSource, Limits, ModuleBytes, Outcome, Sandbox, SharedFile, UnitRequest};

/// Job id every test unit runs under unless a test says otherwise.
pub const TEST_JOB: &str = "test-job";

/// Runs one unit with the usual test settings (NaN canonicalisation on, job time 0).
pub fn run_unit(
    sandbox: &Sandbox,
    module: &ModuleBytes,
    input: &[u8],
    args: &[&str],
    limits: &Limits,
) -> Outcome {
    run_unit_as(sandbox, module, input, args, limits, 0)
}

/// [`run_unit`] with a chosen unit index (the second half of the random seed).
pub fn run_unit_as(
    sandbox: &Sandbox,
    module: &ModuleBytes,
    input: &[u8],
    args: &[&str],
    limits: &Limits,
    unit_index: u64,
) -> Outcome {
    let files = UnitFiles { input: FileSource::Memory(input.into()), shared: &[] };
    run_unit_with_files(sandbox, module, files, args, limits, unit_index)
}

/// What a test unit reads: its input and the job's shared files (Task ABI v2).
pub struct UnitFiles<'a> {
    pub input: FileSource,
    pub shared: &'a [SharedFile],
}

/// [`run_unit_as`] with the input and shared files given as files.
pub fn run_unit_with_files(
    sandbox: &Sandbox,
    module: &ModuleBytes,
    files: UnitFiles<'_>,
    args: &[&str],
    limits: &Limits,
    unit_index: u64,
) -> Outcome {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let request = UnitRequest {
        module,
        input: files.input,
        shared: files.shared,
        task_name: "task",
        args: &args,
        job_id: TEST_JOB,
        unit_index,
        job_time: Duration::ZERO,
        limits,
        nan_canonicalization: true,
    };
    sandbox.run(&request).expect("the test limits are valid")
}

/// The embedded task module `name`.
pub fn task_module(name: &str) -> ModuleBytes {
    ModuleBytes::new(task_modules::by_name(name).unwrap_or_else(|| panic!("no task module {name}")))
}

/// The `wasmhive` binary of this build. `scripts/test` builds it before the tests run.
pub fn wasmhive_binary() -> PathBuf {
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_executable.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let binary = profile_dir.join("wasmhive");
    let build = if profile_dir.ends_with("release") {
        "`cargo build --profile bench -p wasmhive`"
    } else {
        "`cargo build -p wasmhive` (scripts/test does this)"
    };
    assert!(binary.exists(), "{} is missing: build it with {build} and run again", binary.display());
    binary
}

/// A process's resident memory in bytes, from /proc (0 when it has gone).
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// CPU seconds (user + system) this process's threads have used, summed by kind: unit
/// threads (`wasmhive-unit-*`, running tasks), the owner's store writer, and all others
/// (the owner's and workers' runtimes and blocking pools). Threads that exited are not
/// counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCpu {
    pub units_s: f64,
    pub store_writer_s: f64,
    pub others_s: f64,
}

impl ThreadCpu {
    pub fn now() -> ThreadCpu {
        let mut cpu = ThreadCpu::default();
        let Ok(threads) = std::fs::read_dir("/proc/self/task") else { return cpu };
        for thread in threads.flatten() {
            let Ok(stat) = std::fs::read_to_string(thread.path().join("stat")) else { continue };
            let Some((name, seconds)) = thread_stat_cpu(&stat) else { continue };
            let kind = if name.starts_with("wasmhive-unit-") {
                &mut cpu.units_s
            } else if name.starts_with("store-writer") {
                &mut cpu.store_writer_s
            } else {
                &mut cpu.others_s
            };
            *kind += seconds;
        }
        cpu
    }

    /// CPU seconds the calling thread has used.
    pub fn this_thread_s() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        thread_stat_cpu(&stat).map_or(0.0, |(_, seconds)| seconds)
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            units_s: self.units_s - earlier.units_s,
            store_writer_s: self.store_writer_s - earlier.store_writer_s,
            others_s: self.others_s - earlier.others_s,
        }
    }
}

/// A thread's name and CPU seconds (user + system) from its `/proc/.../stat` line
/// (`pid (name) state ...`: the name may hold spaces, so fields count from its last `)`).
fn thread_stat_cpu(stat: &str) -> Option<(&str, f64)> {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let (name_part, fields) = stat.rsplit_once(')')?;
    let name = name_part.split_once('(')?.1;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|at| fields.get(*at)?.parse::<f64>().ok()).sum();
    Some((name, ticks / ticks_per_second))
}

/// Integers each tiny W1 benchmark unit sums.
pub const W1_STEP: u64 = 1_000;

/// A benchmark job: `name`'s module over `inputs` at `quorum`, 64 MiB and 1 KiB of output
/// per unit, the default lease and guard.
pub fn bench_job(
    name: &str,
    module: &[u8],
    inputs: wasmhive_protocol::api::JobInputs,
    quorum: u32,
) -> wasmhive_protocol::api::JobSubmission {
    wasmhive_protocol::api::JobSubmission {
        shared: Vec::new(),
        name: name.into(),
        task_name: name.into(),
        module: module.to_vec(),
        args: Vec::new(),
        inputs,
        quorum,
        max_replicas: quorum + 2,
        limits: wasmhive_protocol::api::JobLimits {
            memory_bytes: 64 << 20,
            output_bytes: 1 << 10,
            ..Default::default()
        },
        nan_canonicalization: true,
        verify: Default::default(),
        validator: None,
        reducer: None,
    }
}

/// W1: `units` tiny `sum` units of [`W1_STEP`] integers each.
pub fn w1_job(quorum: u32, units: u64) -> wasmhive_protocol::api::JobSubmission {
    let inputs = wasmhive_protocol::api::JobInputs::Range { start: 0, end: units * W1_STEP, step: W1_STEP };
    bench_job("sum", task_modules::SUM, inputs, quorum)
}
