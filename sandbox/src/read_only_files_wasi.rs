//! Every WASI preview 1 function on a file descriptor or path (the others are in
//! `environment_wasi.rs`): stdio (fds 0 to 2: stdin reads the unit's input, stdout and stderr are capped pipes)
//! and the unit's read-only tree (fd 3 and up, see `read_only_files.rs`). Any other
//! descriptor is `EBADF`.
//!
//! Stdio as wasmtime-wasi shows it: file type unknown (not a terminal), stdin with the
//! read right, stdout and stderr with the write right, no positions (`ESPIPE`).
//!
//! Guest memory is checked on every access (`EFAULT`); a host problem reading a blob ends
//! the run with [`crate::guest_memory::HostFileFailure`] (never an errno a replica elsewhere would not see).

use crate::deterministic_wasi::CappedPipe;
use crate::guest_memory::{Answer, WASI_MODULE, answer, read_at, region_mut, write_at};
use crate::read_only_files::{FileError, ROOT_FD, UnitFiles, errno};
use crate::unit_state::UnitState;
use wasmtime::{Caller, Linker};

const IOVECS_MAX: usize = 1024;

/// A unit's stdout and stderr, and which of the three stdio descriptors it closed.
pub struct Stdio {
    pub stdout: CappedPipe,
    pub stderr: CappedPipe,
    pub closed: [bool; 3],
}

/// The stdio descriptor `fd`, if it is one and still open.
fn open_stdio(state: &UnitState, fd: i32) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&fd| fd < 3 && !state.stdio.closed[fd])
}

/// Defines the descriptor and path functions in `linker`.
pub fn define_file_functions(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    define_reads(linker)?;
    define_descriptor_functions(linker)?;
    define_writes(linker)?;
    define_socket_functions(linker)?;
    define_path_functions(linker)
}

/// No descriptor is a socket: an open one is `ENOTSOCK`, any other `EBADF`.
fn define_socket_functions(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "sock_accept",
        |mut caller: Caller<'_, UnitState>, fd: i32, _flags: i32, _at: i32| {
            on_open_descriptor(&mut caller, fd, errno::NOTSOCK)
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "sock_recv",
        |mut caller: Caller<'_, UnitState>,
         fd: i32,
         _iovecs: i32,
         _count: i32,
         _flags: i32,
         _at: i32,
         _flags_at: i32| { on_open_descriptor(&mut caller, fd, errno::NOTSOCK) },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "sock_send",
        |mut caller: Caller<'_, UnitState>, fd: i32, _iovecs: i32, _count: i32, _flags: i32, _at: i32| {
            on_open_descriptor(&mut caller, fd, errno::NOTSOCK)
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "sock_shutdown",
        |mut caller: Caller<'_, UnitState>, fd: i32, _how: i32| {
            on_open_descriptor(&mut caller, fd, errno::NOTSOCK)
        },
    )?;
    Ok(())
}

/// `refusal` for an open descriptor (stdio or the tree's), `EBADF` for any other.
fn on_open_descriptor(caller: &mut Caller<'_, UnitState>, fd: i32, refusal: u16) -> wasmtime::Result<i32> {
    on_descriptor(
        caller,
        fd,
        |_, _, _| Err(FileError::Guest(refusal)),
        |files, _| {
            files.node_of(fd as u32)?;
            Err(FileError::Guest(refusal))
        },
    )
}

fn define_reads(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "fd_read",
        |mut caller: Caller<'_, UnitState>, fd: i32, iovecs: i32, count: i32, at: i32| {
            answer(&mut caller, |state, memory| {
                let stdin = match open_stdio(state, fd) {
                    Some(0) => true,
                    Some(_) => return Err(FileError::Guest(errno::BADF)),
                    None => false,
                };
                let files = &mut state.files;
                read_into_iovecs(memory, (iovecs, count, at), |destination, _| {
                    if stdin { files.read_stdin(destination) } else { files.read(fd as u32, destination) }
                })
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_pread",
        |mut caller: Caller<'_, UnitState>, fd: i32, iovecs: i32, count: i32, offset: i64, at: i32| {
            on_descriptor(&mut caller, fd, not_seekable, |files, memory| {
                read_into_iovecs(memory, (iovecs, count, at), |destination, done| {
                    files.pread(fd as u32, destination, (offset as u64).saturating_add(done as u64))
                })
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_readdir",
        |mut caller: Caller<'_, UnitState>, fd: i32, buffer: i32, length: i32, cookie: i64, at: i32| {
            let not_a_directory =
                |_: &mut UnitState, _: usize, _: &mut [u8]| Err(FileError::Guest(errno::NOTDIR));
            on_descriptor(&mut caller, fd, not_a_directory, |files, memory| {
                let entries = files.readdir(fd as u32, cookie as u64, length as u32 as usize)?;
                write_at(memory, buffer, &entries)?;
                write_at(memory, at, &(entries.len() as u32).to_le_bytes())
            })
        },
    )?;
    Ok(())
}

fn define_descriptor_functions(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "fd_seek",
        |mut caller: Caller<'_, UnitState>, fd: i32, offset: i64, whence: i32, at: i32| {
            on_descriptor(&mut caller, fd, not_seekable, |files, memory| {
                let whence = u8::try_from(whence).map_err(|_| FileError::Guest(errno::INVAL))?;
                write_at(memory, at, &files.seek(fd as u32, offset, whence)?.to_le_bytes())
            })
        },
    )?;
    linker.func_wrap(WASI_MODULE, "fd_tell", |mut caller: Caller<'_, UnitState>, fd: i32, at: i32| {
        on_descriptor(&mut caller, fd, not_seekable, |files, memory| {
            write_at(memory, at, &files.seek(fd as u32, 0, 1)?.to_le_bytes())
        })
    })?;
    linker.func_wrap(WASI_MODULE, "fd_close", |mut caller: Caller<'_, UnitState>, fd: i32| {
        let close_stdio = |state: &mut UnitState, stdio_fd: usize, _: &mut [u8]| {
            state.stdio.closed[stdio_fd] = true;
            Ok(())
        };
        on_descriptor(&mut caller, fd, close_stdio, |files, _| files.close(fd as u32))
    })?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_renumber",
        |mut caller: Caller<'_, UnitState>, from: i32, to: i32| {
            let stdio_involved =
                |_: &mut UnitState, _: usize, _: &mut [u8]| Err(FileError::Guest(errno::NOTSUP));
            on_descriptor(&mut caller, from, stdio_involved, |files, _| {
                if (to as u32) < ROOT_FD {
                    return Err(FileError::Guest(errno::NOTSUP));
                }
                files.renumber(from as u32, to as u32)
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_fdstat_get",
        |mut caller: Caller<'_, UnitState>, fd: i32, at: i32| {
            let stdio_fdstat = |_: &mut UnitState, stdio_fd: usize, memory: &mut [u8]| {
                // File type unknown (0), no flags; stdin may read, stdout and stderr write.
                let rights: u64 = if stdio_fd == 0 { RIGHT_FD_READ } else { RIGHT_FD_WRITE };
                let mut stat = [0u8; 24];
                stat[8..16].copy_from_slice(&rights.to_le_bytes());
                stat[16..24].copy_from_slice(&rights.to_le_bytes());
                write_at(memory, at, &stat)
            };
            on_descriptor(&mut caller, fd, stdio_fdstat, |files, memory| {
                write_at(memory, at, &files.fdstat(fd as u32)?)
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_filestat_get",
        |mut caller: Caller<'_, UnitState>, fd: i32, at: i32| {
            let stdio_filestat =
                |_: &mut UnitState, _: usize, memory: &mut [u8]| write_at(memory, at, &[0u8; 64]);
            on_descriptor(&mut caller, fd, stdio_filestat, |files, memory| {
                write_at(memory, at, &files.filestat(files.node_of(fd as u32)?))
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_prestat_get",
        |mut caller: Caller<'_, UnitState>, fd: i32, at: i32| {
            answer(&mut caller, |state, memory| write_at(memory, at, &state.files.prestat(fd as u32)?))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_prestat_dir_name",
        |mut caller: Caller<'_, UnitState>, fd: i32, at: i32, length: i32| {
            answer(&mut caller, |state, memory| {
                state.files.prestat(fd as u32)?;
                if length < 1 {
                    return Err(FileError::Guest(errno::NAMETOOLONG));
                }
                write_at(memory, at, b"/")
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_fdstat_set_rights",
        |mut caller: Caller<'_, UnitState>, fd: i32, _base: i64, _inheriting: i64| {
            on_open_descriptor(&mut caller, fd, errno::NOTSUP)
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_fdstat_set_flags",
        |mut caller: Caller<'_, UnitState>, fd: i32, flags: i32| {
            let no_flags = move || if flags == 0 { Ok(()) } else { Err(FileError::Guest(errno::NOTSUP)) };
            on_descriptor(
                &mut caller,
                fd,
                |_, _, _| no_flags(),
                |files, _| files.node_of(fd as u32).and_then(|_| no_flags()),
            )
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_advise",
        |mut caller: Caller<'_, UnitState>, fd: i32, _offset: i64, _length: i64, advice: i32| {
            on_descriptor(&mut caller, fd, not_seekable, |files, _| {
                files.node_of(fd as u32)?;
                if (0..=5).contains(&advice) { Ok(()) } else { Err(FileError::Guest(errno::INVAL)) }
            })
        },
    )?;
    for name in ["fd_sync", "fd_datasync"] {
        linker.func_wrap(WASI_MODULE, name, |mut caller: Caller<'_, UnitState>, fd: i32| {
            let invalid = |_: &mut UnitState, _: usize, _: &mut [u8]| Err(FileError::Guest(errno::INVAL));
            on_descriptor(&mut caller, fd, invalid, |files, _| files.node_of(fd as u32).map(|_| ()))
        })?;
    }
    Ok(())
}

/// Writes go to stdout and stderr only; the tree is read-only.
fn define_writes(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "fd_write",
        |mut caller: Caller<'_, UnitState>, fd: i32, iovecs: i32, count: i32, at: i32| {
            answer(&mut caller, |state, memory| {
                let pipe = match open_stdio(state, fd) {
                    Some(1) => &state.stdio.stdout,
                    Some(2) => &state.stdio.stderr,
                    _ => return Err(FileError::Guest(errno::BADF)),
                };
                let mut total = 0usize;
                for (start, length) in read_iovecs(memory, iovecs, count)? {
                    pipe.write(region_mut(memory, start, length)?).map_err(FileError::OutputLimit)?;
                    total += length;
                }
                write_at(memory, at, &(total as u32).to_le_bytes())
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_pwrite",
        |mut caller: Caller<'_, UnitState>, fd: i32, _iovecs: i32, _count: i32, _offset: i64, _at: i32| {
            on_descriptor(&mut caller, fd, not_seekable, |files, _| refuse_on_tree(files, fd, errno::BADF))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_allocate",
        |mut caller: Caller<'_, UnitState>, fd: i32, _offset: i64, _length: i64| {
            on_descriptor(&mut caller, fd, not_seekable, |files, _| refuse_on_tree(files, fd, errno::ROFS))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_filestat_set_size",
        |mut caller: Caller<'_, UnitState>, fd: i32, _size: i64| {
            on_descriptor(&mut caller, fd, not_seekable, |files, _| refuse_on_tree(files, fd, errno::ROFS))
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_filestat_set_times",
        |mut caller: Caller<'_, UnitState>, fd: i32, _accessed: i64, _modified: i64, _flags: i32| {
            let not_a_file = |_: &mut UnitState, _: usize, _: &mut [u8]| Err(FileError::Guest(errno::BADF));
            on_descriptor(&mut caller, fd, not_a_file, |files, _| refuse_on_tree(files, fd, errno::ROFS))
        },
    )?;
    Ok(())
}

const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

fn not_seekable(_: &mut UnitState, _: usize, _: &mut [u8]) -> Answer<()> {
    Err(FileError::Guest(errno::SPIPE))
}

fn refuse_on_tree(files: &UnitFiles, fd: i32, refusal: u16) -> Answer<()> {
    files.node_of(fd as u32)?;
    Err(FileError::Guest(refusal))
}

fn define_path_functions(linker: &mut Linker<UnitState>) -> wasmtime::Result<()> {
    linker.func_wrap(WASI_MODULE, "path_open", path_open)?;
    linker.func_wrap(
        WASI_MODULE,
        "path_filestat_get",
        |mut caller: Caller<'_, UnitState>, fd: i32, _flags: i32, path: i32, length: i32, at: i32| {
            answer(&mut caller, |state, memory| {
                let node = state.files.resolve(fd as u32, read_at(memory, path, length)?)?;
                write_at(memory, at, &state.files.filestat(node))
            })
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "path_readlink",
        |mut caller: Caller<'_, UnitState>,
         fd: i32,
         path: i32,
         length: i32,
         _at: i32,
         _capacity: i32,
         _used: i32| {
            answer(&mut caller, |state, memory| {
                state.files.resolve(fd as u32, read_at(memory, path, length)?)?;
                Err(FileError::Guest(errno::INVAL))
            })
        },
    )?;
    for name in ["path_create_directory", "path_remove_directory", "path_unlink_file"] {
        linker.func_wrap(
            WASI_MODULE,
            name,
            |mut caller: Caller<'_, UnitState>, fd: i32, path: i32, length: i32| {
                refuse_change(&mut caller, fd, path, length)
            },
        )?;
    }
    linker.func_wrap(
        WASI_MODULE,
        "path_filestat_set_times",
        |mut caller: Caller<'_, UnitState>,
         fd: i32,
         _flags: i32,
         path: i32,
         length: i32,
         _: i64,
         _: i64,
         _: i32| { refuse_change(&mut caller, fd, path, length) },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "path_link",
        |mut caller: Caller<'_, UnitState>,
         fd: i32,
         _: i32,
         path: i32,
         length: i32,
         _: i32,
         _: i32,
         _: i32| { refuse_change(&mut caller, fd, path, length) },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "path_rename",
        |mut caller: Caller<'_, UnitState>, fd: i32, path: i32, length: i32, _: i32, _: i32, _: i32| {
            refuse_change(&mut caller, fd, path, length)
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "path_symlink",
        |mut caller: Caller<'_, UnitState>, _: i32, _: i32, fd: i32, path: i32, length: i32| {
            refuse_change(&mut caller, fd, path, length)
        },
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
fn path_open(
    mut caller: Caller<'_, UnitState>,
    fd: i32,
    _lookup_flags: i32,
    path: i32,
    length: i32,
    oflags: i32,
    rights: i64,
    _inheriting: i64,
    fdflags: i32,
    at: i32,
) -> wasmtime::Result<i32> {
    answer(&mut caller, |state, memory| {
        let path = read_at(memory, path, length)?;
        let opened = state.files.open(fd as u32, path, oflags as u16, rights as u64, fdflags as u16)?;
        write_at(memory, at, &opened.to_le_bytes())
    })
}

fn refuse_change(
    caller: &mut Caller<'_, UnitState>,
    fd: i32,
    path: i32,
    length: i32,
) -> wasmtime::Result<i32> {
    answer(caller, |state, memory| Err(state.files.refuse_change(fd as u32, read_at(memory, path, length)?)))
}

/// `on_stdio` for an open stdio descriptor, else `on_tree` (which gives `EBADF` for a
/// descriptor the tree does not have).
fn on_descriptor(
    caller: &mut Caller<'_, UnitState>,
    fd: i32,
    on_stdio: impl FnOnce(&mut UnitState, usize, &mut [u8]) -> Answer<()>,
    on_tree: impl FnOnce(&mut UnitFiles, &mut [u8]) -> Answer<()>,
) -> wasmtime::Result<i32> {
    answer(caller, |state, memory| match open_stdio(state, fd) {
        Some(stdio_fd) => on_stdio(state, stdio_fd, memory),
        None => on_tree(&mut state.files, memory),
    })
}

/// Fills the guest's iovecs in order with `read(destination, bytes so far)` until one comes
/// back short, then stores the total at `at`.
fn read_into_iovecs(
    memory: &mut [u8],
    (iovecs, count, at): (i32, i32, i32),
    mut read: impl FnMut(&mut [u8], usize) -> Answer<usize>,
) -> Answer<()> {
    let mut total = 0usize;
    for (start, length) in read_iovecs(memory, iovecs, count)? {
        let got = read(region_mut(memory, start, length)?, total)?;
        total += got;
        if got < length {
            break;
        }
    }
    write_at(memory, at, &(total as u32).to_le_bytes())
}

/// The (start, length) pairs of an iovec array.
fn read_iovecs(memory: &mut [u8], at: i32, count: i32) -> Answer<Vec<(u32, usize)>> {
    let count = count as u32 as usize;
    if count > IOVECS_MAX {
        return Err(FileError::Guest(errno::INVAL));
    }
    let table = region_mut(memory, at as u32, count * 8)?;
    Ok(table
        .chunks_exact(8)
        .map(|iovec| {
            let start = u32::from_le_bytes(iovec[..4].try_into().expect("4 bytes"));
            let length = u32::from_le_bytes(iovec[4..].try_into().expect("4 bytes"));
            (start, length as usize)
        })
        .collect())
}
