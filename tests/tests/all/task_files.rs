//! Task ABI v2: a unit's read-only files (`/input`, `/shared/NAME`) as guests see them,
//! identical on every host, and the hostile calls a guest can make on them.

use std::io::Write;
use wasmhive_protocol::Status;
use wasmhive_sandbox::{FileSource, Limits, ModuleBytes, Sandbox, SandboxConfig, SharedFile};
use wasmhive_tests::grid::TempDir;
use wasmhive_tests::{UnitFiles, run_unit_with_files, task_module};

fn blob_file(directory: &TempDir, name: &str, bytes: &[u8]) -> FileSource {
    let path = directory.path().join(name);
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    FileSource::Disk { file: std::fs::File::open(&path).unwrap().into(), size: bytes.len() as u64 }
}

fn probe_files(sandbox: &Sandbox, input: FileSource, shared: &[SharedFile]) -> String {
    let files = UnitFiles { input, shared };
    let outcome =
        run_unit_with_files(sandbox, &task_module("probe"), files, &["files"], &Limits::default(), 0);
    assert_eq!(
        outcome.status,
        Status::Success,
        "{} {}",
        outcome.message,
        String::from_utf8_lossy(&outcome.stderr)
    );
    String::from_utf8(outcome.stdout).unwrap()
}

#[test]
fn a_unit_reads_its_input_and_the_shared_files_and_can_change_nothing() {
    let directory = TempDir::new("task-files");
    let sandbox = Sandbox::new(SandboxConfig::default());
    let shared = [
        SharedFile { name: "model.bin".into(), source: blob_file(&directory, "blob-1", &[7u8; 100_000]) },
        SharedFile { name: "labels.txt".into(), source: FileSource::Memory(b"cat\ndog\n".as_slice().into()) },
    ];
    let text = probe_files(&sandbox, FileSource::Memory(b"unit input".as_slice().into()), &shared);
    let expected = "list /: [\"input\", \"shared\"]\n\
                    list /shared: [\"labels.txt\", \"model.bin\"]\n\
                    list shared/..: [\"input\", \"shared\"]\n\
                    /input: 10 bytes, sum 3190246598316590, modified 0s, read-only true\n\
                    /shared/labels.txt: 8 bytes, sum 2813169959746, modified 0s, read-only true\n\
                    /shared/model.bin: 100000 bytes, sum 14624008726879643136, modified 0s, read-only true\n";
    assert!(text.starts_with(expected), "{text}");
    assert!(text.contains("stdin is /input: true"), "{text}");
    for refusal in [
        "create: Err(ReadOnlyFilesystem)",
        "overwrite: Err(ReadOnlyFilesystem)",
        "remove: Err(ReadOnlyFilesystem)",
        "mkdir: Err(ReadOnlyFilesystem)",
        "escape: Err(",
    ] {
        assert!(text.contains(refusal), "{refusal:?} not in {text}");
    }
}

#[test]
fn replicas_on_different_hosts_see_the_same_files() {
    // The same bytes from memory, and from two files written at different times at
    // different paths (different inodes, mtimes and directory orders on the host).
    let sandbox = Sandbox::new(SandboxConfig::default());
    let first_host = TempDir::new("task-files-host-1");
    let second_host = TempDir::new("task-files-host-2");
    let shared_bytes: [(&str, &[u8]); 3] = [("z", b"last"), ("a", b"first"), ("m", &[0u8; 5000])];
    let shared_on = |host: Option<&TempDir>| -> Vec<SharedFile> {
        shared_bytes
            .iter()
            .map(|(name, bytes)| SharedFile {
                name: name.to_string(),
                source: match host {
                    Some(host) => blob_file(host, &format!("blob-{name}"), bytes),
                    None => FileSource::Memory((*bytes).into()),
                },
            })
            .collect()
    };
    let in_memory = probe_files(&sandbox, FileSource::Memory(b"x".as_slice().into()), &shared_on(None));
    let on_first =
        probe_files(&sandbox, blob_file(&first_host, "input", b"x"), &shared_on(Some(&first_host)));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let on_second =
        probe_files(&sandbox, blob_file(&second_host, "input", b"x"), &shared_on(Some(&second_host)));
    assert_eq!(in_memory, on_first);
    assert_eq!(in_memory, on_second);
    assert!(in_memory.contains("list /shared: [\"a\", \"m\", \"z\"]"), "{in_memory}");
}

#[test]
fn a_gigabyte_input_is_read_from_its_blob_as_the_unit_runs() {
    let directory = TempDir::new("task-files-gigabyte");
    let path = directory.path().join("input");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    let input = FileSource::Disk { file: std::fs::File::open(&path).unwrap().into(), size: 1 << 30 };
    let sandbox = Sandbox::new(SandboxConfig::default());
    let files = UnitFiles { input, shared: &[] };
    let outcome =
        run_unit_with_files(&sandbox, &task_module("probe"), files, &["count-input"], &Limits::default(), 0);
    assert_eq!(outcome.status, Status::Success, "{}", outcome.message);
    assert_eq!(String::from_utf8_lossy(&outcome.stdout), "1073741824 bytes, sum 0\n");
}

#[test]
fn a_blob_cut_short_on_this_host_is_a_host_failure_never_a_result() {
    let directory = TempDir::new("task-files-cut");
    // Announced as 1 MiB, but only 10 bytes are on this host's disk.
    let FileSource::Disk { file, .. } = blob_file(&directory, "input", b"ten bytes.") else { unreachable!() };
    let files = UnitFiles { input: FileSource::Disk { file, size: 1 << 20 }, shared: &[] };
    let sandbox = Sandbox::new(SandboxConfig::default());
    let outcome =
        run_unit_with_files(&sandbox, &task_module("probe"), files, &["count-input"], &Limits::default(), 0);
    assert_eq!(outcome.status, Status::HostTimeout, "{}", outcome.message);
    assert!(outcome.message.contains("could not read a file of the unit"), "{}", outcome.message);
}

/// A guest calling the file functions with hostile arguments gets errnos, never the host's
/// files, and never a crash. Each call's errno is printed as one byte.
#[test]
fn hostile_file_calls_get_errnos() {
    let guest = ModuleBytes::new(wat::parse_str(HOSTILE_FILE_CALLS).unwrap());
    let sandbox = Sandbox::new(SandboxConfig::default());
    let files = UnitFiles { input: FileSource::Memory(b"abc".as_slice().into()), shared: &[] };
    let outcome = run_unit_with_files(&sandbox, &guest, files, &[], &Limits::default(), 0);
    assert_eq!(outcome.status, Status::Success, "{}", outcome.message);
    let errnos: Vec<u8> = outcome.stdout;
    // path_open: absolute, escaping, out-of-bounds path, huge length, fd 77, fd 0;
    // fd_read into memory past the end, an iovec table past the end, 5,000 iovecs;
    // fd_readdir: a buffer past the end, on a file; fd_prestat_dir_name into 0 bytes;
    // path_filestat_get on a missing file; fd_seek on the directory.
    assert_eq!(errnos, [76, 76, 21, 21, 8, 8, 21, 21, 28, 21, 54, 37, 44, 8], "{errnos:?}");
}

const HOSTILE_FILE_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "/etc/passwd")
  (data (i32.const 120) "../etc/passwd")
  (data (i32.const 140) "input")
  (data (i32.const 150) "missing")
  (global $out (mut i32) (i32.const 1000))
  (func $record (param $errno i32)
    (i32.store8 (global.get $out) (local.get $errno))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $open (param $fd i32) (param $path i32) (param $length i32) (result i32)
    (call $path_open (local.get $fd) (i32.const 0) (local.get $path) (local.get $length)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
  (func (export "_start")
    (call $record (call $open (i32.const 3) (i32.const 100) (i32.const 11)))
    (call $record (call $open (i32.const 3) (i32.const 120) (i32.const 13)))
    (call $record (call $open (i32.const 3) (i32.const 65530) (i32.const 100)))
    (call $record (call $open (i32.const 3) (i32.const 100) (i32.const -1)))
    (call $record (call $open (i32.const 77) (i32.const 140) (i32.const 5)))
    (call $record (call $open (i32.const 0) (i32.const 140) (i32.const 5)))
    ;; fd_read from stdin into an iovec that points past the end of memory
    (i32.store (i32.const 300) (i32.const 65534))
    (i32.store (i32.const 304) (i32.const 100))
    (call $record (call $fd_read (i32.const 0) (i32.const 300) (i32.const 1) (i32.const 400)))
    (call $record (call $fd_read (i32.const 0) (i32.const 65532) (i32.const 1) (i32.const 400)))
    (call $record (call $fd_read (i32.const 0) (i32.const 300) (i32.const 5000) (i32.const 400)))
    (call $record (call $fd_readdir (i32.const 3) (i32.const 65500) (i32.const 4096) (i64.const 0) (i32.const 400)))
    ;; open /input (fd 4), then list it
    (drop (call $open (i32.const 3) (i32.const 140) (i32.const 5)))
    (call $record (call $fd_readdir (i32.const 4) (i32.const 500) (i32.const 100) (i64.const 0) (i32.const 400)))
    (call $record (call $dir_name (i32.const 3) (i32.const 500) (i32.const 0)))
    (call $record (call $stat (i32.const 3) (i32.const 0) (i32.const 150) (i32.const 7) (i32.const 500)))
    (call $record (call $seek (i32.const 3) (i64.const 0) (i32.const 0) (i32.const 400)))
    ;; print the errnos
    (i32.store (i32.const 300) (i32.const 1000))
    (i32.store (i32.const 304) (i32.sub (global.get $out) (i32.const 1000)))
    (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 400)))))
"#;

/// Item 8 of issue 16: a job's shared data, uploaded once, fetched once by each worker in
/// verified pieces, read by every unit of a quorum-2 job; replicas on two workers agree.
#[test]
fn every_unit_of_a_quorum_two_job_reads_the_shared_files() {
    let grid = crate::grid_support::TestGrid::start("shared-files", 2);
    let directory = grid.directory.path().join("shared-job");
    std::fs::create_dir_all(&directory).unwrap();
    let model: Vec<u8> = (0..700_000u32).map(|index| (index % 251) as u8).collect();
    std::fs::write(directory.join("model.bin"), &model).unwrap();
    std::fs::write(directory.join("labels.txt"), b"cat\ndog\n").unwrap();
    let spec = directory.join("job.toml");
    std::fs::write(
        &spec,
        "name = \"shared\"\nmodule = \"probe\"\nargs = [\"files\"]\n\
         [inputs]\nrange = { start = 0, end = 6, step = 1 }\nshared = [\"model.bin\", \"labels.txt\"]\n\
         [verify]\nquorum = 2\n",
    )
    .unwrap();
    let job_id = grid.submit(spec.to_str().unwrap(), true);
    let results = grid.results(&job_id);
    assert_eq!(results.len(), 6);
    let sum = model.iter().fold(0u64, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    for result in &results {
        let output = result.output.as_deref().unwrap_or_default();
        assert!(output.contains("list /shared: [\"labels.txt\", \"model.bin\"]"), "{output}");
        assert!(output.contains(&format!("/shared/model.bin: 700000 bytes, sum {sum},")), "{output}");
        assert!(output.contains("/shared/labels.txt: 8 bytes"), "{output}");
        assert_eq!(result.replica_peers.len(), 2, "both workers agreed: {result:?}");
    }
}
