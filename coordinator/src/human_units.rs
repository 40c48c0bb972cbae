//! Human sizes ("256 MiB") and durations ("10m") on the command line.

use std::time::Duration;

/// Parses a byte size such as `1048576`, `64 KiB` or `256 MiB`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{text:?} is not a size; write e.g. `65536`, `64 KiB` or `256 MiB`"))
}

/// Parses a duration such as `500ms`, `10s` or `10m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration; write e.g. `500ms`, `10s` or `10m`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_or_explain() {
        assert_eq!(parse_byte_size("256 MiB"), Ok(256 << 20));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("lots").unwrap_err().contains("256 MiB"));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("soon").unwrap_err().contains("10s"));
    }
}
