//! `mandelbrot`: renders rows [ROW_START, ROW_END) of a WIDTH×HEIGHT greyscale picture of the
//! Mandelbrot set over [-2.5, 1] × [-1.25, 1.25]. Input: `WIDTH HEIGHT ROW_START ROW_END
//! MAX_ITER`. Output: a binary PGM (`P5`) of WIDTH × (ROW_END − ROW_START) pixels; the tiles
//! of a job stack top to bottom into the whole picture.

use crate::input::parse_numbers;

/// Largest picture side, so a tile's output stays bounded.
pub const SIDE_PIXELS_MAX: u64 = 16_384;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let [width, height, row_start, row_end, iterations_max] =
        parse_numbers(input, ["WIDTH", "HEIGHT", "ROW_START", "ROW_END", "MAX_ITER"])?;
    if width == 0 || height == 0 || width > SIDE_PIXELS_MAX || height > SIDE_PIXELS_MAX {
        return Err(format!("WIDTH and HEIGHT must be 1 to {SIDE_PIXELS_MAX}, got {width}×{height}"));
    }
    if row_start > row_end || row_end > height {
        return Err(format!("rows {row_start}..{row_end} must lie within 0..{height}"));
    }
    if iterations_max == 0 || iterations_max > 1_000_000 {
        return Err(format!("MAX_ITER must be 1 to 1000000, got {iterations_max}"));
    }
    let rows = row_end - row_start;
    let mut output = format!("P5\n{width} {rows}\n255\n").into_bytes();
    for row in row_start..row_end {
        for column in 0..width {
            output.push(shade(column, row, width, height, iterations_max));
        }
    }
    Ok(output)
}

/// The grey level of one pixel: 0 inside the set, brighter the sooner the point escapes.
pub fn shade(column: u64, row: u64, width: u64, height: u64, iterations_max: u64) -> u8 {
    let real = -2.5 + 3.5 * (column as f64 + 0.5) / width as f64;
    let imaginary = -1.25 + 2.5 * (row as f64 + 0.5) / height as f64;
    let iterations = escape_iterations(real, imaginary, iterations_max);
    if iterations == iterations_max {
        return 0;
    }
    (255 - (iterations * 255 / iterations_max)) as u8
}

/// Iterations of z ← z² + c before |z| > 2, at most `iterations_max`.
///
/// Kept out of line on purpose: when inlined, LLVM's wasm32 backend sinks the pixel's
/// coordinate computation (two divisions) into this loop, which made the wasm build 5×
/// slower than native (seen in the sandbox benchmark's disassembly).
#[inline(never)]
pub fn escape_iterations(real: f64, imaginary: f64, iterations_max: u64) -> u64 {
    let (mut z_real, mut z_imaginary) = (0.0f64, 0.0f64);
    let mut iteration = 0;
    while iteration < iterations_max && z_real * z_real + z_imaginary * z_imaginary <= 4.0 {
        let next_real = z_real * z_real - z_imaginary * z_imaginary + real;
        z_imaginary = 2.0 * z_real * z_imaginary + imaginary;
        z_real = next_real;
        iteration += 1;
    }
    iteration
}
