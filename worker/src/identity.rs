//! The worker's persistent identity: an ed25519 key kept in its data directory
//! (`peer.key`, readable only by its owner), so a restarted worker is the same peer to its
//! owners, and no other peer can claim to be it.

use std::path::Path;
use wasmhive_protocol::identity::PeerKey;

/// The key stored in `data_dir/peer.key`, created on first use.
pub fn peer_key(data_dir: &Path) -> std::io::Result<PeerKey> {
    let path = data_dir.join("peer.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes: Vec<u8> = (0..text.trim().len() / 2)
            .filter_map(|index| u8::from_str_radix(text.trim().get(2 * index..2 * index + 2)?, 16).ok())
            .collect();
        if let Ok(secret) = <[u8; 32]>::try_from(bytes) {
            return Ok(PeerKey::from_secret(secret));
        }
        return Err(std::io::Error::other(format!(
            "{} is not a wasmhive key; move it away to make a new one",
            path.display()
        )));
    }
    std::fs::create_dir_all(data_dir)?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(std::io::Error::other)?;
    let key = PeerKey::from_secret(secret);
    let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private_file(&path, &format!("{hex}\n"))?;
    Ok(key)
}

/// Writes `contents` to `path` atomically, readable only by this user.
pub(crate) fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_survives_a_restart() {
        let directory = std::env::temp_dir().join(format!("wasmhive-key-{}", std::process::id()));
        let first = peer_key(&directory).unwrap();
        let again = peer_key(&directory).unwrap();
        assert_eq!(first.peer_id(), again.peer_id());
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
