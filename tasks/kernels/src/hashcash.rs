//! `hashcash`: finds the smallest nonce whose blake3 hash of `PREFIX:NONCE` starts with BITS
//! zero bits. Input: `PREFIX BITS` (PREFIX without spaces, BITS at most 32). Output:
//! `NONCE HASH_HEX` and a newline.

/// The most zero bits a unit may ask for (2^32 tries on average is already long).
pub const BITS_MAX: u32 = 32;

pub fn run(input: &str) -> Result<Vec<u8>, String> {
    let words: Vec<&str> = input.split_whitespace().collect();
    let [prefix, bits] = words[..] else {
        return Err(format!("expected `PREFIX BITS`, got {:?}", input.trim()));
    };
    let bits: u32 = bits.parse().map_err(|_| format!("BITS must be a whole number, got {bits:?}"))?;
    if bits > BITS_MAX {
        return Err(format!("BITS must be at most {BITS_MAX}, got {bits}"));
    }
    let (nonce, hash) = find_nonce(prefix, bits);
    Ok(format!("{nonce} {}\n", hash.to_hex()).into_bytes())
}

pub fn find_nonce(prefix: &str, bits: u32) -> (u64, blake3::Hash) {
    let mut nonce = 0u64;
    loop {
        let hash = blake3::hash(format!("{prefix}:{nonce}").as_bytes());
        if leading_zero_bits(hash.as_bytes()) >= bits {
            return (nonce, hash);
        }
        nonce += 1;
    }
}

pub fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in bytes {
        zeros += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    zeros
}
