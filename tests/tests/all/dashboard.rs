//! The owner's observability: the dashboard in real headless Chromium (Debian's chromium
//! driven by npm playwright-core, both installed by scripts/setup), `/metrics`, the JSON
//! snapshot, and the explanations of why a job or a worker waits.

use crate::grid_support::TestGrid;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wasmhive_protocol::api::{JobInputs, JobLimits, JobSubmission, WorkerControlStatus};
use wasmhive_tests::grid::{TempDir, start_peer, wait_until, wasmhive};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A primes job of `units` units of 20,000 numbers (a few seconds in all).
fn primes_job(units: u64) -> JobSubmission {
    JobSubmission {
        shared: Vec::new(),
        name: "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>".into(),
        task_name: "primes".into(),
        module: task_modules::PRIMES.to_vec(),
        args: Vec::new(),
        inputs: JobInputs::Range { start: 0, end: units * 20_000, step: 20_000 },
        quorum: 1,
        max_replicas: 3,
        verify: Default::default(),
        limits: JobLimits {
            fuel: None,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            lease_ms: 60_000,
            timeout_ms: 10_000,
        },
        nan_canonicalization: true,
        validator: None,
        reducer: None,
    }
}

#[test]
fn the_dashboard_shows_a_job_submitted_through_the_api_reach_100_percent_in_chromium() {
    let directory = TempDir::new("dashboard");
    let data = directory.path().join("peer");
    let (_peer, _address) = start_peer(&data, "127.0.0.1:0", None);
    let dashboard = std::fs::read_to_string(data.join("dashboard.address"))
        .expect("the peer records its dashboard address");
    let submission = directory.path().join("submission.json");
    std::fs::write(&submission, serde_json::to_vec(&primes_job(300)).unwrap()).unwrap();
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    let browser = root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and npm playwright-core: run scripts/setup"
    );
    let output = Command::new("node")
        .current_dir(&browser)
        .args(["dashboard.mjs", &format!("http://{}", dashboard.trim()), token.trim()])
        .arg(&submission)
        .arg(&screenshot)
        .output()
        .expect("node");
    let log =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser test failed:\n{log}");
    assert!(log.contains("progress 100%"), "{log}");
    assert!(log.contains("markup shown as text"), "{log}");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}

/// The README's remote recipe: curl over TLS, the owner's key pinned, no CA.
fn curl_pinned(data: &Path) -> Command {
    let key = wasmhive_transport::load_or_create_peer_key(data).unwrap();
    let pin = wasmhive_transport::TlsIdentity::new(&key).curl_pin();
    let mut command = Command::new("curl");
    command.args(["-s", "--insecure", "--pinnedpubkey", &pin]);
    command
}

fn get(address: std::net::SocketAddr, data: &Path, path: &str) -> (u16, String) {
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    let output = curl_pinned(data)
        .args(["-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {}", token.trim())])
        .arg(format!("https://{address}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn metrics_and_explanations_say_what_the_grid_does_and_why_a_job_waits() {
    let grid = TestGrid::start("explain", 0);
    let job_id = grid.submit(&grid.primes_spec(400_000, 10_000, 2), false);
    wait_until(Duration::from_secs(20), "a reason for waiting", || {
        grid.status(&job_id).waiting_for.is_some_and(|why| why.contains("no workers"))
    });
    let mut args = vec!["status".to_string(), job_id.clone()];
    args.extend(grid.connection_args());
    let text =
        String::from_utf8_lossy(&wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout)
            .to_string();
    assert!(text.contains("waiting: no workers"), "{text}");

    let _worker = grid.start_worker("only-worker");
    wait_until(Duration::from_secs(60), "quorum 2 with one worker to stall", || {
        grid.status(&job_id)
            .waiting_for
            .is_some_and(|why| why.contains("waiting for a replica from another network"))
    });
    let control: WorkerControlStatus = {
        let data = grid.directory.path().join("only-worker");
        let output = wasmhive(&["worker", "status", "--data", data.to_str().unwrap(), "--json"]);
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let why = control.why_no_work.unwrap_or_default();
    assert!(why.contains("already has a replica from this worker or its network"), "{why}");

    // The core records outcomes on arrival; metrics count them once they are committed,
    // a moment later.
    wait_until(Duration::from_secs(10), "the last outcomes to be committed", || {
        get(grid.address, &grid.coordinator_data, "/metrics").1.contains("wasmhive_unit_run_seconds_count 40")
    });
    let (code, metrics) = get(grid.address, &grid.coordinator_data, "/metrics");
    assert_eq!(code, 200);
    for line in ["wasmhive_units_leased_total 40", "wasmhive_connected_workers 1", "wasmhive_jobs_running 1"]
    {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("wasmhive_unit_run_seconds_count 40"), "{metrics}");
    let (code, snapshot) = get(grid.address, &grid.coordinator_data, "/api/dashboard");
    assert_eq!(code, 200);
    let snapshot: wasmhive_protocol::api::DashboardSnapshot = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(snapshot.workers.len(), 1);
    assert_eq!(snapshot.jobs[0].verified, 0);
    let (code, units) = get(grid.address, &grid.coordinator_data, &format!("/api/jobs/{job_id}/units"));
    assert_eq!(code, 200);
    assert!(units.contains("\"matching_needed\":2"), "{units}");
    let token_path = grid.coordinator_data.join("token");
    let unauthorized = curl_pinned(&grid.coordinator_data)
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://{}/metrics", grid.address))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&unauthorized.stdout),
        "401",
        "metrics need the token in {}",
        token_path.display()
    );
}

#[test]
fn the_progress_stream_follows_a_job_to_its_end_and_then_ends() {
    let grid = TestGrid::start("progress", 1);
    let (code, body) = get(grid.address, &grid.coordinator_data, "/api/jobs/no-such-job/progress");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no-such-job"), "{body}");
    let job_id = grid.submit(&grid.primes_spec(2_000_000, 20_000, 1), false);
    // curl returns when the stream ends: the owner ends it with the job.
    let (code, body) = get(grid.address, &grid.coordinator_data, &format!("/api/jobs/{job_id}/progress"));
    assert_eq!(code, 200, "{body}");
    let statuses: Vec<wasmhive_protocol::api::JobStatus> =
        body.lines().map(|line| serde_json::from_str(line).expect("each line a status")).collect();
    let (last, before) = statuses.split_last().expect("at least one status");
    assert_eq!((last.state, last.verified), (wasmhive_protocol::api::JobState::Completed, 100), "{last:?}");
    assert!(before.iter().all(|status| status.state == wasmhive_protocol::api::JobState::Running));
    assert!(statuses.windows(2).all(|pair| pair[0].verified <= pair[1].verified), "progress never goes back");
}
