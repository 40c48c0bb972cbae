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

/// A lease whose input is a blob of two pieces: the worker asks for pieces (the last one
/// first); a poisoned piece ends the session with the reason, as does a piece never asked
/// for; an honest owner's pieces are then accepted and the unit runs on the verified bytes.
#[test]
fn a_poisoned_or_unasked_input_piece_ends_the_session_and_true_pieces_run_the_unit() {
    let directory = TempDir::new("malicious-owner-piece");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let input: Vec<u8> = (0..(300u32 << 10)).map(|index| (index % 251) as u8).collect();
    let seeder_folder = directory.path().join("seeder");
    let seeder = wasmhive_blobs::BlobStore::open(&seeder_folder, u64::MAX).unwrap();
    let hash = seeder.import(&input[..], input.len() as u64).unwrap();
    let piece = |index: u64| {
        let mut encoded = Vec::new();
        seeder.encode_piece(&hash, index, &mut encoded).unwrap();
        encoded
    };
    let blob_lease = |lease_id: u64| {
        let limits = JobLimits { output_bytes: 1 << 20, timeout_ms: 20_000, ..JobLimits::default() };
        let mut scripted = lease(lease_id, task_modules::PROBE, &["echo"], limits);
        scripted.lease.input_blob = Some(wasmhive_protocol::BlobRef { hash, size: input.len() as u64 });
        scripted
    };
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(94)).await;
        let worker = start_worker_joining(&owner.join_address(), &directory.path().join("worker"), 1, &[]);
        // A poisoned piece.
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        session.send_leases(vec![blob_lease(1)]).await;
        let Some(Message::WantPiece { index, .. }) = session.receive_other_than_requests().await else {
            panic!("a piece asked for")
        };
        assert_eq!(index, 1, "the last piece first: it proves the size");
        let mut poisoned = piece(1);
        let last = poisoned.len() - 1;
        poisoned[last] ^= 0x80;
        session.send_binary(wasmhive_protocol::encode_piece(&hash, 1, &poisoned)).await;
        while let Some(message) = session.receive_other_than_requests().await {
            assert!(
                matches!(message, Message::WantPiece { .. }),
                "only piece requests before hanging up: {message:?}"
            );
        }
        // A piece never asked for.
        let next = tokio::time::timeout(Duration::from_secs(20), owner.next_session()).await;
        let mut session = next.unwrap_or_else(|_| {
            panic!("the worker came back after the poisoned piece:\n{}", worker.log_text())
        });
        session.send_binary(wasmhive_protocol::encode_piece(&hash, 0, &piece(0))).await;
        while let Some(message) = session.receive_other_than_requests().await {
            assert!(matches!(message, Message::WantPiece { .. }), "{message:?}");
        }
        // An honest owner.
        let next = tokio::time::timeout(Duration::from_secs(20), owner.next_session()).await;
        let mut session = next.unwrap_or_else(|_| {
            panic!("the worker came back after the unasked piece:\n{}", worker.log_text())
        });
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        session.send_leases(vec![blob_lease(2)]).await;
        loop {
            match session.receive_other_than_requests().await {
                Some(Message::WantPiece { hash: asked, index }) => {
                    assert_eq!(asked, hash);
                    session.send_binary(wasmhive_protocol::encode_piece(&hash, index, &piece(index))).await;
                }
                Some(Message::Want { hash: module }) => {
                    assert_eq!(module, wasmhive_protocol::Hash::of(task_modules::PROBE));
                    session.send_binary(encode_blob(task_modules::PROBE)).await;
                }
                Some(Message::Outcomes { outcomes }) => {
                    assert_eq!(outcomes[0].status, Status::Success, "{:?}", outcomes[0]);
                    let output = outcomes[0].output_blob.expect("300 KiB of output is a blob");
                    assert_eq!(
                        output.hash,
                        wasmhive_protocol::Hash::of(&input),
                        "the unit ran on the verified bytes"
                    );
                    break;
                }
                other => panic!("unexpected {other:?}\n{}", worker.log_text()),
            }
        }
        let log = worker.log_text();
        assert!(log.contains("does not verify"), "the poisoned piece's reason is logged:\n{log}");
        assert!(log.contains("did not ask for"), "the unasked piece's reason is logged:\n{log}");
    });
}

/// An output above 256 KiB is a blob the owner asks pieces of: an owner asking for a
/// blob that is no output reported to it gets nothing (the worker hangs up with the
/// reason); the outcome is sent again in the next session and its true pieces served.
#[test]
fn an_owner_gets_pieces_only_of_the_outputs_reported_to_it() {
    let directory = TempDir::new("malicious-owner-output-pieces");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let input: Vec<u8> = (0..(600u32 << 10)).map(|index| (index % 253) as u8).collect();
    let owner_blobs = std::sync::Arc::new(
        wasmhive_blobs::BlobStore::open(&directory.path().join("owner"), u64::MAX).unwrap(),
    );
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(97)).await;
        let worker = start_worker_joining(&owner.join_address(), &directory.path().join("worker"), 1, &[]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        let limits = JobLimits { output_bytes: 1 << 20, timeout_ms: 20_000, ..JobLimits::default() };
        let mut echo = lease(1, task_modules::PROBE, &["echo"], limits);
        echo.lease.input = input.clone();
        session.send_leases(vec![echo]).await;
        let blob = loop {
            match session.receive_other_than_requests().await {
                Some(Message::Want { .. }) => session.send_binary(encode_blob(task_modules::PROBE)).await,
                Some(Message::Outcomes { outcomes }) => {
                    break outcomes[0].output_blob.expect("a blob output");
                }
                other => panic!("unexpected {other:?}\n{}", worker.log_text()),
            }
        };
        assert_eq!((blob.hash, blob.size), (wasmhive_protocol::Hash::of(&input), input.len() as u64));
        // Its own input module's hash is a blob the worker has, but no output.
        let module = wasmhive_protocol::Hash::of(task_modules::PROBE);
        session.send(&Message::WantPiece { hash: module, index: 0 }).await;
        let ended = session.receive_other_than_requests().await;
        assert!(ended.is_none(), "the worker hung up, not {ended:?}");
        // The next session: the unacknowledged outcome comes again, its pieces are served.
        let next = tokio::time::timeout(Duration::from_secs(20), owner.next_session()).await;
        let mut session = next.unwrap_or_else(|_| panic!("the worker came back:\n{}", worker.log_text()));
        match session.receive_other_than_requests().await {
            Some(Message::Outcomes { outcomes }) if outcomes[0].output_blob == Some(blob) => {}
            other => panic!("expected the outcome again, got {other:?}"),
        }
        let mut download = owner_blobs.download(blob.hash, blob.size).unwrap();
        let missing: Vec<u64> = download.missing().collect();
        for index in &missing {
            session.send(&Message::WantPiece { hash: blob.hash, index: *index }).await;
        }
        for _ in &missing {
            let (hash, index, encoded) = session.receive_piece().await.expect("a piece");
            assert_eq!(hash, blob.hash);
            download.write_piece(index, &encoded).expect("every piece verifies");
        }
        download.finish().unwrap();
        let log = worker.log_text();
        assert!(log.contains("which is no output we reported"), "the reason is logged:\n{log}");
    });
    let fetched = std::fs::read(
        directory.path().join("owner").join("complete").join(wasmhive_protocol::Hash::of(&input).to_hex()),
    );
    assert_eq!(fetched.unwrap(), input);
}

/// A lease naming an input blob of a terabyte: handed back unrun, and nothing of it is
/// fetched or reserved on the worker's disk.
#[test]
fn a_lease_whose_input_blob_is_larger_than_the_worker_takes_is_handed_back() {
    let directory = TempDir::new("malicious-owner-huge-input");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = directory.path().join("worker");
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(95)).await;
        let worker = start_worker_joining(&owner.join_address(), &data, 1, &[]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        let limits = JobLimits { output_bytes: 1 << 20, timeout_ms: 20_000, ..JobLimits::default() };
        let mut huge = lease(1, task_modules::PROBE, &["echo"], limits);
        let hash = wasmhive_protocol::Hash::of(b"a terabyte, supposedly");
        huge.lease.input_blob = Some(wasmhive_protocol::BlobRef { hash, size: 1 << 40 });
        session.send_leases(vec![huge]).await;
        match session.receive_other_than_requests().await {
            Some(Message::ReturnLeases { lease_ids }) => assert_eq!(lease_ids, [1]),
            other => panic!("expected the lease handed back, got {other:?}\n{}", worker.log_text()),
        }
    });
    let partial =
        std::fs::read_dir(data.join("blobs").join("partial")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(partial, 0, "no download was started");
}

/// Job terms naming shared files a worker does not take (too many, a name that is a path,
/// a terabyte): every such lease is handed back unrun, and nothing is fetched.
#[test]
fn leases_of_jobs_with_unacceptable_shared_files_are_handed_back() {
    let directory = TempDir::new("malicious-owner-shared");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = directory.path().join("worker");
    runtime.block_on(async {
        let mut owner = ScriptedOwner::start(&key(96)).await;
        let worker = start_worker_joining(&owner.join_address(), &data, 1, &[]);
        let mut session = owner.next_session().await;
        let Some(Message::RequestWork { .. }) = session.receive().await else { panic!("a request") };
        let limits = JobLimits { output_bytes: 1 << 20, timeout_ms: 20_000, ..JobLimits::default() };
        let file = |name: &str, size: u64| wasmhive_protocol::api::BlobInput {
            name: name.into(),
            hash: wasmhive_protocol::Hash::of(name.as_bytes()),
            size,
        };
        let cases = [
            (0..65).map(|index| file(&format!("f{index}"), 1)).collect::<Vec<_>>(),
            vec![file("../etc/passwd", 1)],
            vec![file("terabyte.bin", 1 << 40)],
        ];
        let mut leases = Vec::new();
        for (index, shared) in cases.into_iter().enumerate() {
            let mut bad = lease(index as u64 + 1, task_modules::PROBE, &["files"], limits.clone());
            bad.terms.job_id = format!("shared-job-{index}");
            bad.terms.shared = shared;
            leases.push(bad);
        }
        session.send_leases(leases).await;
        let mut returned = Vec::new();
        while returned.len() < 3 {
            match session.receive_other_than_requests().await {
                Some(Message::ReturnLeases { lease_ids }) => returned.extend(lease_ids),
                other => panic!("expected leases handed back, got {other:?}\n{}", worker.log_text()),
            }
        }
        returned.sort_unstable();
        assert_eq!(returned, [1, 2, 3]);
    });
    let partial =
        std::fs::read_dir(data.join("blobs").join("partial")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(partial, 0, "no download was started");
}
