//! The `wasmhive` command.

mod commands;
mod units;

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
    /// Run one unit of a task module locally, exactly as the grid's sandbox runs it.
    Run(commands::run::RunArgs),
}

fn main() {
    let cli = Cli::parse();
    let exit_code = match cli.command {
        Command::Run(arguments) => commands::run::run(arguments),
    };
    match exit_code {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
