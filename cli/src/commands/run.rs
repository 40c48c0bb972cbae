//! `wasmhive run`: one unit, locally, through the same sandbox the grid uses.
//!
//! stdout gets the unit's output bytes; stderr gets the outcome (status, fuel, digest,
//! time) and the task's own stderr; the exit code reflects the status.

use anyhow::{Context, bail};
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;
use wasmhive_coordinator::human_units::{parse_byte_size, parse_duration};
use wasmhive_sandbox::{FileSource, Limits, ModuleBytes, Sandbox, SandboxConfig, SharedFile, UnitRequest};

#[derive(Args)]
pub struct RunArgs {
    /// A task module (.wasm file), or the name of a built-in task (`primes`, `heat`, ...;
    /// an unknown name lists them).
    module: String,
    /// Read the unit's input from FILE, or from stdin with `-`.
    #[arg(long, value_name = "FILE|-", conflicts_with = "input_text")]
    input: Option<String>,
    /// Use TEXT as the unit's input.
    #[arg(long, value_name = "TEXT")]
    input_text: Option<String>,
    /// A file the unit reads as `/shared/NAME` (its file name; repeatable), as a job's
    /// `[inputs] shared` files are on the grid.
    #[arg(long = "shared", value_name = "FILE")]
    shared: Vec<PathBuf>,
    /// An argument for the task (repeatable); argv\[0\] is the module's name.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Fuel budget; metering is off without it.
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit, e.g. `256 MiB`.
    #[arg(long, value_parser = parse_byte_size)]
    memory: Option<u64>,
    /// Stdout limit, e.g. `1 MiB`.
    #[arg(long, value_parser = parse_byte_size)]
    output: Option<u64>,
    /// Wasm stack limit, e.g. `512 KiB`.
    #[arg(long, value_parser = parse_byte_size)]
    stack: Option<u64>,
    /// Wall-clock guard, e.g. `10s`.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Job id the unit sees (WASMHIVE_JOB; seeds random_get).
    #[arg(long, default_value = "local")]
    job: String,
    /// Unit index the unit sees (WASMHIVE_UNIT; seeds random_get).
    #[arg(long, default_value_t = 0)]
    unit: u64,
    /// Seconds since 1970 that the unit's wall clock reads.
    #[arg(long, default_value_t = 0)]
    job_time: u64,
    /// Turn NaN canonicalisation off (faster floats; outputs may then differ across ISAs).
    #[arg(long)]
    no_nan_canonicalization: bool,
}

pub fn run(arguments: RunArgs) -> anyhow::Result<i32> {
    let (task_name, module_bytes) = load_module(&arguments.module)?;
    let input = read_input(&arguments)?;
    let limits = limits_from(&arguments)?;
    let shared = open_shared_files(&arguments.shared)?;
    let module = ModuleBytes::new(module_bytes);
    let sandbox = Sandbox::new(SandboxConfig::default());
    let request = UnitRequest {
        module: &module,
        input: FileSource::Memory(input.into()),
        shared: &shared,
        task_name: &task_name,
        args: &arguments.args,
        job_id: &arguments.job,
        unit_index: arguments.unit,
        job_time: Duration::from_secs(arguments.job_time),
        limits: &limits,
        nan_canonicalization: !arguments.no_nan_canonicalization,
    };
    let outcome = sandbox.run(&request)?;
    std::io::stdout().write_all(&outcome.stdout).context("writing the output to stdout")?;
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(&outcome.stderr)?;
    let fuel = outcome.fuel_used.map_or("off".to_string(), |fuel| fuel.to_string());
    writeln!(
        stderr,
        "wasmhive run: status: {} · fuel: {fuel} · digest: {} · time: {:.3} ms · module: {}",
        outcome.status,
        outcome.digest,
        outcome.wall_time.as_secs_f64() * 1000.0,
        module.hash.short()
    )?;
    if !outcome.status.is_success() {
        writeln!(stderr, "wasmhive run: {}", outcome.message)?;
    }
    Ok(outcome.status.process_exit_code())
}

fn load_module(module: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let path = PathBuf::from(module);
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading the module {}", path.display()))?;
        if !bytes.starts_with(b"\0asm") {
            bail!(
                "{} is not a WebAssembly module (it does not start with \\0asm); build the task for wasm32-wasip1",
                path.display()
            );
        }
        let name = path.file_stem().map_or("task".into(), |stem| stem.to_string_lossy().into_owned());
        return Ok((name, bytes));
    }
    match task_modules::by_name(module) {
        Some(bytes) if module != task_modules::TEST_GUEST => Ok((module.to_string(), bytes.to_vec())),
        _ => bail!(
            "no module file {module:?}; give the path of a .wasm file or a built-in task: {}",
            task_modules::task_names().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn read_input(arguments: &RunArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(text) = &arguments.input_text {
        return Ok(text.clone().into_bytes());
    }
    match arguments.input.as_deref() {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).context("reading the input from stdin")?;
            Ok(input)
        }
        Some(file) => std::fs::read(file).with_context(|| format!("reading the input file {file}")),
    }
}

fn limits_from(arguments: &RunArgs) -> anyhow::Result<Limits> {
    let mut limits = Limits { fuel: arguments.fuel, ..Limits::default() };
    if let Some(memory) = arguments.memory {
        limits.memory_bytes_max = memory;
    }
    if let Some(output) = arguments.output {
        limits.stdout_bytes_max = usize::try_from(output).context("--output is too large")?;
    }
    if let Some(stack) = arguments.stack {
        limits.wasm_stack_bytes_max = usize::try_from(stack).context("--stack is too large")?;
    }
    if let Some(timeout) = arguments.timeout {
        limits.wall_time_max = timeout;
    }
    limits.validate().map_err(|reason| anyhow::anyhow!("{reason}"))?;
    Ok(limits)
}

/// The `--shared` files, opened (read by the unit as it runs).
fn open_shared_files(paths: &[PathBuf]) -> anyhow::Result<Vec<SharedFile>> {
    let mut shared = Vec::new();
    for path in paths {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let file =
            std::fs::File::open(path).with_context(|| format!("opening --shared {}", path.display()))?;
        let size = file.metadata().with_context(|| format!("reading --shared {}", path.display()))?.len();
        shared.push(SharedFile { name, source: FileSource::Disk { file: file.into(), size } });
    }
    let names_and_sizes = shared.iter().map(|file| (file.name.as_str(), file.source.size()));
    wasmhive_protocol::api::check_shared_files(names_and_sizes)
        .map_err(|problem| anyhow::anyhow!("--shared: {problem}"))?;
    Ok(shared)
}
