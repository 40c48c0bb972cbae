//! {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has.

mod wasmhive;

fn main() {
    wasmhive::run_task(|input| Ok(format!("{} words\n", input.split_whitespace().count()).into_bytes()));
}
