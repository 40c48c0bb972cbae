//! Kernels over bulk bytes (issue 16's data workload): a unit's input is a file of any
//! size, read as a stream (stdin or `/input`), never held whole.
//!
//! - `sha256`: the first 8 bytes of the SHA-256 digest, as 16 hex digits and a newline
//!   (an expensive kernel: natively it uses the CPU's SHA instructions);
//! - `checksum`: a multiply-add over every byte, as decimal and a newline (a cheap one,
//!   so moving the data is what a benchmark sees).

use sha2::Digest;
use std::io::Read;

/// Bytes read at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// The first 8 bytes of the SHA-256 of everything `reader` yields, as hex.
pub fn sha256_prefix(reader: impl Read) -> std::io::Result<String> {
    let mut hasher = sha2::Sha256::new();
    each_chunk(reader, |chunk| hasher.update(chunk))?;
    let digest = hasher.finalize();
    Ok(format!("{}\n", digest[..8].iter().map(|byte| format!("{byte:02x}")).collect::<String>()))
}

/// `sum = sum × 31 + byte` over every byte `reader` yields (wrapping), in decimal.
pub fn checksum(reader: impl Read) -> std::io::Result<String> {
    let mut sum = 0u64;
    each_chunk(reader, |chunk| {
        sum = chunk.iter().fold(sum, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    })?;
    Ok(format!("{sum}\n"))
}

fn each_chunk(mut reader: impl Read, mut use_chunk: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let count = reader.read(&mut buffer)?;
        if count == 0 {
            return Ok(());
        }
        use_chunk(&buffer[..count]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digests_and_sums() {
        // SHA-256("abc") = ba7816bf8f01cfea...
        assert_eq!(super::sha256_prefix(&b"abc"[..]).unwrap(), "ba7816bf8f01cfea\n");
        assert_eq!(super::checksum(&b"ab"[..]).unwrap(), format!("{}\n", 97 * 31 + 98));
        let long: Vec<u8> = (0..3_000_000u32).map(|index| index as u8).collect();
        let whole = {
            use sha2::Digest;
            sha2::Sha256::digest(&long)
        };
        let expected: String = whole[..8].iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(super::sha256_prefix(&long[..]).unwrap(), format!("{expected}\n"), "across chunks");
    }
}
