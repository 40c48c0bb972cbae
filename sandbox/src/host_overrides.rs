//! The WASI preview 1 functions the sandbox defines itself, on top of wasmtime-wasi's
//! (`poll_oneoff` and `sched_yield` are in `virtual_sleep.rs`):
//!
//! - `random_get` fills the buffer straight from the unit's seeded blake3 stream, so the
//!   bytes a guest sees are exactly [`crate::random_get_stream`] (wasmtime-wasi would draw
//!   each byte from a separate 32-bit value, which depends on `rand` internals);
//! - `proc_exit` accepts every exit code (wasmtime-wasi rejects codes of 126 and above), so
//!   `exit(255)` is the status `exit code 255` like on any Unix.

use crate::unit_state::UnitState;
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::I32Exit;

const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// WASI errno: success.
const ERRNO_SUCCESS: i32 = 0;
/// WASI errno: bad address (the buffer is not inside linear memory).
const ERRNO_FAULT: i32 = 21;

pub fn define_host_overrides(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(WASI_MODULE, "random_get", random_get)?;
    linker.func_wrap(WASI_MODULE, "poll_oneoff", crate::virtual_sleep::poll_oneoff)?;
    linker.func_wrap(WASI_MODULE, "sched_yield", crate::virtual_sleep::sched_yield)?;
    linker.func_wrap(WASI_MODULE, "proc_exit", |code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(I32Exit(code)))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

fn random_get(mut caller: Caller<'_, UnitState>, buffer: i32, length: i32) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let (memory_bytes, state) = memory.data_and_store_mut(&mut caller);
    let start = buffer as u32 as usize;
    let Some(end) = start.checked_add(length as u32 as usize) else {
        return ERRNO_FAULT;
    };
    match memory_bytes.get_mut(start..end) {
        Some(destination) => {
            state.random.fill(destination);
            ERRNO_SUCCESS
        }
        None => ERRNO_FAULT,
    }
}
