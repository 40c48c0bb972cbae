//! `wasmhive worker`: donate CPU to an owner; `wasmhive worker status|pause|resume` control
//! a running worker or peer on this machine (through its local control endpoint).

use crate::local::{runtime, shutdown_signal};
use crate::settings::{Settings, VolunteerArgs};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::time::Duration;
use wasmhive_protocol::api::WorkerControlStatus;
use wasmhive_worker::control::{ControlFile, control_file_path};
use wasmhive_worker::{WorkerConfig, run_worker};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    action: Option<WorkerAction>,
    /// The owner: HOST:PORT#PEERID (its key pinned), or HOST:PORT (its key trusted on first
    /// use and recorded in DATA/known_hosts) ([worker] join).
    #[arg(long)]
    join: Option<String>,
    /// How long running units may take to finish on Ctrl-C or SIGTERM ([worker] grace).
    #[arg(long, value_name = "DURATION")]
    grace: Option<String>,
    #[command(flatten)]
    volunteer: VolunteerArgs,
}

#[derive(Subcommand)]
enum WorkerAction {
    /// What the worker (or peer) running on this machine is doing, and why it is paused.
    Status(ControlArgs),
    /// Suspend running units and take no new ones until `resume`.
    Pause(ControlArgs),
    /// Undo `pause`.
    Resume(ControlArgs),
}

#[derive(Args)]
struct ControlArgs {
    /// The running worker's or peer's data directory.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn worker(arguments: WorkerArgs) -> anyhow::Result<i32> {
    match arguments.action {
        Some(WorkerAction::Status(control)) => control_request(&control, "GET", "/status"),
        Some(WorkerAction::Pause(control)) => control_request(&control, "POST", "/pause"),
        Some(WorkerAction::Resume(control)) => control_request(&control, "POST", "/resume"),
        None => run(arguments),
    }
}

fn run(arguments: WorkerArgs) -> anyhow::Result<i32> {
    let mut settings = Settings::resolve(&arguments.volunteer, "worker")?;
    let join = settings.role_string("join", arguments.join, "")?;
    let grace = settings.role_duration("grace", arguments.grace, Duration::from_secs(30))?;
    if arguments.volunteer.print_config {
        settings.print();
        return Ok(0);
    }
    anyhow::ensure!(
        !join.is_empty(),
        "no owner to work for: pass --join HOST:PORT, or set `join` under [worker] in the config file"
    );
    let mut config = WorkerConfig::new(join, settings.data_dir.clone());
    config.cpus = settings.cpus;
    config.grace = grace;
    config.module_cache_bytes_max = settings.cache_bytes;
    config.volunteer = settings.volunteer;
    config.local_address = arguments.volunteer.bind_address;
    config.upload_bytes_per_second = settings.upload_bytes_per_second;
    config.blob_cache_bytes_max = settings.blob_cache_bytes;
    runtime()?.block_on(run_worker(config, shutdown_signal()))?;
    Ok(0)
}

fn control_request(arguments: &ControlArgs, method: &str, path: &str) -> anyhow::Result<i32> {
    let data_dir = crate::local::data_dir(arguments.data.clone());
    let file_path = control_file_path(&data_dir);
    let text = std::fs::read_to_string(&file_path).with_context(|| {
        format!(
            "no running worker or peer uses {} (no {}); start one, or pass its --data",
            data_dir.display(),
            file_path.display()
        )
    })?;
    let control: ControlFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a control file", file_path.display()))?;
    let status: WorkerControlStatus = crate::client::Client::local(&control.address, &control.token)?
        .request(method, path)
        .with_context(|| {
            format!("the worker's control endpoint {} did not answer; is it still running?", control.address)
        })?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status);
    }
    Ok(0)
}

fn print_status(status: &WorkerControlStatus) {
    let state =
        if status.paused { format!("paused: {}", status.pause_reasons.join("; ")) } else { "running".into() };
    println!("peer        {}", status.peer_id);
    println!("state       {state}");
    if let Some(why) = &status.why_no_work {
        println!("no work     {why}");
    }
    println!("uptime      {} s", status.uptime_s);
    println!("cpus        {} at {}% each", status.cpus, status.cpu_percent);
    println!("running     {} units", status.running_units);
    println!(
        "done        {} units ({:.1} per minute), {} fuel",
        status.units_done, status.units_per_minute, status.fuel_used
    );
    let busy =
        status.pause_when_busy_percent.map_or("off".to_string(), |busy| format!("pause above {busy}%"));
    println!("other CPU   {:.0}% of the machine ({busy})", status.others_cpu_percent);
    println!("schedule    {}", status.schedule);
    println!(
        "memory      {} of {} MiB reserved",
        status.memory_reserved_bytes >> 20,
        status.memory_bytes_max >> 20
    );
    for credit in &status.credit {
        println!("credit      {} replicas, {} credit from {}", credit.replicas, credit.credit, credit.owner);
    }
    if status.credit.is_empty() {
        println!("credit      none reported yet");
    }
}
