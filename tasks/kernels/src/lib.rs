//! The kernels behind wasmhive's Rust task modules.
//!
//! Each kernel is plain Rust that compiles both to `wasm32-wasip1` (inside a task module)
//! and natively (for tests and for the wasm-versus-native benchmarks), so both sides run
//! the very same code. Every kernel reads its input as text and writes its output as
//! bytes; a malformed input is an `Err` with a message saying what was expected.
//!
//! wasm32 trap: `usize` is 32 bits there. Kernels use `u64` for anything that can pass 2^32.

pub mod collatz;
pub mod compare;
pub mod digest;
pub mod guest;
pub mod hashcash;
pub mod heat;
pub mod input;
pub mod mandelbrot;
pub mod pi;
pub mod primes;
pub mod reduce;
pub mod sum;
