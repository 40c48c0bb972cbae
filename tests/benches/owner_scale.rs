//! Scale of one owner (issue 15, item 5): a load generator that opens up to 10,000 worker
//! connections from this one process (each its own identity, from its own loopback
//! address) to an owner alone in a child process, and
//! (a) holds them idle: the owner's memory per connection at 1,000 and at all of them;
//! (b) keeps every one of them requesting tiny units (a `sum` job at quorum 1, answered
//!     with the right sums, computed natively here): units/s, the time from a request to
//!     its leases (median, 99th percentile, max), and each process's CPU time, which says
//!     what bounds the rate;
//! (c) the owner's memory once they are idle again after that load: an upper bound on what
//!     a session keeps once it has worked (it counts the finished job's state as well).
//! The descriptor limit is raised here, in the benchmark (soft to hard), not in the product.
//!
//! `cargo bench -p wasmhive-tests --bench owner_scale [-- CONNECTIONS [UNITS]]` (defaults
//! 10,000 and 200,000). Prints figures; asserts only that every answer is right.

use futures_util::SinkExt;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmhive_coordinator::server::{Coordinator, Listeners, serve};
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{Message, OutcomeReport};
use wasmhive_tests::grid::TempDir;
use wasmhive_tests::resident_bytes;
use wasmhive_tests::wire::{Socket, connect_as, next_reply, success_report};
use wasmhive_transport::frame_of;

const CONNECTIONS: usize = 10_000;
const UNITS: u64 = 200_000;
/// Connections opened at once.
const OPENING_AT_ONCE: usize = 64;
/// Phase (b) ends by this deadline even if units remain.
const LOAD_TIME_MAX: Duration = Duration::from_secs(180);

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|argument| argument == "--serve-owner") {
        return serve_owner_child(
            Path::new(&arguments[position + 1]),
            arguments[position + 2].parse().unwrap(),
        );
    }
    let numbers: Vec<u64> = arguments.iter().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let connections = numbers.first().map_or(CONNECTIONS, |&count| count as usize);
    let units = numbers.get(1).copied().unwrap_or(UNITS);
    let descriptors = raise_descriptor_limit();
    println!(
        "owner scale · {connections} worker connections · {units} tiny units · descriptors {descriptors} · {} cores",
        std::thread::available_parallelism().map_or(1, |cores| cores.get())
    );
    let directory = TempDir::new("bench-owner-scale");
    let mut owner = OwnerProcess::start(directory.path(), connections + 64);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sockets, base) = runtime.block_on(open_idle(&owner, connections));
    let sockets = runtime.block_on(load(&mut owner, sockets, units));
    runtime.block_on(idle_after_load(&owner, &sockets, base));
}

/// Phase (a): opens the connections, reading the owner's memory at 1,000 and at the end.
/// Returns them with the owner's resident bytes before they opened.
async fn open_idle(owner: &OwnerProcess, connections: usize) -> (Vec<Socket>, u64) {
    let mut sockets = vec![open_connection(owner.address, 0).await];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = resident_bytes(owner.pid());
    let started = Instant::now();
    let mut marks = vec![1_000.min(connections), connections];
    marks.dedup();
    for mark in marks {
        let opening: Vec<usize> = (sockets.len()..=mark).collect();
        for chunk in opening.chunks(OPENING_AT_ONCE) {
            let mut tasks = tokio::task::JoinSet::new();
            for &index in chunk {
                tasks.spawn(open_connection(owner.address, index));
            }
            sockets.extend(tasks.join_all().await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resident = resident_bytes(owner.pid());
        println!(
            "(a) {:>6} idle connections · owner RSS {:.1} → {:.1} MiB · {:.2} KiB per connection (target ≤ 8 KiB) · opened in {:.1} s",
            sockets.len() - 1,
            base as f64 / 1048576.0,
            resident as f64 / 1048576.0,
            resident.saturating_sub(base) as f64 / (sockets.len() - 1) as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        );
    }
    (sockets, base)
}

async fn open_connection(address: SocketAddr, index: usize) -> Socket {
    let mut secret = [7u8; 32];
    secret[..8].copy_from_slice(&(index as u64).to_le_bytes());
    connect_as(address, &PeerKey::from_secret(secret)).await
}

/// Phase (b): every connection asks for a unit, answers it, and asks again, until every
/// unit is answered (or the deadline).
async fn load(owner: &mut OwnerProcess, sockets: Vec<Socket>, units: u64) -> Vec<Socket> {
    let connections = sockets.len();
    let owner_cpu_before = owner.cpu_seconds();
    let own_cpu_before = own_cpu_seconds();
    owner.submit(units);
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + LOAD_TIME_MAX;
    let mut tasks = tokio::task::JoinSet::new();
    for socket in sockets {
        tasks.spawn(keep_requesting(socket, answered.clone(), units, deadline));
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut sockets = Vec::with_capacity(connections);
    let mut peak_resident = 0;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(result) => {
                    let (socket, times) = result.unwrap();
                    sockets.push(socket);
                    latencies.extend(times);
                }
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                peak_resident = peak_resident.max(resident_bytes(owner.pid()));
            }
        }
    }
    let elapsed = started.elapsed();
    let answered = answered.load(Ordering::Relaxed);
    latencies.sort_unstable();
    let at = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction) as usize] as f64 / 1000.0;
    println!(
        "(b) {connections} connections requesting: {answered} of {units} units in {:.1} s · {:.0} units/s",
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "    request → leases: median {:.1} ms · 99th percentile {:.1} ms · max {:.1} ms ({} requests answered with leases)",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
    println!(
        "    CPU seconds: owner {:.1} · load generator {:.1} (of {:.1} s × 2 cores) · owner peak RSS {:.1} MiB",
        owner.cpu_seconds() - owner_cpu_before,
        own_cpu_seconds() - own_cpu_before,
        elapsed.as_secs_f64(),
        peak_resident as f64 / 1048576.0
    );
    sockets
}

/// Phase (c): the same connections idle again after the load: what a session keeps once
/// it has worked (buffers sized by the frames it carried).
async fn idle_after_load(owner: &OwnerProcess, sockets: &[Socket], base: u64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resident = resident_bytes(owner.pid());
    println!(
        "(c) {:>6} connections idle again after the load · owner RSS {:.1} MiB · at most {:.2} KiB per connection (this counts what the owner keeps of the finished job too)",
        sockets.len(),
        resident as f64 / 1048576.0,
        resident.saturating_sub(base) as f64 / sockets.len() as f64 / 1024.0
    );
}

/// One connection's loop; returns its request-to-leases times in microseconds.
async fn keep_requesting(
    mut socket: Socket,
    answered: Arc<AtomicU64>,
    units: u64,
    deadline: Instant,
) -> (Socket, Vec<u32>) {
    let mut latencies = Vec::new();
    while answered.load(Ordering::Relaxed) < units && Instant::now() < deadline {
        let asked = Instant::now();
        if socket.send(frame_of(&Message::RequestWork { slots: 1 })).await.is_err() {
            break;
        }
        let reply = tokio::time::timeout(Duration::from_secs(5), next_reply(&mut socket)).await;
        let Ok(Some(Message::Leases { leases })) = reply else {
            // no_work (the job is spread thin, or done): ask again a little later.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        latencies.push(asked.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let outcomes: Vec<OutcomeReport> = leases
            .iter()
            .map(|lease| {
                let input = String::from_utf8_lossy(&lease.input);
                success_report(lease.lease_id, task_kernels::sum::run(&input).expect("a sum input"))
            })
            .collect();
        answered.fetch_add(outcomes.len() as u64, Ordering::Relaxed);
        if socket.send(frame_of(&Message::Outcomes { outcomes })).await.is_err() {
            break;
        }
        let _acknowledged = next_reply(&mut socket).await;
    }
    (socket, latencies)
}

/// The owner alone in a child process (so its memory and CPU time can be read from /proc),
/// driven through its stdin.
struct OwnerProcess {
    child: std::process::Child,
    address: SocketAddr,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl OwnerProcess {
    fn start(directory: &Path, connections_max: usize) -> OwnerProcess {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--serve-owner", directory.to_str().unwrap(), &connections_max.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().unwrap().unwrap().trim().parse().unwrap();
        OwnerProcess { child, address, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn submit(&mut self, units: u64) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{units}").unwrap();
        let answer = self.lines.next().unwrap().unwrap();
        assert!(answer.starts_with("submitted"), "{answer}");
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&self.pid().to_string())
    }
}

impl Drop for OwnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child mode: serves an owner that accepts `connections_max` connections; each line on
/// stdin (a unit count) submits a job of that many tiny units.
fn serve_owner_child(directory: &Path, connections_max: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let coordinator = Coordinator::open(directory).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let mut listeners = Listeners::new(listener, None);
        listeners.limits.total_max = connections_max;
        let submitter = coordinator.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let units: u64 = line.unwrap().trim().parse().unwrap();
                let job = submitter
                    .submit(wasmhive_tests::w1_job(1, units))
                    .map_err(|problem| problem.message)
                    .unwrap();
                println!("submitted {}", job.job_id);
            }
        });
        serve(listeners, coordinator, std::future::pending()).await.unwrap();
    });
}

/// Raises this process's descriptor limit (and so its children's) to the hard limit.
#[allow(unsafe_code, reason = "two libc calls on a struct of our own")]
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

fn own_cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// User + system CPU time of a process (`self` or a pid), from /proc (in clock ticks of
/// 1/100 s, USER_HZ on Linux).
fn cpu_seconds_of(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}
