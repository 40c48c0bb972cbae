//! Peer ids learnt on first use, like ssh's `known_hosts`: `DATA/known_hosts` holds one
//! `HOST:PORT PEERID` per line. A `--join HOST:PORT` without an id trusts the first key
//! that answers there and records it; every later dial of that address expects that key,
//! and a different key is refused with what to do.

use crate::key_file::write_private_file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// Entries kept at most (the oldest lines go first).
const ENTRIES_MAX: usize = 4096;

pub struct KnownHosts {
    path: PathBuf,
    /// Serialises read-modify-write of the file within this process.
    writing: Mutex<()>,
}

impl KnownHosts {
    /// The known hosts of the data directory `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> KnownHosts {
        KnownHosts { path: data_dir.join(KNOWN_HOSTS_FILE), writing: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id recorded for `host_port`, if any.
    pub fn get(&self, host_port: &str) -> Option<String> {
        self.entries().remove(host_port)
    }

    /// Records `peer_id` for `host_port` (on first use).
    pub fn record(&self, host_port: &str, peer_id: &str) -> std::io::Result<()> {
        let _writing = self.writing.lock().expect("known hosts lock");
        if let Some(directory) = self.path.parent() {
            crate::key_file::create_private_dir(directory)?;
        }
        let mut lines: Vec<(String, String)> =
            self.entries_in_order().into_iter().filter(|(address, _)| address != host_port).collect();
        lines.push((host_port.to_string(), peer_id.to_string()));
        let skip = lines.len().saturating_sub(ENTRIES_MAX);
        let text: String = lines.iter().skip(skip).map(|(address, id)| format!("{address} {id}\n")).collect();
        write_private_file(&self.path, &text)
    }

    fn entries(&self) -> BTreeMap<String, String> {
        self.entries_in_order().into_iter().collect()
    }

    fn entries_in_order(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(address, id)| (address.trim().to_string(), id.trim().to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recorded_once_per_address_and_read_back() {
        let data = std::env::temp_dir().join(format!("wasmhive-known-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        let known = KnownHosts::in_data_dir(&data);
        assert_eq!(known.get("127.0.0.1:1"), None);
        known.record("127.0.0.1:1", "aa").unwrap();
        known.record("127.0.0.1:2", "bb").unwrap();
        known.record("127.0.0.1:1", "cc").unwrap();
        assert_eq!(known.get("127.0.0.1:1").as_deref(), Some("cc"));
        assert_eq!(known.get("127.0.0.1:2").as_deref(), Some("bb"));
        std::fs::remove_dir_all(&data).unwrap();
    }
}
