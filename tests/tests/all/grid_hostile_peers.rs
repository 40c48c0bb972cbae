//! Workers that lie and clients that misbehave: the coordinator never accepts a lie when
//! honest workers exist, and keeps serving everyone else.

use crate::grid_support::{TestGrid, check_primes_results};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{Hash, Message};
use wasmhive_tests::grid::wait_until;
use wasmhive_tests::wire::{connect, connect_as, key, run_scripted_worker};

#[test]
fn a_lying_worker_never_has_an_output_accepted() {
    let mut grid = TestGrid::start("liar", 0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, lies) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (end, step) = (2_000_000, 50_000);
    let job_id = grid.submit(&grid.primes_spec(end, step, 2), false);
    let liar = runtime
        .spawn(run_scripted_worker(grid.address, key(66), stop.clone(), lies.clone(), |_| b"999\n".to_vec()));
    wait_until(Duration::from_secs(30), "the liar to get work", || lies.load(Ordering::Relaxed) > 0);
    grid.workers = vec![grid.start_worker("honest-0"), grid.start_worker("honest-1")];
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), liar).await }).ok();
    println!("the liar reported {} wrong outcomes", lies.load(Ordering::Relaxed));
    check_primes_results(&grid.results(&job_id), end, step, 2);
    let reputations = grid.reputations();
    let liar =
        reputations.iter().find(|row| row.worker_id == key(66).peer_id()).expect("the liar was judged");
    assert_eq!(liar.valid, 0, "{liar:?}");
    assert!(liar.invalid >= 1 && liar.banned, "the owner's own run proves its first judged lie: {liar:?}");
    assert!(
        reputations
            .iter()
            .filter(|row| row.worker_id != liar.worker_id)
            .all(|row| row.invalid == 0 && row.trust > 0.9 && !row.banned)
    );
}

/// Connects as `identity`, sends `hello` first if `after_hello`, then `frames`, and
/// returns everything the owner said before closing.
async fn refusal(address: SocketAddr, identity: &PeerKey, after_hello: bool, frames: Vec<Frame>) -> String {
    let mut socket =
        if after_hello { connect_as(address, identity).await } else { connect(address, identity).await };
    for frame in frames {
        if socket.send(frame).await.is_err() {
            break;
        }
    }
    let mut said = String::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
        match frame {
            Frame::Text(text) => said.push_str(&text),
            Frame::Close(Some(close)) => said.push_str(&close.reason),
            Frame::Close(None) => break,
            _ => {}
        }
    }
    said
}

#[test]
fn garbage_oversized_unknown_and_stalled_clients_do_not_stop_the_others() {
    let grid = TestGrid::start("hostile-clients", 2);
    let address = grid.address;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (end, step) = (3_000_000, 100_000);
    let job_id = grid.submit(&grid.primes_spec(end, step, 2), false);
    let stalled = runtime.block_on(async {
        let mut stalled = connect_as(address, &key(1)).await;
        let want = wasmhive_transport::frame_of(&Message::Want { hash: Hash::of(task_modules::PRIMES) });
        for _ in 0..200 {
            stalled.send(want.clone()).await.unwrap();
        }
        stalled
    });
    let cases: Vec<(u8, bool, Vec<Frame>, &str)> = vec![
        (4, true, vec![Frame::Text("{definitely not json".into())], "malformed"),
        (5, true, vec![Frame::Text(r#"{"type":"launch_missiles"}"#.into())], "launch_missiles"),
        (6, true, vec![Frame::Binary(vec![0; 64].into())], "bad blob frame"),
        (11, true, vec![Frame::Binary(wasmhive_protocol::encode_blob(b"a module").into())], "no whole blobs"),
        (12, true, vec![Frame::Binary(vec![2, 0xff, 0xff, 0xff].into())], "outcomes frame does not decode"),
        (13, true, vec![Frame::Binary(vec![77, 1].into())], "unknown kind 77"),
        (
            14,
            true,
            vec![wasmhive_transport::frame_of(&Message::WantPiece {
                hash: Hash::of(b"not leased"),
                index: 0,
            })],
            "which none of its leases names",
        ),
        (
            15,
            true,
            vec![Frame::Binary(wasmhive_protocol::encode_piece(&Hash::of(b"x"), 0, b"x").into())],
            "did not ask for",
        ),
        (16, true, vec![Frame::Binary(vec![4, 1, 2].into())], "no room for its header"),
        (7, false, vec![Frame::Binary(vec![1, 2, 3].into())], "hello"),
        (
            8,
            false,
            vec![Frame::Text(
                format!(
                    r#"{{"type":"hello","body":{{"protocol_version":2,"cores":1,"agent":"{}"}}}}"#,
                    "x".repeat(10_000)
                )
                .into(),
            )],
            "larger than",
        ),
        (
            9,
            false,
            vec![Frame::Text(
                r#"{"type":"hello","body":{"protocol_version":99,"cores":1,"agent":"a"}}"#.into(),
            )],
            "protocol version",
        ),
        (
            10,
            false,
            vec![Frame::Text(r#"{"type":"challenge","body":{"nonce":"relay me"}}"#.into())],
            "challenge",
        ),
    ];
    for (seed, after_hello, frames, expected) in cases {
        let said = runtime.block_on(refusal(address, &key(seed), after_hello, frames));
        assert!(said.contains(expected), "expected {expected:?} in {said:?}");
    }
    grid.wait_for_completion(&job_id);
    check_primes_results(&grid.results(&job_id), end, step, 2);
    drop(stalled);
}
