//! Every task module's answer equals its native kernel's, on several inputs, including
//! inputs past 2^32 that catch 32-bit overflow on wasm32.

use wasmhive_sandbox::{Limits, Sandbox, SandboxConfig, Status};
use wasmhive_tests::{TEST_JOB, run_unit_as, task_module};

fn check(task: &str, input: &str, native: impl Fn(&str) -> Result<Vec<u8>, String>) {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let module = task_module(task);
    let outcome = run_unit_as(&sandbox, &module, input.as_bytes(), &[], &Limits::default(), 7);
    let expected = native(input).unwrap_or_else(|error| panic!("native {task} rejected {input:?}: {error}"));
    assert_eq!(outcome.status, Status::Success, "{task} {input:?}: {}", outcome.message);
    assert_eq!(outcome.stdout, expected, "{task} {input:?}: wasm and native disagree");
}

#[test]
fn sum_matches_native() {
    for input in ["0 0", "0 100", "1000 200000", "4294967290 4294967300"] {
        check("sum", input, task_kernels::sum::run);
    }
    assert_eq!(task_kernels::sum::run("0 101").unwrap(), b"5050\n");
}

#[test]
fn primes_matches_native() {
    for input in ["0 100", "0 100000", "1000000 1020000", "4294967200 4294967400"] {
        check("primes", input, task_kernels::primes::run);
    }
    assert_eq!(task_kernels::primes::run("0 100").unwrap(), b"25\n");
}

#[test]
fn pi_matches_native_on_the_same_random_stream() {
    for samples in ["0", "1000", "300000"] {
        check("pi", samples, |input| {
            task_kernels::pi::run(input, &mut wasmhive_sandbox::random_get_stream(TEST_JOB, 7))
        });
    }
}

#[test]
fn mandelbrot_matches_native() {
    for input in ["64 48 0 48 100", "200 100 30 60 500", "16 16 16 16 10"] {
        check("mandelbrot", input, task_kernels::mandelbrot::run);
    }
}

#[test]
fn hashcash_matches_native() {
    for input in ["wasmhive 8", "abc 12", "x 0"] {
        check("hashcash", input, task_kernels::hashcash::run);
    }
}

#[test]
fn heat_matches_native_bit_for_bit() {
    for input in ["3 3 1", "17 5 40", "64 48 300", "250 3 10"] {
        check("heat", input, task_kernels::heat::run);
    }
}

#[test]
fn bad_input_is_a_deterministic_failure_with_a_message() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    for (task, input) in
        [("primes", "ten twenty"), ("sum", "5 1"), ("mandelbrot", "0 0 0 0 0"), ("pi", ""), ("heat", "2 2 1")]
    {
        let outcome = run_unit_as(&sandbox, &task_module(task), input.as_bytes(), &[], &Limits::default(), 0);
        assert_eq!(outcome.status, Status::ExitCode { code: 2 }, "{task} {input:?}");
        let stderr = String::from_utf8_lossy(&outcome.stderr);
        assert!(stderr.starts_with("error: "), "{task} {input:?}: stderr {stderr:?}");
    }
}

#[test]
fn digest_matches_native_on_binary_input_of_any_length() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let module = task_module("digest");
    for length in [0usize, 3, 1 << 20, (3 << 20) + 17] {
        let input: Vec<u8> = (0..length).map(|index| (index * 7 + index / 1000) as u8).collect();
        for mode in ["sha256", "checksum"] {
            let outcome = run_unit_as(&sandbox, &module, &input, &[mode], &Limits::default(), 0);
            assert_eq!(outcome.status, Status::Success, "{mode} of {length} bytes: {outcome:?}");
            let native = match mode {
                "sha256" => task_kernels::digest::sha256_prefix(&input[..]).unwrap(),
                _ => task_kernels::digest::checksum(&input[..]).unwrap(),
            };
            assert_eq!(String::from_utf8_lossy(&outcome.stdout), native, "{mode} of {length} bytes");
        }
    }
    let unknown = run_unit_as(&sandbox, &module, b"x", &["md5"], &Limits::default(), 0);
    assert_eq!(unknown.status, Status::ExitCode { code: 2 }, "{unknown:?}");
}
