//! The example jobs load, and the mandelbrot and pi examples run end to end on a grid.

use crate::grid_support::TestGrid;
use std::path::{Path, PathBuf};
use wasmhive_coordinator::job_spec::{load_job_spec, unit_count};
use wasmhive_tests::grid::wasmhive;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).join("job.toml")
}

#[test]
fn every_example_spec_loads() {
    for (name, units) in [("primes", 100), ("pi", 32), ("mandelbrot", 20)] {
        let spec = load_job_spec(&example(name), &|task| task_modules::by_name(task).map(<[u8]>::to_vec))
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .submission;
        assert_eq!(unit_count(&spec.inputs), units, "{name}");
        assert_eq!(spec.quorum, 2, "{name}");
    }
}

#[test]
fn the_mandelbrot_example_assembles_into_a_png_and_pi_agrees_across_runs() {
    let grid = TestGrid::start("examples", 2);
    let mandelbrot = grid.submit(example("mandelbrot").to_str().unwrap(), true);
    let png = grid.directory.path().join("mandelbrot.png");
    let mut args = vec!["results".to_string(), mandelbrot, "--png".into(), png.to_str().unwrap().into()];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::read(&png).expect("the PNG was written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1200, "PNG width");
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 800, "PNG height");

    let pi = grid.submit(example("pi").to_str().unwrap(), false);
    grid.wait_for_completion(&pi);
    let units = grid.results(&pi);
    let (hits, samples) = units.iter().fold((0u64, 0u64), |(hits, samples), unit| {
        let text = unit.output.as_deref().expect("text output");
        let fields: Vec<u64> = text.split_whitespace().take(2).map(|field| field.parse().unwrap()).collect();
        (hits + fields[0], samples + fields[1])
    });
    let estimate = 4.0 * hits as f64 / samples as f64;
    assert!((estimate - std::f64::consts::PI).abs() < 0.01, "estimate {estimate}");
    let native = task_kernels::pi::run("2000000", &mut wasmhive_sandbox::random_get_stream(&pi, 0)).unwrap();
    assert_eq!(
        units[0].output.as_deref().map(str::as_bytes),
        Some(native.as_slice()),
        "seeded by (job, unit)"
    );
}
