//! The memory cap across running units: a unit reserves its job's memory limit before it
//! starts and waits while the reservations would pass the cap. A lease whose own limit is
//! above the cap is never started here (the session hands it back).

use std::sync::{Condvar, Mutex};

pub struct MemoryBudget {
    bytes_max: u64,
    reserved: Mutex<u64>,
    released: Condvar,
}

/// Memory held by a running unit until dropped.
pub struct MemoryReservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    pub fn new(bytes_max: u64) -> MemoryBudget {
        MemoryBudget { bytes_max, reserved: Mutex::new(0), released: Condvar::new() }
    }

    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.bytes_max
    }

    pub fn reserved(&self) -> u64 {
        *self.reserved.lock().expect("memory budget lock")
    }

    /// Blocks until `bytes` fit beside the running units. `bytes` must fit the cap.
    pub fn reserve(&self, bytes: u64) -> MemoryReservation<'_> {
        assert!(self.fits(bytes), "leases above the memory cap are handed back, not run");
        let mut reserved = self.reserved.lock().expect("memory budget lock");
        while *reserved + bytes > self.bytes_max {
            reserved = self.released.wait(reserved).expect("memory budget lock");
        }
        *reserved += bytes;
        MemoryReservation { budget: self, bytes }
    }
}

impl Drop for MemoryReservation<'_> {
    fn drop(&mut self) {
        *self.budget.reserved.lock().expect("memory budget lock") -= self.bytes;
        self.budget.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_unit_waits_until_the_running_ones_leave_room() {
        let budget = Arc::new(MemoryBudget::new(100));
        let first = budget.reserve(60);
        let second = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let _reservation = budget.reserve(60);
                budget.reserved()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!second.is_finished(), "120 bytes would pass the 100-byte cap");
        drop(first);
        assert_eq!(second.join().unwrap(), 60);
        assert_eq!(budget.reserved(), 0);
        assert!(!budget.fits(101));
    }
}
