//! A peer's TLS certificate: self-signed, its subject key being the peer's ed25519 key.
//!
//! Why not libp2p's scheme (a fresh TLS key plus an X.509 extension in which the host key
//! signs it): libp2p needs it because its host keys may be of types TLS cannot sign with;
//! ours are always ed25519, which TLS 1.3 signs with directly, so one key and no extension
//! is enough. Why not raw public keys (RFC 7250): curl, browsers and Python's `ssl` speak
//! only certificates, and curl's `--pinnedpubkey` pins exactly this certificate's key.

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ParsedCertificate;
use wasmhive_protocol::identity::{PeerKey, peer_id_of};

/// DER of an ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410 section 4).
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A peer key as rustls wants it: its certificate and private key.
pub struct TlsIdentity {
    pub peer_id: String,
    pub certificate: CertificateDer<'static>,
    pkcs8: Vec<u8>,
}

impl TlsIdentity {
    pub fn new(key: &PeerKey) -> TlsIdentity {
        let pkcs8 = key.pkcs8_der();
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.clone()),
            &rcgen::PKCS_ED25519,
        )
        .expect("an ed25519 PKCS#8 document is a key pair");
        let mut parameters = rcgen::CertificateParams::new(Vec::<String>::new()).expect("no names");
        parameters.distinguished_name = rcgen::DistinguishedName::new();
        parameters
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("wasmhive peer {}", key.peer_id()));
        let certificate = parameters.self_signed(&key_pair).expect("self-signing with ed25519 works");
        TlsIdentity { peer_id: key.peer_id(), certificate: certificate.der().clone(), pkcs8 }
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    /// `sha256//BASE64` of the certificate's public key, for curl's `--pinnedpubkey`.
    pub fn curl_pin(&self) -> String {
        let parsed = ParsedCertificate::try_from(&self.certificate).expect("our own certificate parses");
        let digest = ring::digest::digest(&ring::digest::SHA256, parsed.subject_public_key_info().as_ref());
        format!("sha256//{}", base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
    }
}

/// The peer id a certificate proves: that of its ed25519 subject key. Any other kind of
/// key, or a certificate that does not parse, proves nothing.
pub fn peer_id_of_certificate(certificate: &CertificateDer<'_>) -> Result<String, rustls::Error> {
    let parsed = ParsedCertificate::try_from(certificate)?;
    let spki = parsed.subject_public_key_info();
    let key: [u8; 32] = spki
        .as_ref()
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|rest| rest.try_into().ok())
        .ok_or_else(|| rustls::Error::General("the certificate's key is not an ed25519 peer key".into()))?;
    Ok(peer_id_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_proves_the_peer_id_of_its_key() {
        let key = PeerKey::from_secret([3; 32]);
        let identity = TlsIdentity::new(&key);
        assert_eq!(peer_id_of_certificate(&identity.certificate).unwrap(), key.peer_id());
        assert!(identity.curl_pin().starts_with("sha256//"));
        assert_eq!(identity.curl_pin().len(), "sha256//".len() + 44);
    }

    #[test]
    fn garbage_and_other_key_types_prove_nothing() {
        assert!(peer_id_of_certificate(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let certificate =
            rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap().self_signed(&other).unwrap();
        let refused = peer_id_of_certificate(certificate.der()).unwrap_err();
        assert!(refused.to_string().contains("not an ed25519"), "{refused}");
    }
}
