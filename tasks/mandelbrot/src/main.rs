//! The `mandelbrot` task module: see `task_kernels::mandelbrot` for its input and output.

fn main() {
    task_kernels::guest::run_task(task_kernels::mandelbrot::run);
}
