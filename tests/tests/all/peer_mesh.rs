//! Peers on distinct loopback addresses (127.0.0.x): the mesh forms by gossip, jobs
//! submitted to any peer complete with replicas on distinct peers, and the mesh survives
//! losing its bootstrap peer and peers that crash and come back.

use crate::grid_support::{check_primes_results, primes_spec, results, status, submit};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::gossip::PeerRow;
use wasmhive_tests::grid::{
    Running, TempDir, start_peer, start_peer_behind_nat, start_peer_with, wait_until, wasmhive,
};

struct TestPeer {
    process: Running,
    address: SocketAddr,
    data: PathBuf,
}

/// `count` peers with one core each: peer 0 on 127.0.0.1 is the bootstrap, peer k listens
/// on 127.0.0.(k+1) and joins through peer 0.
fn start_mesh(directory: &TempDir, count: usize) -> Vec<TestPeer> {
    start_mesh_with(directory, count, &[])
}

/// [`start_mesh`] with `bootstrap_args` for peer 0.
fn start_mesh_with(directory: &TempDir, count: usize, bootstrap_args: &[&str]) -> Vec<TestPeer> {
    let mut peers: Vec<TestPeer> = Vec::new();
    for index in 0..count {
        let data = directory.path().join(format!("peer-{index}"));
        let join = peers.first().map(|bootstrap| bootstrap.address);
        let extra = if index == 0 { bootstrap_args } else { &[] };
        let (process, address) =
            start_peer_with(None, &data, &format!("127.0.0.{}:0", index + 1), join, extra);
        peers.push(TestPeer { process, address, data });
    }
    for peer in &peers {
        wait_until(Duration::from_secs(30), "every peer to learn the mesh", || {
            known_peers(peer).len() >= count - 1
        });
    }
    peers
}

fn known_peers(peer: &TestPeer) -> Vec<PeerRow> {
    let address = peer.address.to_string();
    let output = wasmhive(&["peers", "--json", "--to", &address, "--data", peer.data.to_str().unwrap()]);
    if !output.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

fn wait_for_completion(peer: &TestPeer, job_id: &str) {
    wait_until(Duration::from_secs(120), "the job to complete", || {
        status(peer.address, &peer.data, job_id).state == JobState::Completed
    });
}

#[test]
fn six_peers_complete_two_jobs_submitted_to_two_peers_at_once() {
    let directory = TempDir::new("six-peers");
    let peers = start_mesh(&directory, 6);
    // Units of a few hundred milliseconds, so the job lasts long enough (seconds) for the
    // other peers to hear the owners' `have` announcements even on a loaded machine.
    let (end, step) = (16_000_000, 400_000);
    let spec = primes_spec(directory.path(), end, step, 2);
    let first = submit(peers[1].address, &peers[1].data, &spec, false);
    let second = submit(peers[2].address, &peers[2].data, &spec, false);
    wait_for_completion(&peers[1], &first);
    wait_for_completion(&peers[2], &second);
    let mut helpers = std::collections::HashSet::new();
    for (peer, job_id) in [(&peers[1], &first), (&peers[2], &second)] {
        let units = results(peer.address, &peer.data, job_id);
        check_primes_results(&units, end, step, 2);
        helpers.extend(units.iter().flat_map(|unit| unit.replica_peers.clone()));
    }
    assert!(helpers.len() >= 3, "work spread over the mesh, not only over the two owners: {helpers:?}");
}

#[test]
fn the_mesh_outlives_its_bootstrap_peer() {
    let directory = TempDir::new("bootstrap-dies");
    let mut peers = start_mesh(&directory, 4);
    peers[0].process.kill();
    let (end, step) = (2_000_000, 100_000);
    let job_id =
        submit(peers[2].address, &peers[2].data, &primes_spec(directory.path(), end, step, 2), false);
    wait_for_completion(&peers[2], &job_id);
    check_primes_results(&results(peers[2].address, &peers[2].data, &job_id), end, step, 2);
}

#[test]
fn two_peers_killed_and_restarted_during_a_job_lose_nothing() {
    let directory = TempDir::new("peers-restart");
    let mut peers = start_mesh(&directory, 4);
    let (end, step) = (6_000_000, 100_000);
    let owner = 1;
    let job_id =
        submit(peers[owner].address, &peers[owner].data, &primes_spec(directory.path(), end, step, 2), false);
    wait_until(Duration::from_secs(60), "some verified units", || {
        status(peers[owner].address, &peers[owner].data, &job_id).verified >= 5
    });
    for index in [2, 3] {
        peers[index].process.kill();
    }
    for index in [2, 3] {
        // No --join: a restarted peer finds the mesh from the peer list it saved.
        let (process, address) = start_peer(&peers[index].data, &peers[index].address.to_string(), None);
        assert_eq!(address, peers[index].address);
        peers[index].process = process;
    }
    wait_for_completion(&peers[owner], &job_id);
    check_primes_results(&results(peers[owner].address, &peers[owner].data, &job_id), end, step, 2);
    wait_until(Duration::from_secs(30), "the restarted peers to rejoin", || {
        known_peers(&peers[2]).len() >= 2
    });
}

#[test]
fn a_peer_behind_nat_runs_units_with_outbound_connections_only() {
    let directory = TempDir::new("nat-peer");
    let peers = start_mesh(&directory, 2);
    let _behind_nat = start_peer_behind_nat(&directory.path().join("behind-nat"), peers[0].address);
    let (end, step) = (1_000_000, 100_000);
    let spec = primes_spec(directory.path(), end, step, 3);
    let job_id = submit(peers[0].address, &peers[0].data, &spec, false);
    wait_for_completion(&peers[0], &job_id);
    // Quorum 3 with two listening peers: every unit needed the peer behind NAT as well
    // (check_primes_results checks 3 distinct replica peers per unit).
    check_primes_results(&results(peers[0].address, &peers[0].data, &job_id), end, step, 3);
}

#[test]
fn peers_in_two_network_namespaces_finish_a_job_across_a_cut_and_restored_link() {
    let host = wasmhive_tests::netns::NamespaceHost::create();
    let directory = TempDir::new("netns");
    let (process, address) =
        start_peer(&directory.path().join("here"), &format!("{}:0", host.local_address), None);
    let here = TestPeer { process, address, data: directory.path().join("here") };
    let there_data = directory.path().join("there");
    let (_there, _) = wasmhive_tests::grid::start_peer_in(
        Some(&host.namespace),
        &there_data,
        &format!("{}:0", host.remote_address),
        Some(here.address),
    );
    wait_until(Duration::from_secs(30), "the peers to meet across the link", || {
        !known_peers(&here).is_empty()
    });
    let (end, step) = (4_000_000, 100_000);
    let job_id = submit(here.address, &here.data, &primes_spec(directory.path(), end, step, 2), false);
    wait_until(Duration::from_secs(60), "some verified units", || {
        status(here.address, &here.data, &job_id).verified >= 3
    });
    host.set_link(false);
    // The fault lasts a few seconds: longer than the owner takes to see the worker gone.
    std::thread::sleep(Duration::from_secs(4));
    let during_cut = status(here.address, &here.data, &job_id);
    assert_ne!(during_cut.state, JobState::Completed, "quorum 2 needs the peer across the cut link");
    host.set_link(true);
    wait_for_completion(&here, &job_id);
    check_primes_results(&results(here.address, &here.data, &job_id), end, step, 2);
}

#[test]
fn any_peer_that_ran_a_job_serves_its_module_by_hash() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    use wasmhive_protocol::{Hash, Message, decode_blob};
    let directory = TempDir::new("blob-from-peer");
    let peers = start_mesh(&directory, 2);
    let (end, step) = (200_000, 100_000);
    let job_id =
        submit(peers[0].address, &peers[0].data, &primes_spec(directory.path(), end, step, 2), false);
    wait_for_completion(&peers[0], &job_id);
    let module = Hash::of(task_modules::PRIMES);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let served = runtime.block_on(async {
        let mut socket =
            wasmhive_tests::wire::connect_as(peers[1].address, &wasmhive_tests::wire::key(9)).await;
        socket.send(wasmhive_transport::frame_of(&Message::Want { hash: module })).await.unwrap();
        match socket.next().await {
            Some(Ok(Frame::Binary(bytes))) => bytes.to_vec(),
            other => panic!("expected the module as a binary frame, got {other:?}"),
        }
    });
    let (hash, bytes) = decode_blob(&served).expect("a blob checked against its hash");
    assert_eq!(
        (hash, bytes),
        (module, task_modules::PRIMES),
        "peer 1 does not own the job but cached its module"
    );
}

#[test]
fn a_newcomer_fetches_the_module_from_a_peer_that_cached_it_not_from_the_owner() {
    let directory = TempDir::new("blob-fetch");
    let mut peers = start_mesh(&directory, 2);
    let first_job =
        submit(peers[0].address, &peers[0].data, &primes_spec(directory.path(), 200_000, 100_000, 2), false);
    wait_for_completion(&peers[0], &first_job);
    let data = directory.path().join("newcomer");
    let (process, address) = start_peer(&data, "127.0.0.3:0", Some(peers[1].address));
    let newcomer = TestPeer { process, address, data };
    wait_until(Duration::from_secs(30), "the newcomer to learn the mesh", || {
        known_peers(&newcomer).len() >= 2
    });
    let (end, step) = (300_000, 100_000);
    let job_id =
        submit(peers[0].address, &peers[0].data, &primes_spec(directory.path(), end, step, 3), false);
    wait_for_completion(&peers[0], &job_id);
    check_primes_results(&results(peers[0].address, &peers[0].data, &job_id), end, step, 3);
    let log = newcomer.process.log_text();
    let cached_at = wasmhive_tests::grid::owner_id(&peers[1].process);
    assert!(
        log.lines().any(|line| line.contains("module fetched from a peer") && line.contains(&cached_at)),
        "the newcomer should fetch from {cached_at}, the peer that cached the module:\n{log}"
    );
    peers.push(newcomer);
}

/// Issue 16's swarm: a job's shared blob reaches three peers from an owner whose uplink is
/// slow (`--upload-rate`), and the peers trade its pieces among themselves, so the owner
/// sends less than a copy to each (every piece verified on arrival, every unit agreeing).
#[test]
fn peers_trade_the_pieces_of_a_shared_blob_and_the_owner_sends_less_than_a_copy_to_each() {
    let directory = TempDir::new("swarm-shared");
    let peers = start_mesh_with(&directory, 4, &["--upload-rate", "4 MiB"]);
    let job_folder = directory.path().join("job");
    std::fs::create_dir_all(&job_folder).unwrap();
    let pieces = 64u64;
    let model: Vec<u8> = (0..pieces * 256 * 1024).map(|index| (index * 7 % 251) as u8).collect();
    std::fs::write(job_folder.join("model.bin"), &model).unwrap();
    let spec = job_folder.join("job.toml");
    std::fs::write(
        &spec,
        "name = \"swarm\"\nmodule = \"probe\"\nargs = [\"files\"]\n\
         [inputs]\nrange = { start = 0, end = 12, step = 1 }\nshared = [\"model.bin\"]\n[verify]\nquorum = 4\n",
    )
    .unwrap();
    let job_id = crate::grid_support::submit(peers[0].address, &peers[0].data, spec.to_str().unwrap(), false);
    wait_for_completion(&peers[0], &job_id);
    let units = results(peers[0].address, &peers[0].data, &job_id);
    assert_eq!(units.len(), 12);
    let sum = model.iter().fold(0u64, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    for unit in &units {
        let output = unit.output.as_deref().unwrap_or_default();
        assert!(
            output.contains(&format!("/shared/model.bin: {} bytes, sum {sum},", model.len())),
            "{output}"
        );
        assert_eq!(unit.replica_peers.len(), 4, "every peer ran every unit and agreed: {unit:?}");
    }
    let (mut from_owner, mut from_peers, mut fetchers) = (0, 0, 0);
    for peer in &peers[1..] {
        for (owner_pieces, peer_pieces) in wasmhive_tests::grid::blob_fetches(&peer.process.log_text()) {
            fetchers += 1;
            from_owner += owner_pieces;
            from_peers += peer_pieces;
        }
    }
    eprintln!(
        "{fetchers} peers fetched the blob: {from_owner} pieces from the owner, {from_peers} from peers"
    );
    assert_eq!(fetchers, 3, "each of the three peers fetched the blob once");
    assert_eq!(from_owner + from_peers, fetchers * pieces, "every piece fetched once");
    assert!(from_peers > 0, "peers traded pieces");
    assert!(from_owner < fetchers * pieces, "the owner sent less than a copy to each");
}

/// One address syntax, no silent failure (issue 18, item 3): a `--join` address in any
/// accepted form that nobody answers is a visible warning, retried; one that cannot be
/// parsed stops the peer with the accepted forms.
#[test]
fn a_join_address_that_cannot_be_reached_or_parsed_says_so() {
    let directory = TempDir::new("join-addresses");
    let (peer, _) = wasmhive_tests::grid::start_peer_with(
        None,
        &directory.path().join("peer"),
        "127.0.0.1:0",
        None,
        &["--join", "ws://127.0.0.1:1"],
    );
    wait_until(Duration::from_secs(20), "a warning about the --join address", || {
        peer.log_text().matches("cannot reach the --join address; retrying").count() >= 2
    });
    let refused =
        wasmhive(&["peer", "--join", "nonsense", "--data", directory.path().join("bad").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("the port is missing") && stderr.contains("HOST:PORT#PEERID"), "{stderr}");
}
