//! The peer key in `DATA/peer.key` (64 hex digits, mode 0600): created on first use, so a
//! restarted peer is the same peer to everyone. An unreadable or malformed key file is an
//! error, never silently replaced: replacing it would throw away the identity's
//! reputation, credit and every pin other peers hold.

use std::path::{Path, PathBuf};
use wasmhive_protocol::identity::PeerKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "cannot read the peer key {path}: {source}; fix its permissions, or move it away to start a new identity"
    )]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a wasmhive peer key (64 hex digits); move it away to start a new identity")]
    Malformed { path: PathBuf },
    #[error("cannot create the peer key {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
}

/// The key in `data_dir/peer.key`, created when the file does not exist.
pub fn load_or_create_peer_key(data_dir: &Path) -> Result<PeerKey, KeyFileError> {
    let path = data_dir.join("peer.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(text.trim()).ok_or(KeyFileError::Malformed { path }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(source) => Err(KeyFileError::Unreadable { path, source }),
    }
}

fn parse(text: &str) -> Option<PeerKey> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut secret = [0u8; 32];
    for (index, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(PeerKey::from_secret(secret))
}

fn create(path: &Path) -> Result<PeerKey, KeyFileError> {
    let failed = |source| KeyFileError::Create { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(failed)?;
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| failed(std::io::Error::other(error)))?;
    let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private_file(path, &format!("{hex}\n")).map_err(failed)?;
    Ok(PeerKey::from_secret(secret))
}

/// Creates the data directory `path` (and missing parents) readable only by this user
/// (0700). An existing directory is left as it is: it may be one the user chose to share.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Writes `contents` to `path` atomically; the file is created readable only by this user
/// (never world-readable, not even for a moment).
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("wasmhive-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn the_key_survives_a_restart_and_is_private() {
        let data = directory("restart");
        let first = load_or_create_peer_key(&data).unwrap();
        assert_eq!(first.peer_id(), load_or_create_peer_key(&data).unwrap().peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data.join("peer.key")), 0o600);
            assert_eq!(mode(&data), 0o700, "a new data directory is private");
        }
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn a_malformed_key_is_an_error_not_a_new_identity() {
        let data = directory("malformed");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("peer.key"), "not a key").unwrap();
        let error = load_or_create_peer_key(&data).unwrap_err().to_string();
        assert!(error.contains("move it away"), "{error}");
        assert_eq!(std::fs::read_to_string(data.join("peer.key")).unwrap(), "not a key");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
