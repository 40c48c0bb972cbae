//! The WASI preview 1 functions that are not about descriptors (those are in
//! `read_only_files_wasi.rs`): arguments, environment, clocks, random bytes, exit, signals,
//! and sleeps (`poll_oneoff` and `sched_yield`, in `virtual_sleep.rs`).
//!
//! Every answer is a function of the unit's request and of the guest's own calls:
//! - `args_*`: the task name, then the job's args; `environ_*`: `WASMHIVE_JOB` and
//!   `WASMHIVE_UNIT`, nothing inherited;
//! - `clock_*`: the wall clock reads the job's time (resolution 1 ns), the monotonic clock
//!   the unit's virtual clock (see `deterministic_wasi.rs`); the CPU-time clocks are
//!   `EBADF`, as in wasmtime-wasi;
//! - `random_get` fills the buffer straight from the unit's seeded blake3 stream, so the
//!   bytes a guest sees are exactly [`crate::random_get_stream`];
//! - `proc_exit` accepts every exit code, so `exit(255)` is the status `exit code 255` like
//!   on any Unix; `proc_raise` is `ENOTSUP`.

use crate::guest_memory::{Answer, ERRNO_FAULT, WASI_MODULE, answer, region_mut, write_at};
use crate::read_only_files::{FileError, errno};
use crate::unit_state::UnitState;
use wasmtime::{Caller, Linker};

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME: i32 = 2;
const CLOCK_THREAD_CPUTIME: i32 = 3;
/// The highest signal number of WASI preview 1 (`SIGSYS`).
const SIGNAL_MAX: i32 = 30;
/// WASI errno: value too large (a wall clock past the year 2554).
const ERRNO_OVERFLOW: u16 = 61;

/// The task ended itself with `proc_exit(code)`.
#[derive(Debug, thiserror::Error)]
#[error("the task called proc_exit({0})")]
pub struct GuestExit(pub i32);

pub fn define_environment_functions(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "args_sizes_get",
        |mut caller: Caller<'_, UnitState>, count_at: i32, size_at: i32| {
            answer(&mut caller, |state, memory| write_sizes(memory, &state.arguments, count_at, size_at))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "args_get",
        |mut caller: Caller<'_, UnitState>, pointers_at: i32, bytes_at: i32| {
            answer(&mut caller, |state, memory| {
                write_strings(memory, &state.arguments, pointers_at, bytes_at)
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "environ_sizes_get",
        |mut caller: Caller<'_, UnitState>, count_at: i32, size_at: i32| {
            answer(&mut caller, |state, memory| write_sizes(memory, &state.environment, count_at, size_at))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "environ_get",
        |mut caller: Caller<'_, UnitState>, pointers_at: i32, bytes_at: i32| {
            answer(&mut caller, |state, memory| {
                write_strings(memory, &state.environment, pointers_at, bytes_at)
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "clock_res_get",
        |mut caller: Caller<'_, UnitState>, clock: i32, at: i32| {
            answer(&mut caller, |state, memory| {
                let resolution = match clock {
                    CLOCK_REALTIME => 1,
                    CLOCK_MONOTONIC => state.monotonic_clock.resolution_ns(),
                    _ => return Err(clock_refusal(clock)),
                };
                write_at(memory, at, &u64::to_le_bytes(resolution))
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, UnitState>, clock: i32, _precision: i64, at: i32| {
            answer(&mut caller, |state, memory| {
                let now = match clock {
                    CLOCK_REALTIME => u64::try_from(state.wall_clock.as_nanos())
                        .map_err(|_| FileError::Guest(ERRNO_OVERFLOW))?,
                    CLOCK_MONOTONIC => state.monotonic_clock.read(),
                    _ => return Err(clock_refusal(clock)),
                };
                write_at(memory, at, &u64::to_le_bytes(now))
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "random_get",
        |mut caller: Caller<'_, UnitState>, at: i32, length: i32| {
            answer(&mut caller, |state, memory| {
                state.random.fill(region_mut(memory, at as u32, length as u32 as usize)?);
                Ok(())
            })
        },
    )?;
    linker.func_wrap(WASI_MODULE, "proc_exit", |code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(GuestExit(code)))
    })?;
    linker.func_wrap(WASI_MODULE, "proc_raise", |signal: i32| {
        i32::from(if (0..=SIGNAL_MAX).contains(&signal) { errno::NOTSUP } else { errno::INVAL })
    })?;
    linker.func_wrap(WASI_MODULE, "poll_oneoff", crate::virtual_sleep::poll_oneoff)?;
    linker.func_wrap(WASI_MODULE, "sched_yield", crate::virtual_sleep::sched_yield)?;
    Ok(())
}

fn clock_refusal(clock: i32) -> FileError {
    match clock {
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => FileError::Guest(errno::BADF),
        _ => FileError::Guest(errno::INVAL),
    }
}

/// The count of `strings` and the bytes they take, each with its terminating NUL.
fn write_sizes(memory: &mut [u8], strings: &[String], count_at: i32, size_at: i32) -> Answer<()> {
    let size: usize = strings.iter().map(|string| string.len() + 1).sum();
    write_at(memory, count_at, &(strings.len() as u32).to_le_bytes())?;
    write_at(memory, size_at, &(size as u32).to_le_bytes())
}

/// Each string NUL-terminated from `bytes_at` on, and a pointer to each from `pointers_at`.
fn write_strings(memory: &mut [u8], strings: &[String], pointers_at: i32, bytes_at: i32) -> Answer<()> {
    let fault = || FileError::Guest(ERRNO_FAULT);
    let (mut pointer_slot, mut pointer) = (pointers_at as u32, bytes_at as u32);
    for string in strings {
        region_mut(memory, pointer_slot, 4)?.copy_from_slice(&pointer.to_le_bytes());
        let destination = region_mut(memory, pointer, string.len() + 1)?;
        destination[..string.len()].copy_from_slice(string.as_bytes());
        destination[string.len()] = 0;
        pointer_slot = pointer_slot.checked_add(4).ok_or_else(fault)?;
        pointer = pointer.checked_add(string.len() as u32 + 1).ok_or_else(fault)?;
    }
    Ok(())
}
