//! Reaching the owner: address normalisation, connecting, and backoff with jitter.

use crate::WorkerError;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wasmhive_protocol::{BLOB_FRAME_BYTES_MAX, TEXT_FRAME_BYTES_MAX};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ws://host:port/ws` from `ws://…`, `http://…` or a bare `host:port`.
pub fn websocket_url(join: &str) -> Result<String, WorkerError> {
    let bad =
        |reason: &str| WorkerError::BadAddress { address: join.to_string(), reason: reason.to_string() };
    let join = join.trim();
    let rest = if let Some(rest) = join.strip_prefix("ws://") {
        rest
    } else if let Some(rest) = join.strip_prefix("http://") {
        rest
    } else if join.contains("://") {
        return Err(bad("use ws://HOST:PORT or http://HOST:PORT (TLS is not supported yet)"));
    } else {
        join
    };
    let (host_port, path) = rest.split_once('/').map_or((rest, ""), |(host_port, path)| (host_port, path));
    if host_port.is_empty() || !host_port.contains(':') {
        return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:7878"));
    }
    let path = if path.is_empty() { "ws" } else { path };
    Ok(format!("ws://{host_port}/{path}"))
}

pub async fn connect(url: &str) -> Result<Socket, String> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(TEXT_FRAME_BYTES_MAX.max(BLOB_FRAME_BYTES_MAX)))
        .max_frame_size(Some(TEXT_FRAME_BYTES_MAX.max(BLOB_FRAME_BYTES_MAX)));
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// Exponential backoff with ±50% jitter, so many workers do not reconnect in step.
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = BACKOFF_FIRST.saturating_mul(1 << self.attempt.min(10)).min(BACKOFF_MAX);
        self.attempt += 1;
        base.mul_f64(0.5 + fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalise_or_explain() {
        assert_eq!(websocket_url("127.0.0.1:7878").unwrap(), "ws://127.0.0.1:7878/ws");
        assert_eq!(websocket_url("http://127.0.0.1:7878").unwrap(), "ws://127.0.0.1:7878/ws");
        assert_eq!(websocket_url("ws://host:1/ws").unwrap(), "ws://host:1/ws");
        assert!(websocket_url("https://host:1").is_err());
        assert!(websocket_url("localhost").unwrap_err().to_string().contains("HOST:PORT"));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first <= BACKOFF_FIRST.mul_f64(1.5));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= BACKOFF_MAX.mul_f64(1.5));
        }
    }
}
