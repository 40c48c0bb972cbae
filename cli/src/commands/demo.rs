//! `wasmhive demo`: a whole grid in one process on a temporary directory: a coordinator,
//! two workers, and a primes job with quorum 2. Shows progress and checks the verified
//! total against the known count.

use crate::commands::submit::progress_bar;
use crate::local::runtime;
use anyhow::{Context, bail};
use clap::Args;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wasmhive_coordinator::server::{Coordinator, Listeners, serve};
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::api::{JobInputs, JobLimits, JobSubmission};
use wasmhive_worker::{WorkerConfig, run_worker};

/// Primes below 10^7 (the demo's default range).
const PRIMES_BELOW_TEN_MILLION: u64 = 664_579;

#[derive(Args)]
pub struct DemoArgs {
    /// Count primes below this number.
    #[arg(long, default_value_t = 10_000_000)]
    end: u64,
    /// Numbers per unit.
    #[arg(long, default_value_t = 100_000)]
    step: u64,
}

pub fn demo(arguments: DemoArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(arguments.end > 0 && arguments.step > 0, "--end and --step must be above 0");
    let directory = std::env::temp_dir().join(format!("wasmhive-demo-{}", std::process::id()));
    let result = runtime()?.block_on(run_demo(&directory, &arguments));
    let _ = std::fs::remove_dir_all(&directory);
    result
}

async fn run_demo(directory: &Path, arguments: &DemoArgs) -> anyhow::Result<i32> {
    let coordinator = Coordinator::open(&directory.join("coordinator"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let listeners = Listeners::new(listener, None);
    let server = tokio::spawn(serve(listeners, coordinator.clone(), wait_for(stopped.clone())));
    let owner = format!("{address}#{}", coordinator.owner_id());
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    // Two replicas of a unit never come from one network, and the owner counts loopback
    // addresses as networks of their own: each worker connects from its own.
    let workers: Vec<_> = [("worker-a", [127, 0, 0, 2]), ("worker-b", [127, 0, 0, 3])]
        .iter()
        .map(|(name, loopback)| {
            let mut config = WorkerConfig::new(owner.clone(), directory.join(name));
            config.cpus = (cores / 2).max(1);
            config.local_address = Some(std::net::IpAddr::from(*loopback));
            tokio::spawn(run_worker(config, wait_for(stopped.clone())))
        })
        .collect();
    eprintln!(
        "wasmhive demo: coordinator on {address}, 2 workers × {} cores, data in {}",
        (cores / 2).max(1),
        directory.display()
    );
    let submission = primes_job(arguments.end, arguments.step);
    let job = coordinator.submit(submission).map_err(|problem| anyhow::anyhow!(problem.message))?;
    eprintln!("job {}: primes below {} in {} units, quorum 2", job.job_id, arguments.end, job.units);
    let started = Instant::now();
    let outcome = watch_job(&coordinator, &job.job_id).await;
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = server.await;
    let (verified, failed) = outcome?;
    let total = verified_total(&coordinator, &job.job_id)?;
    report(arguments.end, total, verified, failed, elapsed)
}

fn primes_job(end: u64, step: u64) -> JobSubmission {
    JobSubmission {
        shared: Vec::new(),
        name: "primes-demo".into(),
        task_name: "primes".into(),
        module: task_modules::PRIMES.to_vec(),
        args: Vec::new(),
        inputs: JobInputs::Range { start: 0, end, step },
        quorum: 2,
        max_replicas: 5,
        limits: JobLimits {
            fuel: None,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 10,
            lease_ms: 120_000,
            timeout_ms: 60_000,
        },
        nan_canonicalization: true,
        verify: Default::default(),
        validator: None,
        reducer: None,
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Draws progress until the job ends; returns (verified, failed).
async fn watch_job(coordinator: &Arc<Coordinator>, job_id: &str) -> anyhow::Result<(u64, u64)> {
    let status = coordinator.status(job_id).context("the job vanished")?;
    let bar = progress_bar(status.units);
    loop {
        let status = coordinator.status(job_id).context("the job vanished")?;
        bar.set_position(status.verified + status.failed);
        bar.set_message(format!("{} verified · {} leased", status.verified, status.leased));
        if status.state != JobState::Running {
            bar.finish();
            return Ok((status.verified, status.failed));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verified_total(coordinator: &Coordinator, job_id: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut from_unit = 0;
    loop {
        let page = coordinator
            .results_page(job_id, from_unit, 1000)
            .map_err(|problem| anyhow::anyhow!(problem.message))?;
        let Some((_, last)) = page.last() else { return Ok(total) };
        from_unit = last.unit_index + 1;
        for (_, result) in &page {
            let text = String::from_utf8_lossy(&result.output);
            total += text
                .trim()
                .parse::<u64>()
                .with_context(|| format!("unit {} output {text:?}", result.unit_index))?;
        }
    }
}

fn report(end: u64, total: u64, verified: u64, failed: u64, elapsed: Duration) -> anyhow::Result<i32> {
    eprintln!(
        "{verified} units verified by 2 matching replicas on distinct workers, {failed} failed, in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!("verified total: {total} primes below {end}");
    let expected =
        if end == 10_000_000 { PRIMES_BELOW_TEN_MILLION } else { task_kernels::primes::count_primes(0, end) };
    if total != expected {
        bail!("the verified total {total} differs from the known count {expected}");
    }
    println!("check: matches the known count {expected} ✓");
    Ok(0)
}
