//! The `sum-columns` reducer module: see `task_kernels::reduce`.

fn main() {
    task_kernels::guest::run_task(task_kernels::reduce::sum_columns);
}
