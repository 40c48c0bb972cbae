//! Connections between peers (DESIGN.md sections 6 and 11): every one is TLS 1.3 and each
//! end is proven by its ed25519 peer key. There is no certificate authority: a peer's
//! certificate is self-signed with its peer key itself, so the TLS handshake's own
//! signature proves the key, and the peer id (blake3 of the key) is read from the
//! certificate the handshake verified.
//!
//! - `certificate.rs`: a peer key's certificate, and the peer id a certificate proves.
//! - `verifier.rs`: rustls verifiers that accept exactly one key (dialing with a pinned id)
//!   or any ed25519 key (accepting, or dialing on first use), never anything else.
//! - `peer_address.rs`: `HOST:PORT[#PEERID]`, and what a gossip address may be.
//! - `known_hosts.rs`: ids learnt on first use, like ssh's `known_hosts`.
//! - `dial.rs`: dial a peer (TLS, then a WebSocket) expecting an id.
//! - `listen.rs`: accept TLS connections for axum, with the proven id beside each.
//! - `tls_server_stream.rs`: an accepted TLS connection that holds no buffer while idle.
//! - `key_file.rs`: the peer key in the data directory.
//! - `http_server.rs`: the HTTP server loop over any of those listeners, with time limits.
//!
//! Invariants:
//! - only TLS 1.3 with the ed25519 signature scheme is offered or accepted;
//! - a dial that names an id (pinned, known, or the signer of a gossip address) fails
//!   unless the handshake proves that id;
//! - a connection's proven peer id is the only id anything it sends is attributed to.

mod certificate;
mod dial;
mod frames;
mod http_server;
mod key_file;
mod known_hosts;
mod listen;
mod peer_address;
#[cfg(test)]
mod tests;
mod tls_server_stream;
#[cfg(test)]
mod tls_server_stream_tests;
mod verifier;

pub use certificate::{TlsIdentity, peer_id_of_certificate};
pub use dial::{DialError, Dialer, PeerSocket, dial_tls};
pub use frames::frame_of;
pub use http_server::{HEAD_BYTES_MAX, HEAD_READ_TIME_MAX, serve_connections};
pub use key_file::{KeyFileError, create_private_dir, load_or_create_peer_key, write_private_file};
pub use known_hosts::{KNOWN_HOSTS_FILE, KnownHosts};
pub use listen::{ConnectionLimits, HANDSHAKE_TIMEOUT, LoopbackListener, PeerStream, Remote, TlsListener};
pub use peer_address::{AddressError, PeerAddress, check_gossip_address};
pub use verifier::WrongPeer;

/// The rustls crypto provider every connection uses (ring: quick to build).
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
