//! What the shell keeps in memory per job: its stored description and module bytes, and
//! how to build a unit's input and lease.

use super::job_modules::JobContext;
use crate::store::{Store, StoreError, StoreResult, StoredInput, StoredJob};
use std::sync::Arc;
use wasmhive_protocol::{BlobRef, Hash, JobTerms, Lease};
use wasmhive_sandbox::{FileSource, ModuleBytes, SharedFile};

pub struct JobRuntime {
    pub stored: StoredJob,
    pub module: Arc<Vec<u8>>,
    pub validator: Option<ModuleBytes>,
    pub reducer: Option<ModuleBytes>,
    /// When this run of the owner built the job's first lease (submit-to-first-lease).
    pub first_lease: std::sync::OnceLock<std::time::Instant>,
}

impl JobRuntime {
    /// The job with its modules, read from the store's blobs.
    pub fn load(stored: StoredJob, store: &Store) -> StoreResult<JobRuntime> {
        let blob = |hash: &Hash, what: &str| {
            store.blob(hash)?.ok_or_else(|| {
                StoreError::Corrupt(format!("{what} {hash} of job {} is missing", stored.job_id))
            })
        };
        let module = Arc::new(blob(&stored.module_hash, "module")?);
        let validator =
            stored.validator.map(|hash| blob(&hash, "validator").map(ModuleBytes::new)).transpose()?;
        let reducer = stored.reducer.map(|hash| blob(&hash, "reducer").map(ModuleBytes::new)).transpose()?;
        Ok(JobRuntime { stored, module, validator, reducer, first_lease: std::sync::OnceLock::new() })
    }

    /// What the owner's runs of the job's validator and reducer need.
    pub fn context(&self) -> JobContext<'_> {
        JobContext {
            job_id: &self.stored.job_id,
            limits: &self.stored.limits,
            job_time_s: self.stored.created_s,
            nan_canonicalization: self.stored.nan_canonicalization,
        }
    }

    /// The job's shared files, opened in the owner's blob store (`/shared/NAME`).
    pub fn shared_files(&self, blobs: &wasmhive_blobs::BlobStore) -> StoreResult<Vec<SharedFile>> {
        let job_id = &self.stored.job_id;
        let opened = |file: &wasmhive_protocol::api::BlobInput| -> StoreResult<SharedFile> {
            let blob = blobs.open_blob(&file.hash).map_err(|error| {
                StoreError::Corrupt(format!("shared file {} of job {job_id}: {error}", file.name))
            })?;
            Ok(SharedFile {
                name: file.name.clone(),
                source: FileSource::Disk { file: blob.into(), size: file.size },
            })
        };
        self.stored.shared.iter().map(opened).collect()
    }

    /// The unit's input and a label for people (the range text, line, file or blob name).
    /// A blob input is opened in the owner's blob store, to be read as the unit runs.
    pub fn unit_input(
        &self,
        store: &Store,
        blobs: &wasmhive_blobs::BlobStore,
        unit_index: u64,
    ) -> StoreResult<(String, FileSource)> {
        if let Some(text) = self.range_input(unit_index) {
            return Ok((text.clone(), FileSource::Memory(text.into_bytes().into())));
        }
        let Some((label, input)) = store.unit_input(&self.stored.job_id, unit_index)? else {
            return Ok((String::new(), FileSource::Memory(Vec::new().into())));
        };
        let source = match input {
            StoredInput::Bytes(bytes) => FileSource::Memory(bytes.into()),
            StoredInput::Blob(hash) => {
                let corrupt = |error: wasmhive_blobs::BlobError| {
                    StoreError::Corrupt(format!("unit {unit_index} of job {}: {error}", self.stored.job_id))
                };
                let file = blobs.open_blob(&hash).map_err(corrupt)?;
                let size = blobs
                    .size(&hash)
                    .ok_or_else(|| corrupt(wasmhive_blobs::BlobError::Missing(hash.to_hex())))?;
                FileSource::Disk { file: file.into(), size }
            }
        };
        Ok((label, source))
    }

    /// What a lease of the unit carries: its input's bytes, or the blob that holds them
    /// (read by the worker in pieces, never by the owner here).
    pub fn lease_input(
        &self,
        store: &Store,
        blobs: &wasmhive_blobs::BlobStore,
        unit_index: u64,
    ) -> StoreResult<LeaseInput> {
        if let Some(text) = self.range_input(unit_index) {
            return Ok(LeaseInput::Bytes(text.into_bytes()));
        }
        match store.unit_input(&self.stored.job_id, unit_index)? {
            None => Ok(LeaseInput::Bytes(Vec::new())),
            Some((_, StoredInput::Bytes(bytes))) => Ok(LeaseInput::Bytes(bytes)),
            Some((_, StoredInput::Blob(hash))) => {
                let size = blobs.size(&hash).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "unit {unit_index} of job {}: its input blob {} is gone",
                        self.stored.job_id,
                        hash.to_hex()
                    ))
                })?;
                Ok(LeaseInput::Blob(BlobRef { hash, size }))
            }
        }
    }

    /// The unit's label for people, without reading its input.
    pub fn unit_label(&self, store: &Store, unit_index: u64) -> StoreResult<String> {
        match self.range_input(unit_index) {
            Some(text) => Ok(text),
            None => Ok(store
                .unit_input(&self.stored.job_id, unit_index)?
                .map(|(label, _)| label)
                .unwrap_or_default()),
        }
    }

    /// The input of a unit of a range job, computed (no store needed), which is also its
    /// label; `None` for jobs whose inputs are stored.
    pub fn range_input(&self, unit_index: u64) -> Option<String> {
        use std::fmt::Write as _;
        let (start, end, step) = self.stored.range?;
        // Saturating: a range may end at 2^64 - 1.
        let from = start.saturating_add(unit_index.saturating_mul(step));
        // Two u64s and a space: one allocation, never grown.
        let mut text = String::with_capacity(2 * 20 + 1);
        write!(text, "{from} {}", from.saturating_add(step).min(end))
            .expect("writing to a String cannot fail");
        Some(text)
    }

    /// What every lease of this job shares, numbered for one session.
    pub fn terms(&self, terms_id: u32) -> JobTerms {
        JobTerms {
            terms_id,
            job_id: self.stored.job_id.clone(),
            task_name: self.stored.task_name.clone(),
            module: self.stored.module_hash,
            args: self.stored.args.clone(),
            limits: self.stored.limits.clone(),
            job_time_s: self.stored.created_s,
            nan_canonicalization: self.stored.nan_canonicalization,
            shared: self.stored.shared.clone(),
        }
    }
}

/// A lease as the owner grants it; a session turns it into a wire [`Lease`] that refers to
/// its job's terms by the session's number for them.
pub struct GrantedLease {
    job: Arc<JobRuntime>,
    pub lease_id: u64,
    pub unit_index: u64,
    pub input: LeaseInput,
}

/// A lease's input: its bytes, or the blob the worker fetches in pieces.
pub enum LeaseInput {
    Bytes(Vec<u8>),
    Blob(BlobRef),
}

impl LeaseInput {
    /// Bytes the lease message carries.
    pub fn inline_bytes(&self) -> usize {
        match self {
            LeaseInput::Bytes(bytes) => bytes.len(),
            LeaseInput::Blob(_) => 0,
        }
    }
}

impl GrantedLease {
    pub(super) fn new(
        job: Arc<JobRuntime>,
        lease_id: u64,
        unit_index: u64,
        input: LeaseInput,
    ) -> GrantedLease {
        GrantedLease { job, lease_id, unit_index, input }
    }

    /// The input bytes the lease carries (none when the input is a blob).
    pub fn inline_input(&self) -> &[u8] {
        match &self.input {
            LeaseInput::Bytes(bytes) => bytes,
            LeaseInput::Blob(_) => &[],
        }
    }

    /// The blob the worker must fetch for this lease, if any.
    pub fn input_blob(&self) -> Option<BlobRef> {
        match &self.input {
            LeaseInput::Blob(blob) => Some(*blob),
            LeaseInput::Bytes(_) => None,
        }
    }

    pub fn job_id(&self) -> &str {
        &self.job.stored.job_id
    }

    /// The job's terms under `terms_id`.
    pub fn terms(&self, terms_id: u32) -> JobTerms {
        self.job.terms(terms_id)
    }

    /// The blobs a worker fetches to run this lease: its input, if a blob, and the job's
    /// shared files.
    pub fn blobs_to_fetch(&self) -> Vec<Hash> {
        let input = self.input_blob().map(|blob| blob.hash);
        input.into_iter().chain(self.job.stored.shared.iter().map(|file| file.hash)).collect()
    }

    pub fn into_lease(self, terms_id: u32) -> Lease {
        let (input, input_blob) = match self.input {
            LeaseInput::Bytes(bytes) => (bytes, None),
            LeaseInput::Blob(blob) => (Vec::new(), Some(blob)),
        };
        Lease { lease_id: self.lease_id, terms_id, unit_index: self.unit_index, input, input_blob }
    }
}
