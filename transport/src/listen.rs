//! Accepting connections for axum. [`TlsListener`] is a peer's one public port: TLS 1.3,
//! a client may prove a peer key (peers do) or stay anonymous (API clients with a token);
//! each accepted connection comes with its [`Remote`]: where it came from and the peer id
//! its handshake proved. [`LoopbackListener`] is plain HTTP on a loopback address, for the
//! owner's own browser and tools.
//!
//! Limits: a handshake must finish within [`HANDSHAKE_TIMEOUT`]; at most
//! [`HANDSHAKES_IN_FLIGHT_MAX`] run at once (the rest wait in the kernel's backlog); open
//! connections are capped in total and per remote IP address ([`ConnectionLimits`]: one
//! more is closed at once, before its handshake); a client that speaks plain text gets one
//! plain HTTP answer saying this port speaks TLS.

use crate::certificate::{TlsIdentity, peer_id_of_certificate};
use crate::tls_server_stream::TlsServerStream;
use crate::verifier::PeerClientVerifier;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

const PLAIN_TEXT_REFUSAL: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
this port speaks TLS 1.3 only: wasmhive peers prove their keys at every connection. Use a wasmhive \
command with --to HOST:PORT[#PEERID], or curl https://HOST:PORT/... --insecure --pinnedpubkey \
sha256//... (the owner prints its pin at start); the owner's own machine can use the plain \
loopback address it prints for the dashboard.\n";

/// Caps on open connections (handshaking or established).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub total_max: usize,
    /// Per remote IP address (loopback addresses too, each on its own).
    pub per_address_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits { total_max: 4096, per_address_max: 64 }
    }
}

/// The open connections, per remote address.
#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One open connection's place under the caps, given back when the connection ends.
struct ConnectionSlot {
    open: Arc<Mutex<OpenConnections>>,
    address: IpAddr,
}

impl ConnectionSlot {
    fn take(
        open: &Arc<Mutex<OpenConnections>>,
        address: IpAddr,
        limits: ConnectionLimits,
    ) -> Option<ConnectionSlot> {
        let mut counts = open.lock().expect("connection counts lock");
        let of_address = counts.per_address.get(&address).copied().unwrap_or(0);
        if counts.total >= limits.total_max || of_address >= limits.per_address_max {
            return None;
        }
        counts.total += 1;
        counts.per_address.insert(address, of_address + 1);
        Some(ConnectionSlot { open: open.clone(), address })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().expect("connection counts lock");
        counts.total -= 1;
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

/// An accepted TLS connection; its place under the connection caps is held until it drops.
pub struct PeerStream {
    stream: TlsServerStream,
    _slot: ConnectionSlot,
}

impl tokio::io::AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl tokio::io::AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

/// Who is on the other end of an accepted connection.
#[derive(Clone, Debug)]
pub struct Remote {
    pub address: SocketAddr,
    /// The peer id the TLS handshake proved; `None` for an anonymous or loopback client.
    pub peer_id: Option<String>,
}

/// A TLS listener whose handshakes run concurrently, off axum's accept loop.
pub struct TlsListener {
    accepted: mpsc::Receiver<(PeerStream, Remote)>,
    local_address: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, identity: &TlsIdentity) -> std::io::Result<TlsListener> {
        TlsListener::with_limits(listener, identity, ConnectionLimits::default())
    }

    pub fn with_limits(
        listener: TcpListener,
        identity: &TlsIdentity,
        limits: ConnectionLimits,
    ) -> std::io::Result<TlsListener> {
        let local_address = listener.local_addr()?;
        let config = server_config(identity)?;
        let (sender, accepted) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_forever(listener, Arc::new(config), sender, limits));
        Ok(TlsListener { accepted, local_address, accepting })
    }
}

/// TLS 1.3 as `identity`, a client's peer key proven if it sends one.
pub(crate) fn server_config(identity: &TlsIdentity) -> std::io::Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_client_cert_verifier(Arc::new(PeerClientVerifier))
        .with_single_cert(vec![identity.certificate.clone()], identity.private_key())
        .map_err(std::io::Error::other)?;
    // No resumption: every connection proves both keys afresh, and no session state is
    // kept per connection or in a cache.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(config)
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_forever(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    accepted: mpsc::Sender<(PeerStream, Remote)>,
    limits: ConnectionLimits,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    loop {
        let permit = handshakes.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (tcp, address) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = ConnectionSlot::take(&open, address.ip(), limits) else {
            tracing::debug!(%address, "connection refused: over the connection caps");
            continue;
        };
        let config = config.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(config, tcp, address)).await;
            drop(permit);
            match handshake {
                Ok(Ok((stream, remote))) => {
                    let _ = accepted.send((PeerStream { stream, _slot: slot }, remote)).await;
                }
                Ok(Err(reason)) => tracing::debug!(%address, %reason, "connection refused at the handshake"),
                Err(_) => tracing::debug!(%address, "no TLS handshake within the time limit"),
            }
        });
    }
}

async fn handshake(
    config: Arc<ServerConfig>,
    mut tcp: TcpStream,
    address: SocketAddr,
) -> Result<(TlsServerStream, Remote), String> {
    let _ = tcp.set_nodelay(true);
    let mut first = [0u8; 1];
    let peeked = tcp.peek(&mut first).await.map_err(|error| error.to_string())?;
    if peeked == 0 {
        return Err("closed before a handshake".into());
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        let _ = tcp.write_all(PLAIN_TEXT_REFUSAL.as_bytes()).await;
        let _ = tcp.shutdown().await;
        return Err("plain text on the TLS port".into());
    }
    let stream = TlsServerStream::accept(tcp, config).await.map_err(|error| error.to_string())?;
    let peer_id = stream
        .peer_certificates()
        .and_then(|certificates| certificates.first())
        .and_then(|certificate| peer_id_of_certificate(certificate).ok());
    Ok((stream, Remote { address, peer_id }))
}

impl axum::serve::Listener for TlsListener {
    type Io = PeerStream;
    type Addr = Remote;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Remote> {
        Ok(Remote { address: self.local_address, peer_id: None })
    }
}

/// Plain HTTP on a loopback address: the owner's own browser opens the dashboard there
/// without certificate warnings. It serves no peer protocol.
pub struct LoopbackListener(pub TcpListener);

impl LoopbackListener {
    /// Binds `address`, which must be a loopback address.
    pub async fn bind(address: &str) -> std::io::Result<LoopbackListener> {
        let listener = TcpListener::bind(address).await?;
        if !listener.local_addr()?.ip().is_loopback() {
            return Err(std::io::Error::other(format!(
                "{address} is not a loopback address: the plain-text dashboard listens only on this machine (127.0.0.1 or ::1)"
            )));
        }
        Ok(LoopbackListener(listener))
    }
}

impl axum::serve::Listener for LoopbackListener {
    type Io = TcpStream;
    type Addr = Remote;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.0).await;
        (stream, Remote { address, peer_id: None })
    }

    fn local_addr(&self) -> std::io::Result<Remote> {
        Ok(Remote { address: self.0.local_addr()?, peer_id: None })
    }
}
