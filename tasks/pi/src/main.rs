//! The `pi` task module: see `task_kernels::pi`. Its random bytes come from WASI
//! `random_get` (through getrandom), which wasmhive seeds per unit.

fn main() {
    task_kernels::guest::run_task(|input| {
        task_kernels::pi::run(input, &mut |buffer| {
            getrandom::fill(buffer).expect("random_get failed");
        })
    });
}
