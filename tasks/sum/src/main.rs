//! The `sum` task module: see `task_kernels::sum` for its input and output.

fn main() {
    task_kernels::guest::run_task(task_kernels::sum::run);
}
