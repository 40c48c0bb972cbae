//! `primes`: how many primes lie in [start, end), by trial division. Input: `START END`.
//! Output: the count and a newline. The CPU benchmark.

use crate::input::parse_numbers;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let [start, end] = parse_numbers(input, ["START", "END"])?;
    if start > end {
        return Err(format!("START {start} is after END {end}"));
    }
    Ok(format!("{}\n", count_primes(start, end)).into_bytes())
}

pub fn count_primes(start: u64, end: u64) -> u64 {
    (start..end).filter(|&candidate| is_prime(candidate)).count() as u64
}

pub fn is_prime(candidate: u64) -> bool {
    match u32::try_from(candidate) {
        Ok(small) => is_prime_u32(small),
        Err(_) => is_prime_u64(candidate),
    }
}

// 32-bit division is several times faster than 64-bit on most CPUs, so numbers below 2^32
// (every unit of the demo) take this path.
fn is_prime_u32(candidate: u32) -> bool {
    if candidate < 4 {
        return candidate >= 2;
    }
    if candidate.is_multiple_of(2) {
        return false;
    }
    let mut divisor = 3u32;
    while u64::from(divisor) * u64::from(divisor) <= u64::from(candidate) {
        if candidate.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

fn is_prime_u64(candidate: u64) -> bool {
    if candidate.is_multiple_of(2) {
        return false;
    }
    let mut divisor = 3u64;
    while u128::from(divisor) * u128::from(divisor) <= u128::from(candidate) {
        if candidate.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}
