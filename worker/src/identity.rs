//! The worker's persistent identity: a random id kept in its data directory, so a
//! restarted worker is the same worker to its owners.

use std::path::Path;

/// The id stored in `data_dir/worker-id`, created on first use.
pub fn worker_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("worker-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let id: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}
