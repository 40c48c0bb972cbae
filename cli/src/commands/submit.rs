//! `wasmhive submit`: send a job spec to a coordinator; optionally wait with a progress bar.
//! The job id is printed alone on the last line of stdout; everything else goes to stderr.

use crate::client::{Client, Connection};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use wasmhive_coordinator::job_spec::{InputFile, load_job_spec};
use wasmhive_coordinator::server::SUBMISSION_BYTES_MAX;
use wasmhive_protocol::Hash;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::api::{JobStatus, SubmitAnswer};

#[derive(Args)]
pub struct SubmitArgs {
    /// The job spec (TOML).
    spec: PathBuf,
    #[command(flatten)]
    connection: Connection,
    /// Wait for the job to finish, with a progress bar.
    #[arg(long)]
    wait: bool,
}

pub fn submit(arguments: SubmitArgs) -> anyhow::Result<i32> {
    let spec = load_job_spec(&arguments.spec, &|name| task_modules::by_name(name).map(<[u8]>::to_vec))?;
    let client = arguments.connection.client()?;
    upload_input_files(&client, &spec.input_files)?;
    let submission = spec.submission;
    let body = serde_json::to_vec(&submission)?;
    check_submission_size(body.len(), SUBMISSION_BYTES_MAX)?;
    let answer: SubmitAnswer = client.post_json("/api/jobs", body)?;
    eprintln!("submitted {} ({} units, quorum {})", answer.job_id, answer.units, submission.quorum);
    let code = if arguments.wait { wait_for_job(&client, &answer.job_id)? } else { 0 };
    println!("{}", answer.job_id);
    Ok(code)
}

/// A job description larger than an owner takes is refused here, saying what to do: sent,
/// the owner would stop reading it and the client would see only a broken connection.
fn check_submission_size(bytes: usize, limit: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        bytes <= limit,
        "the job description is {} MiB, over the owner's limit of {} MiB per submission: a `lines` \
         job's inputs travel inside it. Put large inputs in files (`[inputs] files = \"data/*.bin\"`, \
         uploaded as blobs first, up to 1 GiB per unit) or split the lines into several jobs",
        bytes.div_ceil(1 << 20),
        limit >> 20
    );
    Ok(())
}

/// Uploads each input file the owner does not have yet as a blob, one file in memory at
/// a time (each is at most the per-unit input limit), so the submission itself names the
/// inputs by hash and stays small.
fn upload_input_files(client: &Client, files: &[InputFile]) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let (mut uploaded, mut uploaded_bytes, mut present) = (0, 0u64, 0);
    for file in files {
        if client.has_blob(&file.hash)? {
            present += 1;
            continue;
        }
        let bytes = std::fs::read(&file.path).with_context(|| format!("reading {}", file.path.display()))?;
        anyhow::ensure!(
            Hash::of(&bytes) == file.hash,
            "{} changed while it was being submitted; submit again",
            file.path.display()
        );
        client.put_blob(&file.hash, bytes).with_context(|| format!("uploading {}", file.path.display()))?;
        uploaded += 1;
        uploaded_bytes += file.size;
    }
    eprintln!(
        "inputs: {uploaded} files uploaded ({:.1} MiB), {present} already on the owner",
        uploaded_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Follows the job's progress stream until the job ends, drawing units verified/total,
/// rate and ETA. Returns 0 when every unit verified, 1 when some failed or the job was
/// cancelled.
pub fn wait_for_job(client: &Client, job_id: &str) -> anyhow::Result<i32> {
    let mut bar: Option<ProgressBar> = None;
    let mut last: Option<JobStatus> = None;
    for line in client.get_lines(&format!("/api/jobs/{job_id}/progress"))? {
        let status: JobStatus = serde_json::from_str(&line?)
            .context("the owner's progress stream sent something that is not a status")?;
        let bar = bar.get_or_insert_with(|| progress_bar(status.units));
        bar.set_position(status.verified + status.failed);
        bar.set_message(format!(
            "{} verified · {} failed · {} leased",
            status.verified, status.failed, status.leased
        ));
        last = Some(status);
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let final_status = last.filter(|status| status.state != JobState::Running).with_context(|| {
        format!("the owner's progress stream ended before job {job_id} did; see `wasmhive status {job_id}`")
    })?;
    eprintln!(
        "{}: {} · {} of {} units verified, {} failed",
        final_status.job_id,
        final_status.state,
        final_status.verified,
        final_status.units,
        final_status.failed
    );
    Ok(if final_status.state == JobState::Completed && final_status.failed == 0 { 0 } else { 1 })
}

pub fn progress_bar(units: u64) -> ProgressBar {
    let bar = ProgressBar::new(units);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} units · {per_sec} · ETA {eta} · {msg}")
            .expect("the template is valid"),
    );
    bar
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_submission_over_the_owners_limit_is_refused_with_the_fix() {
        assert!(super::check_submission_size(1 << 20, 1 << 20).is_ok());
        let refused = super::check_submission_size((3 << 20) + 1, 2 << 20).unwrap_err().to_string();
        assert!(refused.contains("4 MiB, over the owner's limit of 2 MiB"), "{refused}");
        assert!(refused.contains("files = ") && refused.contains("split"), "{refused}");
    }
}
