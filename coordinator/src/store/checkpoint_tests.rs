//! Who copies the write-ahead log into the database: the store writer, not a submission.

use super::*;
use wasmhive_protocol::api::{JobLimits, VerifySettings};

fn submission(name: &str, module: Vec<u8>) -> JobSubmission {
    JobSubmission {
        name: name.into(),
        task_name: "sum".into(),
        module,
        args: Vec::new(),
        inputs: JobInputs::Range { start: 0, end: 1, step: 1 },
        shared: Vec::new(),
        quorum: 1,
        max_replicas: 1,
        verify: VerifySettings::default(),
        limits: JobLimits::default(),
        nan_canonicalization: false,
        validator: None,
        reducer: None,
    }
}

#[test]
fn a_submission_leaves_the_store_writers_pages_for_it_to_checkpoint() {
    let store = TemporaryStore::new("checkpoint-test");
    let mut writer = Store::open(&store.path).unwrap();
    // A writer just under its threshold: its pages are in the log, none copied yet.
    writer.connection.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    let mut readers = Store::open_for_readers(&store.path).unwrap();
    let module_pages: Vec<u8> =
        (0..1_200 * 4096u32).map(|byte| byte.to_le_bytes()[0] ^ (byte >> 12) as u8).collect();
    writer.insert_job("job-writers-pages", &submission("pages", module_pages), 1, 0).unwrap();
    let database_before = std::fs::metadata(&store.path).unwrap().len();
    readers.insert_job("job-submitted", &submission("small", b"\0asm".to_vec()), 1, 0).unwrap();
    let database_after = std::fs::metadata(&store.path).unwrap().len();
    assert!(
        database_after < 1 << 20,
        "the submission's commit copied {database_before} → {database_after} bytes of the writer's log into the database"
    );
    assert!(readers.job("job-submitted").unwrap().is_some(), "the submission is stored");
}
