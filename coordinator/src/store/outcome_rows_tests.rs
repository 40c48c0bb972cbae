use super::*;
use crate::core::{Network, NetworkPrefixes};
use rusqlite::Connection;
use rusqlite::types::Value;
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

/// Every row `sql` selects, each column as SQLite typed it.
fn stored_rows(transaction: &rusqlite::Transaction<'_>, sql: &str) -> Vec<Vec<Value>> {
    let mut select = transaction.prepare(sql).unwrap();
    let columns = select.column_count();
    let rows = select.query_map([], |row| (0..columns).map(|column| row.get(column)).collect());
    rows.unwrap().collect::<Result<_, _>>().unwrap()
}

fn text(text: &str) -> Value {
    Value::Text(text.to_string())
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
    let stored = stored_rows(
        &transaction,
        "SELECT unit_index, worker_id, lease_id, status, digest, fuel_used, engine_class, output, network
         FROM replicas ORDER BY rowid",
    );
    assert_eq!(stored.len() as u64, ROWS, "every row once, however often insert_all runs");
    for (unit, row) in stored.iter().enumerate() {
        let expected = vec![
            Value::Integer(unit as i64),
            text(if unit % 2 == 0 { "worker-a" } else { "worker-b" }),
            Value::Integer(1000 + unit as i64),
            text(&serde_json::to_string(&statuses[unit % 3]).unwrap()),
            text(&digests[unit].to_hex()),
            (unit % 4 != 0).then_some(unit as i64 * 10).map_or(Value::Null, Value::Integer),
            text("engine"),
            (unit % 5 == 0).then(|| output.clone()).map_or(Value::Null, Value::Blob),
            text(&networks[unit % 2].to_string()),
        ];
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
    let stored = stored_rows(
        &transaction,
        "SELECT unit_index, status, digest, output, replicas, failure, output_blob, output_blob_size
         FROM results ORDER BY unit_index",
    );
    assert_eq!(stored.len() as u64, ROWS);
    for (unit, row) in stored.iter().enumerate() {
        let failure = match unit % 3 {
            0 => Value::Null,
            1 => text("replicas disagreed"),
            _ => text(&statuses[unit % 3].to_string()),
        };
        let blob_row = unit % 4 == 0;
        let expected = vec![
            Value::Integer(unit as i64),
            text(&serde_json::to_string(&statuses[unit % 3]).unwrap()),
            if unit % 2 == 0 { text(&digests[unit].to_hex()) } else { Value::Null },
            Value::Blob(if blob_row { Vec::new() } else { b"result".to_vec() }),
            Value::Integer(2),
            failure,
            if blob_row { text(&blob.hash.to_hex()) } else { Value::Null },
            if blob_row { Value::Integer(1 << 20) } else { Value::Null },
        ];
        assert_eq!(row, &expected, "result row {unit}");
    }
}
