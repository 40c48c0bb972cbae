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

/// Tries nonces 0, 1, 2, ... The message `PREFIX:NONCE` is kept in one buffer and its
/// decimal digits counted up in place: formatting and allocating a new string per try
/// cost more than the hash itself, and more so in wasm (see docs/TASKS.md, "Fast tasks").
pub fn find_nonce(prefix: &str, bits: u32) -> (u64, blake3::Hash) {
    let mut message = Vec::with_capacity(prefix.len() + 21);
    message.extend_from_slice(prefix.as_bytes());
    message.extend_from_slice(b":0");
    let digits_start = prefix.len() + 1;
    let mut nonce = 0u64;
    loop {
        let hash = blake3::hash(&message);
        if leading_zero_bits(hash.as_bytes()) >= bits {
            return (nonce, hash);
        }
        nonce += 1;
        count_up_decimal(&mut message, digits_start);
    }
}

/// Adds one to the decimal number that `message` ends with (from `digits_start` on).
fn count_up_decimal(message: &mut Vec<u8>, digits_start: usize) {
    for at in (digits_start..message.len()).rev() {
        if message[at] != b'9' {
            message[at] += 1;
            return;
        }
        message[at] = b'0';
    }
    message.insert(digits_start, b'1');
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

#[cfg(test)]
mod tests {
    #[test]
    fn counting_up_in_place_writes_what_formatting_writes() {
        let mut message = b"p:0".to_vec();
        for nonce in 1..=200_000u64 {
            super::count_up_decimal(&mut message, 2);
            assert_eq!(message, format!("p:{nonce}").into_bytes());
        }
    }

    #[test]
    fn the_nonce_found_is_the_first_whose_formatted_message_has_the_zero_bits() {
        let (nonce, hash) = super::find_nonce("wasmhive", 12);
        assert_eq!(hash, blake3::hash(format!("wasmhive:{nonce}").as_bytes()));
        let first = (0..).find(|n| {
            super::leading_zero_bits(blake3::hash(format!("wasmhive:{n}").as_bytes()).as_bytes()) >= 12
        });
        assert_eq!(Some(nonce), first);
    }
}
