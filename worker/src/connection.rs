//! Reaching the owner: a TLS WebSocket through the worker's `Dialer`, and backoff with jitter.

use std::time::Duration;
use wasmhive_protocol::{BLOB_FRAME_BYTES_MAX, FRAME_BYTES_MAX};
use wasmhive_transport::{DialError, Dialer, PeerAddress, PeerSocket};

pub type Socket = PeerSocket;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A WebSocket to the owner at `address` over TLS, and the owner id its handshake proved.
pub async fn connect(dialer: &Dialer, address: &PeerAddress) -> Result<(Socket, String), DialError> {
    let frame_bytes_max = FRAME_BYTES_MAX.max(BLOB_FRAME_BYTES_MAX);
    dialer.dial_websocket(address, "/ws", frame_bytes_max).await
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
    fn backoff_grows_and_stays_bounded() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first <= BACKOFF_FIRST.mul_f64(1.5));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= BACKOFF_MAX.mul_f64(1.5));
        }
    }
}
