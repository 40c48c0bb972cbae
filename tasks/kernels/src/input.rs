//! Parsing of the plain-text inputs tasks take.

/// Splits `text` into exactly `expected.len()` whitespace-separated numbers.
/// `expected` names the fields, for the error message.
pub fn parse_numbers<const N: usize>(text: &str, expected: [&str; N]) -> Result<[u64; N], String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let usage = expected.join(" ");
    if words.len() != N {
        return Err(format!("expected {N} numbers `{usage}`, got {:?}", text.trim()));
    }
    let mut numbers = [0u64; N];
    for (index, word) in words.iter().enumerate() {
        numbers[index] = word.replace('_', "").parse().map_err(|_| {
            format!("`{}` in `{usage}` must be a whole number ≥ 0, got {word:?}", expected[index])
        })?;
    }
    Ok(numbers)
}
