//! Peer identity: an ed25519 key pair. A peer id is derived from the public key, and a
//! connecting peer proves it holds the key by signing the owner's challenge, so no peer can
//! claim another's identity (or, later, its reputation).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain separation for challenge signatures.
const CHALLENGE_CONTEXT: &[u8] = b"wasmhive hello challenge v1\0";

/// A peer's key pair.
pub struct PeerKey {
    signing_key: SigningKey,
}

/// Why an identity proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the public key is not 32 bytes of hex or not a valid ed25519 key")]
    BadPublicKey,
    #[error("the peer id does not belong to the public key")]
    WrongPeerId,
    #[error("the challenge signature is invalid")]
    BadSignature,
}

impl PeerKey {
    /// The key pair of a 32-byte secret.
    pub fn from_secret(secret: [u8; 32]) -> PeerKey {
        PeerKey { signing_key: SigningKey::from_bytes(&secret) }
    }

    pub fn secret(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    pub fn public_key_hex(&self) -> String {
        hex(self.signing_key.verifying_key().as_bytes())
    }

    pub fn peer_id(&self) -> String {
        peer_id_of(self.signing_key.verifying_key().as_bytes())
    }

    /// Signs an owner's challenge (hex signature).
    pub fn sign_challenge(&self, nonce: &str) -> String {
        hex(&self.signing_key.sign(&challenge_bytes(nonce)).to_bytes())
    }
}

/// The peer id of a public key: 32 hex digits of its blake3 hash.
pub fn peer_id_of(public_key: &[u8; 32]) -> String {
    hex(&blake3::hash(public_key).as_bytes()[..16])
}

/// Checks that `peer_id` belongs to `public_key_hex` and that `signature_hex` signs `nonce`.
pub fn verify_challenge(
    peer_id: &str,
    public_key_hex: &str,
    nonce: &str,
    signature_hex: &str,
) -> Result<(), IdentityError> {
    let public_key: [u8; 32] = unhex(public_key_hex).ok_or(IdentityError::BadPublicKey)?;
    let verifying_key = VerifyingKey::from_bytes(&public_key).map_err(|_| IdentityError::BadPublicKey)?;
    if peer_id_of(&public_key) != peer_id {
        return Err(IdentityError::WrongPeerId);
    }
    let signature: [u8; 64] = unhex(signature_hex).ok_or(IdentityError::BadSignature)?;
    verifying_key
        .verify_strict(&challenge_bytes(nonce), &Signature::from_bytes(&signature))
        .map_err(|_| IdentityError::BadSignature)
}

fn challenge_bytes(nonce: &str) -> Vec<u8> {
    [CHALLENGE_CONTEXT, nonce.as_bytes()].concat()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_challenge_proves_the_key_and_nothing_else_does() {
        let key = PeerKey::from_secret([7; 32]);
        let other = PeerKey::from_secret([8; 32]);
        let signature = key.sign_challenge("nonce-1");
        assert_eq!(verify_challenge(&key.peer_id(), &key.public_key_hex(), "nonce-1", &signature), Ok(()));
        assert_eq!(
            verify_challenge(&key.peer_id(), &key.public_key_hex(), "nonce-2", &signature),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            verify_challenge(&other.peer_id(), &key.public_key_hex(), "nonce-1", &signature),
            Err(IdentityError::WrongPeerId)
        );
        let forged = other.sign_challenge("nonce-1");
        assert_eq!(
            verify_challenge(&key.peer_id(), &key.public_key_hex(), "nonce-1", &forged),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(verify_challenge("x", "zz", "n", "s"), Err(IdentityError::BadPublicKey));
    }
}
