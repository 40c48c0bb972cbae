//! Checking a submitted job before anything is stored, and naming it.

use super::state::ApiProblem;
use crate::job_spec::{QUORUM_MAX, UNIT_INPUT_BYTES_MAX, UNITS_MAX, unit_count};
use wasmhive_protocol::INPUT_BLOB_BYTES_MAX;
use wasmhive_protocol::api::{BlobInput, JobInputs, JobSubmission};

/// Longest job name, in characters (shown in terminals and on the dashboard).
pub const NAME_CHARS_MAX: usize = 200;
/// Longest task name (argv[0]), in characters.
pub const TASK_NAME_CHARS_MAX: usize = 64;
/// Most arguments, and most bytes of them all together.
pub const ARGS_MAX: usize = 256;
pub const ARGS_BYTES_MAX: usize = 64 << 10;
/// Largest module, validator or reducer.
pub const MODULE_BYTES_MAX: usize = 32 << 20;

/// The API's own check of a submission: HTTP clients need not have used the job-spec parser.
pub fn validate_submission(submission: &JobSubmission) -> Result<(), ApiProblem> {
    let problem = |text: String| Err(ApiProblem::bad_request(text));
    check_names_and_args(submission).map_err(ApiProblem::bad_request)?;
    for (key, bytes) in [("validator", &submission.validator), ("reducer", &submission.reducer)] {
        if let Some(bytes) = bytes
            && (!bytes.starts_with(b"\0asm") || bytes.len() > MODULE_BYTES_MAX)
        {
            return problem(format!("{key} must be a WebAssembly binary of at most 32 MiB"));
        }
    }
    if let JobInputs::Lines { lines } = &submission.inputs
        && let Some(index) = lines.iter().position(|line| line.len() > UNIT_INPUT_BYTES_MAX)
    {
        return problem(format!(
            "input line {index} is larger than {UNIT_INPUT_BYTES_MAX} bytes per unit; split it"
        ));
    }
    if submission.quorum == 0 || submission.quorum > QUORUM_MAX {
        return problem(format!("quorum {} must be 1 to {QUORUM_MAX}", submission.quorum));
    }
    if submission.max_replicas < submission.quorum || submission.max_replicas > 4 * QUORUM_MAX {
        return problem(format!(
            "max_replicas {} must be from quorum to {}",
            submission.max_replicas,
            4 * QUORUM_MAX
        ));
    }
    if !submission.module.starts_with(b"\0asm") || submission.module.len() > MODULE_BYTES_MAX {
        return problem("module must be a WebAssembly binary of at most 32 MiB".into());
    }
    if let JobInputs::Range { start, end, step } = submission.inputs
        && (start >= end || step == 0)
    {
        return problem(format!("range {start}..{end} step {step} must have start < end and step ≥ 1"));
    }
    if let JobInputs::Files { files } = &submission.inputs
        && let Some(file) = files.iter().find(|file| file.bytes.len() > UNIT_INPUT_BYTES_MAX)
    {
        return problem(format!(
            "input file {} is larger than {UNIT_INPUT_BYTES_MAX} bytes per unit; split it",
            file.name
        ));
    }
    let shared = submission.shared.iter().map(|file| (file.name.as_str(), file.size));
    wasmhive_protocol::api::check_shared_files(shared).map_err(ApiProblem::bad_request)?;
    let units = unit_count(&submission.inputs);
    if units == 0 || units > UNITS_MAX {
        return problem(format!("the job has {units} units; give 1 to {UNITS_MAX}"));
    }
    submission.limits.check().map_err(|error| ApiProblem::bad_request(error.to_string()))
}

/// Every blob a job's units read is on this owner, of the size the submission says, and
/// within the per-unit limit.
pub fn check_blob_inputs(store: &wasmhive_blobs::BlobStore, blobs: &[BlobInput]) -> Result<(), ApiProblem> {
    for blob in blobs {
        let hash = blob.hash.to_hex();
        match store.size(&blob.hash) {
            None => {
                return Err(ApiProblem::bad_request(format!(
                    "input {} (blob {hash}) is not on this owner: upload it first with PUT /api/blobs/{hash}",
                    blob.name
                )));
            }
            Some(size) if size != blob.size => {
                return Err(ApiProblem::bad_request(format!(
                    "input {} (blob {hash}) is {size} bytes, not the {} the submission says",
                    blob.name, blob.size
                )));
            }
            Some(size) if size > INPUT_BLOB_BYTES_MAX => {
                return Err(ApiProblem::bad_request(format!(
                    "input {} is {size} bytes, above the {INPUT_BLOB_BYTES_MAX}-byte limit per unit; split it",
                    blob.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The name is printable and short, the task name a short word, the args few, short and
/// free of NUL bytes (WASI passes them as C strings).
fn check_names_and_args(submission: &JobSubmission) -> Result<(), String> {
    let name = &submission.name;
    if name.chars().count() > NAME_CHARS_MAX || name.chars().any(char::is_control) {
        return Err(format!("name must be at most {NAME_CHARS_MAX} characters, without control characters"));
    }
    let task_name = &submission.task_name;
    if task_name.is_empty()
        || task_name.chars().count() > TASK_NAME_CHARS_MAX
        || task_name.chars().any(char::is_control)
    {
        return Err(format!(
            "task_name must be 1 to {TASK_NAME_CHARS_MAX} characters, without control characters"
        ));
    }
    let args_bytes: usize = submission.args.iter().map(String::len).sum();
    if submission.args.len() > ARGS_MAX || args_bytes > ARGS_BYTES_MAX {
        return Err(format!("args: at most {ARGS_MAX} arguments of {ARGS_BYTES_MAX} bytes in all"));
    }
    if submission.args.iter().any(|arg| arg.contains('\0')) {
        return Err("args must not contain NUL bytes".into());
    }
    Ok(())
}

/// `NAME-xxxxxxxx`: the job's name (letters, digits, dashes) and 8 random hex digits.
pub fn new_job_id(name: &str) -> String {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("the OS random source works");
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect::<String>()
        .to_lowercase();
    let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    if slug.is_empty() { suffix } else { format!("{slug}-{suffix}") }
}
