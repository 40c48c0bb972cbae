//! `heat`: heat diffusion on a WIDTH×HEIGHT plate, STEPS explicit steps of the five-point
//! stencil (the SIMD-friendly kernel of the sandbox benchmark). Input: `WIDTH HEIGHT STEPS`.
//! Output: `MEAN HASH` and a newline: the plate's mean temperature (6 decimals) and the
//! blake3 of its final temperatures (f32, little-endian, row by row).
//!
//! The plate starts at 0°; its edges are held fixed: the middle half of the top edge at
//! 100°, the right edge at 50°, the rest at 0°. Each step sets every inner cell to
//! `t + 0.2 × (above + below + left + right − 4t)`, which stays within the edges' range
//! (0.2 ≤ 1/4, the explicit scheme's stability bound).
//!
//! Deterministic across hosts: only f32 additions and multiplications in one fixed order
//! (no fused multiply-add, no reductions reordered by vectorisation), and no NaN can arise.
//! The inner loop is written over slices of equal length so the compiler vectorises it:
//! natively with SSE2, in wasm with `simd128`, which `step` enables for itself.

use crate::input::parse_numbers;

/// Largest plate side: two plates of 2,048² f32 take 32 MiB of a unit's memory.
pub const SIDE_CELLS_MAX: u64 = 2_048;
/// Most steps a unit may ask for.
pub const STEPS_MAX: u64 = 1_000_000;
/// The diffusion number of the explicit scheme (stable up to 1/4).
const DIFFUSION: f32 = 0.2;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let [width, height, steps] = parse_numbers(input, ["WIDTH", "HEIGHT", "STEPS"])?;
    if !(3..=SIDE_CELLS_MAX).contains(&width) || !(3..=SIDE_CELLS_MAX).contains(&height) {
        return Err(format!("WIDTH and HEIGHT must be 3 to {SIDE_CELLS_MAX}, got {width}×{height}"));
    }
    if steps > STEPS_MAX {
        return Err(format!("STEPS must be at most {STEPS_MAX}, got {steps}"));
    }
    let plate = simulate(width as usize, height as usize, steps);
    Ok(format!("{:.6} {}\n", mean(&plate), plate_hash(&plate).to_hex()).into_bytes())
}

/// The plate's temperatures after `steps` steps, row by row.
pub fn simulate(width: usize, height: usize, steps: u64) -> Vec<f32> {
    let mut current = starting_plate(width, height);
    let mut next = current.clone();
    for _ in 0..steps {
        step(&current, &mut next, width);
        std::mem::swap(&mut current, &mut next);
    }
    current
}

/// Zero everywhere but the fixed edges: the top's middle half at 100°, the right at 50°.
pub fn starting_plate(width: usize, height: usize) -> Vec<f32> {
    let mut plate = vec![0f32; width * height];
    plate[width / 4..width * 3 / 4].fill(100.0);
    for row in 1..height {
        plate[row * width + width - 1] = 50.0;
    }
    plate
}

/// One step: every inner cell of `next` from `current` (the edges of `next` are left as
/// they are, and both plates start with the same edges).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
pub fn step(current: &[f32], next: &mut [f32], width: usize) {
    let height = current.len() / width;
    for row in 1..height - 1 {
        let inner = row * width + 1..(row + 1) * width - 1;
        let above = &current[inner.start - width..inner.end - width];
        let below = &current[inner.start + width..inner.end + width];
        let left = &current[inner.start - 1..inner.end - 1];
        let right = &current[inner.start + 1..inner.end + 1];
        let middle = &current[inner.clone()];
        let cells = above.iter().zip(below).zip(left).zip(right).zip(middle);
        for (out, ((((above, below), left), right), middle)) in next[inner].iter_mut().zip(cells) {
            *out = middle + DIFFUSION * (above + below + left + right - 4.0 * middle);
        }
    }
}

fn mean(plate: &[f32]) -> f64 {
    plate.iter().map(|&temperature| f64::from(temperature)).sum::<f64>() / plate.len() as f64
}

/// blake3 of the cells as little-endian bytes, row by row, hashed a row at a time (a copy
/// of the whole plate as bytes would cost a unit another 16 MiB at the largest size).
fn plate_hash(plate: &[f32]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    for cells in plate.chunks(SIDE_CELLS_MAX as usize) {
        bytes.clear();
        bytes.extend(cells.iter().flat_map(|temperature| temperature.to_le_bytes()));
        hasher.update(&bytes);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stencil cell by cell, with indices, as a reference for the sliced loop.
    fn step_cell_by_cell(current: &[f32], next: &mut [f32], width: usize) {
        let height = current.len() / width;
        for row in 1..height - 1 {
            for column in 1..width - 1 {
                let at = row * width + column;
                let neighbours =
                    current[at - width] + current[at + width] + current[at - 1] + current[at + 1];
                next[at] = current[at] + DIFFUSION * (neighbours - 4.0 * current[at]);
            }
        }
    }

    #[test]
    fn one_step_on_a_3_by_3_plate_warms_the_centre_from_its_hot_neighbours() {
        let plate = simulate(3, 3, 1);
        // Top middle 100° (width / 4 = 0 to 3 * 3 / 4 = 2: the first two top cells), right edge 50°.
        assert_eq!(&plate[..3], &[100.0, 100.0, 0.0]);
        assert_eq!(plate[4], DIFFUSION * (100.0 + 0.0 + 0.0 + 50.0));
        assert_eq!(plate[5], 50.0);
    }

    #[test]
    fn the_sliced_step_computes_what_the_cell_by_cell_stencil_computes_bit_for_bit() {
        for (width, height) in [(3, 3), (4, 7), (17, 5), (64, 33)] {
            let mut sliced = starting_plate(width, height);
            let mut reference = sliced.clone();
            let (mut sliced_next, mut reference_next) = (sliced.clone(), reference.clone());
            for _ in 0..50 {
                step(&sliced, &mut sliced_next, width);
                step_cell_by_cell(&reference, &mut reference_next, width);
                std::mem::swap(&mut sliced, &mut sliced_next);
                std::mem::swap(&mut reference, &mut reference_next);
            }
            let bits = |plate: &[f32]| plate.iter().map(|value| value.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sliced), bits(&reference), "{width}×{height}");
        }
    }

    #[test]
    fn temperatures_stay_within_the_edges_range_and_the_plate_warms() {
        let plate = simulate(40, 30, 2_000);
        assert!(plate.iter().all(|&temperature| (0.0..=100.0).contains(&temperature)));
        assert!(mean(&plate) > mean(&starting_plate(40, 30)));
    }

    #[test]
    fn the_hash_is_blake3_of_every_cell_in_order() {
        let plate = simulate(50, 70, 20);
        let bytes: Vec<u8> = plate.iter().flat_map(|temperature| temperature.to_le_bytes()).collect();
        assert_eq!(plate_hash(&plate), blake3::hash(&bytes));
    }

    #[test]
    fn malformed_input_says_what_is_expected() {
        assert!(run("2 10 1").unwrap_err().contains("3 to 2048"));
        assert!(run("10 10 1000001").unwrap_err().contains("at most 1000000"));
        assert!(run("10 10").unwrap_err().contains("WIDTH HEIGHT STEPS"));
        assert!(run("10 10 0").unwrap().ends_with(b"\n"));
    }
}
