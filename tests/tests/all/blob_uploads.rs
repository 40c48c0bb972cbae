//! Blob uploads (`PUT /api/blobs/{hash}`): a blob is kept only when its bytes hash to the
//! name it was sent under, all of them arrived, and the sender holds the token.

use crate::grid_support::TestGrid;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The owner's loopback API (plain HTTP on this machine) and its token.
fn api_of(grid: &TestGrid) -> (SocketAddr, String) {
    let address = std::fs::read_to_string(grid.coordinator_data.join("dashboard.address")).unwrap();
    let token = std::fs::read_to_string(grid.coordinator_data.join("token")).unwrap();
    (address.trim().parse().unwrap(), token.trim().to_string())
}

/// Sends `head` (without its final blank line) and `body`; the status and the answer's
/// body. (The write side stays open: a body shorter than announced is a stalled body.)
fn exchange(api: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

fn put(api: SocketAddr, token: &str, name: &str, declared: Option<usize>, body: &[u8]) -> (u16, String) {
    let length = declared.map(|length| format!("Content-Length: {length}\r\n")).unwrap_or_default();
    let head =
        format!("PUT /api/blobs/{name} HTTP/1.1\r\nHost: owner\r\nAuthorization: Bearer {token}\r\n{length}");
    exchange(api, &head, body)
}

fn head(api: SocketAddr, token: &str, name: &str) -> (u16, String) {
    exchange(
        api,
        &format!("HEAD /api/blobs/{name} HTTP/1.1\r\nHost: owner\r\nAuthorization: Bearer {token}\r\n"),
        b"",
    )
}

fn blob(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed).collect()
}

#[test]
fn a_blob_is_kept_only_under_the_hash_of_its_bytes() {
    let grid = TestGrid::start("blob-uploads", 0);
    let (api, token) = api_of(&grid);
    let data = blob(3 << 20, 1);
    let name = wasmhive_protocol::Hash::of(&data).to_hex();
    let (status, answer) = put(api, &token, &name, Some(data.len()), &data);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(head(api, &token, &name).0, 200, "the owner has it now");
    let (status, answer) = put(api, &token, &name, Some(data.len()), &data);
    assert_eq!(status, 200, "sent again: already here: {answer}");

    // The bytes of another blob under this name.
    let other = blob(1 << 20, 2);
    let lying_name = wasmhive_protocol::Hash::of(&blob(1 << 20, 3)).to_hex();
    let (status, answer) = put(api, &token, &lying_name, Some(other.len()), &other);
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer.contains(&wasmhive_protocol::Hash::of(&other).to_hex()),
        "names what the bytes hash to: {answer}"
    );
    assert_eq!(head(api, &token, &lying_name).0, 404);
    assert_eq!(
        head(api, &token, &wasmhive_protocol::Hash::of(&other).to_hex()).0,
        404,
        "the lie is not kept under any name"
    );
}

#[test]
fn uploads_without_the_token_a_size_a_whole_body_or_a_name_are_refused_and_keep_nothing() {
    let grid = TestGrid::start("blob-refusals", 0);
    let (api, token) = api_of(&grid);
    let data = blob(1 << 20, 4);
    let name = wasmhive_protocol::Hash::of(&data).to_hex();
    let (status, answer) = put(api, "wrong-token", &name, Some(data.len()), &data);
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = put(api, &token, &name, None, &data);
    assert_eq!(status, 411, "no Content-Length: {answer}");
    assert!(answer.contains("Content-Length"), "{answer}");
    let (status, answer) = put(api, &token, &name, Some(data.len()), &data[..data.len() / 2]);
    assert_ne!(status, 201, "a body cut short: {answer}");
    let (status, answer) = put(api, &token, "not-a-hash", Some(data.len()), &data);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("64 hex digits"), "{answer}");
    let (status, answer) = put(api, &token, &name, Some(1 << 62), b"");
    assert_eq!(status, 413, "{answer}");
    assert_eq!(head(api, &token, &name).0, 404, "nothing was kept");
    assert_eq!(head(api, "wrong-token", &name).0, 401);
}

#[test]
fn a_files_job_uploads_its_inputs_as_blobs_and_runs_from_them() {
    let grid = TestGrid::start("files-as-blobs", 1);
    let directory = grid.coordinator_data.parent().unwrap().join("files-job");
    std::fs::create_dir_all(directory.join("data")).unwrap();
    let ranges = [(0u64, 100u64), (5, 10), (1000, 2000)];
    for (index, (start, end)) in ranges.iter().enumerate() {
        std::fs::write(directory.join("data").join(format!("{index}.txt")), format!("{start} {end}"))
            .unwrap();
    }
    let spec = directory.join("job.toml");
    std::fs::write(
        &spec,
        "name = \"sums\"\nmodule = \"sum\"\n[inputs]\nfiles = \"data/*.txt\"\n[verify]\nquorum = 1\n",
    )
    .unwrap();
    let job_id = grid.submit(spec.to_str().unwrap(), false);
    grid.wait_for_completion(&job_id);
    let mut results = grid.results(&job_id);
    results.sort_by_key(|result| result.unit);
    for (result, (start, end)) in results.iter().zip(ranges) {
        let expected = (start..end).map(u128::from).sum::<u128>();
        assert_eq!(result.output.as_deref(), Some(format!("{expected}\n").as_str()), "{}", result.input);
        assert!(result.input.ends_with(".txt"), "the label is the file's name: {}", result.input);
    }
    // Sent again: the owner has every input already.
    let mut args = vec!["submit".to_string(), spec.to_str().unwrap().to_string()];
    args.extend(grid.connection_args());
    let output = wasmhive_tests::grid::wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("0 files uploaded") && stderr.contains("3 already on the owner"), "{stderr}");
}

/// Item 8 of issue 16: one unit whose input is a whole gigabyte, uploaded, fetched in
/// verified pieces and read by the unit from the worker's disk as it runs.
#[test]
fn a_unit_of_a_gigabyte_runs_from_its_blob() {
    let grid = TestGrid::start("gigabyte-unit", 1);
    let directory = grid.coordinator_data.parent().unwrap().join("gigabyte-job");
    std::fs::create_dir_all(directory.join("data")).unwrap();
    // Sparse: a gigabyte of zeros that costs no disk until it is uploaded.
    std::fs::File::create(directory.join("data").join("zeros.bin")).unwrap().set_len(1 << 30).unwrap();
    let spec = directory.join("job.toml");
    let text = "name = \"gigabyte\"\nmodule = \"probe\"\nargs = [\"count-input\"]\n\
                [inputs]\nfiles = \"data/*.bin\"\n[verify]\nquorum = 1\n[limits]\ntimeout = \"2m\"\n";
    std::fs::write(&spec, text).unwrap();
    let job_id = grid.submit(spec.to_str().unwrap(), false);
    grid.wait_for_completion(&job_id);
    let results = grid.results(&job_id);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].output.as_deref(), Some("1073741824 bytes, sum 0\n"), "{:?}", results[0]);
}

#[test]
fn a_submission_naming_a_blob_the_owner_lacks_is_refused_with_the_fix() {
    let directory = wasmhive_tests::grid::TempDir::new("missing-blob");
    let coordinator = wasmhive_coordinator::server::Coordinator::open(directory.path()).unwrap();
    let missing = wasmhive_protocol::Hash::of(b"never uploaded");
    let blob_input = |size| wasmhive_protocol::api::BlobInput { name: "a.bin".into(), hash: missing, size };
    let inputs = wasmhive_protocol::api::JobInputs::Blobs { blobs: vec![blob_input(14)] };
    let refusal = coordinator.submit(crate::api_values::submission(inputs, 60_000)).unwrap_err();
    assert_eq!(refusal.status, 400);
    assert!(refusal.message.contains(&format!("PUT /api/blobs/{}", missing.to_hex())), "{}", refusal.message);
}

/// Issue 16, item 8: an owner killed (SIGKILL) while `wasmhive submit` uploads its inputs
/// keeps every blob that arrived whole (and nothing of the one cut off); submitting again
/// uploads only the rest, and the job's results are those of the files.
#[test]
fn an_owner_killed_mid_upload_keeps_every_finished_blob_and_the_next_submit_sends_only_the_rest() {
    let mut grid = TestGrid::start("upload-restart", 1);
    let directory = grid.directory.path().join("job");
    std::fs::create_dir_all(directory.join("data")).unwrap();
    let files: Vec<Vec<u8>> = (0..48).map(|seed| blob(4 << 20, seed)).collect();
    for (index, bytes) in files.iter().enumerate() {
        std::fs::write(directory.join("data").join(format!("{index:02}.bin")), bytes).unwrap();
    }
    let spec = directory.join("job.toml");
    std::fs::write(
        &spec,
        "name = \"counts\"\nmodule = \"probe\"\nargs = [\"count-input\"]\n[inputs]\nfiles = \"data/*.bin\"\n[verify]\nquorum = 1\n",
    )
    .unwrap();
    let spec = spec.to_str().unwrap().to_string();
    let connection = [
        "--to".to_string(),
        grid.address.to_string(),
        "--data".into(),
        grid.coordinator_data.to_str().unwrap().into(),
    ];
    let mut first = std::process::Command::new(wasmhive_tests::wasmhive_binary())
        .args(["submit", &spec])
        .args(&connection)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let complete = grid.coordinator_data.join("blobs").join("complete");
    let count_complete = || {
        std::fs::read_dir(&complete).map_or(0, |entries| {
            entries.filter_map(Result::ok).filter(|entry| entry.path().extension().is_none()).count()
        })
    };
    wasmhive_tests::grid::wait_until(Duration::from_secs(60), "a few uploads to finish", || {
        count_complete() >= 3
    });
    grid.coordinator.kill();
    let _ = first.kill();
    let _ = first.wait();
    grid.restart_coordinator();
    let kept = count_complete();
    assert!((3..48).contains(&kept), "killed mid-upload with {kept} blobs whole");
    let output = wasmhive_tests::grid::wasmhive(
        &[&["submit", spec.as_str(), "--wait"], &connection.each_ref().map(String::as_str)[..]].concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} files uploaded", 48 - kept))
            && stderr.contains(&format!("{kept} already on the owner")),
        "only the blobs lost to the kill are sent again: {stderr}"
    );
    let job_id = String::from_utf8_lossy(&output.stdout).lines().last().unwrap().trim().to_string();
    let results = grid.results(&job_id);
    assert_eq!(results.len(), 48);
    for (result, bytes) in results.iter().zip(&files) {
        let sum = bytes.iter().fold(0u64, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
        assert_eq!(
            result.output.as_deref().unwrap_or_default().trim(),
            format!("{} bytes, sum {sum}", bytes.len())
        );
    }
}
