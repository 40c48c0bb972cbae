//! Distribution (issue 16, item 7): one shared blob of F bytes needed by N peers, from an
//! owner whose uplink is `--upload-rate U_S`, every other peer at `--upload-rate U_I`.
//! Reports the bytes the owner sent and the time from submission to the last peer holding
//! the blob, against the bounds: every peer fetching from the owner alone can take no less
//! than N·F/U_S (measured too: N plain workers, which fetch from their owner only); a
//! swarm no less than max(F/U_S, N·F/(U_S + N·U_I)) (the owner sends each byte at least
//! once; all uplinks together carry N copies; downloads are not capped here).
//!
//! Processes of the release build on loopback addresses (127.0.0.1 the owner, 127.0.0.2…
//! the peers): `cargo build --profile bench -p wasmhive` first.
//! `cargo bench -p wasmhive-tests --bench swarm_distribution [-- RUNS [MIB [PEERS [U_S_MIB [U_I_MIB]]]]]`

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmhive_tests::grid::{
    Running, TempDir, blob_fetches, start_peer_with, start_worker_joining, wait_until, wasmhive,
};

const PIECE: u64 = 256 << 10;

struct Setting {
    blob_mib: u64,
    peers: usize,
    owner_rate_mib: u64,
    peer_rate_mib: u64,
}

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(5);
    let setting = Setting {
        blob_mib: numbers.get(1).copied().unwrap_or(256),
        peers: numbers.get(2).copied().unwrap_or(8) as usize,
        owner_rate_mib: numbers.get(3).copied().unwrap_or(32),
        peer_rate_mib: numbers.get(4).copied().unwrap_or(32),
    };
    let Setting { blob_mib: f, peers: n, owner_rate_mib: us, peer_rate_mib: ui } = setting;
    println!(
        "distribution · {} · {f} MiB shared blob to {n} peers · owner --upload-rate {us} MiB/s, peers {ui} MiB/s · {runs} runs",
        wasmhive_tests::wasmhive_binary().display()
    );
    let client_server_bound = (n as u64 * f) as f64 / us as f64;
    let swarm_bound = (f as f64 / us as f64).max((n as u64 * f) as f64 / (us + n as u64 * ui) as f64);
    println!(
        "bounds: owner alone N·F/U_S = {client_server_bound:.1} s · swarm max(F/U_S, N·F/(U_S+ΣU_I)) = {swarm_bound:.1} s"
    );
    for swarm in [true, false] {
        let mut times = Vec::new();
        let mut owner_copies = Vec::new();
        for run in 1..=runs {
            let (time, from_owner, from_peers) = one_run(&setting, swarm);
            let copies = (from_owner * PIECE) as f64 / (f << 20) as f64;
            println!(
                "  {} run {run}: {:.2} s · owner sent {copies:.2} copies ({} MiB) · peers sent {} MiB",
                if swarm { "swarm" } else { "owner alone" },
                time.as_secs_f64(),
                (from_owner * PIECE) >> 20,
                (from_peers * PIECE) >> 20
            );
            times.push(time.as_secs_f64());
            owner_copies.push(copies);
        }
        let bound = if swarm { swarm_bound } else { client_server_bound };
        let (time, copies) = (summary(&mut times), summary(&mut owner_copies));
        println!(
            "{}: {:.2} s (min {:.2}, max {:.2}) = {:.2}× its bound · owner sent {:.2} copies (min {:.2}, max {:.2})",
            if swarm { "swarm" } else { "owner alone" },
            time.0,
            time.1,
            time.2,
            time.0 / bound,
            copies.0,
            copies.1,
            copies.2
        );
    }
}

/// Median, min, max.
fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

/// One owner and N peers (or N plain workers): seconds from the job's submission to the
/// last of them holding the blob, and the pieces they got from the owner and from peers.
fn one_run(setting: &Setting, swarm: bool) -> (Duration, u64, u64) {
    let directory = TempDir::new("bench-swarm");
    let owner_rate = format!("{} MiB", setting.owner_rate_mib);
    let owner_data = directory.path().join("owner");
    let (_owner, owner) =
        start_peer_with(None, &owner_data, "127.0.0.1:0", None, &["--upload-rate", &owner_rate]);
    let peer_rate = format!("{} MiB", setting.peer_rate_mib);
    let fetchers: Vec<Running> = (0..setting.peers)
        .map(|index| {
            let data = directory.path().join(format!("fetcher-{index}"));
            if swarm {
                let listen = format!("127.0.0.{}:0", index + 2);
                start_peer_with(None, &data, &listen, Some(owner), &["--upload-rate", &peer_rate]).0
            } else {
                start_worker_joining(&owner.to_string(), &data, 1, &[])
            }
        })
        .collect();
    if swarm {
        wait_until(Duration::from_secs(60), "every peer to know every other", || {
            known_peer_count(owner, &owner_data) >= setting.peers
        });
        std::thread::sleep(Duration::from_secs(3));
    }
    let spec = write_spec(directory.path(), setting);
    let connection =
        ["--to".to_string(), owner.to_string(), "--data".into(), owner_data.to_str().unwrap().into()];
    let output =
        wasmhive(&[&["submit", spec.as_str()], &connection.each_ref().map(String::as_str)[..]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let started = Instant::now();
    let mut counts = vec![None; fetchers.len()];
    while counts.iter().any(Option::is_none) {
        assert!(started.elapsed() < Duration::from_secs(1200), "the blob did not reach every fetcher");
        for (fetcher, count) in fetchers.iter().zip(&mut counts) {
            if count.is_none() {
                *count = fetched(fetcher);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let counts: Vec<(u64, u64)> = counts.into_iter().map(Option::unwrap).collect();
    (elapsed, counts.iter().map(|count| count.0).sum(), counts.iter().map(|count| count.1).sum())
}

/// (pieces from the owner, pieces from peers) once the fetcher logged `blob fetched`.
fn fetched(fetcher: &Running) -> Option<(u64, u64)> {
    blob_fetches(&fetcher.log_text()).first().copied()
}

fn known_peer_count(owner: SocketAddr, data: &Path) -> usize {
    let output = wasmhive(&["peers", "--json", "--to", &owner.to_string(), "--data", data.to_str().unwrap()]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).map_or(0, |peers| peers.len())
}

/// A job every fetcher runs a replica of (quorum N + 1: the owner and each fetcher), whose
/// units read nothing of the blob (this measures moving it).
fn write_spec(directory: &Path, setting: &Setting) -> String {
    let blob: Vec<u8> = (0..setting.blob_mib << 20).map(|index| (index * 131 % 251) as u8).collect();
    std::fs::write(directory.join("model.bin"), blob).unwrap();
    let quorum = setting.peers + 1;
    let path = directory.join("job.toml");
    let text = format!(
        "name = \"distribution\"\nmodule = \"sum\"\n[inputs]\nrange = {{ start = 0, end = 4000, step = 1000 }}\n\
         shared = [\"model.bin\"]\n[verify]\nquorum = {quorum}\nmax_replicas = {}\n[limits]\nlease = \"30m\"\n",
        quorum + 2
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}
