//! The same tasks in six languages: Rust (built by cargo), C, Zig, Go, AssemblyScript and
//! WAT (built by scripts/build-task-languages; a missing toolchain fails the build, and so
//! these tests, with what to install). Every language must give byte-identical outcomes,
//! on inputs past 2^32 that catch 32-bit arithmetic, and run through the grid.

use crate::grid_support::TestGrid;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use wasmhive_sandbox::{Limits, ModuleBytes, Sandbox, SandboxConfig, Status};
use wasmhive_tests::grid::{TempDir, wasmhive};
use wasmhive_tests::{run_unit, task_module, wasmhive_binary};

const LANGUAGES: [&str; 5] = ["c", "zig", "go", "assemblyscript", "wat"];

/// The modules built once per test run by scripts/build-task-languages.
fn built_modules() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = root.join("target/wasm-languages");
        let output = Command::new(root.join("scripts/build-task-languages")).arg(&out).output().expect("bash");
        assert!(
            output.status.success(),
            "building the task modules in other languages failed (run scripts/setup to install the toolchains):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    })
}

fn module(language: &str, task: &str) -> ModuleBytes {
    if language == "rust" {
        return task_module(task);
    }
    let path = built_modules().join(format!("{language}-{task}.wasm"));
    ModuleBytes::new(std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
}

/// Every language's outcome equals the Rust module's, whose output equals the native
/// kernel's (`Err`: bad input, exit code 2).
fn check_every_language_agrees(task: &str, inputs: &[&str], native: fn(&str) -> Result<Vec<u8>, String>) {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let limits = Limits { wall_time_max: std::time::Duration::from_secs(60), ..Limits::default() };
    let rust = module("rust", task);
    for input in inputs {
        let reference = run_unit(&sandbox, &rust, input.as_bytes(), &[], &limits);
        match native(input) {
            Ok(output) => assert_eq!(
                (&reference.status, &reference.stdout),
                (&Status::Success, &output),
                "{task} {input:?}"
            ),
            Err(_) => {
                assert_eq!(reference.status, Status::ExitCode { code: 2 }, "{task} {input:?} is bad input")
            }
        }
        for language in LANGUAGES {
            let outcome = run_unit(&sandbox, &module(language, task), input.as_bytes(), &[], &limits);
            assert_eq!(
                (&outcome.status, String::from_utf8_lossy(&outcome.stdout), outcome.digest),
                (&reference.status, String::from_utf8_lossy(&reference.stdout), reference.digest),
                "{language} {task} {input:?} differs from Rust (stderr: {})",
                String::from_utf8_lossy(&outcome.stderr)
            );
        }
    }
}

#[test]
fn primes_gives_byte_identical_outcomes_in_every_language() {
    let inputs = [
        "0 100000",
        "4294967000 4294969000",
        "1000000000000 1000000000400",
        "7 7",
        "5 3",
        "x y",
        "1",
        "1 2 3",
    ];
    check_every_language_agrees("primes", &inputs, task_kernels::primes::run);
    assert_eq!(task_kernels::primes::run("0 100000").unwrap(), b"9592\n");
}

#[test]
fn collatz_gives_byte_identical_outcomes_in_every_language() {
    // 77031's trajectory climbs to 21,563,638,744: past 2^32.
    check_every_language_agrees(
        "collatz",
        &["1 100000", "77031 77032", "1 1", "0 5", "1 two"],
        task_kernels::collatz::run,
    );
    assert_eq!(task_kernels::collatz::run("1 100000").unwrap(), b"77031 350\n");
}

#[test]
fn every_language_runs_primes_through_the_grid_with_quorum_two_and_compiles_once_per_host() {
    let grid = TestGrid::start("languages", 2);
    let (start, step, units) = (4_294_960_000u64, 2_000u64, 5u64);
    let mut jobs = Vec::new();
    for language in ["rust", "c", "zig", "go", "assemblyscript", "wat"] {
        let module_path = match language {
            "rust" => "primes".to_string(),
            _ => built_modules().join(format!("{language}-primes.wasm")).to_str().unwrap().to_string(),
        };
        let spec = grid.directory.path().join(format!("{language}.toml"));
        let text = format!(
            "name = \"primes-{language}\"\nmodule = {module_path:?}\n[inputs]\nrange = {{ start = {start}, end = {}, step = {step} }}\n\
             [verify]\nquorum = 2\n[limits]\ntimeout = \"60s\"\n",
            start + units * step
        );
        std::fs::write(&spec, text).unwrap();
        jobs.push((language, grid.submit(spec.to_str().unwrap(), false)));
    }
    let mut answers = Vec::new();
    for (language, job_id) in &jobs {
        grid.wait_for_completion(job_id);
        let outputs: Vec<String> = grid
            .results(job_id)
            .into_iter()
            .map(|result| {
                assert_eq!(
                    (result.state.as_str(), result.replicas),
                    ("success", 2),
                    "{language}: {result:?}"
                );
                result.output.unwrap_or_default()
            })
            .collect();
        answers.push((*language, outputs));
    }
    let expected: Vec<String> = (0..units)
        .map(|unit| {
            format!(
                "{}\n",
                task_kernels::primes::count_primes(start + unit * step, start + (unit + 1) * step)
            )
        })
        .collect();
    for (language, outputs) in &answers {
        assert_eq!(outputs, &expected, "{language}");
    }
    let go_hash = module("go", "primes").hash.to_hex();
    for worker in ["worker-0", "worker-1"] {
        let artifacts = artifact_files(&grid.directory.path().join(worker).join("artifacts"));
        let go_artifacts = artifacts.iter().filter(|name| name.contains(&go_hash)).count();
        assert_eq!(go_artifacts, 1, "{worker} compiled the Go module once and kept it: {artifacts:?}");
    }
}

fn artifact_files(directory: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for class in std::fs::read_dir(directory).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(class.path()).into_iter().flatten().flatten() {
            names.push(file.file_name().to_string_lossy().to_string());
        }
    }
    names
}

#[test]
fn a_compiled_module_is_loaded_from_disk_not_compiled_again() {
    let directory = TempDir::new("artifact-cache");
    let go = module("go", "primes");
    let config =
        || SandboxConfig { artifact_dir: Some(directory.path().to_path_buf()), ..SandboxConfig::default() };
    let first = run_unit(&Sandbox::new(config()), &go, b"0 1000", &[], &Limits::default());
    assert_eq!(first.stdout, b"168\n");
    let artifact = directory.path().join(&*first.engine_class).join(format!("{}.cwasm", go.hash.to_hex()));
    let written =
        std::fs::metadata(&artifact).and_then(|metadata| metadata.modified()).expect("the artifact was kept");
    let again = run_unit(&Sandbox::new(config()), &go, b"0 1000", &[], &Limits::default());
    assert_eq!(again.digest, first.digest);
    let after = std::fs::metadata(&artifact).unwrap().modified().unwrap();
    assert_eq!(written, after, "a fresh sandbox loaded the artifact instead of compiling and rewriting it");
}

#[test]
fn every_scaffold_builds_and_runs() {
    let directory = TempDir::new("scaffolds");
    for language in ["rust", "c", "zig", "go", "assemblyscript", "wat"] {
        let name = format!("count-{language}");
        let output =
            wasmhive(&["new", &name, "--lang", language, "--dir", directory.path().to_str().unwrap()]);
        assert!(output.status.success(), "new {language}: {}", String::from_utf8_lossy(&output.stderr));
        let project = directory.path().join(&name);
        assert!(std::fs::read_to_string(project.join("README.md")).unwrap().contains("Exit code"));
        let build = Command::new(project.join("build.sh")).output().expect("build.sh");
        assert!(build.status.success(), "{language} build: {}", String::from_utf8_lossy(&build.stderr));
        let run = Command::new(wasmhive_binary())
            .args([
                "run",
                project.join(format!("{name}.wasm")).to_str().unwrap(),
                "--input-text",
                "one two  three\n",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "3 words\n",
            "{language}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // Every scaffold reads a shared file when the job has one.
    for language in ["rust", "c", "go", "zig", "assemblyscript", "wat"] {
        let project = directory.path().join(format!("count-{language}"));
        std::fs::write(project.join("ignore.txt"), "two\n").unwrap();
        let module = project.join(format!("count-{language}.wasm"));
        let shared = project.join("ignore.txt");
        let run = wasmhive(&[
            "run",
            module.to_str().unwrap(),
            "--input-text",
            "one two three",
            "--shared",
            shared.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(String::from_utf8_lossy(&run.stdout), "2 words\n", "{language}: {stderr}");
    }
    let refused = wasmhive(&["new", "Bad_Name", "--lang", "c", "--dir", directory.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lowercase letters"));
}

#[test]
fn the_scaffold_pins_the_same_assemblyscript_as_the_tasks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dependencies = |path: &str| {
        let text = std::fs::read_to_string(root.join(path)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["devDependencies"].clone()
    };
    assert_eq!(
        dependencies("cli/templates/assemblyscript/package.json"),
        dependencies("tasks/languages/assemblyscript/package.json")
    );
}
