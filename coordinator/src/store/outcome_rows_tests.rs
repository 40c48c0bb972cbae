use super::*;
use crate::core::{Network, NetworkPrefixes};
use rusqlite::Connection;
use wasmhive_protocol::TrapKind;

/// Two full statements of [`ROWS_PER_INSERT`] rows and a remainder inserted one by one.
const ROWS: u64 = 2 * ROWS_PER_INSERT as u64 + 6;

fn statuses() -> [Status; 3] {
    [Status::Success, Status::ExitCode { code: 3 }, Status::Trap { trap: TrapKind::Unreachable }]
}

fn networks() -> [Network; 2] {
    let prefixes = NetworkPrefixes::new(24, 48).unwrap();
    [Network::of_address([192, 0, 2, 7].into(), prefixes), Network::of_identity("worker-b")]
}

fn digests() -> Vec<Hash> {
    (0..ROWS).map(|unit| Hash::of(&unit.to_le_bytes())).collect()
}

#[test]
fn replica_rows_go_in_order_with_their_texts_across_statement_boundaries() {
    let mut connection = Connection::open_in_memory().unwrap();
    super::super::schema::prepare(&connection).unwrap();
    let (statuses, networks, digests) = (statuses(), networks(), digests());
    let output = b"out".to_vec();
    let transaction = connection.transaction().unwrap();
    let mut rows = OutcomeRows::default();
    for unit in 0..ROWS {
        let index = unit as usize;
        rows.add_replica(ReplicaRow {
            job_id: "job-a",
            unit_index: unit,
            worker_id: if unit % 2 == 0 { "worker-a" } else { "worker-b" },
            lease_id: 1000 + unit,
            status: &statuses[index % 3],
            digest: &digests[index],
            fuel_used: (unit % 4 != 0).then_some(unit * 10),
            engine_class: "engine",
            output: (unit % 5 == 0).then_some(output.as_slice()),
            network: &networks[index % 2],
        });
    }
    rows.insert_all(&transaction).unwrap();
    rows.insert_all(&transaction).unwrap();
    let mut select = transaction
        .prepare(
            "SELECT unit_index, worker_id, lease_id, status, digest, fuel_used, engine_class, output, network
             FROM replicas ORDER BY rowid",
        )
        .unwrap();
    type Stored = (i64, String, i64, String, String, Option<i64>, String, Option<Vec<u8>>, String);
    let stored: Vec<Stored> = select
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len() as u64, ROWS, "every row once, however often insert_all runs");
    for (unit, row) in stored.iter().enumerate() {
        let expected: Stored = (
            unit as i64,
            if unit % 2 == 0 { "worker-a" } else { "worker-b" }.to_string(),
            1000 + unit as i64,
            serde_json::to_string(&statuses[unit % 3]).unwrap(),
            digests[unit].to_hex(),
            (unit % 4 != 0).then_some(unit as i64 * 10),
            "engine".to_string(),
            (unit % 5 == 0).then(|| output.clone()),
            networks[unit % 2].to_string(),
        );
        assert_eq!(row, &expected, "replica row {unit}");
    }
}

#[test]
fn result_rows_keep_their_optional_texts_apart_across_statement_boundaries() {
    let mut connection = Connection::open_in_memory().unwrap();
    super::super::schema::prepare(&connection).unwrap();
    let (statuses, digests) = (statuses(), digests());
    let blob = BlobRef { hash: Hash::of(b"blob"), size: 1 << 20 };
    let transaction = connection.transaction().unwrap();
    let mut rows = OutcomeRows::default();
    for unit in 0..ROWS {
        let index = unit as usize;
        let failure = match unit % 3 {
            0 => None,
            1 => Some(Failure::Reason("replicas disagreed")),
            _ => Some(Failure::Status(&statuses[index % 3])),
        };
        rows.add_result(ResultRow {
            job_id: "job-a",
            unit_index: unit,
            status: &statuses[index % 3],
            digest: (unit % 2 == 0).then_some(&digests[index]),
            output: if unit % 4 == 0 { b"" } else { b"result" },
            replicas: 2,
            failure,
            output_blob: (unit % 4 == 0).then_some(blob),
        });
    }
    rows.insert_all(&transaction).unwrap();
    let mut select = transaction
        .prepare(
            "SELECT unit_index, status, digest, output, replicas, failure, output_blob, output_blob_size
             FROM results ORDER BY unit_index",
        )
        .unwrap();
    type Stored = (i64, String, Option<String>, Vec<u8>, i64, Option<String>, Option<String>, Option<i64>);
    let stored: Vec<Stored> = select
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len() as u64, ROWS);
    for (unit, row) in stored.iter().enumerate() {
        let failure = match unit % 3 {
            0 => None,
            1 => Some("replicas disagreed".to_string()),
            _ => Some(statuses[unit % 3].to_string()),
        };
        let expected: Stored = (
            unit as i64,
            serde_json::to_string(&statuses[unit % 3]).unwrap(),
            (unit % 2 == 0).then(|| digests[unit].to_hex()),
            if unit % 4 == 0 { Vec::new() } else { b"result".to_vec() },
            2,
            failure,
            (unit % 4 == 0).then(|| blob.hash.to_hex()),
            (unit % 4 == 0).then_some(1 << 20),
        );
        assert_eq!(row, &expected, "result row {unit}");
    }
}
