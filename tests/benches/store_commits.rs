//! Store benchmark: the owner's SQLite writer alone, committing W1-like outcome batches.
//!
//! `cargo bench -p wasmhive-tests --bench store_commits [-- RUNS [UNITS [PER_TRANSACTION]]]`
//! commits UNITS accepted tiny units (quorum 1: a replica row, a result row, credit and
//! the worker's reputation per batch), PER_TRANSACTION outcomes per transaction (W1 commits
//! about 166), on a fresh store each run. Prints wall and CPU time per replica and per
//! transaction, median (min–max). The CPU is this thread's (`/proc/thread-self`), steadier
//! than wall time on a noisy machine. It asserts nothing about speed.

use std::time::Instant;
use wasmhive_coordinator::core::{
    CreditGrant, Network, OutcomeEffect, ReplicaRecord, Reputation, UnitDecision,
};
use wasmhive_coordinator::store::{OutcomeBatch, OutcomeToCommit, Store};
use wasmhive_protocol::{Hash, Status};
use wasmhive_tests::ThreadCpu;
use wasmhive_tests::grid::TempDir;

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let runs = numbers.first().copied().unwrap_or(5) as usize;
    let units = numbers.get(1).copied().unwrap_or(100_000);
    let per_transaction = numbers.get(2).copied().unwrap_or(166);
    println!("store commits: {units} units at quorum 1, {per_transaction} per transaction, {runs} runs");
    let worker_id = Hash::of(b"worker").to_hex();
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut transactions = 0;
    for _ in 0..runs {
        let directory = TempDir::new("bench-store");
        let mut store = Store::open(&directory.path().join("owner.db")).unwrap();
        let batches: Vec<OutcomeBatch> = (0..units)
            .collect::<Vec<u64>>()
            .chunks(per_transaction as usize)
            .map(|unit_indexes| w1_batch(&worker_id, unit_indexes))
            .collect();
        transactions = batches.len();
        let (started, cpu_before) = (Instant::now(), ThreadCpu::this_thread_s());
        for batch in &batches {
            store.commit_outcome_batches(&[batch]).unwrap();
        }
        wall.push(started.elapsed().as_secs_f64());
        cpu.push(ThreadCpu::this_thread_s() - cpu_before);
    }
    let per = |seconds: f64, count: u64| seconds * 1e6 / count as f64;
    for (name, mut times) in [("wall", wall), ("CPU", cpu)] {
        times.sort_by(f64::total_cmp);
        let (median, min, max) = (times[times.len() / 2], times[0], times[times.len() - 1]);
        println!(
            "  {name:<4} {median:.3} s ({min:.3}–{max:.3}) · {:.2} µs per replica ({:.2}–{:.2}) · {:.0} µs per transaction",
            per(median, units),
            per(min, units),
            per(max, units),
            per(median, transactions as u64)
        );
    }
}

/// One W1-like batch: each unit accepted on its first replica, credit to its worker.
fn w1_batch(worker_id: &str, unit_indexes: &[u64]) -> OutcomeBatch {
    let outcomes = unit_indexes
        .iter()
        .enumerate()
        .map(|(position, unit_index)| {
            let digest = Hash::of(&unit_index.to_le_bytes());
            let replica = ReplicaRecord {
                worker_id: worker_id.into(),
                network: Network::of_identity(worker_id),
                status: Status::Success,
                digest,
                fuel_used: None,
            };
            let effect = OutcomeEffect {
                job_id: "job-0123456789abcdef".into(),
                unit_index: *unit_index,
                replica: Some(replica),
                decision: Some(UnitDecision::Accepted { digest, status: Status::Success, replicas: 1 }),
                judgements: Vec::new(),
                unfinished: Vec::new(),
                credit: vec![CreditGrant { worker_id: worker_id.into(), amount: 100, validated: false }],
            };
            OutcomeToCommit {
                position,
                effect,
                lease_id: *unit_index + 1,
                output: b"4995000\n".to_vec(),
                output_blob: None,
                engine_class: "wasmtime-48.0.8 x86_64".into(),
                keep_output: false,
            }
        })
        .collect();
    let reputation = Reputation { valid: unit_indexes[0], ..Reputation::default() };
    let last = unit_indexes.last().copied().unwrap_or(0);
    OutcomeBatch {
        outcomes,
        next_fresh: vec![("job-0123456789abcdef".into(), last + 1)],
        reputations: vec![(worker_id.into(), reputation)],
    }
}
