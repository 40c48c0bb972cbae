//! Core benchmark: the owner's sans-IO scheduling core alone, deciding W1-like units.
//!
//! `cargo bench -p wasmhive-tests --bench core_decisions [-- RUNS [UNITS]]` runs a job of
//! UNITS units (default 200,000) at quorum 1 and 2 with the job defaults' decoys, two
//! workers of 2 cores each on their own networks asking for up to 256 leases and reporting
//! every lease at once, on a fresh core each run. Prints the CPU of this thread per replica,
//! median (min–max) over RUNS runs (default 5): the core's share of a replica's cost at the
//! owner, with no network, store or sandbox, steadier than any grid figure on a noisy
//! machine. It asserts only that every unit was decided.

use wasmhive_coordinator::core::{Core, JobPolicy, Network, NetworkPrefixes, ResumeState};
use wasmhive_protocol::{Hash, Status};
use wasmhive_tests::ThreadCpu;

const JOB: &str = "job-0123456789abcdef";

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(5).max(1) as usize;
    let units = numbers.get(1).copied().unwrap_or(200_000);
    println!("core decisions: {units} units, 2 workers, {runs} runs, CPU of this thread per replica");
    for quorum in [1, 2] {
        let mut per_replica: Vec<f64> = (0..runs).map(|_| run(quorum, units)).collect();
        per_replica.sort_by(f64::total_cmp);
        println!(
            "  quorum {quorum}: {:.2} µs per replica ({:.2}–{:.2})",
            per_replica[runs / 2],
            per_replica[0],
            per_replica[runs - 1]
        );
    }
}

/// One job run to its end; returns CPU microseconds per replica.
fn run(quorum: u32, units: u64) -> f64 {
    let mut core = Core::with_first_lease_id(1, 7);
    let policy = JobPolicy { decoy_per_mille: 20, ..JobPolicy::fixed(quorum, quorum + 2, 60_000) };
    core.add_job(JOB, units, policy, ResumeState::default());
    let workers: Vec<(String, Network)> = (0..2u8)
        .map(|index| {
            let worker_id = Hash::of(&[index]).to_hex();
            let address = std::net::IpAddr::from([127, 0, index + 2, 1]);
            (worker_id, Network::of_address(address, NetworkPrefixes::default()))
        })
        .collect();
    for (worker_id, _) in &workers {
        core.set_worker_cores(worker_id, 2);
    }
    let (mut replicas, mut now_ms) = (0u64, 0u64);
    let cpu_before = ThreadCpu::this_thread_s();
    while !core.progress(JOB).is_some_and(|progress| progress.is_complete()) {
        for (worker_id, network) in &workers {
            for grant in core.request_work(worker_id, network, 256, now_ms) {
                let digest = digest_of(grant.unit_index);
                let reported =
                    core.report_outcome(worker_id, grant.lease_id, &Status::Success, digest, now_ms);
                replicas += u64::from(reported.is_ok_and(|effect| effect.replica.is_some()));
            }
        }
        now_ms += 1;
        assert!(now_ms < units * 16, "the job ends: {:?}", core.progress(JOB));
    }
    let cpu = ThreadCpu::this_thread_s() - cpu_before;
    cpu * 1e6 / replicas as f64
}

/// Every replica's honest digest (not hashed: the bench measures the core, not blake3).
fn digest_of(unit_index: u64) -> Hash {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&unit_index.to_le_bytes());
    Hash(bytes)
}
