//! Swarm connections over an in-memory pipe: both sides ask and answer whoever dialled
//! (what lets a peer behind NAT serve), and what a hostile peer can send is bounded.

use super::{Answer, Question, SERVES_IN_FLIGHT, Swarm};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use wasmhive_blobs::{BlobStore, PIECE_BYTES};
use wasmhive_protocol::{BinaryFrame, Hash, Message, decode_binary, decode_message, encode_piece};

type Pipe = WebSocketStream<tokio::io::DuplexStream>;

async fn pipe() -> (Pipe, Pipe) {
    let (dialler, listener) = tokio::io::duplex(1 << 20);
    (
        WebSocketStream::from_raw_socket(dialler, Role::Client, None).await,
        WebSocketStream::from_raw_socket(listener, Role::Server, None).await,
    )
}

fn swarm(name: &str, upload_rate: Option<u64>) -> (Arc<Swarm>, std::path::PathBuf) {
    let folder = std::env::temp_dir().join(format!("wasmhive-swarm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let store = Arc::new(BlobStore::open(&folder, u64::MAX).unwrap());
    (Arc::new(Swarm::new(store, upload_rate)), folder)
}

fn import(swarm: &Swarm, pieces: u64, seed: u8) -> Hash {
    let data: Vec<u8> = (0..pieces * PIECE_BYTES).map(|index| (index % 253) as u8 ^ seed).collect();
    swarm.store.import(&data[..], data.len() as u64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_ask_and_answer_over_one_connection_whoever_dialled() {
    let ((behind_nat, nat_folder), (listening, listening_folder)) =
        (swarm("nat", None), swarm("listening", None));
    let held_behind_nat = import(&behind_nat, 2, 1);
    let held_listening = import(&listening, 3, 2);
    let (dialled, accepted) = pipe().await;
    behind_nat.accept("listening".into(), dialled);
    listening.accept("behind-nat".into(), accepted);
    // The peer behind NAT dialled; the listening peer asks it over that same connection.
    let to_nat = listening.peer("behind-nat").unwrap();
    match to_nat.ask(Question::Holding(held_behind_nat)).await.unwrap() {
        Answer::Holding { size, ranges } => assert_eq!((size, ranges), (2 * PIECE_BYTES, vec![0..2])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(to_nat.ask(Question::Piece(held_behind_nat, 1)).await.unwrap(), Answer::Piece(_)));
    assert!(matches!(to_nat.ask(Question::Piece(held_listening, 0)).await.unwrap(), Answer::NotHeld));
    let to_listening = behind_nat.peer("listening").unwrap();
    assert!(matches!(to_listening.ask(Question::Piece(held_listening, 2)).await.unwrap(), Answer::Piece(_)));
    assert!(matches!(to_listening.ask(Question::Module(held_listening)).await.unwrap(), Answer::NotHeld));
    for folder in [nat_folder, listening_folder] {
        let _ = std::fs::remove_dir_all(folder);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_asking_for_everything_gets_a_few_pieces_at_the_upload_rate_and_not_held_for_the_rest() {
    // 100 KiB/s: the first piece goes at once, each further one waits 2.6 s for its turn.
    let (serving, folder) = swarm("greedy", Some(100 << 10));
    let hash = import(&serving, 40, 3);
    let (mut hostile, accepted) = pipe().await;
    serving.accept("greedy".into(), accepted);
    for index in 0..40 {
        hostile.send(wasmhive_transport::frame_of(&Message::WantPiece { hash, index })).await.unwrap();
    }
    let (mut pieces, mut not_held) = (0, 0);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(2), hostile.next()).await {
        match frame {
            Frame::Binary(bytes) => {
                assert!(matches!(decode_binary(&bytes).unwrap(), BinaryFrame::Piece { .. }));
                pieces += 1;
            }
            Frame::Text(text) => {
                assert!(matches!(decode_message(&text).unwrap(), Message::NotHeld { index: Some(_), .. }));
                not_held += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pieces, 1, "one piece in two seconds at 100 KiB/s");
    let waiting = 40 - pieces - not_held;
    assert!(
        waiting <= SERVES_IN_FLIGHT,
        "questions beyond the serving window are refused at once: {waiting} wait"
    );
    let _ = std::fs::remove_dir_all(folder);
}

/// Connects two swarms over a pipe, as if `a` had dialled `b`.
async fn connect(a: (&Arc<Swarm>, &str), b: (&Arc<Swarm>, &str)) {
    let (dialled, accepted) = pipe().await;
    a.0.accept(b.1.into(), dialled);
    b.0.accept(a.1.into(), accepted);
}

/// How many of 8 pieces asked at once `asker` is refused at once (`not_held`).
async fn refused_of_eight(asker: &Arc<Swarm>, serving: &str, hash: Hash) -> usize {
    let peer = asker.peer(serving).unwrap();
    let asks =
        (0..8).map(|index| {
            let peer = peer.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(2), peer.ask(Question::Piece(hash, index))).await
            }
        });
    let answers = futures_util::future::join_all(asks).await;
    answers.iter().filter(|answer| matches!(answer, Ok(Ok(Answer::NotHeld)))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_upload_is_contended_peers_that_served_us_keep_the_window_and_strangers_get_a_few() {
    let (serving, folder) = swarm("contended", Some(1 << 20));
    let ((friend, friend_folder), (stranger, stranger_folder)) =
        (swarm("friend", None), swarm("stranger", None));
    let hash = import(&serving, 16, 5);
    let friends_blob = import(&friend, 1, 6);
    connect((&serving, "serving"), (&friend, "friend")).await;
    connect((&serving, "serving"), (&stranger, "stranger")).await;
    // The friend serves us a piece; the stranger never did.
    let served = serving.peer("friend").unwrap().ask(Question::Piece(friends_blob, 0)).await.unwrap();
    assert!(matches!(served, Answer::Piece(_)));
    // Our upload is busy for the next 3 s.
    let _ = serving.reserve_upload(3 << 20);
    let (friend_refused, stranger_refused) = tokio::join!(
        refused_of_eight(&friend, "serving", hash),
        refused_of_eight(&stranger, "serving", hash)
    );
    assert_eq!(friend_refused, 0, "a peer that served us keeps the whole window");
    assert_eq!(
        stranger_refused,
        8 - super::reciprocity::OPTIMISTIC_SERVES_IN_FLIGHT,
        "a stranger gets a few"
    );
    for folder in [folder, friend_folder, stranger_folder] {
        let _ = std::fs::remove_dir_all(folder);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unasked_answers_and_garbage_end_the_connection() {
    let (serving, folder) = swarm("hostile", None);
    let hash = import(&serving, 1, 4);
    let mut encoded = Vec::new();
    serving.store.encode_piece(&hash, 0, &mut encoded).unwrap();
    let hostile_frames = [
        Frame::Binary(encode_piece(&hash, 0, &encoded).into()),
        wasmhive_transport::frame_of(&Message::Holding { hash, size: 1, ranges: vec![(0, 1)] }),
        Frame::Text("{\"type\":\"nonsense\"}".into()),
        wasmhive_transport::frame_of(&Message::RequestWork { slots: 1 }),
    ];
    for (position, frame) in hostile_frames.into_iter().enumerate() {
        let (mut hostile, accepted) = pipe().await;
        let peer_id = format!("hostile-{position}");
        serving.accept(peer_id.clone(), accepted);
        hostile.send(frame).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(frame)) = hostile.next().await {
                if matches!(frame, Frame::Close(_)) {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "frame {position} ends the connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(serving.peer(&peer_id).is_none(), "frame {position}: the connection is forgotten");
    }
    let _ = std::fs::remove_dir_all(folder);
}

#[test]
fn held_ranges_must_be_ascending_disjoint_and_few() {
    use super::connection::checked_ranges;
    assert_eq!(checked_ranges(&[(0, 2), (3, 5)]).unwrap(), vec![0..2, 3..5]);
    for bad in [vec![(2, 2)], vec![(3, 5), (0, 2)], vec![(0, 4), (2, 6)], vec![(5, 1)]] {
        assert!(checked_ranges(&bad).is_err(), "{bad:?}");
    }
    let too_many: Vec<(u64, u64)> = (0..1025).map(|index| (index * 2, index * 2 + 1)).collect();
    assert!(checked_ranges(&too_many).unwrap_err().contains("1025 ranges"));
}
