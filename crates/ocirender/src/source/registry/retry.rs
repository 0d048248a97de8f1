//! How long to keep trying: a retry budget with backoff for every request,
//! and for small documents an overall deadline.
//!
//! A layer may take an hour and is only given up when it stops making
//! progress (the stall timeout, then `retries` failures in a row). A
//! manifest, config or token is a few kilobytes: a registry that sends it
//! a byte a second never trips the stall timeout, so it must arrive whole
//! within a deadline, every attempt, redirect and wait included. ureq can
//! bound a request only as a whole (its timeout replaces the per-read
//! one), so each attempt at a small document gets at most the stall
//! timeout, then is retried while the deadline allows: a stalled
//! connection is still given up after the stall timeout, not held until
//! the deadline.

use super::endpoints::Warn;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// Who is told, once, that a request failed and is being retried, so a
/// registry that refuses connections is not a silent wait: one line
/// (`...: connection refused; retrying (up to 5 times)`).
#[derive(Clone, Default)]
pub struct RetryNotice(Option<Warn>);

impl RetryNotice {
    /// Tells `say` (a program's warning line).
    pub fn to(say: Warn) -> RetryNotice {
        RetryNotice(Some(say))
    }

    pub(super) fn say(&self, line: &str) {
        if let Some(say) = &self.0 {
            say(line);
        }
    }
}

impl std::fmt::Debug for RetryNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RetryNotice(..)"
        } else {
            "RetryNotice(none)"
        })
    }
}

/// Longest wait between two attempts of the exponential backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How many times to retry, and the first backoff.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
}

/// The time a small document (`manifest`, `config`, `token`) has to
/// arrive whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Deadline {
    at: Instant,
    limit: Duration,
    /// The longest one attempt may take.
    per_attempt: Duration,
    document: &'static str,
}

impl Deadline {
    /// A deadline `limit` from now for reading a `document`, each attempt
    /// taking at most `per_attempt`.
    pub(super) fn new(limit: Duration, per_attempt: Duration, document: &'static str) -> Deadline {
        Deadline {
            // A limit too large to add is no limit in practice.
            at: Instant::now()
                .checked_add(limit)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32)),
            limit,
            per_attempt,
            document,
        }
    }

    /// The time the next attempt may take: the time left, at most the
    /// per-attempt limit; `None` once the deadline has passed.
    pub(super) fn attempt(&self) -> Option<Duration> {
        Some(self.remaining()?.min(self.per_attempt))
    }

    /// The time left, `None` once it has passed.
    pub(super) fn remaining(&self) -> Option<Duration> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// When it passes.
    pub(super) fn at(&self) -> Instant {
        self.at
    }

    /// The error once it has passed; `what` names the document's source.
    pub(super) fn message(&self, what: &str) -> String {
        format!(
            "{what}: {} not received whole within the {} s deadline (--deadline)",
            self.document,
            self.limit.as_secs_f64()
        )
    }
}

/// Why a request is given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum GiveUp {
    /// Every retry failed (their number).
    Retries(u32),
    /// The document's deadline passed, or would before the next attempt.
    Deadline(Deadline),
}

impl GiveUp {
    /// The final error: `problem` (the last failure, already naming
    /// `what`) with the retries spent, or the deadline's message.
    pub(super) fn message(&self, what: &str, problem: &str) -> String {
        match self {
            GiveUp::Retries(0) => problem.to_owned(),
            GiveUp::Retries(1) => format!("{problem} (gave up after 1 retry)"),
            GiveUp::Retries(n) => format!("{problem} (gave up after {n} retries)"),
            GiveUp::Deadline(deadline) => deadline.message(what),
        }
    }
}

/// The retry budget of one request (or one blob download, where progress
/// renews it), and the deadline of a small document.
#[derive(Debug)]
pub(super) struct Retry {
    policy: RetryPolicy,
    failures: u32,
    deadline: Option<Deadline>,
}

impl Retry {
    pub(super) fn new(policy: RetryPolicy, deadline: Option<Deadline>) -> Retry {
        Retry {
            policy,
            failures: 0,
            deadline,
        }
    }

    /// The deadline, if this fetch has one.
    pub(super) fn deadline(&self) -> Option<&Deadline> {
        self.deadline.as_ref()
    }

    /// The deadline if it has passed.
    pub(super) fn expired(&self) -> Option<&Deadline> {
        self.deadline.as_ref().filter(|d| d.remaining().is_none())
    }

    /// Records a failure and sleeps before the next attempt: `retry_after`
    /// when the server said, else the exponential backoff with jitter.
    /// Gives up when the budget is spent, or when the deadline would pass
    /// before the next attempt could start (a registry's `Retry-After`
    /// does not outlast a manifest's deadline).
    pub(super) fn wait(&mut self, retry_after: Option<Duration>) -> Result<(), GiveUp> {
        let delay = retry_after.unwrap_or_else(|| self.backoff());
        if let Some(deadline) = self.deadline {
            if deadline.remaining().is_none_or(|left| left <= delay) {
                return Err(GiveUp::Deadline(deadline));
            }
        }
        if self.failures >= self.policy.retries {
            return Err(GiveUp::Retries(self.policy.retries));
        }
        self.failures += 1;
        std::thread::sleep(delay);
        Ok(())
    }

    /// Progress was made: the next failure starts a fresh budget (the
    /// deadline stays).
    pub(super) fn progress(&mut self) {
        self.failures = 0;
    }

    /// `backoff · 2^failures`, capped, plus up to 10 % jitter so parallel
    /// downloads that failed together do not come back together.
    fn backoff(&self) -> Duration {
        let exponential = self
            .policy
            .backoff
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        let random = RandomState::new().hash_one(self.failures);
        exponential + exponential.mul_f64((random % 1000) as f64 / 10_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(retries: u32, failures: u32, deadline: Option<Deadline>) -> Retry {
        Retry {
            policy: RetryPolicy {
                retries,
                backoff: Duration::from_millis(250),
            },
            failures,
            deadline,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cases = [
            (0, 250),
            (1, 500),
            (2, 1000),
            (5, 8000),
            (6, 10_000),
            (40, 10_000),
        ];
        for (failures, millis) in cases {
            let delay = retry(100, failures, None).backoff();
            let base = Duration::from_millis(millis);
            assert!(
                delay >= base && delay <= base.mul_f64(1.1),
                "{failures}: {delay:?}"
            );
        }
    }

    #[test]
    fn retry_budget_runs_out_and_progress_renews_it() {
        let mut retry = retry(2, 0, None);
        retry.policy.backoff = Duration::from_millis(1);
        assert!(retry.wait(None).is_ok());
        assert!(retry.wait(None).is_ok());
        assert_eq!(retry.wait(None), Err(GiveUp::Retries(2)));
        retry.progress();
        assert!(retry.wait(Some(Duration::ZERO)).is_ok());
    }

    /// A `Retry-After` longer than the time left is not waited for: the
    /// fetch gives up at once, with the deadline's message.
    #[test]
    fn no_wait_outlasts_the_deadline() {
        let deadline = Deadline::new(Duration::from_secs(2), Duration::from_secs(1), "manifest");
        let mut retry = retry(100, 0, Some(deadline));
        let start = Instant::now();
        let gave_up = retry.wait(Some(Duration::from_secs(60))).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(gave_up, GiveUp::Deadline(deadline));
        assert_eq!(
            gave_up.message("r/a:1", "r/a:1: HTTP 429"),
            "r/a:1: manifest not received whole within the 2 s deadline (--deadline)"
        );
        assert!(retry.wait(Some(Duration::from_millis(1))).is_ok());
        assert!(retry.expired().is_none());
        let passed = Deadline::new(Duration::ZERO, Duration::from_secs(1), "token");
        let mut retry = super::Retry::new(retry.policy, Some(passed));
        assert!(retry.expired().is_some());
        assert_eq!(
            retry.wait(Some(Duration::ZERO)),
            Err(GiveUp::Deadline(passed))
        );
    }

    #[test]
    fn an_attempt_gets_the_time_left_at_most_its_own_limit() {
        let deadline = Deadline::new(Duration::from_secs(60), Duration::from_secs(30), "token");
        assert_eq!(deadline.attempt(), Some(Duration::from_secs(30)));
        let deadline = Deadline::new(Duration::from_secs(2), Duration::from_secs(30), "token");
        let left = deadline.attempt().unwrap();
        assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
        let deadline = Deadline::new(Duration::ZERO, Duration::from_secs(30), "token");
        assert_eq!(deadline.attempt(), None);
    }

    #[test]
    fn give_up_messages() {
        let cases = [
            (0, "x: boom"),
            (1, "x: boom (gave up after 1 retry)"),
            (3, "x: boom (gave up after 3 retries)"),
        ];
        for (retries, expected) in cases {
            assert_eq!(GiveUp::Retries(retries).message("x", "x: boom"), expected);
        }
        let deadline = Deadline::new(Duration::from_millis(1500), Duration::MAX, "config");
        assert_eq!(
            GiveUp::Deadline(deadline).message("r/a: blob sha256:1", "ignored"),
            "r/a: blob sha256:1: config not received whole within the 1.5 s deadline (--deadline)"
        );
    }
}
