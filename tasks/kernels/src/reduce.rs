//! The `sum-columns` reducer: folds the accepted outputs of a job into one line.
//!
//! Input: every accepted output, concatenated in unit order (one or more lines each).
//! Output: for each whitespace-separated column that holds a whole number on every
//! non-empty line, the column's sum; columns with anything else (an estimate, a hash) are
//! left out. `primes` outputs fold into the total count; `pi` into `HITS SAMPLES`.

pub fn sum_columns(input: &str) -> Result<Vec<u8>, String> {
    let mut sums: Vec<Option<i128>> = Vec::new();
    for line in input.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if sums.is_empty() {
            sums = vec![Some(0); fields.len()];
        }
        for (column, sum) in sums.iter_mut().enumerate() {
            let value = fields.get(column).and_then(|field| field.parse::<i128>().ok());
            *sum = match (*sum, value) {
                (Some(total), Some(value)) => {
                    Some(total.checked_add(value).ok_or("a column's sum overflows 128 bits")?)
                }
                _ => None,
            };
        }
    }
    let kept: Vec<String> = sums.into_iter().flatten().map(|sum| sum.to_string()).collect();
    Ok(format!("{}\n", kept.join(" ")).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_number_columns_are_summed_and_others_left_out() {
        assert_eq!(sum_columns("3\n5\n\n7\n").unwrap(), b"15\n");
        assert_eq!(sum_columns("10 100 3.1\n20 100 3.2\n").unwrap(), b"30 200\n");
        assert_eq!(sum_columns("1 x\n2 y\n").unwrap(), b"3\n");
        assert_eq!(sum_columns("").unwrap(), b"\n");
    }
}
