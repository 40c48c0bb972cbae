//! Builds the Rust task modules for `wasm32-wasip1` (release profile) with a nested cargo,
//! into `<target>/wasm-tasks`, and copies the `.wasm` files into OUT_DIR for `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, binary) of every task module this crate embeds.
const TASKS: &[(&str, &str)] = &[
    ("task-sum", "sum"),
    ("task-primes", "primes"),
    ("task-pi", "pi"),
    ("task-mandelbrot", "mandelbrot"),
    ("task-hashcash", "hashcash"),
    ("task-heat", "heat"),
    ("task-probe", "probe"),
    ("task-sum-columns", "sum-columns"),
    ("task-collatz", "collatz"),
    ("task-tolerant-compare", "tolerant-compare"),
    ("task-digest", "digest"),
];

const WASM_TARGET: &str = "wasm32-wasip1";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let tasks_dir = manifest_dir.parent().expect("tasks/modules has a parent");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (_, binary) in TASKS {
        println!("cargo:rerun-if-changed={}", tasks_dir.join(binary).display());
    }
    println!("cargo:rerun-if-changed={}", tasks_dir.join("kernels").display());
    ensure_wasm_target_installed();
    let wasm_target_dir = shared_target_dir(&out_dir).join("wasm-tasks");
    build_tasks(&tasks_dir.join("../Cargo.toml"), &wasm_target_dir);
    let built_dir = wasm_target_dir.join(WASM_TARGET).join("release");
    for (_, binary) in TASKS {
        let file = format!("{binary}.wasm");
        std::fs::copy(built_dir.join(&file), out_dir.join(&file))
            .unwrap_or_else(|error| panic!("copying {file} from {}: {error}", built_dir.display()));
    }
}

fn ensure_wasm_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output =
        Command::new(rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !sysroot.join("lib/rustlib").join(WASM_TARGET).exists() {
        panic!(
            "\n\nthe Rust target {WASM_TARGET} is not installed, and wasmhive's task modules need it.\n\
             fix: run `rustup target add {WASM_TARGET}` (or `scripts/setup`), then build again.\n\n"
        );
    }
}

/// `<target>` of the outer build, found from OUT_DIR (`<target>/<profile>/build/<pkg>/out`),
/// so dev, test and clippy builds share one set of wasm artifacts.
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_else(|| out_dir.to_path_buf())
}

fn build_tasks(workspace_manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", WASM_TARGET])
        // Task modules ship without debug info: smaller to send, faster to compile.
        .args(["--config", "profile.release.debug=false", "--config", "profile.release.strip=true"])
        .arg("--manifest-path")
        .arg(workspace_manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for (package, _) in TASKS {
        command.args(["-p", package]);
    }
    // The outer build's settings must not leak into the guest build.
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "__CARGO_FIX_PLZ",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().expect("running cargo for the task modules");
    if !output.status.success() {
        panic!(
            "building the task modules for {WASM_TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
