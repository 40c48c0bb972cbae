//! Peer identity: an ed25519 key pair. A peer id is derived from the public key. A
//! connection proves its peer key in the TLS handshake (the `transport` crate); gossip
//! records are signed by their subject with [`PeerKey::sign_record`].

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// A peer's key pair.
pub struct PeerKey {
    signing_key: SigningKey,
}

/// Why a signed record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the public key is not 32 bytes of hex or not a valid ed25519 key")]
    BadPublicKey,
    #[error("the peer id does not belong to the public key")]
    WrongPeerId,
    #[error("the signature is invalid")]
    BadSignature,
}

impl std::fmt::Debug for PeerKey {
    /// Shows the peer id only: a key's secret never reaches a log.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "PeerKey({})", self.peer_id())
    }
}

/// DER of a PKCS#8 v1 ed25519 private key up to its 32-byte seed (RFC 8410 section 7).
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

impl PeerKey {
    /// The key pair of a 32-byte secret.
    pub fn from_secret(secret: [u8; 32]) -> PeerKey {
        PeerKey { signing_key: SigningKey::from_bytes(&secret) }
    }

    pub fn secret(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    pub fn public_key_hex(&self) -> String {
        hex(&self.public_key())
    }

    pub fn peer_id(&self) -> String {
        peer_id_of(&self.public_key())
    }

    /// The private key as a PKCS#8 document, for TLS.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        [&ED25519_PKCS8_PREFIX[..], &self.secret()].concat()
    }

    /// Signs `bytes` in the domain `context` (hex signature).
    pub fn sign_record(&self, context: &[u8], bytes: &[u8]) -> String {
        hex(&self.signing_key.sign(&[context, bytes].concat()).to_bytes())
    }
}

/// The peer id of a public key: 32 hex digits of its blake3 hash.
pub fn peer_id_of(public_key: &[u8; 32]) -> String {
    hex(&blake3::hash(public_key).as_bytes()[..16])
}

/// Checks that `peer_id` belongs to `public_key_hex` and that `signature_hex` signs
/// `bytes` in the domain `context` with that key.
pub fn verify_record(
    peer_id: &str,
    public_key_hex: &str,
    context: &[u8],
    bytes: &[u8],
    signature_hex: &str,
) -> Result<(), IdentityError> {
    let public_key: [u8; 32] = unhex(public_key_hex).ok_or(IdentityError::BadPublicKey)?;
    let verifying_key = VerifyingKey::from_bytes(&public_key).map_err(|_| IdentityError::BadPublicKey)?;
    if peer_id_of(&public_key) != peer_id {
        return Err(IdentityError::WrongPeerId);
    }
    let signature: [u8; 64] = unhex(signature_hex).ok_or(IdentityError::BadSignature)?;
    verifying_key
        .verify_strict(&[context, bytes].concat(), &Signature::from_bytes(&signature))
        .map_err(|_| IdentityError::BadSignature)
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
    fn a_signed_record_proves_the_key_and_nothing_else_does() {
        let key = PeerKey::from_secret([7; 32]);
        let other = PeerKey::from_secret([8; 32]);
        let signature = key.sign_record(b"ctx", b"record-1");
        let check = |id: &str, public: &str, context: &[u8], bytes: &[u8], signature: &str| {
            verify_record(id, public, context, bytes, signature)
        };
        assert_eq!(check(&key.peer_id(), &key.public_key_hex(), b"ctx", b"record-1", &signature), Ok(()));
        assert_eq!(
            check(&key.peer_id(), &key.public_key_hex(), b"ctx", b"record-2", &signature),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            check(&key.peer_id(), &key.public_key_hex(), b"other", b"record-1", &signature),
            Err(IdentityError::BadSignature),
            "a signature in one domain means nothing in another"
        );
        assert_eq!(
            check(&other.peer_id(), &key.public_key_hex(), b"ctx", b"record-1", &signature),
            Err(IdentityError::WrongPeerId)
        );
        let forged = other.sign_record(b"ctx", b"record-1");
        assert_eq!(
            check(&key.peer_id(), &key.public_key_hex(), b"ctx", b"record-1", &forged),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(check("x", "zz", b"c", b"n", "s"), Err(IdentityError::BadPublicKey));
    }
}
