//! Values a token holder (perhaps a careless or hostile remote researcher) can put in a
//! submission must not overflow anything in the owner (issue 13, item 3): ranges near
//! 2^64 and huge lease times. Driven in process, so a panic shows as a failed test.

use wasmhive_coordinator::core::Network;
use wasmhive_coordinator::server::Coordinator;
use wasmhive_protocol::api::{JobInputs, JobLimits, JobSubmission};
use wasmhive_tests::grid::TempDir;

pub fn submission(inputs: JobInputs, lease_ms: u64) -> JobSubmission {
    JobSubmission {
        shared: Vec::new(),
        name: "edge".into(),
        task_name: "primes".into(),
        module: task_modules::PRIMES.to_vec(),
        args: Vec::new(),
        inputs,
        quorum: 1,
        max_replicas: 2,
        limits: JobLimits {
            fuel: None,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 10,
            lease_ms,
            timeout_ms: 10_000,
        },
        nan_canonicalization: true,
        verify: Default::default(),
        validator: None,
        reducer: None,
    }
}

#[test]
fn a_range_ending_at_two_to_the_64_leases_without_overflow() {
    let directory = TempDir::new("range-edge");
    let coordinator = Coordinator::open(directory.path()).unwrap();
    let inputs = JobInputs::Range { start: u64::MAX - 10, end: u64::MAX, step: 7 };
    let job = coordinator.submit(submission(inputs, 60_000)).map_err(|problem| problem.message).unwrap();
    assert_eq!(job.units, 2);
    let leases = coordinator.request_work("worker", &Network::of_identity("worker"), 4).unwrap();
    let mut inputs: Vec<String> =
        leases.iter().map(|lease| String::from_utf8_lossy(lease.inline_input()).to_string()).collect();
    inputs.sort(); // a batch comes in random order
    assert_eq!(
        inputs,
        vec![format!("{} {}", u64::MAX - 10, u64::MAX - 3), format!("{} {}", u64::MAX - 3, u64::MAX)]
    );
    assert!(coordinator.status(&job.job_id).is_some(), "the owner still answers");
}

#[test]
fn a_lease_time_beyond_reason_is_refused_with_the_limit() {
    let directory = TempDir::new("lease-edge");
    let coordinator = Coordinator::open(directory.path()).unwrap();
    let inputs = JobInputs::Range { start: 0, end: 10, step: 5 };
    let refused = coordinator.submit(submission(inputs.clone(), u64::MAX)).expect_err("refused");
    assert_eq!(refused.status, 400);
    assert!(refused.message.contains("lease"), "{}", refused.message);
    let job = coordinator
        .submit(submission(inputs, 7 * 24 * 3_600_000))
        .map_err(|problem| problem.message)
        .unwrap();
    assert_eq!(coordinator.request_work("worker", &Network::of_identity("worker"), 4).unwrap().len(), 2);
    assert!(coordinator.status(&job.job_id).is_some());
}

fn shared_file(name: &str) -> wasmhive_protocol::api::BlobInput {
    wasmhive_protocol::api::BlobInput {
        name: name.into(),
        hash: wasmhive_protocol::Hash::of(name.as_bytes()),
        size: 1,
    }
}

#[test]
fn names_args_helper_modules_and_shared_files_are_checked_with_a_reason() {
    let directory = TempDir::new("api-values");
    let coordinator = Coordinator::open(directory.path()).unwrap();
    let base = || submission(JobInputs::Range { start: 0, end: 10, step: 5 }, 60_000);
    let cases: Vec<(JobSubmission, &str)> = vec![
        (JobSubmission { name: "a\u{1b}[31mred".into(), ..base() }, "name"),
        (JobSubmission { name: "n".repeat(1000), ..base() }, "name"),
        (JobSubmission { task_name: String::new(), ..base() }, "task_name"),
        (JobSubmission { args: vec!["x".into(); 10_000], ..base() }, "args"),
        (JobSubmission { args: vec!["nul\0byte".into()], ..base() }, "args"),
        (JobSubmission { args: vec!["y".repeat(100_000)], ..base() }, "args"),
        (JobSubmission { validator: Some(b"not wasm".to_vec()), ..base() }, "validator"),
        (JobSubmission { reducer: Some(vec![0; 10]), ..base() }, "reducer"),
        (JobSubmission { inputs: JobInputs::Lines { lines: vec!["z".repeat(20 << 20)] }, ..base() }, "line"),
        (JobSubmission { shared: vec![shared_file("../etc/passwd")], ..base() }, "not a shared file name"),
        (JobSubmission { shared: vec![shared_file("a"), shared_file("a")], ..base() }, "two shared files"),
        (
            JobSubmission { shared: (0..65).map(|i| shared_file(&format!("f{i}"))).collect(), ..base() },
            "65 shared",
        ),
        (JobSubmission { shared: vec![shared_file("model.bin")], ..base() }, "upload it first"),
    ];
    for (submission, key) in cases {
        let refused = coordinator.submit(submission).expect_err("refused");
        assert_eq!(refused.status, 400, "{key}: {}", refused.message);
        assert!(refused.message.contains(key), "{key}: {}", refused.message);
    }
}
