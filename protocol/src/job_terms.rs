//! Which [`JobTerms`] a session's leases may refer to, kept the same way at both ends.
//!
//! The owner numbers the terms it sends in a session 1, 2, 3, ...; a worker keeps the last
//! [`TERMS_KEPT`] of them. A lease refers to terms by number, so the owner (which knows
//! what the worker keeps, by the same rule) sends a job's terms again, under a new number,
//! once they have left that window. Memory at both ends stays bounded however many jobs a
//! session sees, and neither end has to tell the other what it forgot.

use crate::{JobTerms, TERMS_KEPT};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The owner's side: which terms it sent in this session.
#[derive(Debug, Default)]
pub struct TermsSent {
    by_job: HashMap<String, u32>,
    last_id: u32,
}

impl TermsSent {
    /// The number a lease of `job_id` refers to, and whether terms must be sent under it
    /// first (built by `terms` with that number).
    pub fn terms_id(&mut self, job_id: &str) -> (u32, bool) {
        if let Some(&id) = self.by_job.get(job_id)
            && self.last_id - id < TERMS_KEPT
        {
            return (id, false);
        }
        self.last_id += 1;
        self.by_job.insert(job_id.to_string(), self.last_id);
        if self.by_job.len() > 2 * TERMS_KEPT as usize {
            let last_id = self.last_id;
            self.by_job.retain(|_, id| last_id - *id < TERMS_KEPT);
        }
        (self.last_id, true)
    }
}

/// The worker's side: the terms its leases may refer to.
#[derive(Debug, Default)]
pub struct TermsReceived {
    by_id: BTreeMap<u32, Arc<JobTerms>>,
    last_id: u32,
}

impl TermsReceived {
    /// Keeps new terms. Err: they are not numbered next (a broken or hostile owner).
    pub fn received(&mut self, terms: JobTerms) -> Result<(), String> {
        if terms.terms_id != self.last_id.wrapping_add(1) {
            return Err(format!(
                "job terms numbered {} arrived after {} (terms are numbered in order)",
                terms.terms_id, self.last_id
            ));
        }
        self.last_id = terms.terms_id;
        self.by_id.insert(terms.terms_id, Arc::new(terms));
        if self.by_id.len() > TERMS_KEPT as usize {
            self.by_id.pop_first();
        }
        Ok(())
    }

    /// The terms a lease refers to. Err: none by that number are kept.
    pub fn get(&self, terms_id: u32) -> Result<Arc<JobTerms>, String> {
        self.by_id.get(&terms_id).cloned().ok_or_else(|| {
            format!("a lease refers to job terms {terms_id}, which were never sent or are no longer kept")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hash;
    use crate::api::JobLimits;

    fn terms(terms_id: u32, job_id: &str) -> JobTerms {
        JobTerms {
            terms_id,
            job_id: job_id.into(),
            task_name: "t".into(),
            module: Hash::of(b"m"),
            args: Vec::new(),
            limits: JobLimits::default(),
            job_time_s: 0,
            nan_canonicalization: true,
            shared: Vec::new(),
        }
    }

    #[test]
    fn both_ends_agree_on_every_reference_however_many_jobs_a_session_sees() {
        let (mut sent, mut received) = (TermsSent::default(), TermsReceived::default());
        let mut state = 7u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Mostly a few busy jobs, sometimes one of 2,000.
            let job = if state >> 60 < 12 { (state >> 32) % 4 } else { (state >> 32) % 2_000 };
            let job_id = format!("job-{job}");
            let (terms_id, send_first) = sent.terms_id(&job_id);
            if send_first {
                received.received(terms(terms_id, &job_id)).unwrap();
            }
            assert_eq!(received.get(terms_id).unwrap().job_id, job_id);
        }
        assert!(received.by_id.len() <= TERMS_KEPT as usize);
        assert!(sent.by_job.len() <= 2 * TERMS_KEPT as usize + 1);
    }

    #[test]
    fn terms_out_of_order_and_unknown_references_are_refused() {
        let mut received = TermsReceived::default();
        let error = received.received(terms(2, "a")).unwrap_err();
        assert!(error.contains("numbered 2 arrived after 0"), "{error}");
        received.received(terms(1, "a")).unwrap();
        assert!(received.received(terms(1, "b")).is_err(), "a number is never reused");
        let error = received.get(5).unwrap_err();
        assert!(error.contains("job terms 5"), "{error}");
    }
}
