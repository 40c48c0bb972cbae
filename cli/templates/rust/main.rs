//! {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not counting
//! the words of the shared file `ignore.txt` if the job has one (Task ABI v2: a job's
//! shared files are read-only files under `/shared`; `[inputs] shared = ["ignore.txt"]` in
//! a job spec, `--shared ignore.txt` with `wasmhive run`).

mod wasmhive;

fn main() {
    let ignored = std::fs::read_to_string("/shared/ignore.txt").unwrap_or_default();
    let ignored: Vec<&str> = ignored.split_whitespace().collect();
    wasmhive::run_task(|input| {
        let counted = input.split_whitespace().filter(|word| !ignored.contains(word)).count();
        Ok(format!("{counted} words\n").into_bytes())
    });
}
