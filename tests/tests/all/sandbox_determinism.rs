//! The same unit gives the same digest and fuel every time, on any thread; NaN bits are
//! canonical when canonicalisation is on; random bytes are seeded by (job, unit).

use std::sync::Arc;
use wasmhive_sandbox::{Limits, Outcome, Sandbox, SandboxConfig, Status};
use wasmhive_tests::{run_unit, run_unit_as, task_module};

const UNITS: &[(&str, &str)] = &[
    ("sum", "0 50000"),
    ("primes", "0 30000"),
    ("pi", "20000"),
    ("mandelbrot", "64 32 0 32 200"),
    ("hashcash", "determinism 10"),
    ("heat", "64 32 50"),
];

fn metered() -> Limits {
    Limits { fuel: Some(10_000_000_000), ..Limits::default() }
}

fn fingerprint(outcome: &Outcome) -> (Status, String, Option<u64>) {
    (outcome.status.clone(), outcome.digest.to_hex(), outcome.fuel_used)
}

#[test]
fn every_task_gives_the_same_digest_and_fuel_twice_and_across_threads() {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()));
    for (task, input) in UNITS {
        let module = task_module(task);
        let first = run_unit(&sandbox, &module, input.as_bytes(), &[], &metered());
        assert_eq!(first.status, Status::Success, "{task}: {}", first.message);
        assert!(first.fuel_used.unwrap() > 0, "{task}: fuel is metered");
        let second = run_unit(&sandbox, &module, input.as_bytes(), &[], &metered());
        assert_eq!(fingerprint(&first), fingerprint(&second), "{task}: two runs differ");
        let concurrent: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| run_unit(&sandbox, &module, input.as_bytes(), &[], &metered())))
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("runner thread")).collect()
        });
        for outcome in concurrent {
            assert_eq!(fingerprint(&first), fingerprint(&outcome), "{task}: a concurrent run differs");
        }
    }
}

#[test]
fn a_fresh_sandbox_gives_the_same_digest_as_a_warm_one() {
    let module = task_module("primes");
    let warm = Sandbox::new(SandboxConfig::default());
    let warm_outcome = run_unit(&warm, &module, b"0 20000", &[], &metered());
    let again = run_unit(&warm, &module, b"0 20000", &[], &metered());
    let fresh = run_unit(&Sandbox::new(SandboxConfig::default()), &module, b"0 20000", &[], &metered());
    assert_eq!(fingerprint(&warm_outcome), fingerprint(&again));
    assert_eq!(fingerprint(&warm_outcome), fingerprint(&fresh));
}

#[test]
fn fuel_metering_does_not_change_the_output() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    for (task, input) in UNITS {
        let module = task_module(task);
        let unmetered = run_unit(&sandbox, &module, input.as_bytes(), &[], &Limits::default());
        let metered = run_unit(&sandbox, &module, input.as_bytes(), &[], &metered());
        assert_eq!(unmetered.fuel_used, None);
        assert_eq!(unmetered.digest, metered.digest, "{task}");
    }
}

#[test]
fn nan_canonicalisation_gives_canonical_bits() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let outcome = run_unit(&sandbox, &task_module("probe"), b"", &["nan"], &Limits::default());
    assert_eq!(outcome.status, Status::Success, "{}", outcome.message);
    assert_eq!(
        String::from_utf8_lossy(&outcome.stdout),
        "f64_div=7ff8000000000000 f32_div=7fc00000 f64_sqrt=7ff8000000000000\n"
    );
}

#[test]
fn random_is_seeded_by_job_and_unit() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let probe = task_module("probe");
    let unit_0 = run_unit_as(&sandbox, &probe, b"", &["random"], &Limits::default(), 0);
    let unit_0_again = run_unit_as(&sandbox, &probe, b"", &["random"], &Limits::default(), 0);
    let unit_1 = run_unit_as(&sandbox, &probe, b"", &["random"], &Limits::default(), 1);
    assert_eq!(unit_0.status, Status::Success, "{}", unit_0.message);
    assert_eq!(unit_0.stdout, unit_0_again.stdout);
    assert_ne!(unit_0.stdout, unit_1.stdout);
}

#[test]
fn the_guest_sees_only_its_args_and_the_two_wasmhive_variables() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let outcome =
        run_unit_as(&sandbox, &task_module("probe"), b"", &["abi", "--flag"], &Limits::default(), 42);
    let text = String::from_utf8_lossy(&outcome.stdout);
    assert_eq!(
        text,
        "args=[\"task\", \"abi\", \"--flag\"]\n\
         env=[(\"WASMHIVE_JOB\", \"test-job\"), (\"WASMHIVE_UNIT\", \"42\")]\n\
         preopened_root=Ok(())\n"
    );
}
