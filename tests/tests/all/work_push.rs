//! Work is pushed (issue 15): a worker told `no_work` does not poll; the owner tells it
//! `work_ready` when units appear, and wakes one waiting worker per new unit, not all.

use crate::grid_support::TestGrid;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use wasmhive_protocol::Message;
use wasmhive_tests::wire::{Socket, connect_as, decode_frame, key, next_message};

/// Asks for one lease and expects `no_work` (the owner has no job yet).
async fn wait_for_work(socket: &mut Socket) {
    socket.send(wasmhive_transport::frame_of(&Message::RequestWork { slots: 1 })).await.unwrap();
    assert!(matches!(next_message(socket).await, Message::NoWork { .. }));
}

/// Whether `socket` is told `work_ready` within `within` (it sends nothing meanwhile).
async fn told_work_ready(socket: &mut Socket, within: Duration) -> bool {
    let Ok(Some(Ok(frame))) = tokio::time::timeout(within, socket.next()).await else {
        return false;
    };
    matches!(decode_frame(&frame), Some(Message::WorkReady {}))
}

/// How many of `sockets` are told `work_ready` within 3 s each.
async fn count_told_work_ready(sockets: &mut [Socket]) -> usize {
    let mut told = 0;
    for socket in sockets {
        told += usize::from(told_work_ready(socket, Duration::from_secs(3)).await);
    }
    told
}

#[test]
fn a_waiting_worker_is_told_work_ready_when_a_job_arrives_one_per_new_unit() {
    let grid = TestGrid::start("work-ready", 0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut sockets: Vec<Socket> = runtime.block_on(async {
        let mut sockets = Vec::new();
        for seed in 140..145 {
            let mut socket = connect_as(grid.address, &key(seed)).await;
            wait_for_work(&mut socket).await;
            sockets.push(socket);
        }
        sockets
    });
    // One unit at quorum 1: one waiting worker is woken, not five.
    grid.submit(&grid.primes_spec(10_000, 10_000, 1), false);
    let told = runtime.block_on(count_told_work_ready(&mut sockets));
    assert_eq!(told, 1, "one new unit wakes one waiting worker");
    // A job of eight units wakes the rest (four are waiting).
    grid.submit(&grid.primes_spec(80_000, 10_000, 1), false);
    let told = runtime.block_on(count_told_work_ready(&mut sockets));
    assert_eq!(told, 4, "the four still waiting are woken");
}
