//! The Rust helper for Task ABI v1: read all of stdin, run, write stdout, exit.

use std::io::{Read, Write};

/// Runs a task whose kernel maps the input text to output bytes. On `Err` the message goes
/// to stderr and the task exits with code 2 (a deterministic failure, agreed by replicas).
pub fn run_task(kernel: impl FnOnce(&str) -> Result<Vec<u8>, String>) {
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        fail(&format!("stdin is not UTF-8 text: {error}"));
    }
    match kernel(&input) {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&output).and_then(|()| stdout.flush()).is_err() {
                std::process::exit(3);
            }
        }
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
