//! The `hashcash` task module: see `task_kernels::hashcash` for its input and output.

fn main() {
    task_kernels::guest::run_task(task_kernels::hashcash::run);
}
