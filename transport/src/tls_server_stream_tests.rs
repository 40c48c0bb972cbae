//! The accepting TLS stream against real rustls clients and hostile bytes.

use crate::listen::server_config;
use crate::tls_server_stream::TlsServerStream;
use crate::{Dialer, PeerAddress, TlsIdentity};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wasmhive_protocol::identity::PeerKey;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn key(seed: u8) -> PeerKey {
    PeerKey::from_secret([seed; 32])
}

/// A listener as key 1 whose first accepted connection's handshake result comes back.
async fn accept_one() -> (String, tokio::task::JoinHandle<std::io::Result<TlsServerStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = Arc::new(server_config(&TlsIdentity::new(&key(1))).unwrap());
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        TlsServerStream::accept(tcp, config).await
    });
    (address, accepting)
}

/// A client (key 2) and the server stream that accepted it, both past the handshake.
async fn connected() -> (tokio_rustls::client::TlsStream<TcpStream>, TlsServerStream) {
    let (address, accepting) = accept_one().await;
    let client = dial(&address).await;
    (client, accepting.await.unwrap().unwrap())
}

async fn dial(address: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let dialer = Dialer::new(Some(TlsIdentity::new(&key(2))), None);
    dialer.dial(&PeerAddress::pinned(address, &key(1).peer_id())).await.unwrap().0
}

/// Bytes that do not repeat with any short period, so a reordering or a lost piece shows.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index.wrapping_mul(7919) >> 3) as u8 ^ (index >> 11) as u8).collect()
}

#[test]
fn a_megabyte_each_way_in_odd_pieces_arrives_whole_and_an_idle_stream_holds_no_buffer() {
    runtime().block_on(async {
        let (mut client, mut server) = connected().await;
        assert_eq!(
            server.peer_certificates().map(|certificates| certificates.len()),
            Some(1),
            "the client's certificate is proven"
        );
        assert_eq!(server.buffered_capacity(), 0, "an idle stream holds no buffer after its handshake");
        let sent = pattern(1 << 20);
        let echoing = tokio::spawn(async move {
            let mut piece = vec![0u8; 3001];
            let mut echoed = 0;
            while echoed < 1 << 20 {
                let read = server.read(&mut piece).await.unwrap();
                assert!(read > 0, "no early end");
                server.write_all(&piece[..read]).await.unwrap();
                server.flush().await.unwrap();
                echoed += read;
            }
            server
        });
        let (mut reading, mut writing) = tokio::io::split(&mut client);
        let writer = async {
            for chunk in sent.chunks(7919) {
                writing.write_all(chunk).await.unwrap();
            }
            writing.flush().await.unwrap();
        };
        let mut received = vec![0u8; 1 << 20];
        let (_, read) = tokio::join!(writer, reading.read_exact(&mut received));
        read.unwrap();
        assert!(received == sent, "the echo is the bytes sent, in order");
        let mut server = echoing.await.unwrap();
        assert_eq!(server.buffered_capacity(), 0, "an idle stream holds no buffer after traffic");
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "close_notify ends the reads");
        server.shutdown().await.unwrap();
        let mut client_rest = Vec::new();
        client.read_to_end(&mut client_rest).await.unwrap();
        assert!(client_rest.is_empty());
    });
}

#[test]
fn a_key_update_from_the_client_is_followed_both_ways() {
    runtime().block_on(async {
        let (mut client, mut server) = connected().await;
        let mut buffer = [0u8; 5];
        for round in 0..3u8 {
            client.get_mut().1.refresh_traffic_keys().unwrap();
            client.write_all(&[b'a', b'b', b'c', b'd', round]).await.unwrap();
            client.flush().await.unwrap();
            server.read_exact(&mut buffer).await.unwrap();
            assert_eq!(buffer, [b'a', b'b', b'c', b'd', round]);
            server.write_all(&[b'w', b'x', b'y', b'z', round]).await.unwrap();
            server.flush().await.unwrap();
            client.read_exact(&mut buffer).await.unwrap();
            assert_eq!(
                buffer,
                [b'w', b'x', b'y', b'z', round],
                "the server's answer after its own key update"
            );
        }
    });
}

#[test]
fn garbage_after_the_handshake_ends_the_stream_with_an_error() {
    runtime().block_on(async {
        let (mut client, mut server) = connected().await;
        client.get_mut().0.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buffer)).await.unwrap();
        let error = read.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    });
}

/// Raw bytes to a fresh stream's handshake: how `accept` ends (it must end, with an error).
fn handshake_against(bytes: &'static [u8], then_close: bool) -> std::io::Error {
    runtime().block_on(async {
        let (address, accepting) = accept_one().await;
        let mut raw = TcpStream::connect(&address).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        if then_close {
            raw.shutdown().await.unwrap();
        }
        let ended = tokio::time::timeout(Duration::from_secs(5), accepting).await;
        let result = ended.expect("the handshake ends by itself").unwrap();
        result.err().expect("no connection comes of it")
    })
}

#[test]
fn a_record_announcing_more_than_tls_allows_is_refused_at_once() {
    // A handshake record that claims 65,535 bytes (TLS allows 16 KiB and a little).
    let error = handshake_against(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3], false);
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
}

#[test]
fn a_client_hello_of_garbage_is_refused() {
    let error = handshake_against(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0xff], false);
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
}

#[test]
fn a_client_that_leaves_in_the_middle_of_the_handshake_is_an_error() {
    let error = handshake_against(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01], true);
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
}

/// Each key update the client requests asks the server to answer with its own: a client
/// that floods them (and never reads) must not make the server queue answers.
#[test]
fn a_flood_of_key_update_requests_ends_the_stream() {
    runtime().block_on(async {
        let (mut client, mut server) = connected().await;
        for _ in 0..5_000 {
            client.get_mut().1.refresh_traffic_keys().unwrap();
            client.write_all(b"").await.unwrap();
        }
        client.write_all(b"x").await.unwrap();
        client.flush().await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), server.read(&mut byte)).await.unwrap();
        let error = read.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
        assert!(error.to_string().contains("KeyUpdate"), "{error}");
        let held = server.buffered_capacity();
        assert!(held <= 4096, "only the read it was processing, no answers queued: {held} bytes");
    });
}

/// A WebSocket writer hands over a whole frame and moves what is not taken to the front of
/// its buffer after every partial write: a 256 KiB piece taken 16 KiB at a time cost the
/// owner 2 MiB of copying. A write is taken whole while little waits to be sent, and
/// refused (pending) once the queue is full.
#[test]
fn a_large_write_is_taken_whole_while_little_waits_and_refused_once_the_queue_is_full() {
    runtime().block_on(async {
        let (mut client, mut server) = connected().await;
        let frame = pattern(256 << 10);
        let taken = server.write(&frame).await.unwrap();
        assert_eq!(taken, frame.len(), "the whole frame in one write");
        // The client reads nothing: the socket's buffers fill, then the stream's queue.
        let mut written = taken;
        let refused = loop {
            match tokio::time::timeout(Duration::from_millis(300), server.write(&frame)).await {
                Ok(result) => written += result.unwrap(),
                Err(_) => break true,
            }
            assert!(written < 64 << 20, "writes are refused before 64 MiB wait unread");
        };
        assert!(refused);
        let mut received = vec![0u8; frame.len()];
        client.read_exact(&mut received).await.unwrap();
        assert!(received == frame, "the first frame arrives whole, in order");
    });
}
