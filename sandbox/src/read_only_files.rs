//! The files a unit may read (Task ABI v2): one read-only directory preopened as `/` on
//! fd 3, holding
//!
//! ```text
//! /input            the unit's input (the same bytes as stdin)
//! /shared/NAME      each file of the job's shared data
//! ```
//!
//! Nothing here is a host directory: the tree is built from the unit's request, and file
//! bytes come from memory or from a verified blob on disk, read at an offset. Stdin reads
//! the same input from its own position, so an input of a gigabyte never sits in memory.
//!
//! Invariants (determinism, so replicas agree):
//! - everything a guest can observe depends only on the request: names, sizes and bytes;
//!   directory listings are sorted by name ("." and ".." first); inode numbers are tree
//!   positions; every timestamp is the job's fixed wall-clock time; nlink is 1, dev is 0;
//! - nothing can be written: creating, truncating, renaming, linking, removing or changing
//!   times is `EROFS`, writing to a file descriptor of this tree is `EBADF`;
//! - a path cannot leave the tree (`..` above `/` or an absolute path is `ENOTCAPABLE`),
//!   and there are no symbolic links;
//! - a host problem (a blob file that cannot be read) is never shown to the guest as an
//!   errno (another host would not see it): it ends the run as a host failure.
//!
//! Limits: at most [`OPEN_FILES_MAX`] descriptors open at once (`EMFILE`), paths of at most
//! [`PATH_BYTES_MAX`] bytes (`ENAMETOOLONG`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;
use wasmhive_protocol::api::check_shared_files;

/// The first file descriptor of the tree: the preopened `/`.
pub const ROOT_FD: u32 = 3;
/// Descriptors of the tree open at once, the preopen included.
pub const OPEN_FILES_MAX: usize = 1024;
/// Longest path a guest may pass.
pub const PATH_BYTES_MAX: usize = 4096;

/// WASI preview 1 errno values used here.
pub mod errno {
    pub const BADF: u16 = 8;
    pub const EXIST: u16 = 20;
    pub const INVAL: u16 = 28;
    pub const ISDIR: u16 = 31;
    pub const MFILE: u16 = 33;
    pub const NAMETOOLONG: u16 = 37;
    pub const NOENT: u16 = 44;
    pub const NOTDIR: u16 = 54;
    pub const NOTSOCK: u16 = 57;
    pub const NOTSUP: u16 = 58;
    pub const ROFS: u16 = 69;
    pub const NOTCAPABLE: u16 = 76;
    pub const SPIPE: u16 = 70;
    pub const ILSEQ: u16 = 25;
}

const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR_FILE: u8 = 4;
const OFLAG_CREATE: u16 = 1;
const OFLAG_DIRECTORY: u16 = 2;
const OFLAG_EXCLUSIVE: u16 = 4;
const OFLAG_TRUNCATE: u16 = 8;
const FDFLAG_APPEND: u16 = 1;
/// Asking for it is opening for writing (`EROFS`). Other rights a guest asks for and this
/// tree does not give (Go asks for `fd_allocate` and `fd_filestat_set_size` on every
/// open) are not granted: the descriptor has read rights only and every change is refused.
const RIGHT_FD_WRITE: u64 = 1 << 6;
/// fd_read, fd_seek, fd_tell, fd_advise, fd_filestat_get, poll_fd_readwrite.
const FILE_RIGHTS: u64 = (1 << 1) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 21) | (1 << 27);
/// path_open, fd_readdir, path_readlink, path_filestat_get, fd_filestat_get.
const DIRECTORY_RIGHTS: u64 = (1 << 13) | (1 << 14) | (1 << 15) | (1 << 18) | (1 << 21);

/// Where a file's bytes are.
#[derive(Clone, Debug)]
pub enum FileSource {
    Memory(Arc<[u8]>),
    /// A verified blob on this host's disk, opened (so evicting it cannot pull it from
    /// under a running unit), `size` bytes long.
    Disk {
        file: Arc<File>,
        size: u64,
    },
}

impl FileSource {
    pub fn size(&self) -> u64 {
        match self {
            FileSource::Memory(bytes) => bytes.len() as u64,
            FileSource::Disk { size, .. } => *size,
        }
    }
}

/// One file of a job's shared data, seen by its units as `/shared/NAME`.
#[derive(Clone, Debug)]
pub struct SharedFile {
    pub name: String,
    pub source: FileSource,
}

/// Why a file call failed: an errno for the guest, or a host problem that ends the run.
#[derive(Debug, PartialEq, Eq)]
pub enum FileError {
    Guest(u16),
    Host(String),
    /// Stdout is full: the run ends with `output_limit`.
    OutputLimit(String),
}

type Answer<T> = Result<T, FileError>;

fn refuse<T>(errno: u16) -> Answer<T> {
    Err(FileError::Guest(errno))
}

enum NodeKind {
    Directory { children: Vec<usize> },
    File { source: FileSource },
}

struct Node {
    name: String,
    parent: usize,
    kind: NodeKind,
}

const ROOT_NODE: usize = 0;
const INPUT_NODE: usize = 2;

#[derive(Clone, Copy)]
struct OpenFd {
    node: usize,
    position: u64,
}

/// The unit's tree and its open descriptors (fd 3 and up; 0, 1 and 2 are stdio).
pub struct UnitFiles {
    nodes: Vec<Node>,
    open: Vec<Option<OpenFd>>,
    stdin_position: u64,
    /// Nanoseconds since the Unix epoch: every timestamp of the tree.
    time_ns: u64,
}

impl UnitFiles {
    /// The tree of one unit. Shared files must pass `check_shared_files` (the owner and the
    /// worker check them first; here a bad one is a host problem).
    pub fn new(input: FileSource, shared: &[SharedFile], job_time: Duration) -> Result<UnitFiles, String> {
        let mut nodes = vec![
            Node { name: "/".into(), parent: ROOT_NODE, kind: NodeKind::Directory { children: vec![2, 1] } },
            Node {
                name: "shared".into(),
                parent: ROOT_NODE,
                kind: NodeKind::Directory { children: Vec::new() },
            },
            file_node("input", ROOT_NODE, input),
        ];
        check_shared_files(shared.iter().map(|file| (file.name.as_str(), file.source.size())))?;
        let mut sorted: Vec<&SharedFile> = shared.iter().collect();
        sorted.sort_by(|left, right| left.name.cmp(&right.name));
        for file in sorted {
            nodes.push(file_node(&file.name, 1, file.source.clone()));
        }
        let shared_nodes = (3..nodes.len()).collect();
        nodes[1].kind = NodeKind::Directory { children: shared_nodes };
        let time_ns = u64::try_from(job_time.as_nanos()).unwrap_or(u64::MAX);
        Ok(UnitFiles {
            nodes,
            open: vec![Some(OpenFd { node: ROOT_NODE, position: 0 })],
            stdin_position: 0,
            time_ns,
        })
    }

    /// Whether `fd` is a descriptor of this tree.
    pub fn is_open(&self, fd: u32) -> bool {
        self.open_fd(fd).is_ok()
    }

    fn open_fd(&self, fd: u32) -> Answer<&OpenFd> {
        let slot = fd.checked_sub(ROOT_FD).and_then(|index| self.open.get(index as usize));
        slot.and_then(Option::as_ref).ok_or(FileError::Guest(errno::BADF))
    }

    fn open_fd_mut(&mut self, fd: u32) -> Answer<&mut OpenFd> {
        let slot = fd.checked_sub(ROOT_FD).and_then(|index| self.open.get_mut(index as usize));
        slot.and_then(Option::as_mut).ok_or(FileError::Guest(errno::BADF))
    }

    /// The node a path names, from the directory open as `fd`.
    pub fn resolve(&self, fd: u32, path: &[u8]) -> Answer<usize> {
        let start = self.open_fd(fd)?.node;
        if !matches!(self.nodes[start].kind, NodeKind::Directory { .. }) {
            return refuse(errno::NOTDIR);
        }
        if path.len() > PATH_BYTES_MAX {
            return refuse(errno::NAMETOOLONG);
        }
        let path = std::str::from_utf8(path).map_err(|_| FileError::Guest(errno::ILSEQ))?;
        if path.starts_with('/') {
            return refuse(errno::NOTCAPABLE);
        }
        let mut node = start;
        for component in path.split('/') {
            node = match component {
                "" | "." => node,
                ".." if node == ROOT_NODE => return refuse(errno::NOTCAPABLE),
                ".." => self.nodes[node].parent,
                name => self.child(node, name)?,
            };
        }
        // `dir/file/` names a file as if it were a directory.
        if path.ends_with('/') && !matches!(self.nodes[node].kind, NodeKind::Directory { .. }) {
            return refuse(errno::NOTDIR);
        }
        Ok(node)
    }

    fn child(&self, directory: usize, name: &str) -> Answer<usize> {
        match &self.nodes[directory].kind {
            NodeKind::Directory { children } => children
                .iter()
                .copied()
                .find(|&child| self.nodes[child].name == name)
                .ok_or(FileError::Guest(errno::NOENT)),
            NodeKind::File { .. } => refuse(errno::NOTDIR),
        }
    }

    /// `path_open`: a new descriptor for what `path` names; nothing is ever created or
    /// opened for writing.
    pub fn open(&mut self, fd: u32, path: &[u8], oflags: u16, rights: u64, fdflags: u16) -> Answer<u32> {
        let found = self.resolve(fd, path);
        if oflags & (OFLAG_CREATE | OFLAG_TRUNCATE) != 0
            || rights & RIGHT_FD_WRITE != 0
            || fdflags & FDFLAG_APPEND != 0
        {
            return match found {
                Ok(_) if oflags & OFLAG_EXCLUSIVE != 0 => refuse(errno::EXIST),
                Err(FileError::Guest(errno::NOENT)) | Ok(_) => refuse(errno::ROFS),
                Err(other) => Err(other),
            };
        }
        let node = found?;
        if oflags & OFLAG_DIRECTORY != 0 && !matches!(self.nodes[node].kind, NodeKind::Directory { .. }) {
            return refuse(errno::NOTDIR);
        }
        let free = self.open.iter().position(Option::is_none);
        let index = match free {
            Some(index) => index,
            None if self.open.len() < OPEN_FILES_MAX => {
                self.open.push(None);
                self.open.len() - 1
            }
            None => return refuse(errno::MFILE),
        };
        self.open[index] = Some(OpenFd { node, position: 0 });
        Ok(ROOT_FD + index as u32)
    }

    pub fn close(&mut self, fd: u32) -> Answer<()> {
        self.open_fd(fd)?;
        self.open[(fd - ROOT_FD) as usize] = None;
        while matches!(self.open.last(), Some(None)) {
            self.open.pop();
        }
        Ok(())
    }

    /// `fd_renumber` within the tree: `to` (closed first if open) becomes `from`.
    pub fn renumber(&mut self, from: u32, to: u32) -> Answer<()> {
        self.open_fd(from)?;
        self.open_fd(to)?;
        let moved = self.open[(from - ROOT_FD) as usize].take();
        self.open[(to - ROOT_FD) as usize] = moved;
        Ok(())
    }

    /// Reads at the descriptor's position and advances it.
    pub fn read(&mut self, fd: u32, destination: &mut [u8]) -> Answer<usize> {
        let OpenFd { node, position } = *self.open_fd(fd)?;
        let count = self.read_node_at(node, position, destination)?;
        self.open_fd_mut(fd)?.position = position + count as u64;
        Ok(count)
    }

    /// Reads at `offset` without moving the descriptor's position.
    pub fn pread(&self, fd: u32, destination: &mut [u8], offset: u64) -> Answer<usize> {
        self.read_node_at(self.open_fd(fd)?.node, offset, destination)
    }

    /// Stdin: the input, read from its own position.
    pub fn read_stdin(&mut self, destination: &mut [u8]) -> Answer<usize> {
        let count = self.read_node_at(INPUT_NODE, self.stdin_position, destination)?;
        self.stdin_position += count as u64;
        Ok(count)
    }

    fn read_node_at(&self, node: usize, offset: u64, destination: &mut [u8]) -> Answer<usize> {
        let NodeKind::File { source } = &self.nodes[node].kind else { return refuse(errno::ISDIR) };
        let size = source.size();
        if offset >= size || destination.is_empty() {
            return Ok(0);
        }
        let count = destination.len().min((size - offset).min(usize::MAX as u64) as usize);
        let destination = &mut destination[..count];
        match source {
            FileSource::Memory(bytes) => {
                destination.copy_from_slice(&bytes[offset as usize..offset as usize + count])
            }
            FileSource::Disk { file, .. } => file
                .read_exact_at(destination, offset)
                .map_err(|error| FileError::Host(format!("reading a blob at byte {offset}: {error}")))?,
        }
        Ok(count)
    }

    /// `fd_seek`: whence 0 (start), 1 (current), 2 (end); the new position.
    pub fn seek(&mut self, fd: u32, offset: i64, whence: u8) -> Answer<u64> {
        let open = self.open_fd(fd)?;
        let NodeKind::File { source, .. } = &self.nodes[open.node].kind else { return refuse(errno::BADF) };
        let base = match whence {
            0 => 0,
            1 => open.position,
            2 => source.size(),
            _ => return refuse(errno::INVAL),
        };
        let position = i128::from(base) + i128::from(offset);
        let position = u64::try_from(position).map_err(|_| FileError::Guest(errno::INVAL))?;
        self.open_fd_mut(fd)?.position = position;
        Ok(position)
    }

    /// `fd_filestat_get` / `path_filestat_get`: the 64-byte WASI filestat of a node.
    pub fn filestat(&self, node: usize) -> [u8; 64] {
        let (filetype, size) = match &self.nodes[node].kind {
            NodeKind::Directory { children } => (FILETYPE_DIRECTORY, children.len() as u64),
            NodeKind::File { source, .. } => (FILETYPE_REGULAR_FILE, source.size()),
        };
        let mut stat = [0u8; 64];
        stat[8..16].copy_from_slice(&(node as u64 + 1).to_le_bytes());
        stat[16] = filetype;
        stat[24..32].copy_from_slice(&1u64.to_le_bytes());
        stat[32..40].copy_from_slice(&size.to_le_bytes());
        for at in [40, 48, 56] {
            stat[at..at + 8].copy_from_slice(&self.time_ns.to_le_bytes());
        }
        stat
    }

    /// The node open as `fd`.
    pub fn node_of(&self, fd: u32) -> Answer<usize> {
        Ok(self.open_fd(fd)?.node)
    }

    /// `fd_fdstat_get`: the 24-byte WASI fdstat.
    pub fn fdstat(&self, fd: u32) -> Answer<[u8; 24]> {
        let (filetype, base, inheriting) = match self.nodes[self.node_of(fd)?].kind {
            NodeKind::Directory { .. } => {
                (FILETYPE_DIRECTORY, DIRECTORY_RIGHTS, DIRECTORY_RIGHTS | FILE_RIGHTS)
            }
            NodeKind::File { .. } => (FILETYPE_REGULAR_FILE, FILE_RIGHTS, 0),
        };
        let mut stat = [0u8; 24];
        stat[0] = filetype;
        stat[8..16].copy_from_slice(&base.to_le_bytes());
        stat[16..24].copy_from_slice(&inheriting.to_le_bytes());
        Ok(stat)
    }

    /// `fd_readdir`: entries from `cookie` on, as WASI lays them out, cut at `length`
    /// bytes (a cut entry tells the guest to ask again with a larger buffer).
    pub fn readdir(&self, fd: u32, cookie: u64, length: usize) -> Answer<Vec<u8>> {
        let node = self.node_of(fd)?;
        let NodeKind::Directory { children } = &self.nodes[node].kind else { return refuse(errno::NOTDIR) };
        let entries = [(".", node), ("..", self.nodes[node].parent)]
            .into_iter()
            .chain(children.iter().map(|&child| (self.nodes[child].name.as_str(), child)));
        let mut bytes = Vec::new();
        for (index, (name, entry)) in entries.enumerate().skip(cookie.min(usize::MAX as u64) as usize) {
            if bytes.len() >= length {
                break;
            }
            let filetype = match self.nodes[entry].kind {
                NodeKind::Directory { .. } => FILETYPE_DIRECTORY,
                NodeKind::File { .. } => FILETYPE_REGULAR_FILE,
            };
            bytes.extend_from_slice(&(index as u64 + 1).to_le_bytes());
            bytes.extend_from_slice(&(entry as u64 + 1).to_le_bytes());
            bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&[filetype, 0, 0, 0]);
            bytes.extend_from_slice(name.as_bytes());
        }
        bytes.truncate(length);
        Ok(bytes)
    }

    /// `fd_prestat_get`: only fd 3 (`/`) is a preopen: (tag 0 = directory, name length 1).
    pub fn prestat(&self, fd: u32) -> Answer<[u8; 8]> {
        if fd != ROOT_FD || self.node_of(fd)? != ROOT_NODE {
            return refuse(errno::BADF);
        }
        let mut prestat = [0u8; 8];
        prestat[4..8].copy_from_slice(&1u32.to_le_bytes());
        Ok(prestat)
    }

    /// Paths that exist give `EROFS` for a change; others what resolving them gives.
    pub fn refuse_change(&self, fd: u32, path: &[u8]) -> FileError {
        match self.resolve(fd, path) {
            Ok(_) | Err(FileError::Guest(errno::NOENT)) => FileError::Guest(errno::ROFS),
            Err(other) => other,
        }
    }
}

fn file_node(name: &str, parent: usize, source: FileSource) -> Node {
    Node { name: name.into(), parent, kind: NodeKind::File { source } }
}
