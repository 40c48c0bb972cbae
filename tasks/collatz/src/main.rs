//! The `collatz` task module: see `task_kernels::collatz`.

fn main() {
    task_kernels::guest::run_task(task_kernels::collatz::run);
}
