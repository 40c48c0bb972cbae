//! `sum`: the sum of the integers in [start, end). Input: `START END`. Output: the sum and a
//! newline. A tiny task: its cost is almost all sandbox overhead.

use crate::input::parse_numbers;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let [start, end] = parse_numbers(input, ["START", "END"])?;
    if start > end {
        return Err(format!("START {start} is after END {end}"));
    }
    Ok(format!("{}\n", sum_range(start, end)).into_bytes())
}

pub fn sum_range(start: u64, end: u64) -> u128 {
    let mut total: u128 = 0;
    for value in start..end {
        total += u128::from(value);
    }
    total
}
