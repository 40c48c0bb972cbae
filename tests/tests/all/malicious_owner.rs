//! A scripted malicious owner against a real `wasmhive worker` (issue 13, item 2): the
//! worker keeps its own ceilings whatever a lease says, takes only the leases it asked for,
//! and keeps only the blobs it wanted.

use std::time::{Duration, Instant};
use wasmhive_protocol::api::JobLimits;
use wasmhive_protocol::{Lease, Message, Status, encode_blob};
use wasmhive_tests::grid::{TempDir, start_worker_joining};
use wasmhive_tests::scripted_owner::{ScriptedLease, ScriptedOwner, lease};
use wasmhive_tests::wire::key;

/// Limits no honest owner sends (the owner checks them at submission; a worker cannot
/// rely on that).
fn unbounded() -> JobLimits {
    JobLimits {
        fuel: None,
        memory_bytes: 64 << 20,
        output_bytes: u64::MAX,
        lease_ms: 60_000,
        timeout_ms: u64::MAX,
    }
}

#[test]
fn a_lease_with_unbounded_output_is_handed_back_and_unasked_leases_are_refused() {
    let directory = TempDir::new("malicious-owner-output");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(90)).await;
        let _worker = start_worker_joining(&owner.join_address(), &directory.path().join("worker"), 1, &[]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { slots }) = session.receive().await else { panic!("a request") };
        let flood = lease(1, task_modules::PROBE, &["stdout-flood"], unbounded());
        let unasked: Vec<_> =
            (2..=slots as u64 + 3).map(|id| lease(id, task_modules::PROBE, &["echo"], unbounded())).collect();
        let mut batch = vec![flood];
        batch.extend(unasked);
        session.send_leases(batch).await;
        let mut returned = Vec::new();
        while returned.len() < slots as usize + 3 {
            match session.receive_other_than_requests().await {
                Some(Message::ReturnLeases { lease_ids }) => returned.extend(lease_ids),
                other => panic!("expected leases handed back, got {other:?}"),
            }
        }
        returned.sort();
        assert_eq!(returned, (1..=slots as u64 + 3).collect::<Vec<_>>(), "every lease handed back unrun");
    });
}

#[test]
fn a_lease_without_a_time_limit_stops_at_the_workers_own() {
    let directory = TempDir::new("malicious-owner-time");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(91)).await;
        let data = directory.path().join("worker");
        let _worker = start_worker_joining(&owner.join_address(), &data, 1, &["--unit-time-max", "2s"]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        let limits = JobLimits { output_bytes: 1 << 10, ..unbounded() };
        session.send_leases(vec![lease(1, task_modules::PROBE, &["loop"], limits)]).await;
        let Some(Message::Want { hash }) = session.receive_other_than_requests().await else {
            panic!("a want")
        };
        session.send_binary(encode_blob(task_modules::PROBE)).await;
        let started = Instant::now();
        let Some(Message::Outcomes { outcomes }) = session.receive_other_than_requests().await else {
            panic!("an outcome")
        };
        assert_eq!(hash, wasmhive_protocol::Hash::of(task_modules::PROBE));
        assert_eq!(outcomes[0].status, Status::HostTimeout);
        assert!(started.elapsed() < Duration::from_secs(20), "stopped after {:?}", started.elapsed());
    });
}

#[test]
fn a_blob_the_worker_did_not_ask_for_ends_the_session_and_is_not_kept() {
    let directory = TempDir::new("malicious-owner-blob");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = directory.path().join("worker");
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(92)).await;
        let worker = start_worker_joining(&owner.join_address(), &data, 1, &[]);
        let mut session = owner.next_session().await;
        let sent = Instant::now();
        session.send_binary(encode_blob(&vec![7u8; 1 << 20])).await;
        let ended = session.receive_other_than_requests().await;
        assert!(ended.is_none() && sent.elapsed() < Duration::from_secs(10), "the worker hung up: {ended:?}");
        let back = tokio::time::timeout(Duration::from_secs(20), owner.next_session()).await;
        assert!(back.is_ok(), "the worker comes back:\n{}", worker.log_text());
    });
    let modules = std::fs::read_dir(data.join("modules")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(modules, 0, "nothing unasked was written to disk");
}

#[test]
fn a_lease_whose_job_terms_were_never_sent_ends_the_session_with_the_reason() {
    let directory = TempDir::new("malicious-owner-terms");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(93)).await;
        let worker = start_worker_joining(&owner.join_address(), &directory.path().join("worker"), 1, &[]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        let orphan = Lease { lease_id: 1, terms_id: 9, unit_index: 0, input: Vec::new(), input_blob: None };
        session.send(&Message::Leases { leases: vec![orphan] }).await;
        let ended = session.receive_other_than_requests().await;
        assert!(ended.is_none(), "the worker hung up, not {ended:?}");
        // Terms out of order end the next session the same way.
        let mut session = owner.next_session().await;
        let ScriptedLease { mut terms, .. } = lease(2, task_modules::PROBE, &["echo"], unbounded());
        terms.terms_id = 3;
        session.send(&Message::JobTerms(Box::new(terms))).await;
        let ended = session.receive_other_than_requests().await;
        assert!(ended.is_none(), "the worker hung up, not {ended:?}");
        wasmhive_tests::grid::wait_until(Duration::from_secs(10), "the reasons in the worker's log", || {
            let log = worker.log_text();
            log.contains("job terms 9, which were never sent") && log.contains("numbered 3 arrived after 0")
        });
    });
}
