//! rustls verifiers for peer certificates. Both sides accept only TLS 1.3 signatures with
//! ed25519 (so the handshake signature is made by the peer key itself), ignore dates and
//! names (identity is the key, not a name a CA vouched for), and read the peer id from the
//! certificate. The dialing side may expect one id and then refuses every other key.

use crate::certificate::peer_id_of_certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};
use std::sync::Arc;

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The one signature scheme peers use.
const SCHEMES: [SignatureScheme; 1] = [SignatureScheme::ED25519];

fn tls12_refused() -> Result<HandshakeSignatureValid, Error> {
    Err(Error::General("peers speak TLS 1.3 only".into()))
}

fn verify_signature(
    message: &[u8],
    certificate: &CertificateDer<'_>,
    signed: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    if signed.scheme != SignatureScheme::ED25519 {
        return Err(Error::General("peers sign TLS handshakes with ed25519 only".into()));
    }
    verify_tls13_signature(message, certificate, signed, &algorithms())
}

/// A dialled peer proved another key than the one expected.
#[derive(Debug, thiserror::Error)]
#[error("the peer proved id {proven}, but {expected} was expected")]
pub struct WrongPeer {
    pub expected: String,
    pub proven: String,
}

impl WrongPeer {
    /// The [`WrongPeer`] inside a failed TLS handshake's error, if that is why it failed.
    pub fn in_handshake_error(error: &std::io::Error) -> Option<&WrongPeer> {
        let Error::InvalidCertificate(CertificateError::Other(other)) =
            error.get_ref()?.downcast_ref::<Error>()?
        else {
            return None;
        };
        other.0.downcast_ref::<WrongPeer>()
    }
}

/// The dialing side's check of the server: any peer key, or exactly `expected_peer_id`.
#[derive(Debug)]
pub struct PeerServerVerifier {
    pub expected_peer_id: Option<String>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let proven = peer_id_of_certificate(end_entity)?;
        match &self.expected_peer_id {
            Some(expected) if *expected != proven => {
                let wrong = WrongPeer { expected: expected.clone(), proven };
                Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(wrong)))))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, certificate, signed)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

/// The accepting side's check of a client: a client that presents a certificate must
/// prove a peer key; one that presents none is anonymous (an API client with a token),
/// and the routes for peers refuse it.
#[derive(Debug)]
pub struct PeerClientVerifier;

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        peer_id_of_certificate(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, certificate, signed)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}
