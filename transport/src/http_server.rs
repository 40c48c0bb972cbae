//! The HTTP server loop over a listener (TLS, loopback, or a worker's control port): one
//! task per connection, with the time limits `axum::serve` does not set.
//!
//! Invariants:
//! - a request's head (request line and headers) arrives within [`HEAD_READ_TIME_MAX`] of
//!   the connection being ready for it, or the connection is closed: a half-sent request
//!   and a keep-alive connection that sends nothing both end after that long;
//! - a request head holds at most [`HEAD_BYTES_MAX`];
//! - every handler sees what the listener knows of the remote as `ConnectInfo` (for a
//!   `TlsListener`, the proven `Remote`);
//! - on shutdown the listener stops accepting and every connection finishes the request
//!   it is serving, then closes; WebSocket sessions end through their own shutdown.
//!
//! Handlers that read bodies bound their size and pauses themselves (the owner reads
//! bodies only after checking the token).

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a connection may take to send a request head, and how long an idle
/// keep-alive connection waits for its next request.
pub const HEAD_READ_TIME_MAX: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) read.
pub const HEAD_BYTES_MAX: usize = 64 << 10;

/// Serves `router` on every connection `listener` accepts until `stopped` turns true, then
/// waits for the connections to finish their requests.
pub async fn serve_connections<L>(mut listener: L, router: Router, mut stopped: watch::Receiver<bool>)
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_one_connection(stream, remote, router.clone(), stopped.clone()));
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_one_connection<S, A>(stream: S, remote: A, router: Router, mut stopped: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    A: Clone + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote.clone()));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEAD_READ_TIME_MAX).max_buf_size(HEAD_BYTES_MAX);
    let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopped.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}
