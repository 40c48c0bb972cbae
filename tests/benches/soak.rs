//! Load and fault soak (issue 13): one owner in its own process and many worker connections
//! for a while, of which some disconnect, stall, send garbage or lie, at random. Reports
//! units decided, wrong results accepted (must be 0) and units failed, the owner's RSS over time (must stay
//! flat) and how long the owner takes to answer a status request (must stay under 1 s).
//! Beside RSS it prints the owner's heap as its allocator sees it (glibc `mallinfo2`: bytes
//! in use, and bytes free but kept), which tells a leak (in use grows) from fragmentation
//! (free-but-kept grows while in use stays flat).
//!
//! `cargo bench -p wasmhive-tests --bench soak [-- SECONDS [CONNECTIONS]]` (default 600 s
//! and 1,000 connections). Not part of CI: it prints figures and asserts only that no wrong
//! result was accepted.

use futures_util::{SinkExt, StreamExt};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_coordinator::server::{Coordinator, Listeners, serve};
use wasmhive_protocol::Message;
use wasmhive_protocol::api::{JobInputs, JobLimits, JobSubmission};
use wasmhive_protocol::identity::PeerKey;
use wasmhive_tests::grid::TempDir;
use wasmhive_tests::resident_bytes;
use wasmhive_tests::wire::{hello, next_reply, success_report, try_connect_from};

/// The job's units: more than 10 minutes of the soak decide.
const UNITS: u64 = 10_000_000;
/// Honest workers and liars pause this long between batches, so a 10-minute soak decides
/// a result set the bench can download and check in full.
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_secs(1);

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|argument| argument == "--serve-owner") {
        return serve_owner_child(Path::new(&arguments[position + 1]));
    }
    let numbers: Vec<u64> = arguments.iter().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(600);
    let connections = numbers.get(1).copied().unwrap_or(1000) as usize;
    let directory = TempDir::new("soak");
    // SOAK_OWNER_WRAPPER=heaptrack (say) runs the owner under a memory profiler.
    let wrapper = std::env::var("SOAK_OWNER_WRAPPER").ok();
    let mut command = match &wrapper {
        Some(wrapper) => {
            let mut command = std::process::Command::new(wrapper);
            command.arg(std::env::current_exe().unwrap());
            command
        }
        None => std::process::Command::new(std::env::current_exe().unwrap()),
    };
    let mut child = command
        .args(["--serve-owner", directory.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    // A wrapper may print lines of its own first.
    let address: SocketAddr = lines.find_map(|line| line.parse().ok()).expect("the owner's address");
    let job_id = lines.next().expect("the job id");
    let owner_pid = owner_pid(&directory, child.id());
    let token = std::fs::read_to_string(directory.path().join("token")).unwrap().trim().to_string();
    println!("soak: {connections} worker connections for {seconds} s against one owner (pid {owner_pid})");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> =
        (0..connections).map(|index| runtime.spawn(behave(address, index, stop.clone()))).collect();
    let started = Instant::now();
    let mut slowest_status = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10));
        let asked = Instant::now();
        let status = runtime.block_on(get(address, &token, &format!("/api/jobs/{job_id}")));
        let took = asked.elapsed();
        slowest_status = slowest_status.max(took);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        let (heap_in_use, heap_free) = heap_figures(directory.path());
        println!(
            "  {:>4} s · RSS {:>6.1} MiB · heap in use {:>6.1} MiB, free {:>6.1} MiB · status in {:>6.1} ms · verified {} · leased {}",
            started.elapsed().as_secs(),
            resident_bytes(owner_pid) as f64 / 1048576.0,
            heap_in_use as f64 / 1048576.0,
            heap_free as f64 / 1048576.0,
            took.as_secs_f64() * 1000.0,
            status["verified"],
            status["leased"]
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.abort();
    }
    let results = runtime.block_on(get(address, &token, &format!("/api/jobs/{job_id}/results")));
    let (mut decided, mut wrong, mut failed) = (0u64, 0u64, 0u64);
    for line in results.lines() {
        let Ok(result) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        decided += 1;
        if result["state"] != "success" {
            // A unit that failed (say, no two of its replicas agreed) is not a wrong result:
            // it is reported as failed. Counted apart, with the first reasons shown.
            failed += 1;
            if failed <= 3 {
                println!("failed: {line}");
            }
            continue;
        }
        let expected =
            task_kernels::sum::run(result["input"].as_str().unwrap_or_default()).unwrap_or_default();
        if result["output"].as_str().map(str::as_bytes) != Some(&expected[..]) {
            wrong += 1;
            if wrong <= 5 {
                println!("wrong: {line}");
            }
        }
    }
    println!(
        "units decided {decided} · wrong accepted {wrong} · failed {failed} · slowest status answer {:.1} ms",
        slowest_status.as_secs_f64() * 1000.0
    );
    // Asked to stop, the owner exits on its own (a profiler around it writes its data then).
    let _ = std::fs::write(directory.path().join("stop"), "");
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_secs(30) && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(wrong, 0, "a wrong result was accepted");
}

/// Worker `index`: 6 in 10 honest, then a liar (a lie of its own), one that disconnects
/// mid-batch, one that stalls on its leases, one that sends garbage; each reconnects after
/// a random pause.
async fn behave(address: SocketAddr, index: usize, stop: Arc<AtomicBool>) {
    let mut secret = [7u8; 32];
    secret[..8].copy_from_slice(&(index as u64).to_le_bytes());
    let key = PeerKey::from_secret(secret);
    let mut random = fastrand::Rng::with_seed(index as u64);
    // Each connection is a network of its own (owners count loopback addresses apart).
    let from = std::net::IpAddr::from([127, 1, (index / 250) as u8, (2 + index % 250) as u8]);
    while !stop.load(Ordering::Relaxed) {
        let Some(mut socket) = connect_with_hello(address, &key, from).await else {
            // A busy owner may time a handshake out: try again later, as a worker would.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let _ = match index % 10 {
            0..=5 => work(&mut socket, &|input| task_kernels::sum::run(input).unwrap_or_default(), 200).await,
            // Each liar tells its own lie: liars that agree are colluders (issue 14), not this soak.
            6 => work(&mut socket, &|_| format!("{}\n", 1_000_000_000 + index).into_bytes(), 200).await,
            7 => {
                // Takes leases and vanishes without a word.
                let _ = send(&mut socket, &Message::RequestWork { slots: 8 }).await;
                let _leases = socket.next().await;
                Ok(())
            }
            8 => {
                let _ = send(&mut socket, &Message::RequestWork { slots: 8 }).await;
                tokio::time::sleep(Duration::from_secs(random.u64(20..90))).await;
                Ok(())
            }
            _ => socket
                .send(Frame::Text("{\"type\":\"launch\"".into()))
                .await
                .map_err(|error| error.to_string()),
        };
        drop(socket);
        tokio::time::sleep(Duration::from_millis(random.u64(100..3000))).await;
    }
}

/// A session as `key` from `from`, after hello and welcome; `None` if any step failed.
async fn connect_with_hello(
    address: SocketAddr,
    key: &PeerKey,
    from: std::net::IpAddr,
) -> Option<wasmhive_tests::wire::Socket> {
    let mut socket = try_connect_from(address, Some(key), "/ws", Some(from)).await.ok()?;
    socket.send(hello()).await.ok()?;
    let Some(Ok(frame)) = socket.next().await else { return None };
    matches!(wasmhive_tests::wire::decode_frame(&frame), Some(Message::Welcome { .. })).then_some(socket)
}

/// Asks for work and answers every lease with `answer`, for `rounds` rounds.
async fn work(
    socket: &mut wasmhive_tests::wire::Socket,
    answer: &(dyn Fn(&str) -> Vec<u8> + Sync),
    rounds: usize,
) -> Result<(), String> {
    for _ in 0..rounds {
        send(socket, &Message::RequestWork { slots: 4 }).await?;
        let Some(Message::Leases { leases }) = next_reply(socket).await else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let outcomes = leases
            .iter()
            .map(|lease| success_report(lease.lease_id, answer(&String::from_utf8_lossy(&lease.input))))
            .collect();
        send(socket, &Message::Outcomes { outcomes }).await?;
        let _acknowledged = next_reply(socket).await;
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
    Ok(())
}

async fn send(socket: &mut wasmhive_tests::wire::Socket, message: &Message) -> Result<(), String> {
    socket.send(wasmhive_transport::frame_of(message)).await.map_err(|error| error.to_string())
}

/// `GET path` over TLS as HTTP/1.0 (the answer ends with the connection), its body.
async fn get(address: SocketAddr, token: &str, path: &str) -> String {
    let target = wasmhive_transport::PeerAddress::parse(&address.to_string()).unwrap();
    let Ok(mut stream) = wasmhive_transport::dial_tls(&target, None).await else { return String::new() };
    let request = format!("GET {path} HTTP/1.0\r\nHost: owner\r\nAuthorization: Bearer {token}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Child mode: the owner alone in its process (its memory is read from /proc), with a job
/// of tiny `sum` units at quorum 2 already submitted; prints its address and the job id.
fn serve_owner_child(directory: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        std::fs::write(directory.join("pid"), std::process::id().to_string()).unwrap();
        let heap_file = directory.join("heap");
        let stop_file = directory.join("stop");
        std::thread::spawn(move || {
            loop {
                if stop_file.exists() {
                    std::process::exit(0);
                }
                let _ = std::fs::write(&heap_file, {
                    let (in_use, free) = heap_now();
                    format!("{in_use} {free}")
                });
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let coordinator = Coordinator::open(directory).unwrap();
        let submission = JobSubmission {
            shared: Vec::new(),
            name: "soak".into(),
            task_name: "sum".into(),
            module: task_modules::SUM.to_vec(),
            args: Vec::new(),
            inputs: JobInputs::Range { start: 0, end: UNITS * 10, step: 10 },
            quorum: 2,
            max_replicas: 6,
            limits: JobLimits {
                fuel: None,
                memory_bytes: 16 << 20,
                output_bytes: 1 << 10,
                lease_ms: 30_000,
                timeout_ms: 10_000,
            },
            nan_canonicalization: true,
            verify: Default::default(),
            validator: None,
            reducer: None,
        };
        let job = coordinator.submit(submission).map_err(|problem| problem.message).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        println!("{}", job.job_id);
        // Every soak connection comes from 127.0.0.1: lift the per-address cap.
        let mut listeners = Listeners::new(listener, None);
        listeners.limits.per_address_max = 1 << 16;
        listeners.limits.total_max = 1 << 16;
        serve(listeners, coordinator, std::future::pending()).await.unwrap();
    });
}

/// The owner's pid (the child's own, or the one it runs under a wrapper), as it wrote it.
fn owner_pid(directory: &TempDir, child: u32) -> u32 {
    let written = std::fs::read_to_string(directory.path().join("pid")).unwrap_or_default();
    written.trim().parse().unwrap_or(child)
}

/// The owner child's last heap figures (bytes in use, bytes free but kept), written each second.
fn heap_figures(directory: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(directory.join("heap")).unwrap_or_default();
    let mut numbers = text.split_whitespace().map(|number| number.parse::<u64>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// The allocator's view, over all arenas and mmapped blocks: bytes handed out and not had
/// back, and bytes it holds free instead of returning them to the system.
#[allow(unsafe_code, reason = "one libc call that reads the allocator's own counters")]
fn heap_now() -> (u64, u64) {
    // SAFETY: mallinfo2 has no preconditions and returns a value; it shares no memory with us.
    let info = unsafe { libc::mallinfo2() };
    ((info.uordblks + info.hblkhd) as u64, info.fordblks as u64)
}
