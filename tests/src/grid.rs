//! Real processes on loopback: a coordinator and workers started from the `wasmhive`
//! binary, killed on drop.

use crate::wasmhive_binary;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed (SIGKILL) when dropped.
pub struct Running {
    child: Child,
    pub log: PathBuf,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL now, like a crash or `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Lines of a process's log printed when a test fails while it runs.
const LOG_LINES_SHOWN_ON_FAILURE: usize = 80;

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN_ON_FAILURE)..];
            eprintln!("--- last lines of {} ---\n{}", self.log.display(), shown.join("\n"));
        }
    }
}

fn spawn_logged(args: &[&str], log: PathBuf) -> Running {
    spawn_logged_in(None, args, log)
}

/// Spawns `wasmhive ARGS`, inside network namespace `namespace` if given.
fn spawn_logged_in(namespace: Option<&str>, args: &[&str], log: PathBuf) -> Running {
    let log_file = std::fs::File::create(&log).expect("creating a log file");
    let mut command = match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]).arg(wasmhive_binary());
            command
        }
        None => Command::new(wasmhive_binary()),
    };
    let child = command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file handle"))
        .stderr(log_file)
        .spawn()
        .expect("starting wasmhive");
    Running { child, log }
}

/// Starts `wasmhive coordinator` on `listen` (e.g. `127.0.0.1:0`) and waits for its
/// address.
pub fn start_coordinator(data: &Path, listen: &str) -> (Running, SocketAddr) {
    start_coordinator_with(data, listen, &[])
}

/// [`start_coordinator`] with extra flags.
pub fn start_coordinator_with(data: &Path, listen: &str, extra: &[&str]) -> (Running, SocketAddr) {
    std::fs::create_dir_all(data).expect("coordinator data directory");
    let log = data.join(format!("coordinator-{}.log", unique_suffix()));
    let mut args = vec!["coordinator", "--listen", listen, "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    wait_for_address(spawn_logged(&args, log))
}

/// Starts `wasmhive peer` on `listen`, joining through `join` (if any), with one core.
pub fn start_peer(data: &Path, listen: &str, join: Option<SocketAddr>) -> (Running, SocketAddr) {
    start_peer_in(None, data, listen, join)
}

/// [`start_peer`] inside network namespace `namespace` if given.
pub fn start_peer_in(
    namespace: Option<&str>,
    data: &Path,
    listen: &str,
    join: Option<SocketAddr>,
) -> (Running, SocketAddr) {
    start_peer_with(namespace, data, listen, join, &[])
}

/// [`start_peer_in`] with `extra` arguments (e.g. `--upload-rate`).
pub fn start_peer_with(
    namespace: Option<&str>,
    data: &Path,
    listen: &str,
    join: Option<SocketAddr>,
    extra: &[&str],
) -> (Running, SocketAddr) {
    std::fs::create_dir_all(data).expect("peer data directory");
    let log = data.join(format!("peer-{}.log", unique_suffix()));
    let mut args = vec!["peer", "--listen", listen, "--data", data.to_str().unwrap(), "--cpus", "1"];
    let own_network = own_loopback_network();
    if namespace.is_none() && listen.starts_with("127.0.0.1:") {
        args.extend(["--bind-address", &own_network]);
    }
    let join = join.map(|address| address.to_string());
    if let Some(join) = &join {
        args.extend(["--join", join]);
    }
    args.extend(extra);
    wait_for_address(spawn_logged_in(namespace, &args, log))
}

/// Starts `wasmhive peer --no-listen` (behind NAT: outbound connections only) joining `join`.
pub fn start_peer_behind_nat(data: &Path, join: SocketAddr) -> Running {
    std::fs::create_dir_all(data).expect("peer data directory");
    let log = data.join(format!("peer-{}.log", unique_suffix()));
    let join = join.to_string();
    spawn_logged(
        &["peer", "--no-listen", "--join", &join, "--data", data.to_str().unwrap(), "--cpus", "1"],
        log,
    )
}

/// Waits for the "listening on ADDR#PEERID" line of a coordinator or peer.
fn wait_for_address(running: Running) -> (Running, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = running.log_text();
        // Only a whole line: the process may be writing it while we read.
        if let Some((line, _)) = text.split("listening on ").nth(1).and_then(|rest| rest.split_once('\n')) {
            let address = line.split(['#', ' ']).next().expect("an address follows");
            return (running, address.parse().expect("a socket address"));
        }
        assert!(Instant::now() < deadline, "the process did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `wasmhive worker` joining `address` with `cpus` threads.
pub fn start_worker(address: SocketAddr, data: &Path, cpus: usize) -> Running {
    start_worker_with(address, data, cpus, &[])
}

/// [`start_worker`] with more flags (volunteer controls).
pub fn start_worker_with(address: SocketAddr, data: &Path, cpus: usize, extra: &[&str]) -> Running {
    start_worker_joining(&address.to_string(), data, cpus, extra)
}

/// Starts `wasmhive worker --join JOIN` (`HOST:PORT` or `HOST:PORT#PEERID`).
pub fn start_worker_joining(join: &str, data: &Path, cpus: usize, extra: &[&str]) -> Running {
    std::fs::create_dir_all(data).expect("worker data directory");
    let log = data.join(format!("worker-{}.log", unique_suffix()));
    let cpus = cpus.to_string();
    let mut args =
        vec!["worker", "--join", join, "--cpus", &cpus, "--data", data.to_str().unwrap(), "--grace", "5s"];
    let own_network = own_loopback_network();
    if !extra.contains(&"--bind-address") && join.starts_with("127.") {
        args.extend(["--bind-address", &own_network]);
    }
    args.extend_from_slice(extra);
    spawn_logged(&args, log)
}

/// A loopback address no other worker or peer of this test process connects from: owners
/// count loopback addresses as networks of their own, and two replicas of a unit never
/// come from one network, so each worker or peer a test starts stands for a network.
pub fn own_loopback_network() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (250 * 250);
    format!("127.0.{}.{}", 1 + index / 250, 2 + index % 250)
}

/// The peer id an owner printed when it started ("listening on ADDR#PEERID").
pub fn owner_id(owner: &Running) -> String {
    let log = owner.log_text();
    let rest = log.split("listening on ").nth(1).expect("the owner printed its address");
    let id =
        rest.split_whitespace().next().and_then(|address| address.split_once('#')).expect("ADDR#PEERID").1;
    id.to_string()
}

/// Runs `wasmhive ARGS` to completion, with a default data directory and config folder
/// of its own (removed afterwards): no test reads or records the user's (`known_hosts`
/// entries of earlier runs' ports, keys, a config file). `--data` and `--config` still win.
pub fn wasmhive(args: &[&str]) -> Output {
    let own = TempDir::new("cli");
    let mut child = Command::new(wasmhive_binary())
        .args(args)
        .env("WASMHIVE_DATA", own.path().join("data"))
        .env("XDG_CONFIG_HOME", own.path().join("config"))
        .env_remove("WASMHIVE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running wasmhive");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    Output { status, stdout, stderr }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("wasmhive-test-{name}-{}", unique_suffix()));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (pieces from the owner, pieces from peers) of each `blob fetched` line in a worker's or
/// peer's log.
pub fn blob_fetches(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter(|line| line.contains("blob fetched"))
        .map(|line| {
            let line = strip_colours(line);
            (log_number(&line, "pieces_from_owner="), log_number(&line, "pieces_from_peers="))
        })
        .collect()
}

/// The number after `name` in a log line.
fn log_number(line: &str, name: &str) -> u64 {
    let start = line.find(name).unwrap_or_else(|| panic!("{name} in {line}")) + name.len();
    line[start..].split(|character: char| !character.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// A log line without its terminal colour codes.
fn strip_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut in_escape = false;
    for character in line.chars() {
        match character {
            '\u{1b}' => in_escape = true,
            'm' if in_escape => in_escape = false,
            _ if in_escape => {}
            _ => plain.push(character),
        }
    }
    plain
}
