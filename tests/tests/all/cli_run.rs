//! `wasmhive run` as a user calls it: output on stdout, outcome on stderr, exit code from
//! the status, clear errors for bad files and sizes.

use std::process::{Command, Output};
use wasmhive_tests::grid::{TempDir, wasmhive};
use wasmhive_tests::wasmhive_binary;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_prints_the_output_and_the_outcome() {
    let output = wasmhive(&["run", "primes", "--input-text", "0 1000", "--fuel", "100000000"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "168\n");
    let outcome = stderr(&output);
    assert!(outcome.contains("status: success"), "{outcome}");
    assert!(outcome.contains("digest: "), "{outcome}");
    assert!(!outcome.contains("fuel: off"), "{outcome}");
}

#[test]
fn run_reads_a_module_file_and_input_from_stdin() {
    let directory = std::env::temp_dir().join(format!("wasmhive-run-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let module = directory.join("sum.wasm");
    std::fs::write(&module, task_modules::SUM).unwrap();
    let mut child = Command::new(wasmhive_binary())
        .args(["run", module.to_str().unwrap(), "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"1 101").unwrap();
    let output = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&directory).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "5050\n", "{}", stderr(&output));
}

#[test]
fn run_exit_code_reflects_the_status() {
    let bad_input = wasmhive(&["run", "primes", "--input-text", "ten"]);
    assert_eq!(bad_input.status.code(), Some(2));
    assert!(stderr(&bad_input).contains("exited with code 2"), "{}", stderr(&bad_input));
    let out_of_fuel = wasmhive(&["run", "primes", "--input-text", "0 1000000", "--fuel", "1000"]);
    assert_eq!(out_of_fuel.status.code(), Some(135));
    assert!(stderr(&out_of_fuel).contains("fuel exhausted"), "{}", stderr(&out_of_fuel));
}

#[test]
fn run_explains_bad_modules_and_bad_sizes() {
    let missing = wasmhive(&["run", "no-such-module.wasm"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("built-in task"), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("collatz, tolerant-compare, digest"),
        "every task listed: {}",
        stderr(&missing)
    );
    assert!(!stderr(&missing).contains("probe"), "the test guest is not offered: {}", stderr(&missing));
    let not_wasm = wasmhive(&["run", "Cargo.toml"]);
    assert_eq!(not_wasm.status.code(), Some(2));
    assert!(stderr(&not_wasm).contains("not a WebAssembly module"), "{}", stderr(&not_wasm));
    let bad_size = wasmhive(&["run", "sum", "--memory", "lots"]);
    assert_eq!(bad_size.status.code(), Some(2));
    assert!(stderr(&bad_size).contains("256 MiB"), "{}", stderr(&bad_size));
    let too_big = wasmhive(&["run", "sum", "--memory", "8 GiB"]);
    assert!(stderr(&too_big).contains("4 GiB"), "{}", stderr(&too_big));
}

#[test]
fn simulate_trust_plays_a_named_attack_and_names_the_attacks_it_knows() {
    let output =
        wasmhive(&["simulate", "trust", "--attack", "sybil-group", "--attackers", "0.05", "--units", "200"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("wrong results accepted: 0"), "{text}");
    let refused = wasmhive(&["simulate", "trust", "--attack", "nope"]);
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && error.contains("careful-colluders, sybil-group"), "{error}");
}

/// The README's first command: a local grid verifies a primes job at quorum 2. (It stalled
/// once, when both in-process workers connected from one address: one network.) Run as
/// `cargo install` leaves it: a copy of the binary alone in a folder of its own, started
/// from another empty folder with nothing of the environment (no repository, no cargo,
/// no PATH): the built-in tasks travel inside the binary.
#[test]
fn an_installed_copy_of_the_binary_runs_the_demo_from_any_directory() {
    let installed = TempDir::new("installed-bin");
    let elsewhere = TempDir::new("elsewhere");
    let binary = installed.path().join("wasmhive");
    std::fs::copy(wasmhive_binary(), &binary).unwrap();
    let mut demo = Command::new(&binary)
        .args(["demo", "--end", "1000000", "--step", "50000"])
        .current_dir(elsewhere.path())
        .env_clear()
        .env("HOME", elsewhere.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while demo.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = demo.kill();
            panic!("the demo did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = demo.wait_with_output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.contains("matches the known count 78498"), "{text}");
}

/// A test's CLI runs never read or record the user's own data or config (`known_hosts` of
/// an earlier run's port made an unrelated test fail: that port's owner had a new key).
#[test]
fn the_cli_under_test_has_a_data_directory_and_no_config_file_of_its_own() {
    let output = wasmhive(&["worker", "--cpus", "1", "--print-config"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let data_line = text.lines().find(|line| line.starts_with("data ")).unwrap_or_default();
    let home_data =
        std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".local/share/wasmhive"));
    let home_data = home_data.map(|path| path.display().to_string()).unwrap_or_default();
    assert!(!data_line.contains(&home_data), "the user's data directory: {data_line}");
    assert!(data_line.contains("wasmhive-test-"), "a test folder: {data_line}");
    let config_line = text.lines().next().unwrap_or_default();
    assert!(config_line.contains("none") && config_line.contains("wasmhive-test-"), "{config_line}");
}
