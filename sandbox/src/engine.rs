//! wasmtime engines, one per combination of engine-level settings, and the epoch ticker.
//!
//! Fuel metering, NaN canonicalisation and the wasm stack size are engine settings in
//! wasmtime, so the sandbox keeps one engine (with its WASI linker) per [`EngineKey`],
//! created on first use. Every engine is deterministic: relaxed SIMD is deterministic and
//! wasm threads are off (this build of wasmtime has no threads support at all).

use crate::unit_state::UnitState;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, Linker, OptLevel,
    PoolingAllocationConfig,
};

/// How often the wall-clock guard advances every engine's epoch.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instances that may run at once per engine (pooling allocator slots).
pub const CONCURRENT_INSTANCES_MAX: u32 = 256;

/// Bytes of each memory slot kept mapped between units: a Rust guest's 1 MiB shadow
/// stack plus a small heap.
const LINEAR_MEMORY_KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Engine-level settings that change generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineKey {
    pub fuel_metering: bool,
    pub nan_canonicalization: bool,
    pub wasm_stack_bytes_max: usize,
}

/// An engine with the Task ABI v1 imports linked.
pub struct EngineWithLinker {
    pub engine: Engine,
    pub linker: Linker<UnitState>,
    /// [`EngineKey::class_name`], formatted once (every outcome names it).
    pub class_name: std::sync::Arc<str>,
}

impl EngineKey {
    /// A short stable name, used for the on-disk artifact folder and in outcomes.
    /// Engines without fuel metering compile modules rewritten (integer fast paths,
    /// loop unrolling); the rewrites' versions are part of the name (`-int4-loops1`), so a
    /// new version never loads old artifacts.
    pub fn class_name(&self) -> String {
        let rewrites = if self.fuel_metering {
            String::new()
        } else {
            format!(
                "-int{}-loops{}",
                crate::integer_fast_paths::INTEGER_FAST_PATHS_VERSION,
                crate::loop_unrolling::LOOP_UNROLLING_VERSION
            )
        };
        format!(
            "wasmtime-{}-{}-fuel{}-nan{}-stack{}{rewrites}",
            wasmtime_version(),
            std::env::consts::ARCH,
            u8::from(self.fuel_metering),
            u8::from(self.nan_canonicalization),
            self.wasm_stack_bytes_max
        )
    }
}

/// The instruction sets wasmtime compiles for: the only ones an engine class may name.
const KNOWN_ARCHES: [&str; 4] = ["x86_64", "aarch64", "riscv64", "s390x"];

/// The engine class a host names in its `hello`: this wasmtime version and its ISA. Hosts
/// of one class produce the same bits for the same float code, NaNs included.
pub fn engine_class_name(arch: &str) -> String {
    format!("wasmtime-{}-{arch}", wasmtime_version())
}

/// Whether `claimed` is an engine class a host of this release can have. A claim is only a
/// claim: a class that no honest host has (`wasmtime-0-evil`) would let the identities
/// that name it hold every replica of the units pinned to it, so such claims count as no
/// class at all.
pub fn is_known_engine_class(claimed: &str) -> bool {
    known_engine_classes().any(|class| claimed == class)
}

/// Every engine class a host of this release can have, one per ISA wasmtime compiles for.
pub fn known_engine_classes() -> impl Iterator<Item = String> {
    KNOWN_ARCHES.iter().map(|arch| engine_class_name(arch))
}

/// The wasmtime version compiled in (artifacts of other versions are never loaded).
pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

/// Builds an engine for `key` and registers it with the epoch ticker.
pub fn build_engine(key: EngineKey) -> wasmtime::Result<EngineWithLinker> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(key.fuel_metering)
        .cranelift_nan_canonicalization(key.nan_canonicalization)
        .cranelift_opt_level(OptLevel::Speed)
        .relaxed_simd_deterministic(true)
        .max_wasm_stack(key.wasm_stack_bytes_max)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
    let engine = Engine::new(&config)?;
    let mut linker = Linker::new(&engine);
    crate::environment_wasi::define_environment_functions(&mut linker)?;
    crate::read_only_files_wasi::define_file_functions(&mut linker)?;
    register_with_epoch_ticker(&engine);
    Ok(EngineWithLinker { engine, linker, class_name: key.class_name().into() })
}

fn pooling_config() -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(CONCURRENT_INSTANCES_MAX)
        .total_memories(CONCURRENT_INSTANCES_MAX)
        .total_tables(CONCURRENT_INSTANCES_MAX)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(crate::limits::TABLE_ELEMENTS_MAX_CEILING)
        .max_memory_size(crate::limits::MEMORY_BYTES_MAX_CEILING as usize)
        // Reset slots by rewriting only the pages a unit dirtied (PAGEMAP_SCAN, Linux 6.7+)
        // and keep them mapped: no madvise, no page faults and no TLB shootdowns between
        // tiny units. Without PAGEMAP_SCAN wasmtime memsets the kept bytes instead.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(LINEAR_MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10);
    pooling
}

/// Engines whose epoch the ticker thread advances every [`EPOCH_TICK`].
static TICKED_ENGINES: OnceLock<Mutex<Vec<EngineWeak>>> = OnceLock::new();

fn register_with_epoch_ticker(engine: &Engine) {
    let mut started = false;
    let engines = TICKED_ENGINES.get_or_init(|| {
        started = true;
        Mutex::new(Vec::new())
    });
    engines.lock().expect("epoch ticker list poisoned").push(engine.weak());
    if started {
        std::thread::Builder::new()
            .name("wasmhive-epoch".into())
            .spawn(|| run_epoch_ticker(engines))
            .expect("spawning the epoch ticker thread");
    }
}

fn run_epoch_ticker(engines: &'static Mutex<Vec<EngineWeak>>) {
    loop {
        std::thread::sleep(EPOCH_TICK);
        let mut engines = engines.lock().expect("epoch ticker list poisoned");
        engines.retain(|weak| match weak.upgrade() {
            Some(engine) => {
                engine.increment_epoch();
                true
            }
            None => false,
        });
    }
}

/// Epoch ticks for a wall-time limit, rounded up, plus one for the tick in progress.
pub fn epoch_ticks_for(wall_time: Duration) -> u64 {
    let tick_nanos = EPOCH_TICK.as_nanos();
    (wall_time.as_nanos().div_ceil(tick_nanos) as u64).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn engines_that_rewrite_name_the_rewrite_and_fuel_metered_ones_do_not() {
        let key = |fuel_metering| EngineKey {
            fuel_metering,
            nan_canonicalization: true,
            wasm_stack_bytes_max: 1 << 20,
        };
        let (division, loops) = (
            crate::integer_fast_paths::INTEGER_FAST_PATHS_VERSION,
            crate::loop_unrolling::LOOP_UNROLLING_VERSION,
        );
        let rewrites = format!("-int{division}-loops{loops}");
        assert!(key(false).class_name().ends_with(&rewrites), "{}", key(false).class_name());
        assert!(!key(true).class_name().contains("-int"), "{}", key(true).class_name());
    }

    #[test]
    fn only_engine_classes_of_this_release_and_a_real_isa_are_known() {
        assert!(is_known_engine_class(&engine_class_name(std::env::consts::ARCH)));
        assert!(is_known_engine_class(&engine_class_name("aarch64")));
        for claimed in ["wasmtime-0-evil", "", "wasmtime-48.0.8-x86_64 ", "wasmtime-1.0.0-x86_64"] {
            assert!(!is_known_engine_class(claimed), "{claimed:?}");
        }
    }
}
