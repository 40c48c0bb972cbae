//! Grid benchmark: W1 (10,000 tiny `sum` units, each summing 1,000 integers; `w1 N` for N
//! units) and W2 (64 `primes` units of ~0.3 s native
//! each) through a coordinator and workers over WebSockets on loopback, at quorum 1 and 2,
//! against the native rayon baseline of the same kernels measured in the same run (W1's
//! workers are known to the owner, see [`Workers`]; jobs up to 100,000 units run again by
//! newcomers); and the
//! coordinator's memory per idle worker connection with 1,000 connections open; connection
//! set-up times (TCP, TLS handshake, session start). Everything runs over TLS 1.3.
//!
//! `cargo bench -p wasmhive-tests --bench grid [-- w1 [UNITS] [q1|q2]|w2|peers|handshake|connections|data [sha256|checksum] [RUNS]]`
//! (`q1`, `q2`: W1 at that quorum only, e.g. to profile one)
//! (`data`: issue 16's data workload, 256 units of 4 MiB, only when named; it also prints the
//! CPU time of unit threads and of all others, steadier than wall time on a noisy machine).
//! Prints figures; asserts only that every result is right.

use rayon::prelude::*;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wasmhive_coordinator::core::LeaseLimits;
use wasmhive_coordinator::server::{Coordinator, Listeners, serve};
use wasmhive_peer::{PeerConfig, RunningPeer, start_peer};
use wasmhive_protocol::api::{JobInputs, JobSubmission};
use wasmhive_protocol::identity::PeerKey;
use wasmhive_tests::grid::TempDir;
use wasmhive_tests::{ThreadCpu, W1_STEP, bench_job, resident_bytes, w1_job};
use wasmhive_worker::{WorkerConfig, run_worker};

#[path = "grid/data_workload.rs"]
mod data_workload;

const W1_UNITS: u64 = 10_000;
const W2_UNITS: u64 = 64;
/// W2 units: [W2_START + k·W2_STEP, +W2_STEP), about 0.3 s each natively on this machine.
const W2_START: u64 = 30_000_000;
const W2_STEP: u64 = 720_000;
const IDLE_CONNECTIONS: usize = 1000;
/// W1's sandbox-only time is the median of this many runs: from one run to the next on
/// this machine it ranged from 119,000 to 180,000 units/s, and it is every ratio's divisor.
const SANDBOX_ONLY_RUNS: usize = 3;
/// W1 jobs of at most this many units are also run by newcomers (slow start); in longer
/// ones the first tens of milliseconds do not show.
const NEWCOMER_UNITS_MAX: u64 = 100_000;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|argument| argument == "--serve-coordinator") {
        return serve_coordinator_child(Path::new(&arguments[position + 1]));
    }
    let section =
        arguments.iter().skip(1).find(|argument| !argument.starts_with('-')).cloned().unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    println!("wasmhive grid benchmark · {cores} cores · coordinator + workers over WebSockets on loopback");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if section.is_empty() || section == "w1" {
        let units = arguments.iter().skip(2).find_map(|argument| argument.parse().ok()).unwrap_or(W1_UNITS);
        let quorums: &[u32] = match arguments.iter().find(|argument| argument.starts_with('q')) {
            Some(quorum) if quorum == "q1" => &[1],
            Some(quorum) if quorum == "q2" => &[2],
            _ => &[1, 2],
        };
        w1(&runtime, units, quorums, cores);
    }
    if section.is_empty() || section == "w2" {
        let one_unit = native_time(|| drop(task_kernels::primes::run(&w2_input(W2_UNITS - 1))));
        let native = native_time(|| {
            (0..W2_UNITS).into_par_iter().for_each(|unit| drop(task_kernels::primes::run(&w2_input(unit))))
        });
        println!("W2: {W2_UNITS} `primes` units (last unit alone natively: {:.2} s)", one_unit.as_secs_f64());
        for quorum in [1, 2] {
            let grid =
                runtime.block_on(run_grid_job(w2_job(quorum), quorum, cores, Workers::Newcomers)).elapsed;
            report(quorum, W2_UNITS, ("grid", grid), ("native rayon", native));
        }
    }
    if section == "data" {
        let kernel =
            if arguments.iter().any(|argument| argument == "checksum") { "checksum" } else { "sha256" };
        let runs = arguments.iter().skip(2).find_map(|argument| argument.parse().ok()).unwrap_or(5);
        data_workload::data(&runtime, cores, kernel, runs);
    }
    if section.is_empty() || section == "peers" {
        let single =
            runtime.block_on(run_grid_job(w1_job(1, W1_UNITS), 1, cores, Workers::Newcomers)).elapsed;
        println!(
            "W1 on 4 peers (1 core each, gossip mesh, submitted to one peer) vs the single coordinator + 1 worker:"
        );
        for quorum in [1, 2] {
            let on_peers = runtime.block_on(run_peer_job(w1_job(quorum, W1_UNITS), 4));
            report(quorum, W1_UNITS, ("4 peers", on_peers), ("single coordinator (quorum 1)", single));
        }
    }
    if section.is_empty() || section == "handshake" {
        runtime.block_on(handshake_times());
    }
    if section.is_empty() || section == "connections" {
        idle_connection_memory(&runtime);
    }
}

const HANDSHAKES: usize = 200;

/// Connection set-up to a coordinator on loopback, each step timed on its own: TCP
/// connect alone (the baseline), the TLS 1.3 handshake proving both keys, and a worker's
/// whole session start (TLS, WebSocket upgrade, hello, welcome).
async fn handshake_times() {
    let directory = TempDir::new("bench-handshake");
    let owner = InProcessOwner::start(&directory).await;
    let (coordinator, address) = (owner.coordinator.clone(), owner.address);
    let pinned = wasmhive_transport::PeerAddress::pinned(&address.to_string(), coordinator.owner_id());
    let worker_key = PeerKey::from_secret([5; 32]);
    let identity = wasmhive_transport::TlsIdentity::new(&worker_key);
    let mut tcp = Vec::new();
    let mut tls = Vec::new();
    let mut session = Vec::new();
    for _ in 0..HANDSHAKES {
        let started = Instant::now();
        drop(tokio::net::TcpStream::connect(address).await.unwrap());
        tcp.push(started.elapsed());
        let started = Instant::now();
        drop(wasmhive_transport::dial_tls(&pinned, Some(&identity)).await.unwrap());
        tls.push(started.elapsed());
        let started = Instant::now();
        drop(wasmhive_tests::wire::connect_as(address, &worker_key).await);
        session.push(started.elapsed());
    }
    println!("connection set-up to a coordinator on loopback, {HANDSHAKES} each, median (min–max):");
    for (name, times) in [
        ("TCP connect (baseline)", tcp),
        ("TLS 1.3 handshake, both keys proven", tls),
        ("worker session start (TLS + WebSocket + hello/welcome)", session),
    ] {
        println!("  {name:<56} {}", median_min_max_ms(times));
    }
    owner.stop().await;
}

fn median_min_max_ms(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |time: Duration| time.as_secs_f64() * 1000.0;
    format!("{:.3} ms ({:.3}–{:.3})", ms(times[times.len() / 2]), ms(times[0]), ms(times[times.len() - 1]))
}

/// W1 at quorum 1 and 2 against native rayon and the sandbox alone on a rayon pool (the
/// same units, the same cores), both measured in this run.
fn w1(runtime: &tokio::runtime::Runtime, units: u64, quorums: &[u32], cores: usize) {
    let native = native_time(|| {
        (0..units).into_par_iter().for_each(|unit| drop(task_kernels::sum::run(&w1_input(unit))))
    });
    let sandbox_only = sandbox_only_time(units);
    println!("W1: {units} `sum` units (tiny: {W1_STEP} integers each)");
    let sandbox_rate = units as f64 / sandbox_only.as_secs_f64();
    println!(
        "  sandbox only, rayon: {:>8.3} s {sandbox_rate:>9.0} units/s (median of {SANDBOX_ONLY_RUNS})",
        sandbox_only.as_secs_f64()
    );
    for &quorum in quorums {
        let FinishedJob { elapsed: grid, first_lease, commits, cpu, .. } =
            runtime.block_on(run_grid_job(w1_job(quorum, units), quorum, cores, Workers::Known));
        report(quorum, units, ("grid", grid), ("native rayon", native));
        println!(
            "            grid / sandbox-only rate {:.2} (replicas: {:.2}) · submit to first lease {:.1} ms · \
             {} outcome batches in {} store transactions (fsyncs)",
            units as f64 / grid.as_secs_f64() / sandbox_rate,
            (units * quorum as u64) as f64 / grid.as_secs_f64() / sandbox_rate,
            first_lease.as_secs_f64() * 1000.0,
            commits.1,
            commits.0
        );
        println!(
            "            CPU: unit threads {:.2} s, store writer {:.2} s, every other thread {:.2} s",
            cpu.units_s, cpu.store_writer_s, cpu.others_s
        );
        if units <= NEWCOMER_UNITS_MAX {
            let newcomers =
                runtime.block_on(run_grid_job(w1_job(quorum, units), quorum, cores, Workers::Newcomers));
            println!(
                "            newcomers (8 open leases at first): grid {:.3} s {:.0} units/s · grid / sandbox-only rate {:.2}",
                newcomers.elapsed.as_secs_f64(),
                units as f64 / newcomers.elapsed.as_secs_f64(),
                units as f64 / newcomers.elapsed.as_secs_f64() / sandbox_rate
            );
        }
    }
}

/// Runs every W1 unit in the sandbox on the global rayon pool, checking each output.
fn sandbox_only_time(units: u64) -> Duration {
    let sandbox = wasmhive_sandbox::Sandbox::new(wasmhive_sandbox::SandboxConfig::default());
    let module = wasmhive_tests::task_module("sum");
    let limits = wasmhive_sandbox::Limits::default();
    let run = |unit: u64| {
        let input = w1_input(unit);
        let outcome = wasmhive_tests::run_unit(&sandbox, &module, input.as_bytes(), &[], &limits);
        assert_eq!(outcome.stdout, task_kernels::sum::run(&input).unwrap());
    };
    (0..100).for_each(run);
    let mut times: Vec<Duration> = (0..SANDBOX_ONLY_RUNS)
        .map(|_| {
            let started = Instant::now();
            (0..units).into_par_iter().for_each(run);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn w1_input(unit: u64) -> String {
    format!("{} {}", unit * W1_STEP, unit * W1_STEP + W1_STEP)
}

fn w2_input(unit: u64) -> String {
    let start = W2_START + unit * W2_STEP;
    format!("{start} {}", start + W2_STEP)
}

fn w2_job(quorum: u32) -> JobSubmission {
    let end = W2_START + W2_UNITS * W2_STEP;
    bench_job(
        "primes",
        task_modules::PRIMES,
        JobInputs::Range { start: W2_START, end, step: W2_STEP },
        quorum,
    )
}

fn native_time(mut run: impl FnMut()) -> Duration {
    run();
    let started = Instant::now();
    run();
    started.elapsed()
}

/// One line: the measured run, its baseline, and their time ratio.
fn report(quorum: u32, units: u64, measured: (&str, Duration), baseline: (&str, Duration)) {
    let rate = |time: Duration| units as f64 / time.as_secs_f64();
    println!(
        "  quorum {quorum}: {} {:>8.3} s {:>9.0} units/s · {} {:>7.3} s {:>9.0} units/s · ratio {:.2}x",
        measured.0,
        measured.1.as_secs_f64(),
        rate(measured.1),
        baseline.0,
        baseline.1.as_secs_f64(),
        rate(baseline.1),
        measured.1.as_secs_f64() / baseline.1.as_secs_f64()
    );
}

/// Who runs a measured job, as the owner sees them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workers {
    /// New identities: each may hold 8 open leases at first, one more per outcome it
    /// returns (the owner's slow start against hoarders, DESIGN §11), so a short job's
    /// first tens of milliseconds run on a few hundred leases.
    Newcomers,
    /// Workers that have already returned work enough to hold their whole allowance
    /// (`LeaseLimits::OWNER.per_core` per core): the steady state.
    Known,
}

impl Workers {
    /// Units of a warm-up job, run just before the measured one by the same workers: it
    /// also compiles the module.
    fn warm_up_units(self, quorum: u32, cores: usize) -> u64 {
        match self {
            Workers::Newcomers => 2 * quorum as u64,
            Workers::Known => u64::from(LeaseLimits::OWNER.per_core) * cores as u64,
        }
    }
}

/// Runs one job on a fresh coordinator with `quorum` workers of `cores` threads each (a
/// unit's replicas need distinct workers), after a warm-up job that makes them `workers`.
async fn run_grid_job(submission: JobSubmission, quorum: u32, cores: usize, workers: Workers) -> FinishedJob {
    let directory = TempDir::new("bench-grid");
    let owner = InProcessOwner::start(&directory).await;
    let coordinator = owner.coordinator.clone();
    let mut warm_up = submission.clone();
    warm_up.inputs = JobInputs::Range { start: 0, end: workers.warm_up_units(quorum, cores), step: 1 };
    let workers = owner.start_workers(&directory, quorum, cores);
    finish(&coordinator, warm_up).await;
    let finished = finish(&coordinator, submission).await;
    let _ = owner.stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    owner.stop().await;
    finished
}

/// Runs one job on `count` in-process peers that found each other by gossip; returns
/// submit-to-completion time after a warm-up job.
async fn run_peer_job(submission: JobSubmission, count: usize) -> Duration {
    let directory = TempDir::new("bench-peers");
    let mut peers: Vec<RunningPeer> = Vec::new();
    for index in 0..count {
        let join = peers.first().and_then(|first| first.address).map(|address| address.to_string());
        let config = PeerConfig::new(
            Some("127.0.0.1:0".into()),
            join.into_iter().collect(),
            1,
            directory.path().join(format!("peer-{index}")),
        );
        peers.push(start_peer(config).await.unwrap());
    }
    let owner = peers[0].coordinator.clone();
    let mut warm_up = submission.clone();
    warm_up.inputs = JobInputs::Range { start: 0, end: 8, step: 1 };
    finish(&owner, warm_up).await;
    let elapsed = finish(&owner, submission).await.elapsed;
    for peer in peers {
        peer.stop().await;
    }
    elapsed
}

/// A benchmark job run to its end.
struct FinishedJob {
    job_id: String,
    /// Submission to the job's end.
    elapsed: Duration,
    /// Submission to its first lease.
    first_lease: Duration,
    /// Store transactions (fsyncs) and the outcome batches they committed.
    commits: (u64, u64),
    /// CPU this process used meanwhile.
    cpu: ThreadCpu,
}

async fn finish(coordinator: &Arc<Coordinator>, submission: JobSubmission) -> FinishedJob {
    let commits_before = coordinator.outcome_commits();
    let (started, cpu_before) = (Instant::now(), ThreadCpu::now());
    let job = coordinator.submit(submission).map_err(|problem| problem.message).unwrap();
    // Woken by the job's end: polling `status` every 2 ms took a sixth of the CPU samples
    // (perf) from the grid it measures.
    coordinator.job_ended(&job.job_id).await;
    let (elapsed, cpu) = (started.elapsed(), ThreadCpu::now().since(cpu_before));
    let status = coordinator.status(&job.job_id).unwrap();
    assert_eq!(status.verified, status.units, "every unit verified: {status:?}");
    let first_lease = coordinator.first_lease_at(&job.job_id).expect("a lease was built");
    let commits_after = coordinator.outcome_commits();
    let commits = (commits_after.0 - commits_before.0, commits_after.1 - commits_before.1);
    let first_lease = first_lease.duration_since(started);
    FinishedJob { job_id: job.job_id, elapsed, first_lease, commits, cpu }
}

/// A coordinator served in this process on a loopback port.
struct InProcessOwner {
    coordinator: Arc<Coordinator>,
    address: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcessOwner {
    async fn start(directory: &TempDir) -> InProcessOwner {
        let coordinator = Coordinator::open(&directory.path().join("coordinator")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let listeners = Listeners::new(listener, None);
        let server = tokio::spawn(serve(listeners, coordinator.clone(), wait_for(stopped.clone())));
        InProcessOwner { coordinator, address, stop, stopped, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
    }

    /// `count` workers of `cores` threads, each from its own loopback address (its own
    /// network: replicas of a unit never share one), until the owner stops.
    fn start_workers(
        &self,
        directory: &TempDir,
        count: u32,
        cores: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<(), wasmhive_worker::WorkerError>>> {
        let join = format!("{}#{}", self.address, self.coordinator.owner_id());
        (0..count)
            .map(|index| {
                let mut config =
                    WorkerConfig::new(join.clone(), directory.path().join(format!("worker-{index}")));
                config.cpus = cores;
                config.local_address = Some(std::net::IpAddr::from([127, 0, 0, 2 + index as u8]));
                tokio::spawn(run_worker(config, wait_for(self.stopped.clone())))
            })
            .collect()
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Child mode: a coordinator alone in its process, so its memory can be read from /proc.
fn serve_coordinator_child(directory: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let coordinator = Coordinator::open(directory).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        // All 1,000 test connections come from 127.0.0.1: lift the per-address cap.
        let mut listeners = Listeners::new(listener, None);
        listeners.limits.per_address_max = IDLE_CONNECTIONS + 16;
        serve(listeners, coordinator, std::future::pending()).await.unwrap();
    });
}

fn idle_connection_memory(runtime: &tokio::runtime::Runtime) {
    let directory = TempDir::new("bench-connections");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--serve-coordinator", directory.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address: std::net::SocketAddr = line.trim().parse().unwrap();
    let sockets = runtime.block_on(async {
        let mut sockets = vec![open_idle_connection(address, 0).await];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = resident_bytes(child.id());
        for index in 1..=IDLE_CONNECTIONS {
            sockets.push(open_idle_connection(address, index).await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = resident_bytes(child.id());
        let per_connection = after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64;
        println!(
            "idle worker connections: {IDLE_CONNECTIONS} open · coordinator RSS {:.1} MiB → {:.1} MiB · {:.1} KiB per connection (target ≤ 16 KiB)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per_connection / 1024.0
        );
        sockets
    });
    drop(sockets);
    let _ = child.kill();
    let _ = child.wait();
}

async fn open_idle_connection(address: std::net::SocketAddr, index: usize) -> wasmhive_tests::wire::Socket {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(index as u64).to_le_bytes());
    wasmhive_tests::wire::connect_as(address, &PeerKey::from_secret(secret)).await
}
