//! The `wasmhive` command.

mod client;
mod commands;
mod local;
mod settings;

use clap::{Parser, Subcommand};

/// wasmhive: donate spare CPU, or run batch jobs of WebAssembly tasks on volunteers' machines.
#[derive(Parser)]
#[command(name = "wasmhive", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local grid (a coordinator and two workers) and run a verified primes job.
    Demo(commands::demo::DemoArgs),
    /// Own jobs and run units in one process; find other peers by gossip.
    Peer(commands::peer::PeerArgs),
    /// List the peers a peer knows, with spare slots.
    Peers(commands::peers::PeersArgs),
    /// Own jobs: accept submissions, hand out units to workers, verify their outcomes.
    Coordinator(commands::coordinator::CoordinatorArgs),
    /// Donate CPU: run units for a coordinator.
    Worker(commands::worker::WorkerArgs),
    /// Submit a job spec (TOML); prints the job id on the last line of stdout.
    Submit(commands::submit::SubmitArgs),
    /// Show the progress of one job, or of all jobs.
    Status(commands::status::StatusArgs),
    /// Print or save a job's verified results.
    Results(commands::results::ResultsArgs),
    /// Show the validated work (credit) each worker did, per job.
    Credit(commands::credit::CreditArgs),
    /// Show the reputation of the workers that ran an owner's units.
    Reputation(commands::reputation::ReputationArgs),
    /// Stop a job.
    Cancel(commands::cancel::CancelArgs),
    /// Simulate parts of the grid with the real code and no sockets (e.g. `simulate mesh`).
    Simulate(commands::simulate::SimulateArgs),
    /// Run one unit of a task module locally, exactly as the grid's sandbox runs it.
    Run(commands::run::RunArgs),
    /// Print the dashboard's address (with the token) for a browser.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Create a task project (Rust, C, Zig, Go, AssemblyScript or WAT) that builds and runs.
    New(commands::new::NewArgs),
    /// Write a built-in task module (.wasm) to a file (for the JSON API and the Python client).
    Module(commands::module::ModuleArgs),
}

fn main() {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Demo(_)
            | Command::Run(_)
            | Command::Submit(_)
            | Command::Simulate(_)
            | Command::New(_)
            | Command::Module(_)
    );
    local::init_logging(if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Demo(arguments) => commands::demo::demo(arguments),
        Command::Peer(arguments) => commands::peer::peer(arguments),
        Command::Peers(arguments) => commands::peers::peers(arguments),
        Command::Coordinator(arguments) => commands::coordinator::coordinator(arguments),
        Command::Worker(arguments) => commands::worker::worker(arguments),
        Command::Submit(arguments) => commands::submit::submit(arguments),
        Command::Status(arguments) => commands::status::status(arguments),
        Command::Results(arguments) => commands::results::results(arguments),
        Command::Cancel(arguments) => commands::cancel::cancel(arguments),
        Command::Credit(arguments) => commands::credit::credit(arguments),
        Command::Reputation(arguments) => commands::reputation::reputation(arguments),
        Command::Run(arguments) => commands::run::run(arguments),
        Command::Simulate(arguments) => commands::simulate::simulate(arguments),
        Command::New(arguments) => commands::new::new(arguments),
        Command::Module(arguments) => commands::module::module(arguments),
        Command::Dashboard(arguments) => commands::dashboard::dashboard(arguments),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
