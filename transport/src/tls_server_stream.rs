//! The accepting side of a TLS connection, holding no buffer while the connection is idle
//! (issue 15: an owner keeps thousands of idle worker connections). rustls's buffered
//! connection keeps a 4 KiB read buffer per connection for its whole life; this stream
//! drives rustls's unbuffered API and owns its buffers, which exist only while bytes are in
//! them.
//!
//! Invariants:
//! - idle (nothing received and not yet read, nothing written and not yet sent), the
//!   stream holds no buffer: `incoming`, `plaintext` and `outgoing` are freed when emptied,
//!   and a read allocates only once the socket is readable;
//! - bounded: at most [`INCOMING_BYTES_MAX`] of TLS bytes wait for a record to complete (a
//!   longer handshake message is an error); more is read from the socket only once the
//!   plaintext already decrypted has been read; a write is refused (pending) while
//!   [`OUTGOING_BYTES_MAX`] of encrypted bytes wait to be sent, and otherwise takes all it
//!   is given (the caller's buffer, a WebSocket frame, is in memory already: taken in
//!   record-sized parts, its writer would move the rest to the front after each part, a
//!   256 KiB piece frame copied 2 MiB), so at most that limit plus one write wait;
//! - bytes leave in the order rustls produced them (handshake messages, key updates,
//!   alerts and application data share one queue, `outgoing`);
//! - a peer's garbage ends the stream with an error naming what was wrong; it never
//!   panics.

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Room made for one read from the socket while a record is incomplete: one whole TLS
/// record (16 KiB of data and the record's overhead).
const READ_BYTES: usize = 16 * 1024 + 512;
/// Room made for a read that starts a record: handshake flights and small messages fit,
/// and a connection mid-handshake holds 4 KiB, not 16 (owners run many handshakes at once).
const FIRST_READ_BYTES: usize = 4 * 1024;
/// TLS bytes kept while a record (or a handshake message spread over records, up to
/// rustls's own 64 KiB limit) is incomplete.
pub(crate) const INCOMING_BYTES_MAX: usize = 80 * 1024;
/// Encrypted bytes waiting for the socket before a write is refused.
const OUTGOING_BYTES_MAX: usize = 64 * 1024;

pub struct TlsServerStream {
    tcp: TcpStream,
    connection: UnbufferedServerConnection,
    /// TLS bytes received and not yet processed (an incomplete record).
    incoming: Vec<u8>,
    /// Application bytes decrypted and not yet read, from `plaintext_read` on.
    plaintext: Vec<u8>,
    plaintext_read: usize,
    /// TLS bytes to send, from `outgoing_sent` on.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// The peer sent close_notify or closed its side: reads end.
    peer_closed: bool,
    /// The stream is shutting down: nothing more is written.
    closing: bool,
    close_notify_queued: bool,
}

/// Where rustls stopped processing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reached {
    /// Application data may flow (a write was encrypted, if there was one).
    Traffic,
    /// The handshake needs more bytes from the peer.
    NeedsBytes,
    /// Both sides sent close_notify.
    Closed,
}

impl TlsServerStream {
    /// Runs the handshake on `tcp`: returns once the client's Finished has been verified
    /// (so its certificate, if it sent one, is proven).
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsServerStream> {
        let connection = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = TlsServerStream {
            tcp,
            connection,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            plaintext_read: 0,
            outgoing: Vec::new(),
            outgoing_sent: 0,
            peer_closed: false,
            closing: false,
            close_notify_queued: false,
        };
        loop {
            let reached = stream.process(None)?;
            std::future::poll_fn(|context| stream.poll_send_outgoing(context)).await?;
            if !stream.connection.is_handshaking() {
                return Ok(stream);
            }
            if reached == Reached::Closed || stream.peer_closed {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the TLS handshake"));
            }
            if std::future::poll_fn(|context| stream.poll_receive(context)).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the TLS handshake"));
            }
        }
    }

    /// The certificates the client proved in the handshake, if it sent any.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.connection.peer_certificates()
    }

    /// Bytes held in buffers (their capacity): zero while idle.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }

    /// Lets rustls process what `incoming` holds until it waits for the peer or may send
    /// application data; `send` is encrypted then. Records decrypted go to `plaintext`,
    /// TLS bytes to send to `outgoing`.
    fn process(&mut self, mut send: Option<&[u8]>) -> io::Result<Reached> {
        loop {
            let UnbufferedStatus { discard, state } = self.connection.process_tls_records(&mut self.incoming);
            let reached = match state.map_err(invalid_data)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        self.plaintext.extend_from_slice(record.map_err(invalid_data)?.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append_to(&mut self.outgoing, 512, |room| {
                        encode.encode(room).map_err(|error| match error {
                            EncodeError::InsufficientSize(size) => Some(size.required_size),
                            EncodeError::AlreadyEncoded => None,
                        })
                    })?;
                    None
                }
                // Its bytes are in `outgoing`, ahead of anything written after them.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    None
                }
                ConnectionState::Closed => Some(Reached::Closed),
                ConnectionState::BlockedHandshake => Some(Reached::NeedsBytes),
                ConnectionState::WriteTraffic(mut traffic) => {
                    if let Some(bytes) = send.take() {
                        append_to(&mut self.outgoing, bytes.len() + 256, |room| {
                            traffic.encrypt(bytes, room).map_err(insufficient_room)
                        })?;
                    }
                    if self.closing && !self.close_notify_queued {
                        append_to(&mut self.outgoing, 64, |room| {
                            traffic.queue_close_notify(room).map_err(insufficient_room)
                        })?;
                        self.close_notify_queued = true;
                    }
                    Some(Reached::Traffic)
                }
                _ => return Err(io::Error::other("TLS early data is not accepted here")),
            };
            self.incoming.drain(..discard);
            if let Some(reached) = reached {
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Ok(reached);
            }
        }
    }

    /// Reads what the socket has into `incoming`: the number of bytes (0 at its end).
    fn poll_receive(&mut self, context: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= INCOMING_BYTES_MAX {
            return Poll::Ready(Err(invalid_data(format!(
                "the peer sent over {} KiB that do not complete a TLS message",
                INCOMING_BYTES_MAX >> 10
            ))));
        }
        loop {
            if let Err(error) = ready!(self.tcp.poll_read_ready(context)) {
                return Poll::Ready(Err(error));
            }
            self.incoming.reserve(if self.incoming.is_empty() { FIRST_READ_BYTES } else { READ_BYTES });
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(read) => return Poll::Ready(Ok(read)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if self.incoming.is_empty() {
                        self.incoming = Vec::new();
                    }
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Sends what `outgoing` holds; ready when all of it is sent.
    fn poll_send_outgoing(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_sent < self.outgoing.len() {
            let unsent = &self.outgoing[self.outgoing_sent..];
            let sent = ready!(Pin::new(&mut self.tcp).poll_write(context, unsent))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing_sent += sent;
        }
        self.outgoing = Vec::new();
        self.outgoing_sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Copies decrypted bytes into `buffer`; false when there were none.
    fn read_plaintext(&mut self, buffer: &mut ReadBuf<'_>) -> bool {
        let unread = &self.plaintext[self.plaintext_read..];
        if unread.is_empty() {
            return false;
        }
        let count = unread.len().min(buffer.remaining());
        buffer.put_slice(&unread[..count]);
        self.plaintext_read += count;
        if self.plaintext_read == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plaintext_read = 0;
        }
        true
    }
}

impl AsyncRead for TlsServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = self.get_mut();
        loop {
            if stream.read_plaintext(buffer) || stream.peer_closed {
                return Poll::Ready(Ok(()));
            }
            // What processing produced (a key update's answer, an alert) leaves as soon as
            // the socket takes it; a write that must wait is finished by the next call.
            if let Poll::Ready(Err(error)) = stream.poll_send_outgoing(context) {
                return Poll::Ready(Err(error));
            }
            if ready!(stream.poll_receive(context))? == 0 {
                if !stream.incoming.is_empty() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection in the middle of a TLS record",
                    )));
                }
                stream.peer_closed = true;
                return Poll::Ready(Ok(()));
            }
            if stream.process(None)? == Reached::Closed {
                stream.peer_closed = true;
            }
        }
    }
}

impl AsyncWrite for TlsServerStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let stream = self.get_mut();
        if stream.closing {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the TLS stream is closing")));
        }
        if stream.outgoing.len() - stream.outgoing_sent >= OUTGOING_BYTES_MAX {
            ready!(stream.poll_send_outgoing(context))?;
        }
        let taken = bytes.len();
        if stream.process(Some(bytes))? != Reached::Traffic {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS connection is closed",
            )));
        }
        // The bytes are taken; what the socket does not take now, a flush sends.
        if let Poll::Ready(Err(error)) = stream.poll_send_outgoing(context) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self.get_mut();
        ready!(stream.poll_send_outgoing(context))?;
        Pin::new(&mut stream.tcp).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self.get_mut();
        if !stream.closing {
            ready!(stream.poll_send_outgoing(context))?;
            stream.closing = true;
            stream.process(None)?;
        }
        ready!(stream.poll_send_outgoing(context))?;
        Pin::new(&mut stream.tcp).poll_shutdown(context)
    }
}

/// Appends to `outgoing` what `write` puts in the room given (first `room` bytes, then as
/// many as rustls says it needs).
fn append_to(
    outgoing: &mut Vec<u8>,
    room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = outgoing.len();
    let mut room = room;
    loop {
        outgoing.resize(start + room, 0);
        match write(&mut outgoing[start..]) {
            Ok(written) => {
                outgoing.truncate(start + written);
                return Ok(());
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                outgoing.truncate(start);
                return Err(io::Error::other("TLS could not encode what it had to send"));
            }
        }
    }
}

fn insufficient_room(error: EncryptError) -> Option<usize> {
    match error {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

fn invalid_data(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
