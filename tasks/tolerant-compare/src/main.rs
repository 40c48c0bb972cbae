//! The `tolerant-compare` validator module: see `task_kernels::compare`. Exit 0 when the two
//! outputs agree, 1 when they differ, 2 when the input is not a pair.

use std::io::Read;

fn main() {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        std::process::exit(2);
    }
    match task_kernels::compare::split_pair(&input) {
        Ok((first, second)) => {
            std::process::exit(if task_kernels::compare::outputs_agree(first, second) { 0 } else { 1 })
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2)
        }
    }
}
