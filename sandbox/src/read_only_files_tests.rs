//! The read-only tree of Task ABI v2 on its own: paths, descriptors, reads, listings and
//! stats (the WASI calls over it are tested with guests in the tests crate).

use crate::read_only_files::{FileError, FileSource, ROOT_FD, SharedFile, UnitFiles, errno};
use std::time::Duration;

const JOB_TIME: Duration = Duration::from_secs(1_700_000_000);

fn memory(bytes: &[u8]) -> FileSource {
    FileSource::Memory(bytes.into())
}

fn tree() -> UnitFiles {
    let shared = [
        SharedFile { name: "b.txt".into(), source: memory(b"bee") },
        SharedFile { name: "a.bin".into(), source: memory(b"\x00\x01\x02\x03") },
    ];
    UnitFiles::new(memory(b"the input"), &shared, JOB_TIME).unwrap()
}

fn guest(errno: u16) -> FileError {
    FileError::Guest(errno)
}

#[test]
fn the_input_and_shared_files_are_found_by_path_and_read_in_full() {
    let mut files = tree();
    let input = files.open(ROOT_FD, b"input", 0, 0, 0).unwrap();
    let mut buffer = [0u8; 64];
    let count = files.read(input, &mut buffer).unwrap();
    assert_eq!(&buffer[..count], b"the input");
    assert_eq!(files.read(input, &mut buffer).unwrap(), 0, "end of file");
    let shared = files.open(ROOT_FD, b"./shared/../shared/b.txt", 0, 0, 0).unwrap();
    assert_eq!(files.pread(shared, &mut buffer[..2], 1).unwrap(), 2);
    assert_eq!(&buffer[..2], b"ee");
}

#[test]
fn stdin_reads_the_input_from_its_own_position() {
    let mut files = tree();
    let input = files.open(ROOT_FD, b"input", 0, 0, 0).unwrap();
    let mut buffer = [0u8; 4];
    files.read(input, &mut buffer).unwrap();
    let mut stdin = Vec::new();
    loop {
        let count = files.read_stdin(&mut buffer).unwrap();
        if count == 0 {
            break;
        }
        stdin.extend_from_slice(&buffer[..count]);
    }
    assert_eq!(stdin, b"the input");
}

#[test]
fn paths_cannot_leave_the_tree_or_be_absolute() {
    let files = tree();
    assert_eq!(files.resolve(ROOT_FD, b".."), Err(guest(errno::NOTCAPABLE)));
    assert_eq!(files.resolve(ROOT_FD, b"shared/../../etc/passwd"), Err(guest(errno::NOTCAPABLE)));
    assert_eq!(files.resolve(ROOT_FD, b"/input"), Err(guest(errno::NOTCAPABLE)));
    assert_eq!(files.resolve(ROOT_FD, b"etc/passwd"), Err(guest(errno::NOENT)));
    assert_eq!(files.resolve(ROOT_FD, b"input/x"), Err(guest(errno::NOTDIR)));
    assert_eq!(files.resolve(ROOT_FD, b"input/"), Err(guest(errno::NOTDIR)));
    assert_eq!(files.resolve(ROOT_FD, &[b'a'; 5000]), Err(guest(errno::NAMETOOLONG)));
    assert_eq!(files.resolve(ROOT_FD, b"\xff"), Err(guest(errno::ILSEQ)));
    assert_eq!(files.resolve(99, b"input"), Err(guest(errno::BADF)));
}

#[test]
fn nothing_can_be_created_truncated_or_opened_for_writing() {
    let mut files = tree();
    const CREATE: u16 = 1;
    const EXCLUSIVE: u16 = 4;
    const TRUNCATE: u16 = 8;
    const WRITE: u64 = 1 << 6;
    const APPEND: u16 = 1;
    assert_eq!(files.open(ROOT_FD, b"new.txt", CREATE, 0, 0), Err(guest(errno::ROFS)));
    assert_eq!(files.open(ROOT_FD, b"input", CREATE | EXCLUSIVE, 0, 0), Err(guest(errno::EXIST)));
    assert_eq!(files.open(ROOT_FD, b"input", TRUNCATE, 0, 0), Err(guest(errno::ROFS)));
    assert_eq!(files.open(ROOT_FD, b"input", 0, WRITE, 0), Err(guest(errno::ROFS)));
    assert_eq!(files.open(ROOT_FD, b"input", 0, 0, APPEND), Err(guest(errno::ROFS)));
    // Rights a read-only open asks for but this tree never grants (Go asks for these on
    // every open) are not an error; the descriptor still cannot change anything.
    const ALLOCATE_AND_SET_SIZE: u64 = (1 << 8) | (1 << 22);
    assert!(files.open(ROOT_FD, b"input", 0, ALLOCATE_AND_SET_SIZE | 2, 0).is_ok());
    assert_eq!(files.refuse_change(ROOT_FD, b"shared/a.bin"), guest(errno::ROFS));
    assert_eq!(files.refuse_change(ROOT_FD, b"../x"), guest(errno::NOTCAPABLE));
}

#[test]
fn listings_are_sorted_with_tree_positions_as_inodes() {
    let mut files = tree();
    let shared = files.open(ROOT_FD, b"shared", 2, 0, 0).unwrap();
    let listing = files.readdir(shared, 0, 4096).unwrap();
    let names = entry_names(&listing);
    assert_eq!(names, [".", "..", "a.bin", "b.txt"]);
    // From a cookie: the rest; a short buffer: a cut entry the guest retries.
    assert_eq!(entry_names(&files.readdir(shared, 3, 4096).unwrap()), ["b.txt"]);
    assert_eq!(files.readdir(shared, 0, 10).unwrap().len(), 10);
    assert_eq!(
        files.readdir(ROOT_FD, 0, 4096).map(|bytes| entry_names(&bytes)).unwrap(),
        [".", "..", "input", "shared"]
    );
}

fn entry_names(mut bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while bytes.len() >= 24 {
        let length = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        names.push(String::from_utf8(bytes[24..24 + length].to_vec()).unwrap());
        bytes = &bytes[24 + length..];
    }
    names
}

#[test]
fn stats_depend_only_on_the_request() {
    let files = tree();
    let node = files.resolve(ROOT_FD, b"shared/a.bin").unwrap();
    let stat = files.filestat(node);
    let field = |at: usize| u64::from_le_bytes(stat[at..at + 8].try_into().unwrap());
    assert_eq!(field(0), 0, "dev");
    assert_eq!(stat[16], 4, "a regular file");
    assert_eq!(field(24), 1, "nlink");
    assert_eq!(field(32), 4, "size");
    for at in [40, 48, 56] {
        assert_eq!(field(at), JOB_TIME.as_nanos() as u64, "every timestamp is the job's time");
    }
    assert_eq!(tree().filestat(node), stat, "the same on every build of the tree");
}

#[test]
fn descriptors_are_reused_lowest_first_and_capped() {
    let mut files = tree();
    let first = files.open(ROOT_FD, b"input", 0, 0, 0).unwrap();
    let second = files.open(ROOT_FD, b"input", 0, 0, 0).unwrap();
    assert_eq!((first, second), (4, 5));
    files.close(first).unwrap();
    assert_eq!(files.open(ROOT_FD, b"input", 0, 0, 0).unwrap(), 4);
    assert_eq!(files.close(first + 100), Err(guest(errno::BADF)));
    let mut last = Ok(0);
    for _ in 0..2000 {
        last = files.open(ROOT_FD, b"input", 0, 0, 0);
        if last.is_err() {
            break;
        }
    }
    assert_eq!(last, Err(guest(errno::MFILE)));
}

#[test]
fn seeking_follows_whence_and_refuses_negative_positions() {
    let mut files = tree();
    let input = files.open(ROOT_FD, b"input", 0, 0, 0).unwrap();
    assert_eq!(files.seek(input, -3, 2).unwrap(), 6);
    let mut buffer = [0u8; 8];
    let count = files.read(input, &mut buffer).unwrap();
    assert_eq!(&buffer[..count], b"put");
    assert_eq!(files.seek(input, -100, 1), Err(guest(errno::INVAL)));
    assert_eq!(files.seek(input, 0, 7), Err(guest(errno::INVAL)));
    assert_eq!(files.seek(ROOT_FD, 0, 0), Err(guest(errno::BADF)), "a directory has no position");
}

#[test]
fn duplicate_or_unsafe_shared_names_are_refused() {
    for names in [["x", "x"], ["x", "../y"], ["x", ""], ["x", "a/b"]] {
        let shared: Vec<SharedFile> =
            names.iter().map(|name| SharedFile { name: name.to_string(), source: memory(b"") }).collect();
        assert!(UnitFiles::new(memory(b""), &shared, JOB_TIME).is_err(), "{names:?}");
    }
}

#[test]
fn a_blob_that_cannot_be_read_is_a_host_problem_not_an_errno() {
    // A blob file shorter than its announced size (cut on this host's disk).
    let file = std::fs::File::open("/dev/null").unwrap();
    let missing = FileSource::Disk { file: file.into(), size: 10 };
    let mut files = UnitFiles::new(missing, &[], JOB_TIME).unwrap();
    let mut buffer = [0u8; 4];
    assert!(matches!(files.read_stdin(&mut buffer), Err(FileError::Host(_))));
}
