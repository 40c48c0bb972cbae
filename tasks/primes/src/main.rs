//! The `primes` task module: see `task_kernels::primes` for its input and output.

fn main() {
    task_kernels::guest::run_task(task_kernels::primes::run);
}
