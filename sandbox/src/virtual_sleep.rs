//! `poll_oneoff` and `sched_yield` without waiting (Task ABI v1): a guest that sleeps
//! (`poll_oneoff` with clock subscriptions) has its virtual monotonic clock advanced to the
//! earliest deadline and the call returns at once, so a sleep costs no wall time, can never
//! hold a unit thread past the wall-clock guard, and every replica sees the same result.
//! wasmtime-wasi's own `poll_oneoff` waits for real time inside the host call, where the
//! epoch guard cannot interrupt it.
//!
//! Semantics: fd subscriptions on stdin, stdout, stderr and the unit's open read-only files
//! are always ready; other fds get `EBADF`. When any fd subscription is present, only fd events are
//! returned (nothing waits). Otherwise the monotonic clock moves to the earliest deadline
//! and every clock subscription due by then fires; the realtime clock is fixed for the job,
//! so realtime and CPU-time subscriptions fire at once.

use crate::unit_state::UnitState;
use wasmtime::{Caller, Extern};

const SUBSCRIPTION_BYTES: usize = 48;
const EVENT_BYTES: usize = 32;
/// Most subscriptions one call may pass.
const SUBSCRIPTIONS_MAX: usize = 4096;

const TAG_CLOCK: u8 = 0;
const TAG_FD_READ: u8 = 1;
const TAG_FD_WRITE: u8 = 2;
const CLOCK_MONOTONIC: u32 = 1;
const CLOCK_THREAD_CPUTIME: u32 = 3;
const FLAG_ABSOLUTE_TIME: u16 = 1;

const ERRNO_SUCCESS: u16 = 0;
const ERRNO_BADF: u16 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: u16 = 28;

/// One parsed subscription.
enum Subscription {
    Clock { userdata: u64, clock: u32, timeout_ns: u64, absolute: bool },
    Fd { userdata: u64, tag: u8, fd: u32 },
    Unknown { userdata: u64, tag: u8 },
}

pub fn poll_oneoff(
    mut caller: Caller<'_, UnitState>,
    subscriptions_at: i32,
    events_at: i32,
    count: i32,
    event_count_at: i32,
) -> i32 {
    let count = count as u32 as usize;
    if count == 0 || count > SUBSCRIPTIONS_MAX {
        return i32::from(ERRNO_INVAL);
    }
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let (bytes, state) = memory.data_and_store_mut(&mut caller);
    let Some(subscriptions) = region(bytes, subscriptions_at, count * SUBSCRIPTION_BYTES).map(parse_all)
    else {
        return ERRNO_FAULT;
    };
    let is_ready = |fd: u32| fd <= 2 || state.files.is_open(fd);
    let events = respond(&subscriptions, &mut state.monotonic_clock, is_ready);
    let Some(destination) = region_mut(bytes, events_at, events.len() * EVENT_BYTES) else {
        return ERRNO_FAULT;
    };
    for (event, slot) in events.iter().zip(destination.chunks_exact_mut(EVENT_BYTES)) {
        slot.copy_from_slice(event);
    }
    let Some(event_count) = region_mut(bytes, event_count_at, 4) else {
        return ERRNO_FAULT;
    };
    event_count.copy_from_slice(&(events.len() as u32).to_le_bytes());
    i32::from(ERRNO_SUCCESS)
}

/// `sched_yield`: nothing to yield to (one unit, one thread); returns at once.
pub fn sched_yield() -> i32 {
    i32::from(ERRNO_SUCCESS)
}

fn respond(
    subscriptions: &[Subscription],
    clock: &mut crate::deterministic_wasi::SteppingMonotonicClock,
    is_ready: impl Fn(u32) -> bool,
) -> Vec<[u8; EVENT_BYTES]> {
    let fd_events: Vec<[u8; EVENT_BYTES]> = subscriptions
        .iter()
        .filter_map(|subscription| match subscription {
            Subscription::Fd { userdata, tag, fd } => {
                let error = if is_ready(*fd) { ERRNO_SUCCESS } else { ERRNO_BADF };
                Some(event(*userdata, error, *tag))
            }
            Subscription::Unknown { userdata, tag } => Some(event(*userdata, ERRNO_INVAL, *tag)),
            Subscription::Clock { .. } => None,
        })
        .collect();
    if !fd_events.is_empty() {
        return fd_events;
    }
    let now = clock.peek();
    let deadline = |clock_id: u32, timeout_ns: u64, absolute: bool| match (clock_id, absolute) {
        (CLOCK_MONOTONIC, true) => timeout_ns,
        (CLOCK_MONOTONIC, false) => now.saturating_add(timeout_ns),
        _ => now,
    };
    let deadlines: Vec<(u64, u64, u16)> = subscriptions
        .iter()
        .filter_map(|subscription| match subscription {
            Subscription::Clock { userdata, clock, timeout_ns, absolute }
                if *clock <= CLOCK_THREAD_CPUTIME =>
            {
                Some((*userdata, deadline(*clock, *timeout_ns, *absolute), ERRNO_SUCCESS))
            }
            Subscription::Clock { userdata, .. } => Some((*userdata, now, ERRNO_INVAL)),
            _ => None,
        })
        .collect();
    let woken_at = deadlines.iter().map(|(_, due, _)| *due).min().unwrap_or(now).max(now);
    clock.advance_to(woken_at);
    deadlines
        .into_iter()
        .filter(|(_, due, _)| *due <= woken_at)
        .map(|(userdata, _, error)| event(userdata, error, TAG_CLOCK))
        .collect()
}

fn event(userdata: u64, error: u16, tag: u8) -> [u8; EVENT_BYTES] {
    let mut bytes = [0u8; EVENT_BYTES];
    bytes[0..8].copy_from_slice(&userdata.to_le_bytes());
    bytes[8..10].copy_from_slice(&error.to_le_bytes());
    bytes[10] = tag;
    bytes
}

fn parse_all(bytes: &[u8]) -> Vec<Subscription> {
    bytes.chunks_exact(SUBSCRIPTION_BYTES).map(parse).collect()
}

fn parse(bytes: &[u8]) -> Subscription {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let userdata = u64_at(0);
    match bytes[8] {
        TAG_CLOCK => Subscription::Clock {
            userdata,
            clock: u32_at(16),
            timeout_ns: u64_at(24),
            absolute: u16::from_le_bytes([bytes[40], bytes[41]]) & FLAG_ABSOLUTE_TIME != 0,
        },
        tag @ (TAG_FD_READ | TAG_FD_WRITE) => Subscription::Fd { userdata, tag, fd: u32_at(16) },
        tag => Subscription::Unknown { userdata, tag },
    }
}

fn region(bytes: &[u8], at: i32, length: usize) -> Option<&[u8]> {
    let start = at as u32 as usize;
    bytes.get(start..start.checked_add(length)?)
}

fn region_mut(bytes: &mut [u8], at: i32, length: usize) -> Option<&mut [u8]> {
    let start = at as u32 as usize;
    bytes.get_mut(start..start.checked_add(length)?)
}
