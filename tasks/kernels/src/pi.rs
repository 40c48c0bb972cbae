//! `pi`: a Monte Carlo estimate of π from N samples. Input: `SAMPLES`. Output:
//! `HITS SAMPLES ESTIMATE` and a newline. Random bytes come from WASI `random_get`, which
//! wasmhive seeds from (job id, unit index), so replicas of a unit agree.

use crate::input::parse_numbers;

/// Random bytes fetched at once.
const RANDOM_CHUNK_BYTES: usize = 64 << 10;

pub fn run(input: &str, fill_random: &mut dyn FnMut(&mut [u8])) -> Result<Vec<u8>, String> {
    let [samples] = parse_numbers(input, ["SAMPLES"])?;
    let hits = count_hits(samples, fill_random);
    let estimate = if samples == 0 { 0.0 } else { 4.0 * hits as f64 / samples as f64 };
    Ok(format!("{hits} {samples} {estimate:.6}\n").into_bytes())
}

/// Samples whose point (two u32 from the stream, scaled to [0, 1)) falls in the quarter disc.
pub fn count_hits(samples: u64, fill_random: &mut dyn FnMut(&mut [u8])) -> u64 {
    let mut buffer = vec![0u8; RANDOM_CHUNK_BYTES];
    let mut position = buffer.len();
    let mut hits = 0;
    for _ in 0..samples {
        if position == buffer.len() {
            fill_random(&mut buffer);
            position = 0;
        }
        let x = unit_interval(&buffer[position..position + 4]);
        let y = unit_interval(&buffer[position + 4..position + 8]);
        position += 8;
        if x * x + y * y < 1.0 {
            hits += 1;
        }
    }
    hits
}

fn unit_interval(bytes: &[u8]) -> f64 {
    let value = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
    f64::from(value) / 4_294_967_296.0
}
