//! Content hashes: blake3 over bytes, shown as 64 lowercase hex digits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A blake3 hash naming a blob (module, input, output) or an outcome digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The blake3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.hex().to_string()
    }

    /// 64 lowercase hex digits on the stack (no allocation: for hot paths that only read
    /// them, like binding a store row).
    pub fn hex(&self) -> impl std::ops::Deref<Target = str> + use<> {
        blake3::Hash::from_bytes(self.0).to_hex()
    }

    /// The first 12 hex digits, for logs and file names shown to people.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl From<blake3::Hash> for Hash {
    fn from(hash: blake3::Hash) -> Hash {
        Hash(*hash.as_bytes())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Hash({})", self.short())
    }
}

/// A hash text that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a blake3 hash: expected 64 hex digits, got {text:?}")]
pub struct HashParseError {
    /// The text that failed to parse (cut to 80 characters).
    pub text: String,
}

impl FromStr for Hash {
    type Err = HashParseError;

    fn from_str(text: &str) -> Result<Hash, HashParseError> {
        blake3::Hash::from_hex(text)
            .map(Hash::from)
            .map_err(|_| HashParseError { text: text.chars().take(80).collect() })
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let hash = Hash::of(b"wasmhive");
        assert_eq!(hash.to_hex().parse::<Hash>().unwrap(), hash);
        assert!("xyz".parse::<Hash>().is_err());
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), hash);
    }
}
