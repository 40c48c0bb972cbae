//! The job spec: a TOML file a user writes (DESIGN.md section 5), turned into a
//! [`JobSubmission`]. Every error names the file, the key and the fix.
//!
//! ```toml
//! name = "primes"
//! module = "primes.wasm"      # relative to this file, or a built-in task name
//! args = []
//! nan_canonicalization = false  # default: every replica on the owner's engine class; true: any ISA, slower floats
//! [inputs]                    # exactly one of range, lines, files
//! range = { start = 0, end = 100_000_000, step = 1_000_000 }
//! reducer = "sum-columns"   # optional: folds the accepted outputs into one result
//! [verify]
//! quorum = 2
//! max_replicas = 5
//! policy = "quorum"          # or "adaptive": trusted peers' results may stand alone
//! spot_check = 0.05          # adaptive: fraction of trusted results checked anyway
//! known_answers = 2          # known-answer units for a peer with a shorter record
//! decoys = 0.02              # fraction of fresh units that are decided units in disguise
//! validator = "tolerant-compare"  # optional: says whether two outputs agree
//! [limits]
//! fuel = 50_000_000_000
//! memory = "256 MiB"
//! output = "1 MiB"
//! lease = "10m"
//! timeout = "10m"
//! ```

use crate::human_units::{parse_byte_size, parse_duration};
use std::path::{Path, PathBuf};
use toml::{Table, Value};
use wasmhive_protocol::api::{BlobInput, JobInputs, JobLimits, JobSubmission, VerifyPolicy, VerifySettings};
use wasmhive_protocol::{Hash, INPUT_BLOB_BYTES_MAX};

/// Most units one job may have.
pub const UNITS_MAX: u64 = 10_000_000;
/// Largest input of one unit that travels inline in its lease (lines, files in a JSON
/// submission); a spec's files are blobs, up to [`wasmhive_protocol::INPUT_BLOB_BYTES_MAX`].
pub const UNIT_INPUT_BYTES_MAX: usize = 16 << 20;
/// Most replicas a unit may need.
pub const QUORUM_MAX: u32 = 16;

/// A problem in a job spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {key}: {problem}; {fix}")]
pub struct JobSpecError {
    pub file: String,
    /// The key at fault (`verify.quorum`), or `(file)` for the file as a whole.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

/// Reads and checks the job spec at `path`. `builtin_module` resolves a module name that is
/// not a file (e.g. `primes`) to the bytes of a built-in task.
/// A job spec read: the submission, and the local files its blob inputs come from (to
/// upload before submitting; a `files` spec's inputs are hashed, not read into memory).
pub struct LoadedSpec {
    pub submission: JobSubmission,
    pub input_files: Vec<InputFile>,
}

/// A file a blob input comes from.
pub struct InputFile {
    pub hash: Hash,
    pub size: u64,
    pub path: PathBuf,
}

pub fn load_job_spec(
    path: &Path,
    builtin_module: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<LoadedSpec, JobSpecError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        SpecReader::at(path).error("(file)", format!("cannot read it: {error}"), "check the path")
    })?;
    parse_job_spec(&text, path, builtin_module)
}

/// Checks the text of a job spec as if read from `path` (files it names are relative to
/// `path`'s folder).
pub fn parse_job_spec(
    text: &str,
    path: &Path,
    builtin_module: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<LoadedSpec, JobSpecError> {
    let spec = SpecReader::at(path);
    let table: Table = text.parse().map_err(|error: toml::de::Error| {
        spec.error(
            "(file)",
            format!("not valid TOML: {}", error.message()),
            "fix the syntax at the place shown",
        )
    })?;
    let submission = spec.submission(&table, builtin_module)?;
    Ok(LoadedSpec { submission, input_files: spec.input_files.take() })
}

struct SpecReader {
    file: String,
    dir: PathBuf,
    /// The files of a `files` input, as `files()` found them.
    input_files: std::cell::RefCell<Vec<InputFile>>,
}

impl SpecReader {
    fn at(path: &Path) -> SpecReader {
        SpecReader {
            file: path.display().to_string(),
            dir: path.parent().unwrap_or(Path::new(".")).into(),
            input_files: Default::default(),
        }
    }
}

const TOP_KEYS: &[&str] =
    &["name", "module", "args", "nan_canonicalization", "inputs", "verify", "limits", "reducer"];
const VERIFY_KEYS: &[&str] =
    &["quorum", "max_replicas", "policy", "spot_check", "known_answers", "decoys", "validator"];

impl SpecReader {
    fn error(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) -> JobSpecError {
        JobSpecError {
            file: self.file.clone(),
            key: key.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn submission(
        &self,
        table: &Table,
        builtin_module: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<JobSubmission, JobSpecError> {
        self.reject_unknown_keys(table, "", TOP_KEYS)?;
        let module_name = self.required_string(table, "module", "module", "set `module = \"task.wasm\"`")?;
        let (task_name, module) = self.module("module", &module_name, builtin_module)?;
        let name = self.optional_string(table, "name", "name")?.unwrap_or_else(|| task_name.clone());
        let verify = self.sub_table(table, "verify")?;
        self.reject_unknown_keys(&verify, "verify.", VERIFY_KEYS)?;
        let quorum = self.integer(&verify, "verify.quorum", "quorum")?.unwrap_or(2);
        if quorum == 0 || quorum > u64::from(QUORUM_MAX) {
            return Err(self.error(
                "verify.quorum",
                format!("{quorum} is out of range"),
                "use 1 to 16 (2 or more to verify)",
            ));
        }
        let max_replicas =
            self.integer(&verify, "verify.max_replicas", "max_replicas")?.unwrap_or(quorum + 3);
        if max_replicas < quorum || max_replicas > 4 * u64::from(QUORUM_MAX) {
            return Err(self.error(
                "verify.max_replicas",
                format!("{max_replicas} is below quorum {quorum} or above 64"),
                "use at least the quorum (quorum + 3 is usual)",
            ));
        }
        Ok(JobSubmission {
            name,
            task_name,
            module,
            args: self.args(table)?,
            inputs: self.inputs(table)?,
            shared: self.shared(table)?,
            quorum: quorum as u32,
            max_replicas: max_replicas as u32,
            verify: self.verify_settings(&verify)?,
            limits: self.limits(table)?,
            nan_canonicalization: self.optional_bool(table, "nan_canonicalization")?.unwrap_or(false),
            validator: self.optional_module(&verify, "verify.validator", "validator", builtin_module)?,
            reducer: self.optional_module(table, "reducer", "reducer", builtin_module)?,
        })
    }

    fn verify_settings(&self, verify: &Table) -> Result<VerifySettings, JobSpecError> {
        let policy = match self.optional_string(verify, "verify.policy", "policy")?.as_deref() {
            None | Some("quorum") => VerifyPolicy::Quorum,
            Some("adaptive") => VerifyPolicy::Adaptive,
            Some(other) => {
                return Err(self.error(
                    "verify.policy",
                    format!("\"{other}\" is not a policy"),
                    "use \"quorum\" (every unit replicated) or \"adaptive\" (trusted peers' results may stand alone)",
                ));
            }
        };
        let defaults = VerifySettings::default();
        let spot_check = match verify.get("spot_check") {
            None => defaults.spot_check,
            Some(Value::Float(fraction)) if (0.0..=1.0).contains(fraction) => *fraction,
            Some(Value::Integer(whole)) if (0..=1).contains(whole) => *whole as f64,
            Some(other) => {
                return Err(self.error(
                    "verify.spot_check",
                    format!("{} is not a fraction from 0 to 1", show(other)),
                    "write a fraction like 0.05 (5% of trusted results are checked anyway)",
                ));
            }
        };
        let default_probes = if policy == VerifyPolicy::Adaptive { 2 } else { 0 };
        let known_answers =
            self.integer(verify, "verify.known_answers", "known_answers")?.unwrap_or(default_probes);
        if known_answers > 100 {
            return Err(self.error(
                "verify.known_answers",
                format!("{known_answers} is too many"),
                "use 0 to 100 (2 is usual)",
            ));
        }
        let decoys = match verify.get("decoys") {
            None => defaults.decoys,
            Some(Value::Float(fraction)) if (0.0..=0.5).contains(fraction) => *fraction,
            Some(Value::Integer(0)) => 0.0,
            Some(other) => {
                return Err(self.error(
                    "verify.decoys",
                    format!("{} is not a fraction from 0 to 0.5", show(other)),
                    "write a fraction like 0.02 (2% of fresh units are decoys), or 0 for none",
                ));
            }
        };
        Ok(VerifySettings { policy, spot_check, known_answers: known_answers as u32, decoys })
    }

    fn optional_module(
        &self,
        table: &Table,
        full_key: &str,
        key: &str,
        builtin_module: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, JobSpecError> {
        let Some(name) = self.optional_string(table, full_key, key)? else { return Ok(None) };
        self.module(full_key, &name, builtin_module).map(|(_, bytes)| Some(bytes))
    }

    fn module(
        &self,
        key: &str,
        module_name: &str,
        builtin_module: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<(String, Vec<u8>), JobSpecError> {
        let path = self.dir.join(module_name);
        let stem =
            Path::new(module_name).file_stem().map_or("task".into(), |s| s.to_string_lossy().into_owned());
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|error| {
                self.error(key, format!("cannot read {}: {error}", path.display()), "check the file")
            })?;
            if !bytes.starts_with(b"\0asm") {
                return Err(self.error(
                    key,
                    format!("{} is not a WebAssembly module", path.display()),
                    "build the task for wasm32-wasip1 and name the .wasm file",
                ));
            }
            return Ok((stem, bytes));
        }
        builtin_module(module_name).map(|bytes| (module_name.to_string(), bytes)).ok_or_else(|| {
            self.error(
                key,
                format!("no module file {} (paths are relative to the spec)", path.display()),
                "name a .wasm file next to the spec, or a built-in module: sum, primes, pi, mandelbrot, hashcash, collatz, digest, sum-columns, tolerant-compare",
            )
        })
    }

    fn args(&self, table: &Table) -> Result<Vec<String>, JobSpecError> {
        let Some(value) = table.get("args") else { return Ok(Vec::new()) };
        let fix = "write `args = [\"--flag\", \"value\"]`";
        let array = value.as_array().ok_or_else(|| self.error("args", "must be a list of strings", fix))?;
        array
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.error("args", "must be a list of strings", fix))
            })
            .collect()
    }

    fn inputs(&self, table: &Table) -> Result<JobInputs, JobSpecError> {
        let inputs = self.sub_table(table, "inputs")?;
        self.reject_unknown_keys(&inputs, "inputs.", &["range", "lines", "files", "shared"])?;
        let fix = "give exactly one of `range = { start = 0, end = 1000, step = 10 }`, `lines = \"inputs.txt\"` or `files = \"data/*.bin\"`";
        let sources: Vec<(&String, &Value)> =
            inputs.iter().filter(|(key, _)| key.as_str() != "shared").collect();
        if sources.len() != 1 {
            return Err(self.error("inputs", format!("{} input sources given", sources.len()), fix));
        }
        let (key, value) = sources[0];
        match key.as_str() {
            "range" => self.range(value),
            "lines" => self.lines(value),
            _ => self.files(value),
        }
    }

    fn range(&self, value: &Value) -> Result<JobInputs, JobSpecError> {
        let fix = "write `range = { start = 0, end = 1000, step = 10 }` with start < end and step ≥ 1";
        let range = value.as_table().ok_or_else(|| self.error("inputs.range", "must be a table", fix))?;
        self.reject_unknown_keys(range, "inputs.range.", &["start", "end", "step"])?;
        let start = self.integer(range, "inputs.range.start", "start")?.unwrap_or(0);
        let end = self
            .integer(range, "inputs.range.end", "end")?
            .ok_or_else(|| self.error("inputs.range.end", "is missing", fix))?;
        let step = self.integer(range, "inputs.range.step", "step")?.unwrap_or(1);
        if start >= end {
            return Err(self.error("inputs.range", format!("start {start} is not below end {end}"), fix));
        }
        if step == 0 {
            return Err(self.error("inputs.range.step", "is 0", fix));
        }
        let units = (end - start).div_ceil(step);
        if units > UNITS_MAX {
            return Err(self.error(
                "inputs.range",
                format!("makes {units} units, above {UNITS_MAX}"),
                "use a larger step",
            ));
        }
        Ok(JobInputs::Range { start, end, step })
    }

    fn lines(&self, value: &Value) -> Result<JobInputs, JobSpecError> {
        let file = value.as_str().ok_or_else(|| {
            self.error("inputs.lines", "must be a file name", "write `lines = \"inputs.txt\"`")
        })?;
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|error| {
            self.error(
                "inputs.lines",
                format!("cannot read {}: {error}", path.display()),
                "name a UTF-8 text file relative to the spec",
            )
        })?;
        let lines: Vec<String> =
            text.lines().filter(|line| !line.trim().is_empty()).map(str::to_string).collect();
        if lines.is_empty() || lines.len() as u64 > UNITS_MAX {
            return Err(self.error(
                "inputs.lines",
                format!("{} has {} non-empty lines", path.display(), lines.len()),
                format!("give 1 to {UNITS_MAX} lines, one unit each"),
            ));
        }
        Ok(JobInputs::Lines { lines })
    }

    fn files(&self, value: &Value) -> Result<JobInputs, JobSpecError> {
        let fix = "write `files = \"data/*.bin\"` (a glob relative to the spec)";
        let pattern =
            value.as_str().ok_or_else(|| self.error("inputs.files", "must be a glob pattern", fix))?;
        let full_pattern = self.dir.join(pattern).display().to_string();
        let paths = glob::glob(&full_pattern)
            .map_err(|error| self.error("inputs.files", format!("bad pattern: {error}"), fix))?;
        let mut blobs = Vec::new();
        let mut input_files = Vec::new();
        for path in paths.flatten().filter(|path| path.is_file()) {
            let (blob, file) =
                self.blob_of_file("inputs.files", path, "split it into smaller files (one unit each)")?;
            blobs.push(blob);
            input_files.push(file);
        }
        if blobs.is_empty() {
            return Err(self.error("inputs.files", format!("{full_pattern} matches no file"), fix));
        }
        self.input_files.borrow_mut().extend(input_files);
        Ok(JobInputs::Blobs { blobs })
    }

    /// `[inputs] shared = ["model.bin", ...]`: files every unit reads as `/shared/NAME`.
    fn shared(&self, table: &Table) -> Result<Vec<BlobInput>, JobSpecError> {
        let fix =
            "write `shared = [\"model.bin\", \"labels.txt\"]` (files relative to the spec, distinct names)";
        let inputs = self.sub_table(table, "inputs")?;
        let Some(value) = inputs.get("shared") else { return Ok(Vec::new()) };
        let paths = value
            .as_array()
            .ok_or_else(|| self.error("inputs.shared", "must be a list of file names", fix))?;
        let mut shared: Vec<BlobInput> = Vec::new();
        for path in paths {
            let path = path
                .as_str()
                .ok_or_else(|| self.error("inputs.shared", "must be a list of file names", fix))?;
            let (blob, file) = self.blob_of_file("inputs.shared", self.dir.join(path), fix)?;
            shared.push(blob);
            self.input_files.borrow_mut().push(file);
        }
        wasmhive_protocol::api::check_shared_files(shared.iter().map(|file| (file.name.as_str(), file.size)))
            .map_err(|problem| self.error("inputs.shared", problem, fix))?;
        Ok(shared)
    }

    /// A file to upload as a blob: its size (at most a unit's input), hashed as it is read
    /// (a job of many large files is never whole in memory).
    fn blob_of_file(
        &self,
        key: &str,
        path: PathBuf,
        fix: &str,
    ) -> Result<(BlobInput, InputFile), JobSpecError> {
        let unreadable =
            |error: std::io::Error| self.error(key, format!("cannot read {}: {error}", path.display()), fix);
        let size = std::fs::metadata(&path).map_err(unreadable)?.len();
        if size > INPUT_BLOB_BYTES_MAX {
            let problem = format!(
                "{} is {size} bytes, above the {INPUT_BLOB_BYTES_MAX}-byte limit per file",
                path.display()
            );
            return Err(self.error(key, problem, fix));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path).map_err(unreadable)?).map_err(unreadable)?;
        let hash = Hash(*hasher.finalize().as_bytes());
        let name = path.file_name().map_or(String::new(), |name| name.to_string_lossy().into_owned());
        Ok((BlobInput { name, hash, size }, InputFile { hash, size, path }))
    }

    fn limits(&self, table: &Table) -> Result<JobLimits, JobSpecError> {
        let limits = self.sub_table(table, "limits")?;
        self.reject_unknown_keys(&limits, "limits.", &["fuel", "memory", "output", "lease", "timeout"])?;
        let defaults = JobLimits::default();
        let job_limits = JobLimits {
            fuel: self.integer(&limits, "limits.fuel", "fuel")?,
            memory_bytes: self.size(&limits, "memory")?.unwrap_or(defaults.memory_bytes),
            output_bytes: self.size(&limits, "output")?.unwrap_or(defaults.output_bytes),
            lease_ms: self.duration_ms(&limits, "lease")?.unwrap_or(defaults.lease_ms),
            timeout_ms: self.duration_ms(&limits, "timeout")?.unwrap_or(defaults.timeout_ms),
        };
        job_limits
            .check()
            .map_err(|error| self.error(&format!("limits.{}", error.key), error.problem, error.fix))?;
        Ok(job_limits)
    }

    fn size(&self, table: &Table, key: &str) -> Result<Option<u64>, JobSpecError> {
        let full_key = format!("limits.{key}");
        match table.get(key) {
            None => Ok(None),
            Some(Value::Integer(bytes)) if *bytes > 0 => Ok(Some(*bytes as u64)),
            Some(Value::String(text)) => parse_byte_size(text)
                .map(Some)
                .map_err(|problem| self.error(&full_key, problem, "write a size like \"256 MiB\"")),
            Some(other) => Err(self.error(
                &full_key,
                format!("a {} is not a size", other.type_str()),
                "write a size like \"256 MiB\"",
            )),
        }
    }

    fn duration_ms(&self, table: &Table, key: &str) -> Result<Option<u64>, JobSpecError> {
        let full_key = format!("limits.{key}");
        let fix = "write a duration like \"30s\" or \"10m\"";
        match table.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => match parse_duration(text) {
                Ok(duration) if !duration.is_zero() => Ok(Some(duration.as_millis() as u64)),
                Ok(_) => Err(self.error(&full_key, "is zero", fix)),
                Err(problem) => Err(self.error(&full_key, problem, fix)),
            },
            Some(other) => {
                Err(self.error(&full_key, format!("a {} is not a duration", other.type_str()), fix))
            }
        }
    }

    fn sub_table(&self, table: &Table, key: &str) -> Result<Table, JobSpecError> {
        match table.get(key) {
            None => Ok(Table::new()),
            Some(Value::Table(sub_table)) => Ok(sub_table.clone()),
            Some(_) => Err(self.error(key, "must be a table", format!("write it as a `[{key}]` section"))),
        }
    }

    fn integer(&self, table: &Table, full_key: &str, key: &str) -> Result<Option<u64>, JobSpecError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::Integer(value)) if *value >= 0 => Ok(Some(*value as u64)),
            Some(other) => Err(self.error(
                full_key,
                format!("{} is not a whole number ≥ 0", show(other)),
                "write a number like 1_000_000",
            )),
        }
    }

    fn required_string(
        &self,
        table: &Table,
        full_key: &str,
        key: &str,
        fix: &str,
    ) -> Result<String, JobSpecError> {
        self.optional_string(table, full_key, key)?.ok_or_else(|| self.error(full_key, "is missing", fix))
    }

    fn optional_string(
        &self,
        table: &Table,
        full_key: &str,
        key: &str,
    ) -> Result<Option<String>, JobSpecError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.error(
                full_key,
                format!("a {} is not a string", other.type_str()),
                "put the value in quotes",
            )),
        }
    }

    fn optional_bool(&self, table: &Table, key: &str) -> Result<Option<bool>, JobSpecError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::Boolean(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.error(
                key,
                format!("a {} is not true or false", other.type_str()),
                "write true or false",
            )),
        }
    }

    fn reject_unknown_keys(&self, table: &Table, prefix: &str, known: &[&str]) -> Result<(), JobSpecError> {
        match table.keys().find(|key| !known.contains(&key.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(self.error(
                &format!("{prefix}{unknown}"),
                "is not a known key",
                format!(
                    "use one of: {}",
                    known.iter().map(|key| format!("{prefix}{key}")).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

/// The number of units `inputs` makes.
pub fn unit_count(inputs: &JobInputs) -> u64 {
    match inputs {
        JobInputs::Range { start, end, step } => end.saturating_sub(*start).div_ceil((*step).max(1)),
        JobInputs::Lines { lines } => lines.len() as u64,
        JobInputs::Files { files } => files.len() as u64,
        JobInputs::Blobs { blobs } => blobs.len() as u64,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Integer(number) => number.to_string(),
        other => format!("a {}", other.type_str()),
    }
}
