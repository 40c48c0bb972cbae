//! Dialing a peer: TCP, TLS 1.3 (presenting our peer key, or none for an API client), a
//! check of the key that answered, then (for peer protocols) a WebSocket on top.

use crate::certificate::{TlsIdentity, peer_id_of_certificate};
use crate::known_hosts::KnownHosts;
use crate::peer_address::PeerAddress;
use crate::verifier::{PeerServerVerifier, WrongPeer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type PeerSocket = WebSocketStream<TlsStream<TcpStream>>;

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a WebSocket read asks of TLS at once: one record's plaintext, about what a
/// read returns. tungstenite zeroes this much of its buffer before every read, so its
/// default (128 KiB) zeroed eight times the bytes a piece download carried.
const READ_BYTES_MAX: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS handshake with {address} failed: {reason}")]
    Handshake { address: String, reason: String },
    /// The address answered with another key than the pinned one: whoever signed or gave
    /// that address is not there.
    #[error("TLS handshake with {address} refused: the peer proved id {proven}, but {expected} was expected")]
    WrongPeer { address: String, expected: String, proven: String },
    #[error(
        "{address} proved peer id {proven}, but {file} records {known} for it: if that peer was reinstalled, delete its line from {file}, or pin the new id with {address}#{proven}"
    )]
    KnownHostChanged { address: String, known: String, proven: String, file: String },
    #[error("WebSocket handshake with {address} failed: {reason}")]
    WebSocket { address: String, reason: String },
}

/// Dials peers as one identity (or anonymously), checking ids against pins and known hosts.
pub struct Dialer {
    identity: Option<TlsIdentity>,
    known_hosts: Option<KnownHosts>,
    /// The local address connections leave from (`None`: the system chooses).
    local_address: Option<IpAddr>,
}

impl Dialer {
    /// Dials presenting `identity`; `known_hosts` records ids learnt on first use.
    pub fn new(identity: Option<TlsIdentity>, known_hosts: Option<KnownHosts>) -> Dialer {
        Dialer { identity, known_hosts, local_address: None }
    }

    /// Connections leave from `local_address` (a machine with several addresses; tests
    /// stand for several networks with 127.0.0.2, 127.0.0.3, ...).
    pub fn with_local_address(mut self, local_address: Option<IpAddr>) -> Dialer {
        self.local_address = local_address;
        self
    }

    pub fn peer_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|identity| identity.peer_id.as_str())
    }

    /// A TLS connection to `address` and the peer id its handshake proved. A pinned id is
    /// enforced inside the handshake; an id from the known hosts right after it (before
    /// anything is sent); an unknown address records the id it proved.
    pub async fn dial(&self, address: &PeerAddress) -> Result<(TlsStream<TcpStream>, String), DialError> {
        let stream = dial_tls_from(address, self.identity.as_ref(), self.local_address).await?;
        let proven = proven_server_id(&stream);
        if address.peer_id.is_some() {
            return Ok((stream, proven));
        }
        let Some(known_hosts) = &self.known_hosts else { return Ok((stream, proven)) };
        match known_hosts.get(&address.host_port) {
            Some(known) if known != proven => Err(DialError::KnownHostChanged {
                address: address.host_port.clone(),
                known,
                proven,
                file: known_hosts.path().display().to_string(),
            }),
            Some(_) => Ok((stream, proven)),
            None => {
                if let Err(error) = known_hosts.record(&address.host_port, &proven) {
                    tracing::warn!(%error, "could not record a known host");
                }
                tracing::info!(address = %address.host_port, peer = %proven, "trusting this peer id on first use");
                Ok((stream, proven))
            }
        }
    }

    /// [`Dialer::dial`], then a WebSocket on `path` with frames up to `message_bytes_max`.
    pub async fn dial_websocket(
        &self,
        address: &PeerAddress,
        path: &str,
        message_bytes_max: usize,
    ) -> Result<(PeerSocket, String), DialError> {
        let (stream, proven) = self.dial(address).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BYTES_MAX)
            .max_message_size(Some(message_bytes_max))
            .max_frame_size(Some(message_bytes_max));
        let url = format!("wss://{}{path}", address.host_port);
        let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
        let failed = |reason: String| DialError::WebSocket { address: address.host_port.clone(), reason };
        match tokio::time::timeout(DIAL_TIMEOUT, handshake).await {
            Ok(Ok((socket, _response))) => Ok((socket, proven)),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let said = wasmhive_protocol::printable(&body, 300);
                Err(failed(format!("refused with HTTP {}: {said}", response.status())))
            }
            Ok(Err(error)) => Err(failed(error.to_string())),
            Err(_) => Err(failed("timed out".into())),
        }
    }
}

/// A TCP connection to `host_port`, leaving from `local_address` if given (the first
/// resolved address of the same family).
async fn connect_tcp(host_port: &str, local_address: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local_address) = local_address else { return TcpStream::connect(host_port).await };
    let remote = tokio::net::lookup_host(host_port)
        .await?
        .find(|remote| remote.is_ipv4() == local_address.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::other(format!("{host_port} has no address of the same family as {local_address}"))
        })?;
    let socket = if local_address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(local_address, 0)).map_err(|error| {
        std::io::Error::other(format!(
            "cannot connect from {local_address} (is it an address of this machine?): {error}"
        ))
    })?;
    socket.connect(remote).await
}

/// A TLS connection to `address` that refuses any key but `address.peer_id` (if set).
pub async fn dial_tls(
    address: &PeerAddress,
    identity: Option<&TlsIdentity>,
) -> Result<TlsStream<TcpStream>, DialError> {
    dial_tls_from(address, identity, None).await
}

/// [`dial_tls`] from `local_address`, if given.
async fn dial_tls_from(
    address: &PeerAddress,
    identity: Option<&TlsIdentity>,
    local_address: Option<IpAddr>,
) -> Result<TlsStream<TcpStream>, DialError> {
    let connect_failed = |reason: String| DialError::Connect { address: address.host_port.clone(), reason };
    let tcp = match tokio::time::timeout(DIAL_TIMEOUT, connect_tcp(&address.host_port, local_address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return Err(connect_failed(error.to_string())),
        Err(_) => return Err(connect_failed("timed out".into())),
    };
    let _ = tcp.set_nodelay(true);
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(identity, address.peer_id.clone())));
    let server_name = ServerName::try_from("peer.wasmhive.invalid").expect("a valid DNS name");
    let handshake_failed =
        |reason: String| DialError::Handshake { address: address.host_port.clone(), reason };
    match tokio::time::timeout(DIAL_TIMEOUT, connector.connect(server_name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => match WrongPeer::in_handshake_error(&error) {
            Some(wrong) => Err(DialError::WrongPeer {
                address: address.host_port.clone(),
                expected: wrong.expected.clone(),
                proven: wrong.proven.clone(),
            }),
            None => Err(handshake_failed(error.to_string())),
        },
        Err(_) => Err(handshake_failed("timed out".into())),
    }
}

fn client_config(identity: Option<&TlsIdentity>, expected_peer_id: Option<String>) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerServerVerifier { expected_peer_id }));
    match identity {
        Some(identity) => builder
            .with_client_auth_cert(vec![identity.certificate.clone()], identity.private_key())
            .expect("our own certificate and key match"),
        None => builder.with_no_client_auth(),
    }
}

fn proven_server_id(stream: &TlsStream<TcpStream>) -> String {
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certificates| certificates.first())
        .expect("a verified TLS 1.3 server always presents a certificate");
    peer_id_of_certificate(certificate).expect("the verifier accepted only peer keys")
}
