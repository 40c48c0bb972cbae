//! The `tolerant-compare` validator: do two outputs agree, allowing float rounding?
//!
//! Input (the validator ABI): the first output's length in decimal, a newline, the first
//! output, then the second output. The outputs agree when they have the same
//! whitespace-separated tokens, except that two numbers agree when they differ by at most
//! [`RELATIVE_TOLERANCE`] of the larger magnitude (at least 1). Two integers (a sign and
//! digits only) agree only when they are equal: counts are exact, however large.
//! Exit 0: agree, 1: differ.

pub const RELATIVE_TOLERANCE: f64 = 1e-9;

/// Splits the validator input into the two outputs.
pub fn split_pair(input: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let newline = input.iter().position(|byte| *byte == b'\n').ok_or("no length line")?;
    let length: usize = std::str::from_utf8(&input[..newline])
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or("the first line is not the first output's length")?;
    let rest = &input[newline + 1..];
    if length > rest.len() {
        return Err(format!("the first output's length {length} is beyond the input"));
    }
    Ok(rest.split_at(length))
}

pub fn outputs_agree(first: &[u8], second: &[u8]) -> bool {
    let tokens = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes).split_whitespace().map(str::to_string).collect()
    };
    let (first, second) = (tokens(first), tokens(second));
    first.len() == second.len() && first.iter().zip(&second).all(|(a, b)| tokens_agree(a, b))
}

fn tokens_agree(first: &str, second: &str) -> bool {
    if first == second {
        return true;
    }
    if let (Some(a), Some(b)) = (integer(first), integer(second)) {
        return a == b;
    }
    match (first.parse::<f64>(), second.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => {
            (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs()).max(1.0)
        }
        _ => false,
    }
}

/// The value of an integer token (optional sign, then digits), as sign and digits
/// without leading zeros, so any size compares exactly.
fn integer(token: &str) -> Option<(bool, &str)> {
    let (negative, digits) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some((negative && !digits.is_empty(), digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_agree_within_the_tolerance_and_words_exactly() {
        assert!(outputs_agree(b"pi 3.14159265358979", b"pi  3.141592653589791\n"));
        assert!(!outputs_agree(b"pi 3.1415", b"pi 3.1416"));
        assert!(!outputs_agree(b"pi 3", b"tau 3"));
        assert!(!outputs_agree(b"1 2", b"1"));
        assert!(!outputs_agree(b"NaN", b"nan"));
    }

    #[test]
    fn integers_agree_only_exactly() {
        assert!(!outputs_agree(b"1000000000", b"1000000001"), "counts are exact, however large");
        assert!(!outputs_agree(b"-5 18446744073709551615", b"-5 18446744073709551614"));
        assert!(outputs_agree(b"+7 -0", b"7 0"));
        assert!(outputs_agree(b"3", b"3.0000000000001"), "an integer and a float compare as floats");
    }

    #[test]
    fn the_pair_is_split_by_its_length_line() {
        assert_eq!(split_pair(b"3\nabcdefg").unwrap(), (&b"abc"[..], &b"defg"[..]));
        assert!(split_pair(b"9\nabc").is_err());
        assert!(split_pair(b"abc").is_err());
    }
}
