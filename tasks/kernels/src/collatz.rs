//! `collatz`: the number in [start, end) with the longest Collatz trajectory (steps of
//! n → n/2 or 3n+1 until 1). Input: `START END` with 1 ≤ START ≤ END. Output: `N STEPS`
//! and a newline (the smallest such N; `0 0` for an empty range).
//!
//! The trajectories pass 2^32 early (27 climbs to 9232, 77031 to 21 563 638 744): a
//! 32-bit `int`, `size_t` or `usize` gives a wrong answer here, which is why every
//! language's version of this task is compared on such ranges.

use crate::input::parse_numbers;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let [start, end] = parse_numbers(input, ["START", "END"])?;
    if start == 0 || start > end {
        return Err(format!("START {start} must be at least 1 and not after END {end}"));
    }
    let (number, steps) = longest_trajectory(start, end);
    Ok(format!("{number} {steps}\n").into_bytes())
}

pub fn longest_trajectory(start: u64, end: u64) -> (u64, u64) {
    let mut best = (0, 0);
    for number in start..end {
        let steps = trajectory_steps(number);
        if best.0 == 0 || steps > best.1 {
            best = (number, steps);
        }
    }
    best
}

pub fn trajectory_steps(mut number: u64) -> u64 {
    let mut steps = 0;
    while number != 1 {
        number = if number.is_multiple_of(2) { number / 2 } else { 3 * number + 1 };
        steps += 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_trajectories() {
        assert_eq!(trajectory_steps(27), 111);
        assert_eq!(longest_trajectory(1, 10), (9, 19));
        assert_eq!(run("1 100000").unwrap(), b"77031 350\n");
        assert!(run("0 5").is_err());
    }
}
