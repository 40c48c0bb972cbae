//! Disk budgets for blobs (issue 16, item 6): a worker keeps within `--blob-cache`,
//! evicting the least recently used blobs no queued or running unit reads; an owner
//! keeps within its `--blob-cache`, evicting blobs no running job reads. A blob in use is
//! never evicted, even over budget.

use crate::grid_support::{TestGrid, submit};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmhive_protocol::Hash;
use wasmhive_tests::grid::{start_coordinator_with, start_worker_with};

/// Writes `NAME.bin` of `mib` MiB and a spec whose 3 units each checksum it (`probe
/// files`); returns the spec's path, the blob's hash and its checksum line.
fn job_reading(directory: &Path, name: &str, mib: usize, seed: u8) -> (String, Hash, String) {
    let data: Vec<u8> = (0..mib << 20).map(|index| (index % 241) as u8 ^ seed).collect();
    std::fs::write(directory.join(format!("{name}.bin")), &data).unwrap();
    let sum = data.iter().fold(0u64, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    let spec = directory.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\nmodule = \"probe\"\nargs = [\"files\"]\n[inputs]\nrange = {{ start = 0, end = 3, step = 1 }}\n\
             shared = [\"{name}.bin\"]\n[verify]\nquorum = 1\n"
        ),
    )
    .unwrap();
    let line = format!("/shared/{name}.bin: {} bytes, sum {sum},", data.len());
    (spec.to_str().unwrap().to_string(), Hash::of(&data), line)
}

fn holds(blob_folder: &Path, hash: &Hash) -> bool {
    blob_folder.join("complete").join(hash.to_hex()).exists()
}

#[test]
fn worker_and_owner_keep_within_their_blob_cache_and_never_evict_a_blob_in_use() {
    let mut grid = TestGrid::start("blob-cache", 0);
    grid.coordinator.kill();
    let (coordinator, address) =
        start_coordinator_with(&grid.coordinator_data, &grid.address.to_string(), &["--blob-cache", "6 MiB"]);
    (grid.coordinator, grid.address) = (coordinator, address);
    let worker_data = grid.directory.path().join("worker");
    grid.workers.push(start_worker_with(grid.address, &worker_data, 1, &["--blob-cache", "6 MiB"]));
    let jobs = grid.directory.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let (worker_blobs, owner_blobs) = (worker_data.join("blobs"), grid.coordinator_data.join("blobs"));

    let mut held = Vec::new();
    for (name, mib, seed) in [("first", 4, 1), ("second", 4, 2), ("large", 8, 3)] {
        let (spec, hash, line) = job_reading(&jobs, name, mib, seed);
        let job_id = submit(grid.address, &grid.coordinator_data, &spec, true);
        for unit in grid.results(&job_id) {
            let output = unit.output.unwrap_or_default();
            assert!(output.contains(&line), "{name}: every unit read the whole blob: {output}");
        }
        held.push(hash);
    }
    // 4 + 4 + 8 MiB went through budgets of 6 MiB: each new blob pushed the older out
    // once the jobs reading them had ended; the 8 MiB blob, over budget alone, stayed
    // while its units ran (they read all of it) and stays as the most recent.
    for (folder, role) in [(&worker_blobs, "worker"), (&owner_blobs, "owner")] {
        assert!(!holds(folder, &held[0]), "{role}: the first blob was evicted");
        assert!(!holds(folder, &held[1]), "{role}: the second blob was evicted for the large one");
    }
    assert!(grid.workers[0].log_text().contains("blobs evicted to stay within --blob-cache"));
    assert!(grid.coordinator.log_text().contains("blobs no running job needs evicted"));
}

/// A grid with one worker of `--blob-cache CACHE` that has run a job of one `probe ARGS`
/// unit per file of `count` files of 1 MiB (quorum 1; `limits` is the spec's `[limits]`).
/// Returns the grid, the worker's blob folder, the files' bytes and the job's id.
fn job_of_files(
    name: &str,
    cache: &str,
    count: u8,
    args: &str,
    limits: &str,
) -> (TestGrid, PathBuf, Vec<Vec<u8>>, String) {
    let mut grid = TestGrid::start(name, 0);
    let worker_data = grid.directory.path().join("worker");
    grid.workers.push(start_worker_with(grid.address, &worker_data, 1, &["--blob-cache", cache]));
    let jobs = grid.directory.path().join("jobs");
    std::fs::create_dir_all(jobs.join("data")).unwrap();
    let files: Vec<Vec<u8>> = (0..count)
        .map(|seed| {
            let data: Vec<u8> = (0..1 << 20).map(|index| (index % 251) as u8 ^ seed).collect();
            std::fs::write(jobs.join("data").join(format!("{seed}.bin")), &data).unwrap();
            data
        })
        .collect();
    let spec = jobs.join("job.toml");
    let text = format!(
        "name = \"{name}\"\nmodule = \"probe\"\nargs = {args}\n[inputs]\nfiles = \"data/*.bin\"\n[verify]\nquorum = 1\n[limits]\n{limits}\n"
    );
    std::fs::write(&spec, text).unwrap();
    let job_id = submit(grid.address, &grid.coordinator_data, spec.to_str().unwrap(), true);
    (grid, worker_data.join("blobs"), files, job_id)
}

/// Waits until at most `most` of `blobs` are left in the blob folder.
fn wait_until_at_most(most: usize, blobs: &[Hash], blob_folder: &Path) {
    let kept = || blobs.iter().filter(|hash| holds(blob_folder, hash)).count();
    wasmhive_tests::grid::wait_until(Duration::from_secs(20), "spent blobs to be evicted", || kept() <= most);
}

/// A unit's input, once the unit has run here, is spent: this worker will not read it
/// again (a unit's replicas run on distinct peers). It is kept only to serve the unit's
/// other replicas, within a quarter of `--blob-cache`, so a worker does not fill its disk
/// and the machine's page cache with inputs it is done with.
#[test]
fn a_worker_keeps_the_inputs_of_units_it_ran_only_within_a_quarter_of_its_blob_cache() {
    let (grid, worker_blobs, files, job_id) =
        job_of_files("spent-inputs", "8 MiB", 8, "[\"count-input\"]", "");
    let results = grid.results(&job_id);
    assert_eq!(results.len(), 8);
    for unit in results {
        let output = unit.output.unwrap_or_default();
        assert!(output.contains("1048576 bytes"), "every unit read its whole input: {output}");
    }
    // 8 MiB of inputs fit the 8 MiB budget; spent, they may keep 2 MiB.
    let inputs: Vec<Hash> = files.iter().map(|data| Hash::of(data)).collect();
    wait_until_at_most(2, &inputs, &worker_blobs);
    assert!(grid.workers[0].log_text().contains("blobs evicted to stay within --blob-cache"));
}

/// An output blob, once the owner has acknowledged its outcome, is spent too: the owner
/// fetched it, and no one else asks a worker for its outputs.
#[test]
fn a_worker_keeps_acknowledged_output_blobs_only_within_a_quarter_of_its_blob_cache() {
    let (grid, worker_blobs, files, job_id) =
        job_of_files("spent-outputs", "16 MiB", 4, "[\"repeat\", \"2\"]", "output = \"4 MiB\"");
    let named: Vec<Hash> =
        grid.results(&job_id).iter().filter_map(|unit| unit.output_blob.map(|blob| blob.hash)).collect();
    assert_eq!(named.len(), 4, "every output travelled as a blob");
    // 4 MiB of inputs and 8 MiB of outputs fit the 16 MiB budget; spent, they may keep 4 MiB.
    let outputs: Vec<Hash> = files.iter().map(|data| Hash::of(&data.repeat(2))).collect();
    wait_until_at_most(2, &outputs, &worker_blobs);
}
