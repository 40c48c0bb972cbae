//! Wire formats for what every unit costs: a tiny unit's lease and outcome (W1's `sum`:
//! 16 bytes in, 13 out) as protocol 4 sent them (JSON with every job constant in each
//! lease, base64 bytes, a tagged status object) and as protocol 5 sends them (postcard in a
//! binary frame, job constants once per session). Encode + decode per unit, batches of 64,
//! 7 rounds; median (min–max). Prints figures, asserts only that each round trip is exact.
//!
//! `cargo bench -p wasmhive-tests --bench wire_formats`

use serde::{Deserialize, Serialize};
use std::time::Instant;
use wasmhive_protocol::{
    BinaryFrame, Encoded, Lease, Message, OutcomeReport, Status, decode_binary, encode_message,
};

const BATCH: usize = 64;
const ROUNDS: usize = 7;
const BATCHES_PER_ROUND: usize = 2_000;

/// A protocol-4 lease, field for field.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct LeaseV4 {
    lease_id: u64,
    job_id: String,
    unit_index: u64,
    task_name: String,
    module: String,
    input: String,
    args: Vec<String>,
    limits: LimitsV4,
    job_time_s: u64,
    nan_canonicalization: bool,
    lease_ms: u64,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct LimitsV4 {
    fuel: Option<u64>,
    memory_bytes_max: u64,
    stdout_bytes_max: u64,
    wall_time_ms_max: u64,
}

/// A protocol-4 outcome, field for field.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct OutcomeV4 {
    lease_id: u64,
    job_id: String,
    unit_index: u64,
    status: Status,
    output: String,
    fuel_used: Option<u64>,
    wall_time_ms: u64,
    engine_class: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
enum MessageV4 {
    Leases { leases: Vec<LeaseV4> },
    Outcomes { outcomes: Vec<OutcomeV4> },
}

fn input(unit: u64) -> Vec<u8> {
    format!("{} {}", unit * 1000, unit * 1000 + 1000).into_bytes()
}

fn output(unit: u64) -> Vec<u8> {
    let (from, to) = (unit * 1000, unit * 1000 + 1000);
    format!("{}\n", (from..to).sum::<u64>()).into_bytes()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn v4_messages(first: u64) -> (MessageV4, MessageV4) {
    let units = first..first + BATCH as u64;
    let leases = units
        .clone()
        .map(|unit| LeaseV4 {
            lease_id: 100_000 + unit,
            job_id: "w1-quorum-1-3f9a61c2".into(),
            unit_index: unit,
            task_name: "sum".into(),
            module: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            input: base64(&input(unit)),
            args: Vec::new(),
            limits: LimitsV4 {
                fuel: None,
                memory_bytes_max: 64 << 20,
                stdout_bytes_max: 1 << 20,
                wall_time_ms_max: 600_000,
            },
            job_time_s: 1_790_000_000,
            nan_canonicalization: true,
            lease_ms: 60_000,
        })
        .collect();
    let outcomes = units
        .map(|unit| OutcomeV4 {
            lease_id: 100_000 + unit,
            job_id: "w1-quorum-1-3f9a61c2".into(),
            unit_index: unit,
            status: Status::Success,
            output: base64(&output(unit)),
            fuel_used: None,
            wall_time_ms: 0,
            engine_class: "wasmtime-48.0.8-x86_64-fuel0-nan1-stack524288".into(),
        })
        .collect();
    (MessageV4::Leases { leases }, MessageV4::Outcomes { outcomes })
}

fn v5_messages(first: u64) -> (Message, Message) {
    let units = first..first + BATCH as u64;
    let leases = units
        .clone()
        .map(|unit| Lease {
            lease_id: 100_000 + unit,
            terms_id: 1,
            unit_index: unit,
            input: input(unit),
            input_blob: None,
        })
        .collect();
    let outcomes = units
        .map(|unit| OutcomeReport {
            lease_id: 100_000 + unit,
            status: Status::Success,
            output: output(unit),
            output_blob: None,
            fuel_used: None,
            wall_time_ms: 0,
        })
        .collect();
    (Message::Leases { leases }, Message::Outcomes { outcomes })
}

/// Nanoseconds per unit to encode and decode one lease and one outcome, and the bytes.
fn measure(round_trip: &dyn Fn(u64) -> usize) -> (Vec<f64>, usize) {
    let mut bytes = 0;
    let times = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for batch in 0..BATCHES_PER_ROUND {
                bytes = round_trip((batch * BATCH) as u64);
            }
            started.elapsed().as_nanos() as f64 / (BATCHES_PER_ROUND * BATCH) as f64
        })
        .collect();
    (times, bytes)
}

fn v4_round_trip(first: u64) -> usize {
    let (leases, outcomes) = v4_messages(first);
    let mut bytes = 0;
    for message in [leases, outcomes] {
        let text = serde_json::to_string(&message).unwrap();
        bytes += text.len();
        let decoded: MessageV4 = serde_json::from_str(&text).unwrap();
        assert!(decoded == message);
    }
    bytes
}

fn v5_round_trip(first: u64) -> usize {
    let (leases, outcomes) = v5_messages(first);
    let mut bytes = 0;
    for message in [leases, outcomes] {
        let Encoded::Binary(frame) = encode_message(&message) else { panic!("binary") };
        bytes += frame.len();
        let BinaryFrame::Message(decoded) = decode_binary(&frame).unwrap() else { panic!("a message") };
        assert!(decoded == message);
    }
    bytes
}

fn summary(mut times: Vec<f64>) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn main() {
    println!("wire formats · a tiny unit's lease + outcome · batches of {BATCH} · {ROUNDS} rounds");
    println!("(each round also builds the messages, the same work for both formats)");
    let (v4_times, v4_bytes) = measure(&v4_round_trip);
    let (v5_times, v5_bytes) = measure(&v5_round_trip);
    let (v4, v4_min, v4_max) = summary(v4_times);
    let (v5, v5_min, v5_max) = summary(v5_times);
    let per_unit = |bytes: usize| bytes as f64 / BATCH as f64;
    println!(
        "protocol 4, JSON:     {:>6.1} bytes/unit · {v4:>6.0} ns/unit ({v4_min:.0}–{v4_max:.0})",
        per_unit(v4_bytes)
    );
    println!(
        "protocol 5, postcard: {:>6.1} bytes/unit · {v5:>6.0} ns/unit ({v5_min:.0}–{v5_max:.0})",
        per_unit(v5_bytes)
    );
    println!("ratio 5/4: {:.3} of the bytes, {:.2} of the time", v5_bytes as f64 / v4_bytes as f64, v5 / v4);
}
