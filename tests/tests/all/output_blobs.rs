//! Large outputs (issue 16, items 1 and 5): an output above 256 KiB travels as a blob the
//! owner fetches in verified pieces from the worker before it records the outcome, once
//! per unit whatever the quorum; `wasmhive results --out DIR` streams it to a file. A
//! worker that lies about its output blob is refused with the reason.

use crate::grid_support::TestGrid;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::{BlobRef, Hash, Message, OUTPUT_INLINE_BYTES_MAX, OutcomeReport, encode_piece};
use wasmhive_tests::grid::wasmhive;
use wasmhive_tests::wire::{Socket, connect_as, decode_frame, key, next_reply, success_report};
use wasmhive_transport::frame_of;

fn data(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed).collect()
}

/// A job whose task writes its input twice (`probe repeat 2`: an output that is no input
/// blob the owner holds already), with `quorum`.
fn repeat_spec(grid: &TestGrid, inputs: &str, quorum: u32) -> String {
    let path = grid.directory.path().join(format!("repeat-{quorum}.toml"));
    let text = format!(
        "name = \"repeat\"\nmodule = \"probe\"\nargs = [\"repeat\", \"2\"]\n[inputs]\n{inputs}\n[verify]\nquorum = {quorum}\n\
         [limits]\noutput = \"2 MiB\"\nlease = \"60s\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn large_outputs_travel_as_blobs_once_per_unit_and_results_out_writes_them() {
    let grid = TestGrid::start("output-blobs", 2);
    let inputs = grid.directory.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let files: Vec<Vec<u8>> = (0..4).map(|seed| data((512 << 10) + 17 + seed as usize, seed)).collect();
    for (index, bytes) in files.iter().enumerate() {
        std::fs::write(inputs.join(format!("{index}.bin")), bytes).unwrap();
    }
    let job_id = grid.submit(&repeat_spec(&grid, "files = \"inputs/*.bin\"", 2), true);

    let results = grid.results(&job_id);
    assert_eq!(results.len(), files.len());
    let mut expected: Vec<Hash> = files.iter().map(|bytes| Hash::of(&bytes.repeat(2))).collect();
    let mut named: Vec<Hash> = Vec::new();
    for result in &results {
        let blob = result.output_blob.expect("an output above 256 KiB is a blob");
        assert!(result.output.is_none() && result.output_base64.is_none(), "{result:?}");
        assert_eq!(result.replicas, 2, "both replicas agreed on the blob: {result:?}");
        named.push(blob.hash);
    }
    expected.sort();
    named.sort();
    assert_eq!(named, expected, "each unit's output is its input twice");

    // Quorum 2: both replicas reported the same blob; the owner fetched it once.
    let log = grid.coordinator.log_text();
    let fetched = log.lines().filter(|line| line.contains("output fetched from its worker")).count();
    assert_eq!(fetched, files.len(), "one fetch per unit:\n{log}");

    let out = grid.directory.path().join("out");
    let mut args = vec!["results".to_string(), job_id.clone(), "--out".into(), out.to_str().unwrap().into()];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut written: Vec<Hash> = (0..files.len())
        .map(|unit| Hash::of(&std::fs::read(out.join(format!("unit-{unit:06}.out"))).unwrap()))
        .collect();
    written.sort();
    assert_eq!(written, expected, "--out wrote every output whole");

    let mut args = vec!["results".to_string(), job_id];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("in blob") && shown.contains("--out DIR"), "{shown}");
}

/// Validators compare outputs in memory and reducers read them all: a job with both and
/// outputs above 256 KiB fetches the blobs, keeps the validated outputs in its rows and
/// reduces the result blobs' bytes.
#[test]
fn a_validator_and_a_reducer_read_outputs_that_travelled_as_blobs() {
    let grid = TestGrid::start("output-blobs-validated", 2);
    let inputs = grid.directory.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let files: Vec<Vec<u8>> = (0..3).map(|seed| data((300 << 10) + seed as usize, seed + 20)).collect();
    for (index, bytes) in files.iter().enumerate() {
        std::fs::write(inputs.join(format!("{index}.bin")), bytes).unwrap();
    }
    let expected_outputs = |results: &[wasmhive_protocol::api::UnitResult]| {
        let mut all = Vec::new();
        for result in results {
            let file: usize =
                result.input.trim_end_matches(".bin").rsplit('/').next().unwrap().parse().unwrap();
            all.extend_from_slice(&files[file].repeat(2));
        }
        all
    };
    for validator in ["validator = \"tolerant-compare\"\n", ""] {
        let spec = grid.directory.path().join(format!("reduced-{}.toml", validator.len()));
        std::fs::write(
            &spec,
            format!(
                "name = \"reduced\"\nmodule = \"probe\"\nargs = [\"repeat\", \"2\"]\nreducer = \"digest\"\n\
                 [inputs]\nfiles = \"inputs/*.bin\"\n[verify]\nquorum = 2\n{validator}\
                 [limits]\noutput = \"2 MiB\"\nlease = \"60s\"\n"
            ),
        )
        .unwrap();
        let job_id = grid.submit(spec.to_str().unwrap(), true);
        let mut results = grid.results(&job_id);
        results.sort_by_key(|result| result.unit);
        for result in &results {
            let expected = expected_outputs(std::slice::from_ref(result));
            if validator.is_empty() {
                assert_eq!(
                    result.output_blob.map(|blob| blob.hash),
                    Some(Hash::of(&expected)),
                    "a result blob"
                );
            } else {
                let kept = result.output_base64.as_deref().expect("a validated output stays in its row");
                assert_eq!(
                    wasmhive_protocol::base64_bytes::decode(kept).unwrap(),
                    expected,
                    "read from its blob"
                );
            }
        }
        let expected = task_kernels::digest::sha256_prefix(&expected_outputs(&results)[..]).unwrap();
        wasmhive_tests::grid::wait_until(Duration::from_secs(30), "the reduction", || {
            grid.status(&job_id).reduced.is_some_and(|state| state != "running")
        });
        let mut args = vec!["results".to_string(), job_id];
        args.extend(grid.connection_args());
        let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{validator}: {stderr}");
    }
}

/// A scripted worker's session: asks for one lease and reports `report` for it (its
/// lease id filled in); returns the socket and the lease id.
async fn report_for_a_lease(address: SocketAddr, seed: u8, report: OutcomeReport) -> (Socket, u64) {
    let mut socket = connect_as(address, &key(seed)).await;
    socket.send(frame_of(&Message::RequestWork { slots: 1 })).await.unwrap();
    let Some(Message::Leases { leases }) = next_reply(&mut socket).await else { panic!("a lease") };
    let lease_id = leases[0].lease_id;
    let outcomes = vec![OutcomeReport { lease_id, ..report }];
    socket.send(frame_of(&Message::Outcomes { outcomes })).await.unwrap();
    (socket, lease_id)
}

fn blob_report(blob: BlobRef) -> OutcomeReport {
    OutcomeReport { output_blob: Some(blob), ..success_report(0, Vec::new()) }
}

/// Everything the owner says until it closes (its reason), answering `want_piece` with
/// `answer(index)` (`None`: say nothing).
async fn until_closed(socket: &mut Socket, hash: Hash, answer: impl Fn(u64) -> Option<Vec<u8>>) -> String {
    let mut said = String::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(40), socket.next()).await {
        match (&frame, decode_frame(&frame)) {
            (_, Some(Message::WantPiece { index, .. })) => {
                if let Some(encoded) = answer(index) {
                    let _ = socket.send(Frame::Binary(encode_piece(&hash, index, &encoded).into())).await;
                }
            }
            (_, Some(Message::Acknowledged { lease_ids, .. })) => {
                return said + &format!("acknowledged {lease_ids:?}");
            }
            (Frame::Text(text), _) => said.push_str(text),
            (Frame::Close(Some(close)), _) => said.push_str(&close.reason),
            _ => {}
        }
    }
    said
}

/// A worker that reports an output blob over its job's limit, in the wrong form, with a
/// piece that does not verify, or with a piece never asked for is refused with the reason;
/// one that serves its true pieces has its outcome recorded and its blob is the result.
#[test]
fn a_worker_lying_about_its_output_blob_is_refused_and_a_true_one_is_recorded() {
    let grid = TestGrid::start("output-blob-lies", 0);
    let job_id = grid.submit(&repeat_spec(&grid, "range = { start = 0, end = 8, step = 1 }", 1), false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let folder = grid.directory.path().join("scripted-worker-blobs");
    let store = wasmhive_blobs::BlobStore::open(&folder, u64::MAX).unwrap();
    let output = data(600 << 10, 9);
    let hash = store.import(&output[..], output.len() as u64).unwrap();
    let other = data(600 << 10, 10);
    let other_hash = store.import(&other[..], other.len() as u64).unwrap();
    let piece = |hash: &Hash, index: u64| {
        let mut encoded = Vec::new();
        store.encode_piece(hash, index, &mut encoded).unwrap();
        encoded
    };
    let blob = BlobRef { hash, size: output.len() as u64 };
    let inline_max = OUTPUT_INLINE_BYTES_MAX as usize;
    runtime.block_on(async {
        let over = BlobRef { hash, size: 3 << 20 };
        let (mut socket, _) = report_for_a_lease(grid.address, 120, blob_report(over)).await;
        let said = until_closed(&mut socket, hash, |_| None).await;
        assert!(said.contains("over the job's output limit"), "{said}");

        let small = BlobRef { hash, size: 1000 };
        let (mut socket, _) = report_for_a_lease(grid.address, 121, blob_report(small)).await;
        let said = until_closed(&mut socket, hash, |_| None).await;
        assert!(said.contains("travel inline"), "{said}");

        let inline = success_report(0, vec![1; inline_max + 1]);
        let (mut socket, _) = report_for_a_lease(grid.address, 122, inline).await;
        let said = until_closed(&mut socket, hash, |_| None).await;
        assert!(said.contains("travel as blobs"), "{said}");

        // Pieces of another blob in answer: the first one does not verify.
        let (mut socket, _) = report_for_a_lease(grid.address, 123, blob_report(blob)).await;
        let said = until_closed(&mut socket, hash, |index| Some(piece(&other_hash, index))).await;
        assert!(said.contains("does not verify"), "{said}");

        // A piece of a blob the owner asked nothing of.
        let (mut socket, _) = report_for_a_lease(grid.address, 124, blob_report(blob)).await;
        let unasked = encode_piece(&other_hash, 0, &piece(&other_hash, 0));
        socket.send(Frame::Binary(unasked.into())).await.unwrap();
        let said = until_closed(&mut socket, hash, |_| None).await;
        assert!(said.contains("did not ask for"), "{said}");

        // The same report again and again while its blob is fetched: queued once.
        let (mut socket, lease_id) = report_for_a_lease(grid.address, 125, blob_report(blob)).await;
        for _ in 0..20 {
            let outcomes = vec![OutcomeReport { lease_id, ..blob_report(blob) }];
            socket.send(frame_of(&Message::Outcomes { outcomes })).await.unwrap();
        }
        let said = until_closed(&mut socket, hash, |index| Some(piece(&hash, index))).await;
        assert_eq!(said, format!("acknowledged [{lease_id}]"), "true pieces: the outcome is recorded once");
    });
    let results = grid.results(&job_id);
    let recorded: Vec<_> = results.iter().filter(|result| result.output_blob == Some(blob)).collect();
    assert_eq!(recorded.len(), 1, "the true blob is one unit's result: {results:?}");
    let log = grid.coordinator.log_text();
    assert_eq!(log.matches("output fetched from its worker").count(), 1, "{log}");
}
