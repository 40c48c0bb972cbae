//! Property-based fuzzing (proptest: libFuzzer needs a nightly toolchain, which this
//! project does not use) of every decoder a stranger feeds: the frame decoder, the gossip
//! decoder with the membership that takes its records, the job-spec parser and the API's
//! submission body. Inputs are random bytes and valid encodings with random edits. The
//! property: no panic, and an accepted input is consistent.
//!
//! `scripts/test` runs a smoke of 2,000 cases per target. The long run (1,000,000 each):
//! `WASMHIVE_FUZZ_CASES=1000000 cargo test --release -p wasmhive-tests --test all fuzz_inputs`.
//! A failure prints the minimal input and proptest's seed, so it replays.

use proptest::prelude::*;
use std::path::Path;
use wasmhive_peer::membership::Membership;
use wasmhive_protocol::gossip::{GOSSIP_VERSION, Gossip, Have, PeerInfo};
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{
    BinaryFrame, Encoded, Hello, Lease, Message, OutcomeReport, Status, TrapKind, decode_binary, decode_blob,
    decode_message, encode_blob, encode_message,
};

fn config() -> ProptestConfig {
    let cases =
        std::env::var("WASMHIVE_FUZZ_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(2_000);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Random bytes, or one of `samples` with up to 8 random edits (replace, insert, delete).
fn fuzzed(samples: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edited = (0..samples.len(), prop::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..8))
        .prop_map(move |(sample, edits)| {
            let mut bytes = samples[sample].clone();
            for (kind, at, byte) in edits {
                let at = usize::from(at) % (bytes.len() + 1);
                match kind % 3 {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            bytes
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), edited]
}

fn message_samples() -> Vec<Vec<u8>> {
    let hello =
        Message::Hello(Hello { protocol_version: 2, cores: 4, agent: "a".into(), engine: "e".into() });
    let messages = [
        hello,
        Message::RequestWork { slots: 8 },
        Message::NoWork { retry_after_ms: 250, reason: Some("nothing".into()) },
        Message::Acknowledged { lease_ids: vec![1, 2, 3], credit: None },
        Message::Leases {
            leases: vec![Lease {
                lease_id: 1,
                terms_id: 1,
                unit_index: 2,
                input: b"0 10".to_vec(),
                input_blob: None,
            }],
        },
        Message::Outcomes {
            outcomes: vec![OutcomeReport {
                lease_id: 1,
                status: Status::Trap { trap: TrapKind::Unreachable },
                output: b"45".to_vec(),
                output_blob: None,
                fuel_used: Some(9),
                wall_time_ms: 3,
            }],
        },
        Message::Goodbye { reason: "bye".into() },
        Message::Want { hash: wasmhive_protocol::Hash::of(b"m") },
    ];
    messages
        .iter()
        .map(|message| match encode_message(message) {
            Encoded::Text(text) => text.into_bytes(),
            Encoded::Binary(bytes) => bytes,
        })
        .collect()
}

fn gossip_samples(key: &PeerKey) -> Vec<Vec<u8>> {
    let now = 1_800_000_000_000;
    let gossip = Gossip {
        version: GOSSIP_VERSION,
        from: PeerInfo::signed(key, Some("127.0.0.1:7000".into()), 2, 1, now),
        peers: vec![PeerInfo::signed(
            &PeerKey::from_secret([2; 32]),
            Some("127.0.0.2:7000".into()),
            1,
            1,
            now,
        )],
        haves: vec![Have::signed(key, "job".into(), "127.0.0.1:7000".into(), 5, now, 3)],
    };
    vec![serde_json::to_vec(&gossip).unwrap()]
}

const SPEC_SAMPLE: &str = "name = \"primes\"\nmodule = \"primes\"\nargs = [\"x\"]\n[inputs]\nrange = { start = 0, end = 100, step = 10 }\n\
    [verify]\nquorum = 2\nmax_replicas = 5\npolicy = \"adaptive\"\n[limits]\nfuel = 1000000\nmemory = \"64 MiB\"\noutput = \"1 MiB\"\nlease = \"10m\"\n";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_decode_or_explain_and_never_panic(bytes in fuzzed(message_samples())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(message) = decode_message(&text) {
            prop_assert!(text.len() <= message.encoded_bytes_max());
        }
        if let Ok(BinaryFrame::Message(message)) = decode_binary(&bytes) {
            prop_assert!(bytes.len() <= message.encoded_bytes_max());
        }
        let _ = decode_blob(&bytes);
        let blob = encode_blob(&bytes);
        prop_assert_eq!(decode_blob(&blob).map(|(_, decoded)| decoded.to_vec()), Ok(bytes.clone()));
    }

    #[test]
    fn gossip_decodes_and_membership_takes_it_within_bounds(bytes in fuzzed(gossip_samples(&PeerKey::from_secret([1; 32])))) {
        let key = PeerKey::from_secret([1; 32]);
        let me = PeerInfo::signed(&PeerKey::from_secret([9; 32]), Some("127.0.0.9:7000".into()), 1, 1, 1_800_000_000_000);
        let mut membership = Membership::new(me);
        if let Ok(gossip) = serde_json::from_slice::<Gossip>(&bytes) {
            let _ = membership.receive(gossip, &key.peer_id(), 1_800_000_000_000);
            prop_assert!(membership.known_count() <= 1 + 64);
            let _ = membership.gossip(&mut fastrand::Rng::with_seed(1));
        }
    }

    #[test]
    fn job_specs_parse_or_name_the_key_and_never_panic(bytes in fuzzed(vec![SPEC_SAMPLE.as_bytes().to_vec()])) {
        let text = String::from_utf8_lossy(&bytes);
        let builtin = |name: &str| task_modules::by_name(name).map(<[u8]>::to_vec);
        match wasmhive_coordinator::job_spec::parse_job_spec(&text, Path::new("/nonexistent/job.toml"), &builtin) {
            Ok(spec) => prop_assert!(spec.submission.quorum >= 1),
            Err(error) => prop_assert!(!error.key.is_empty()),
        }
    }

    #[test]
    fn submission_bodies_are_checked_and_never_panic(bytes in fuzzed(vec![submission_sample()])) {
        let decoded = serde_json::from_slice::<wasmhive_protocol::api::JobSubmission>(&bytes);
        if let Ok(submission) = decoded
            && wasmhive_coordinator::server::validate_submission(&submission).is_ok()
        {
            let units = wasmhive_coordinator::job_spec::unit_count(&submission.inputs);
            prop_assert!(units >= 1);
        }
    }
}

fn submission_sample() -> Vec<u8> {
    let submission = wasmhive_protocol::api::JobSubmission {
        shared: Vec::new(),
        name: "fuzz".into(),
        task_name: "sum".into(),
        module: b"\0asm\x01\0\0\0".to_vec(),
        args: vec!["a".into()],
        inputs: wasmhive_protocol::api::JobInputs::Range { start: 0, end: 100, step: 7 },
        quorum: 2,
        max_replicas: 4,
        limits: wasmhive_protocol::api::JobLimits {
            fuel: Some(1_000),
            memory_bytes: 1 << 20,
            output_bytes: 1 << 10,
            lease_ms: 60_000,
            timeout_ms: 1_000,
        },
        nan_canonicalization: true,
        verify: Default::default(),
        validator: None,
        reducer: None,
    };
    serde_json::to_vec(&submission).unwrap()
}
