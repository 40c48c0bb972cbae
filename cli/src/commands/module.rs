//! `wasmhive module NAME --out FILE`: writes a built-in task module (.wasm) to a file, for
//! clients that submit modules themselves (the Python client, the JSON API).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ModuleArgs {
    /// A built-in task (`primes`, `mandelbrot`, `sum`, ...).
    name: String,
    /// Where to write it.
    #[arg(long)]
    out: PathBuf,
}

pub fn module(arguments: ModuleArgs) -> anyhow::Result<i32> {
    let Some(bytes) = task_modules::by_name(&arguments.name) else {
        let names: Vec<&str> = task_modules::task_names().collect();
        anyhow::bail!("no built-in task {:?}; the built-in tasks are {}", arguments.name, names.join(", "));
    };
    std::fs::write(&arguments.out, bytes).with_context(|| format!("writing {}", arguments.out.display()))?;
    eprintln!("wrote {} ({} bytes)", arguments.out.display(), bytes.len());
    Ok(0)
}
