//! The bearer token of the API, created on first start in the data directory.

use std::path::Path;

pub fn read_or_create_token(path: &Path) -> std::io::Result<String> {
    if let Ok(token) = std::fs::read_to_string(path) {
        return Ok(token.trim().to_string());
    }
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let token: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    // Created 0600: the token is never readable by others, not even for a moment.
    wasmhive_transport::write_private_file(path, &format!("{token}\n"))?;
    Ok(token)
}
