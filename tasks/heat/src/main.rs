//! The `heat` task module: see `task_kernels::heat` for its input and output.

fn main() {
    task_kernels::guest::run_task(task_kernels::heat::run);
}
