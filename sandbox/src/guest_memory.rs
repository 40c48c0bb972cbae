//! The guest's side of a WASI call: its linear memory, read and written with every access
//! checked (`EFAULT` outside memory, never a trap or a host panic), and how an answer
//! becomes the call's errno or ends the run.

use crate::read_only_files::FileError;
use crate::unit_state::UnitState;
use wasmtime::{Caller, Extern};

/// The import module of Task ABI v1 and v2.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// WASI errno: bad address (the buffer is not inside linear memory).
pub const ERRNO_FAULT: u16 = 21;

/// What a WASI function computes: `Ok` is errno 0, a guest error its errno.
pub type Answer<T> = Result<T, FileError>;

/// Reading a blob that backs a unit's file failed on this host: the run is not a result.
#[derive(Debug, thiserror::Error)]
#[error("this host could not read a file of the unit: {0}")]
pub struct HostFileFailure(pub String);

/// Runs `work` with the unit's state and the guest's memory; its answer becomes the errno.
pub fn answer(
    caller: &mut Caller<'_, UnitState>,
    work: impl FnOnce(&mut UnitState, &mut [u8]) -> Answer<()>,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(i32::from(ERRNO_FAULT));
    };
    let (bytes, state) = memory.data_and_store_mut(&mut *caller);
    match work(state, bytes) {
        Ok(()) => Ok(0),
        Err(FileError::Guest(errno)) => Ok(i32::from(errno)),
        Err(FileError::Host(problem)) => Err(wasmtime::Error::new(HostFileFailure(problem))),
        Err(FileError::OutputLimit(problem)) => Err(wasmtime::Error::msg(problem)),
    }
}

pub fn region_mut(memory: &mut [u8], at: u32, length: usize) -> Answer<&mut [u8]> {
    let start = at as usize;
    let end = start.checked_add(length).ok_or(FileError::Guest(ERRNO_FAULT))?;
    memory.get_mut(start..end).ok_or(FileError::Guest(ERRNO_FAULT))
}

pub fn read_at(memory: &mut [u8], at: i32, length: i32) -> Answer<&[u8]> {
    Ok(region_mut(memory, at as u32, length as u32 as usize)?)
}

pub fn write_at(memory: &mut [u8], at: i32, bytes: &[u8]) -> Answer<()> {
    region_mut(memory, at as u32, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}
