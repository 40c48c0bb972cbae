//! Compiled modules, cached by (engine, blake3 of the module bytes).
//!
//! Invariants:
//! - a module is compiled at most once per engine while it stays cached, even when many
//!   threads ask for it at once (the others wait for the first);
//! - the in-memory cache holds at most `memory_bytes_max` of compiled code (least recently
//!   used entries are evicted first; an entry in use stays alive until its runs end);
//! - the disk cache holds only artifacts this host compiled and wrote itself, in a folder
//!   named after the engine's settings and wasmtime version, so an artifact is never loaded
//!   into an engine that did not produce it; artifacts received from elsewhere are never read;
//! - a module that is invalid (not wasm, too big, fails to compile, no `_start`, unknown
//!   imports) is remembered as failed (with its reason) like a success: that is
//!   deterministic. A compilation that takes longer than the compile-time limit is not: it
//!   depends on the host and its load. It is reported as [`ModuleRejection::TooSlowToCompile`]
//!   (a host timeout, retried elsewhere), is not remembered, and the compilation finishes in
//!   the background and writes its artifact, so a later unit on this host loads it;
//! - at most one compilation of a (engine, module) runs at a time: a unit that asks while
//!   one runs waits for it (up to its own compile-time limit) instead of starting another.

use crate::engine::{EngineKey, EngineWithLinker};
use crate::integer_fast_paths::with_integer_fast_paths;
use crate::limits::Limits;
use crate::loop_unrolling::with_unrolled_loops;
use crate::unit_state::UnitState;
use lru::LruCache;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use wasmhive_protocol::Hash;
use wasmtime::{ExternType, InstancePre, Module};

/// Compiles `bytes` as this host runs them: when the engine does not meter fuel, with the
/// 32-bit division fast path (`integer_fast_paths.rs`) and inner loops repeated
/// (`loop_unrolling.rs`). When the rewritten module does not compile, the original is
/// compiled, so a module's verdict is always the compiler's own.
fn compile(engine: &wasmtime::Engine, engine_key: EngineKey, bytes: &[u8]) -> Result<Module, String> {
    if !engine_key.fuel_metering
        && let Ok(divided) = with_integer_fast_paths(bytes)
        && let Ok(rewritten) = with_unrolled_loops(&divided)
        && let Ok(module) = Module::new(engine, &rewritten)
    {
        return Ok(module);
    }
    Module::new(engine, bytes).map_err(|error| format!("{error:#}"))
}

/// A module ready to instantiate: imports resolved against Task ABI v1, `_start` checked.
pub struct PreparedModule {
    pub instance_pre: InstancePre<UnitState>,
    pub compiled_bytes: usize,
}

/// Why a module cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleRejection {
    /// Deterministic: every host rejects it (`Status::InvalidModule`).
    Invalid(String),
    /// This host did not finish compiling in time (`Status::HostTimeout`).
    TooSlowToCompile(String),
}

impl From<String> for ModuleRejection {
    fn from(reason: String) -> ModuleRejection {
        ModuleRejection::Invalid(reason)
    }
}

type CacheCell = Arc<OnceLock<Result<Arc<PreparedModule>, ModuleRejection>>>;

pub struct ModuleCache {
    entries: Mutex<CacheEntries>,
    memory_bytes_max: usize,
    artifact_dir: Option<PathBuf>,
    /// Compilations running now, so a unit that asks again while one runs late waits for
    /// it instead of starting another (no compile storms on a loaded host).
    compiling: Compilations,
}

type Compilations = Arc<Mutex<HashMap<(EngineKey, Hash), Arc<Compilation>>>>;

/// One compilation running on its helper thread.
#[derive(Default)]
struct Compilation {
    result: Mutex<Option<Result<Module, String>>>,
    finished: Condvar,
}

struct CacheEntries {
    cells: LruCache<(EngineKey, Hash), CacheCell>,
    compiled_bytes_total: usize,
}

impl ModuleCache {
    pub fn new(memory_bytes_max: usize, artifact_dir: Option<PathBuf>) -> ModuleCache {
        ModuleCache {
            entries: Mutex::new(CacheEntries { cells: LruCache::unbounded(), compiled_bytes_total: 0 }),
            memory_bytes_max,
            artifact_dir,
            compiling: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The prepared module for `bytes` (named `hash`), compiling it if needed.
    pub fn get_or_prepare(
        &self,
        engine_key: EngineKey,
        engine: &EngineWithLinker,
        hash: Hash,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Arc<PreparedModule>, ModuleRejection> {
        let key = (engine_key, hash);
        let cell = self.cell_for(key);
        let mut prepared_now = false;
        let result = cell
            .get_or_init(|| {
                prepared_now = true;
                self.prepare(engine_key, engine, hash, bytes, limits)
            })
            .clone();
        if prepared_now {
            if matches!(result, Err(ModuleRejection::TooSlowToCompile(_))) {
                self.entries.lock().expect("module cache poisoned").cells.pop(&key);
            } else {
                self.account_and_evict(key, &result);
            }
        }
        result
    }

    /// Modules currently held in memory.
    pub fn module_count(&self) -> usize {
        self.entries.lock().expect("module cache poisoned").cells.len()
    }

    fn cell_for(&self, key: (EngineKey, Hash)) -> CacheCell {
        let mut entries = self.entries.lock().expect("module cache poisoned");
        entries.cells.get_or_insert(key, CacheCell::default).clone()
    }

    fn account_and_evict(
        &self,
        key: (EngineKey, Hash),
        result: &Result<Arc<PreparedModule>, ModuleRejection>,
    ) {
        let added = result.as_ref().map_or(0, |prepared| prepared.compiled_bytes);
        let mut entries = self.entries.lock().expect("module cache poisoned");
        entries.compiled_bytes_total += added;
        while entries.compiled_bytes_total > self.memory_bytes_max && entries.cells.len() > 1 {
            let Some((evicted_key, evicted)) = entries.cells.pop_lru() else { break };
            if evicted_key == key {
                entries.cells.put(evicted_key, evicted);
                continue;
            }
            let freed = evicted
                .get()
                .and_then(|result| result.as_ref().ok())
                .map_or(0, |prepared| prepared.compiled_bytes);
            entries.compiled_bytes_total -= freed;
        }
    }

    fn prepare(
        &self,
        engine_key: EngineKey,
        engine: &EngineWithLinker,
        hash: Hash,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Arc<PreparedModule>, ModuleRejection> {
        check_module_bytes(bytes, limits)?;
        let artifact_path = self.artifact_dir.as_ref().map(|dir| artifact_path(dir, engine_key, hash));
        let module = match artifact_path.as_deref().and_then(|path| load_own_artifact(engine, path)) {
            Some(module) => module,
            None => self.compile_with_time_limit(engine_key, engine, hash, bytes, limits, artifact_path)?,
        };
        check_start_export(&module)?;
        let instance_pre = engine.linker.instantiate_pre(&module).map_err(|error| {
            ModuleRejection::Invalid(format!(
                "{error:#}; Task ABI v1 provides only the wasi_snapshot_preview1 imports"
            ))
        })?;
        let image = module.image_range();
        let compiled_bytes = (image.end as usize).saturating_sub(image.start as usize).max(bytes.len());
        Ok(Arc::new(PreparedModule { instance_pre, compiled_bytes }))
    }
}

/// Compilations one host runs at once: one per core, at least 2 (each may go on in the
/// background after its unit gave up waiting). More modules at once are refused as a host
/// timeout, retried elsewhere.
pub fn compilations_in_flight_max() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get()).max(2)
}

impl ModuleCache {
    /// Compiles on a helper thread (or joins the one already compiling this module) and
    /// stops waiting after `compile_time_max`. wasmtime cannot abort a compilation, so a
    /// late one finishes in the background (bounded by the module size limit) and writes
    /// its artifact to `artifact_path`, for the host's next unit.
    fn compile_with_time_limit(
        &self,
        engine_key: EngineKey,
        engine: &EngineWithLinker,
        hash: Hash,
        bytes: &[u8],
        limits: &Limits,
        artifact_path: Option<PathBuf>,
    ) -> Result<Module, ModuleRejection> {
        let key = (engine_key, hash);
        let (compilation, started_here) = {
            let mut compiling = self.compiling.lock().expect("compilations lock");
            match compiling.get(&key) {
                Some(running) => (running.clone(), false),
                None if compiling.len() >= compilations_in_flight_max() => {
                    return Err(ModuleRejection::TooSlowToCompile(format!(
                        "this host is already compiling {} other modules (the most it compiles at once); the unit goes to another host",
                        compiling.len()
                    )));
                }
                None => {
                    let compilation = Arc::new(Compilation::default());
                    compiling.insert(key, compilation.clone());
                    (compilation, true)
                }
            }
        };
        if started_here {
            let (engine, bytes, running) = (engine.engine.clone(), bytes.to_vec(), compilation.clone());
            let compiling = self.compiling.clone();
            let spawned = std::thread::Builder::new().name("wasmhive-compile".into()).spawn(move || {
                let compiled = compile(&engine, engine_key, &bytes);
                if let (Ok(module), Some(path)) = (&compiled, &artifact_path) {
                    store_artifact(module, path);
                }
                *running.result.lock().expect("compilation lock") = Some(compiled);
                running.finished.notify_all();
                compiling.lock().expect("compilations lock").remove(&key);
            });
            if let Err(error) = spawned {
                self.compiling.lock().expect("compilations lock").remove(&key);
                return Err(ModuleRejection::TooSlowToCompile(format!(
                    "could not start a compilation thread: {error}"
                )));
            }
        }
        let result = compilation.result.lock().expect("compilation lock");
        let (result, _) = compilation
            .finished
            .wait_timeout_while(result, limits.compile_time_max, |result| result.is_none())
            .expect("compilation lock");
        match result.as_ref() {
            Some(Ok(module)) => Ok(module.clone()),
            Some(Err(error)) => Err(ModuleRejection::Invalid(format!("compilation failed: {error}"))),
            None => Err(ModuleRejection::TooSlowToCompile(format!(
                "this host did not finish compiling the module within the compile-time limit of {:?}; the unit goes to another host (the compilation continues here for later units)",
                limits.compile_time_max
            ))),
        }
    }
}

fn check_module_bytes(bytes: &[u8], limits: &Limits) -> Result<(), ModuleRejection> {
    if bytes.len() > limits.module_bytes_max {
        return Err(ModuleRejection::Invalid(format!(
            "module is {} bytes, above the module size limit of {} bytes; shrink it (e.g. build in release mode and strip it) or raise the limit",
            bytes.len(),
            limits.module_bytes_max
        )));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(ModuleRejection::Invalid("not a WebAssembly binary (it does not start with \\0asm); build the task for wasm32-wasip1, or convert WAT text with wat2wasm".to_string()));
    }
    Ok(())
}

fn check_start_export(module: &Module) -> Result<(), ModuleRejection> {
    match module.get_export("_start") {
        Some(ExternType::Func(function)) if function.params().len() == 0 && function.results().len() == 0 => Ok(()),
        Some(_) => Err("the export `_start` is not a function of no parameters and no results".to_string().into()),
        None => Err("the module exports no `_start` function; build the task as a WASI command (a `main` program for wasm32-wasip1), not a library".to_string().into()),
    }
}

fn artifact_path(dir: &Path, engine_key: EngineKey, hash: Hash) -> PathBuf {
    dir.join(engine_key.class_name()).join(format!("{}.cwasm", hash.to_hex()))
}

#[allow(unsafe_code, reason = "deserialising compiled code is unsafe; see the safety note")]
fn load_own_artifact(engine: &EngineWithLinker, path: &Path) -> Option<Module> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the artifact folder belongs to this host's data directory and holds only
    // files written by `store_artifact` from modules this process compiled; wasmtime also
    // checks that the artifact matches this engine's version and settings.
    unsafe { Module::deserialize_file(&engine.engine, path) }.ok()
}

fn store_artifact(module: &Module, path: &Path) {
    let Ok(serialized) = module.serialize() else { return };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&temporary, serialized).is_ok() {
        let _ = std::fs::rename(&temporary, path);
    }
}
