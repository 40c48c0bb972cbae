//! Lowest CPU priority for the threads that run units: nice 19 and `SCHED_IDLE` on Linux, so
//! any other program on the machine gets the CPU first.

/// Applies to the calling thread; returns what could not be set (e.g. not Linux).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "two libc calls on the calling thread; no memory is shared")]
pub fn lower_this_thread() -> Result<(), String> {
    // SAFETY: `gettid` has no preconditions. `setpriority` and `sched_setscheduler` act on
    // the calling thread only (who = its tid, pid 0) and read a stack value we own.
    let errors: Vec<String> = unsafe {
        let tid = libc::gettid();
        let mut errors = Vec::new();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            errors.push(format!("nice 19: {}", std::io::Error::last_os_error()));
        }
        let parameter = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameter) != 0 {
            errors.push(format!("SCHED_IDLE: {}", std::io::Error::last_os_error()));
        }
        errors
    };
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_this_thread() -> Result<(), String> {
    Err("lowering thread priority is implemented for Linux only".into())
}
