//! Hostile gossip against a real peer (issue 12): markup in a peer id, forged records that
//! point at a trap, and a newer release's gossip with fields this one does not know.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::gossip::{GOSSIP_VERSION, Gossip, Have, PeerInfo, PeerRow};
use wasmhive_tests::grid::{TempDir, start_peer, wait_until, wasmhive};
use wasmhive_tests::wire::{key, try_connect};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One gossip exchange with the peer at `address` as `seed`'s key; the answer's text, or
/// what ended the exchange.
async fn exchange(address: SocketAddr, seed: u8, gossip: serde_json::Value) -> Result<String, String> {
    let mut socket = try_connect(address, Some(&key(seed)), "/mesh").await?;
    socket.send(Frame::Text(gossip.to_string().into())).await.map_err(|error| error.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Frame::Text(text)))) => Ok(text.to_string()),
        other => Err(format!("{other:?}")),
    }
}

fn peers_of(address: SocketAddr, data: &std::path::Path) -> String {
    let output =
        wasmhive(&["peers", "--json", "--to", &address.to_string(), "--data", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A listener that counts the connections made to it.
fn trap(runtime: &tokio::runtime::Runtime) -> (SocketAddr, Arc<AtomicU64>) {
    let connections = Arc::new(AtomicU64::new(0));
    let counted = connections.clone();
    let address = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.9:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        address
    });
    (address, connections)
}

#[test]
fn markup_in_gossip_is_refused_and_never_reaches_the_peer_list() {
    let directory = TempDir::new("gossip-markup");
    let data = directory.path().join("peer");
    let (peer, address) = start_peer(&data, "127.0.0.1:0", None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut from =
        serde_json::to_value(PeerInfo::signed(&key(30), Some("127.0.0.30:7000".into()), 1, 1, now_ms()))
            .unwrap();
    from["peer_id"] = "<img src=x a='".into();
    from["address"] = "127.0.0.30:1/<script>alert(1)</script>".into();
    let gossip = serde_json::json!({ "version": GOSSIP_VERSION, "from": from, "peers": [], "haves": [] });
    let _ = runtime.block_on(exchange(address, 30, gossip));
    let listed = peers_of(address, &data);
    assert!(!listed.contains('<') && !listed.contains("script"), "{listed}");
    let log = peer.log_text();
    assert!(log.contains("gossip refused"), "{log}");
}

#[test]
fn forged_records_pointing_at_a_trap_make_no_connection() {
    let directory = TempDir::new("gossip-trap");
    let data = directory.path().join("peer");
    let (peer, address) = start_peer(&data, "127.0.0.1:0", None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (trap_address, connections) = trap(&runtime);
    let now = now_ms();
    let victim = key(31);
    let forged_peer = PeerInfo {
        address: Some(trap_address.to_string()),
        ..PeerInfo::signed(&victim, Some("127.0.0.31:7000".into()), 1, 1, now)
    };
    let forged_have = Have {
        owner_address: trap_address.to_string(),
        ..Have::signed(&victim, "job".into(), "127.0.0.31:7000".into(), 5, now, 3)
    };
    let stale_have = Have::signed(&key(32), "old".into(), trap_address.to_string(), 5, now - 3_600_000, 3);
    let gossip = Gossip {
        version: GOSSIP_VERSION,
        from: PeerInfo::signed(&key(33), None, 1, 1, now),
        peers: vec![forged_peer],
        haves: vec![forged_have, stale_have],
    };
    let answer = runtime.block_on(exchange(address, 33, serde_json::to_value(&gossip).unwrap()));
    assert!(answer.is_ok(), "the peer answers gossip from a proven peer: {answer:?}");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(connections.load(Ordering::Relaxed), 0, "no dial to the trap in 10 s:\n{}", peer.log_text());
    assert!(!peers_of(address, &data).contains(&trap_address.to_string()));
}

#[test]
fn gossip_from_a_newer_release_keeps_both_peers_in_the_mesh() {
    let directory = TempDir::new("gossip-newer");
    let data = directory.path().join("peer");
    let (_peer, address) = start_peer(&data, "127.0.0.1:0", None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (newer_address, _) = trap(&runtime);
    let newer = key(34);
    let mut gossip = serde_json::to_value(Gossip {
        version: GOSSIP_VERSION,
        from: PeerInfo::signed(&newer, Some(newer_address.to_string()), 4, 2, now_ms()),
        peers: vec![],
        haves: vec![],
    })
    .unwrap();
    gossip["version"] = (GOSSIP_VERSION + 1).into();
    gossip["relay_hints"] = serde_json::json!(["something new"]);
    gossip["from"]["gpu"] = serde_json::json!({ "model": "future" });
    let answer = runtime.block_on(exchange(address, 34, gossip)).expect("an answer");
    let answer: Gossip = serde_json::from_str(&answer).expect("this release's gossip");
    assert_eq!(answer.version, GOSSIP_VERSION);
    wait_until(Duration::from_secs(10), "the newer peer in the peer list", || {
        let rows: Vec<PeerRow> = serde_json::from_str(&peers_of(address, &data)).unwrap_or_default();
        rows.iter().any(|row| row.peer_id == newer.peer_id())
    });
}
