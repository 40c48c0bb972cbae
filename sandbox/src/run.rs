//! Running one unit: build the deterministic WASI context, instantiate, call `_start`,
//! and turn however it ended into a [`Status`].

use crate::UnitRequest;
use crate::deterministic_wasi::{CappedPipe, OverflowPolicy, SeededRandom, SteppingMonotonicClock};
use crate::engine::{EngineKey, EngineWithLinker, epoch_ticks_for};
use crate::environment_wasi::GuestExit;
use crate::guest_memory::HostFileFailure;
use crate::module_cache::{ModuleCache, ModuleRejection};
use crate::outcome::Outcome;
use crate::read_only_files::UnitFiles;
use crate::read_only_files_wasi::Stdio;
use crate::run_gate::{CHECKPOINT_INTERVAL, RunGate, SharedRunGate};
use crate::unit_state::{UnitLimiter, UnitState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmhive_protocol::{Status, TrapKind, outcome_digest};
use wasmtime::{Store, Trap, UpdateDeadline};

pub fn run_unit(
    modules: &ModuleCache,
    engine_key: EngineKey,
    engine: &EngineWithLinker,
    request: &UnitRequest<'_>,
    run_gate: Option<&SharedRunGate>,
) -> Outcome {
    let started = Instant::now();
    let limits = request.limits;
    // A compilation cannot be paused once it runs, so it does not start while the gate
    // holds units back, and its time is offered to the duty cycle before the unit runs.
    if let Some(gate) = run_gate {
        gate.0.checkpoint(Duration::ZERO);
    }
    let preparing = Instant::now();
    let prepared =
        modules.get_or_prepare(engine_key, engine, request.module.hash, &request.module.bytes, limits);
    if let Some(gate) = run_gate {
        gate.0.checkpoint(preparing.elapsed());
    }
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(rejection) => {
            let (status, message) = match rejection {
                ModuleRejection::Invalid(reason) => {
                    (Status::InvalidModule { reason }, "the module was rejected".into())
                }
                ModuleRejection::TooSlowToCompile(reason) => (Status::HostTimeout, reason),
            };
            return finish(status, Vec::new(), Vec::new(), None, started, engine, message);
        }
    };
    let stdout = CappedPipe::new(limits.stdout_bytes_max, OverflowPolicy::TrapGuest);
    let stderr = CappedPipe::new(limits.stderr_bytes_max, OverflowPolicy::DropExcess);
    let files = match UnitFiles::new(request.input.clone(), request.shared, request.job_time) {
        Ok(files) => files,
        Err(problem) => {
            return finish(Status::HostTimeout, Vec::new(), Vec::new(), None, started, engine, problem);
        }
    };
    let stdio = Stdio { stdout: stdout.clone(), stderr: stderr.clone(), closed: [false; 3] };
    let mut store = Store::new(&engine.engine, unit_state(request, files, stdio));
    store.limiter(|state| &mut state.limiter);
    match run_gate {
        Some(gate) => guard_with_checkpoints(&mut store, gate.0.clone(), limits.wall_time_max),
        None => {
            store.set_epoch_deadline(epoch_ticks_for(limits.wall_time_max));
            store.epoch_deadline_trap();
        }
    }
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel).expect("fuel metering is on for engines of jobs with a fuel budget");
    }
    let result = prepared.instance_pre.instantiate(&mut store).and_then(|instance| {
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call(&mut store, ())
    });
    let fuel_used = limits.fuel.map(|budget| budget - store.get_fuel().unwrap_or(0));
    let limit_hit = store.data().limiter.limit_hit;
    let (status, message) = match result {
        Ok(()) => (Status::Success, "the task returned from _start".to_string()),
        Err(error) => classify_error(&error, limit_hit, stdout.overflowed()),
    };
    finish(status, stdout.take_contents(), stderr.take_contents(), fuel_used, started, engine, message)
}

/// The wall-clock guard as a callback every [`CHECKPOINT_INTERVAL`]: running time only
/// (time blocked in the gate does not count).
fn guard_with_checkpoints(store: &mut Store<UnitState>, gate: Arc<dyn RunGate>, wall_time_max: Duration) {
    let ticks = epoch_ticks_for(CHECKPOINT_INTERVAL);
    let mut running = Duration::ZERO;
    let mut since = Instant::now();
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_callback(move |_| {
        let ran = since.elapsed();
        running += ran;
        if running >= wall_time_max {
            return Err(Trap::Interrupt.into());
        }
        gate.checkpoint(ran);
        since = Instant::now();
        Ok(UpdateDeadline::Continue(ticks))
    });
}

fn unit_state(request: &UnitRequest<'_>, files: UnitFiles, stdio: Stdio) -> UnitState {
    let arguments = std::iter::once(request.task_name).chain(request.args.iter().map(String::as_str));
    UnitState {
        arguments: arguments.map(str::to_string).collect(),
        environment: vec![
            format!("WASMHIVE_JOB={}", request.job_id),
            format!("WASMHIVE_UNIT={}", request.unit_index),
        ],
        wall_clock: request.job_time,
        random: SeededRandom::new(request.job_id, request.unit_index, "random_get"),
        monotonic_clock: SteppingMonotonicClock::default(),
        limiter: UnitLimiter {
            memory_bytes_max: request.limits.memory_bytes_max,
            table_elements_max: request.limits.table_elements_max,
            limit_hit: false,
        },
        files,
        stdio,
    }
}

/// Maps how a run failed to its status. Limits the sandbox enforces itself are checked
/// first, because the guest-visible symptom of hitting them varies.
fn classify_error(error: &wasmtime::Error, limit_hit: bool, stdout_overflowed: bool) -> (Status, String) {
    if limit_hit {
        return (Status::MemoryLimit, format!("{error:#}"));
    }
    if stdout_overflowed {
        return (Status::OutputLimit, format!("{error:#}"));
    }
    if let Some(failure) = error.downcast_ref::<HostFileFailure>() {
        return (Status::HostTimeout, failure.to_string());
    }
    if let Some(exit) = error.downcast_ref::<GuestExit>() {
        let status = if exit.0 == 0 { Status::Success } else { Status::ExitCode { code: exit.0 } };
        return (status, exit.to_string());
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        let status = match trap {
            Trap::OutOfFuel => Status::FuelExhausted,
            Trap::Interrupt => Status::HostTimeout,
            other => Status::Trap { trap: trap_kind(*other) },
        };
        return (status, format!("{error:#}"));
    }
    (Status::Trap { trap: TrapKind::Other }, format!("{error:#}"))
}

fn trap_kind(trap: Trap) -> TrapKind {
    match trap {
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        Trap::HeapMisaligned => TrapKind::HeapMisaligned,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::NullReference => TrapKind::NullReference,
        _ => TrapKind::Other,
    }
}

fn finish(
    status: Status,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    fuel_used: Option<u64>,
    started: Instant,
    engine: &EngineWithLinker,
    message: String,
) -> Outcome {
    let digest = outcome_digest(&status, &stdout);
    Outcome {
        status,
        stdout,
        stderr,
        fuel_used,
        digest,
        wall_time: started.elapsed(),
        engine_class: engine.class_name.clone(),
        message,
    }
}
