//! Broken job specs give errors that name the file, the key and the fix.

use std::path::Path;
use wasmhive_coordinator::job_spec::load_job_spec;
use wasmhive_tests::grid::{TempDir, wasmhive};

fn load(directory: &Path, text: &str) -> Result<wasmhive_protocol::api::JobSubmission, String> {
    let path = directory.join("job.toml");
    std::fs::write(&path, text).unwrap();
    load_job_spec(&path, &|name| task_modules::by_name(name).map(<[u8]>::to_vec))
        .map(|spec| spec.submission)
        .map_err(|error| error.to_string())
}

fn check(directory: &Path, text: &str, expected: &[&str]) {
    let error = load(directory, text).expect_err("the spec is broken");
    assert!(error.contains("job.toml"), "names the file: {error}");
    for needle in expected {
        assert!(error.contains(needle), "expected {needle:?} in {error:?}");
    }
}

#[test]
fn broken_specs_name_the_file_the_key_and_the_fix() {
    let directory = TempDir::new("specs");
    let directory = directory.path();
    let range = "[inputs]\nrange = { start = 0, end = 100, step = 10 }\n";
    check(
        directory,
        &format!("module = \"missing.wasm\"\n{range}"),
        &["module", "missing.wasm", "built-in module"],
    );
    check(directory, range, &["module", "is missing", "module = "]);
    check(
        directory,
        "module = \"primes\"\n[inputs]\nrange = { start = 50, end = 10 }\n",
        &["inputs.range", "start 50"],
    );
    check(
        directory,
        "module = \"primes\"\n[inputs]\nrange = { end = 10, step = 0 }\n",
        &["inputs.range.step", "step ≥ 1"],
    );
    check(
        directory,
        &format!("module = \"primes\"\nquorom = 2\n{range}"),
        &["quorom", "is not a known key", "use one of"],
    );
    check(
        directory,
        &format!("module = \"primes\"\n{range}[verify]\nquorum = 0\n"),
        &["verify.quorum", "1 to 16"],
    );
    check(
        directory,
        &format!("module = \"primes\"\n{range}[verify]\nquorum = 3\nmax_replicas = 2\n"),
        &["verify.max_replicas"],
    );
    check(
        directory,
        &format!("module = \"primes\"\n{range}[limits]\nmemory = \"lots\"\n"),
        &["limits.memory", "256 MiB"],
    );
    check(directory, &format!("module = \"primes\"\n{range}[limits]\nlease = 5\n"), &["limits.lease", "10m"]);
    // Limits within their syntax but out of bounds: the one check the API makes too.
    for (limit, key, fix) in [
        ("fuel = 0", "limits.fuel", "above 0"),
        ("memory = \"5 GiB\"", "limits.memory", "4 GiB"),
        ("output = \"65 MiB\"", "limits.output", "64 MiB"),
        ("lease = \"8d\"", "limits.lease", "100 ms to 7 days"),
        ("timeout = \"2d\"", "limits.timeout", "1 ms to 1 day"),
    ] {
        let spec = format!("module = \"primes\"\n{range}[limits]\n{limit}\n");
        check(directory, &spec, &[key, fix]);
    }
    let submission = load(directory, &format!("module = \"primes\"\n{range}")).unwrap();
    assert_eq!(submission.limits, wasmhive_protocol::api::JobLimits::default(), "what a spec leaves out");
    check(directory, "module = \"primes\"\n[inputs]\nlines = \"nope.txt\"\n", &["inputs.lines", "nope.txt"]);
    check(directory, "module = \"primes\"\n", &["inputs", "exactly one of"]);
    check(
        directory,
        &format!("module = \"primes\"\n{range}[verify]\npolicy = \"trusting\"\n"),
        &["verify.policy", "\"trusting\"", "adaptive"],
    );
    check(
        directory,
        &format!("module = \"primes\"\n{range}[verify]\npolicy = \"adaptive\"\nspot_check = 5\n"),
        &["verify.spot_check", "fraction", "0.05"],
    );
    check(
        directory,
        &format!("module = \"primes\"\n{range}[verify]\nvalidator = \"nope.wasm\"\n"),
        &["verify.validator", "nope.wasm"],
    );
    check(directory, &format!("module = \"primes\"\nreducer = 3\n{range}"), &["reducer", "not a string"]);
    check(directory, "module = \"primes\n", &["(file)", "TOML"]);
    std::fs::create_dir_all(directory.join("big")).unwrap();
    // Sparse: one byte above the 1 GiB a unit's input may be.
    let huge = std::fs::File::create(directory.join("big/huge.bin")).unwrap();
    huge.set_len(wasmhive_protocol::INPUT_BLOB_BYTES_MAX + 1).unwrap();
    check(
        directory,
        "module = \"sum\"\n[inputs]\nfiles = \"big/*.bin\"\n",
        &["inputs.files", "huge.bin", "split it"],
    );
    std::fs::write(directory.join("model.bin"), b"m").unwrap();
    let shared = |list: &str| {
        format!("module = \"sum\"\n[inputs]\nrange = {{ start = 0, end = 2 }}\nshared = {list}\n")
    };
    check(directory, &shared("\"model.bin\""), &["inputs.shared", "list of file names"]);
    check(directory, &shared("[\"missing.bin\"]"), &["inputs.shared", "missing.bin"]);
    check(
        directory,
        &shared("[\"model.bin\", \"./model.bin\"]"),
        &["inputs.shared", "two shared files are named"],
    );
    std::fs::write(directory.join("not-wasm.wasm"), "hello").unwrap();
    check(
        directory,
        &format!("module = \"not-wasm.wasm\"\n{range}"),
        &["module", "not a WebAssembly module"],
    );
}

#[test]
fn good_specs_load_lines_and_files() {
    let directory = TempDir::new("good-specs");
    let directory = directory.path();
    std::fs::write(directory.join("inputs.txt"), "0 10\n\n10 20\n").unwrap();
    let lines = load(directory, "module = \"primes\"\n[inputs]\nlines = \"inputs.txt\"\n").unwrap();
    assert_eq!(wasmhive_coordinator::job_spec::unit_count(&lines.inputs), 2);
    assert_eq!((lines.quorum, lines.max_replicas), (2, 5));
    // The default: fast floats, every replica on the owner's engine class.
    assert!(!lines.nan_canonicalization, "NaN canonicalisation is off unless the spec asks for it");
    let portable = load(
        directory,
        "module = \"primes\"\nnan_canonicalization = true\n[inputs]\nlines = \"inputs.txt\"\n",
    )
    .unwrap();
    assert!(portable.nan_canonicalization);
    std::fs::create_dir_all(directory.join("data")).unwrap();
    for name in ["a.bin", "b.bin", "c.txt"] {
        std::fs::write(directory.join("data").join(name), name).unwrap();
    }
    let files = load(directory, "module = \"sum\"\n[inputs]\nfiles = \"data/*.bin\"\n[verify]\nquorum = 1\n")
        .unwrap();
    assert_eq!(wasmhive_coordinator::job_spec::unit_count(&files.inputs), 2);
    let adaptive = load(
        directory,
        "module = \"primes\"\nreducer = \"sum-columns\"\n[inputs]\nlines = \"inputs.txt\"\n\
         [verify]\npolicy = \"adaptive\"\nspot_check = 0.1\nvalidator = \"tolerant-compare\"\n",
    )
    .unwrap();
    let verify = adaptive.verify;
    assert_eq!(
        (verify.policy, verify.spot_check, verify.known_answers),
        (wasmhive_protocol::api::VerifyPolicy::Adaptive, 0.1, 2)
    );
    assert!(adaptive.validator.is_some() && adaptive.reducer.is_some());
}

#[test]
fn submit_reports_spec_errors_before_contacting_anyone() {
    let directory = TempDir::new("submit-spec");
    let spec = directory.path().join("job.toml");
    std::fs::write(&spec, "module = \"primes\"\n[inputs]\nrange = { start = 5, end = 1 }\n").unwrap();
    let output = wasmhive(&["submit", spec.to_str().unwrap(), "--to", "127.0.0.1:9", "--token", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("inputs.range"));
}
