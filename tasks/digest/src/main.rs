//! The `digest` task module: its input bytes, streamed from stdin, to the first 8 bytes of
//! their SHA-256 (`args = ["sha256"]`, the default) or to a checksum (`args =
//! ["checksum"]`); see `task_kernels::digest`.

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "sha256".into());
    let stdin = std::io::stdin().lock();
    let output = match mode.as_str() {
        "sha256" => task_kernels::digest::sha256_prefix(stdin),
        "checksum" => task_kernels::digest::checksum(stdin),
        other => {
            eprintln!("error: unknown mode {other:?}: use sha256 or checksum");
            std::process::exit(2);
        }
    };
    match output {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("error: reading the input: {error}");
            std::process::exit(2);
        }
    }
}
