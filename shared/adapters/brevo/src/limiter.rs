//! Client-side rate limiter shared by all clones of one [`crate::client::BrevoClient`].
//!
//! Two buckets, as Brevo counts them: `/contacts…` (requests per second) and everything else
//! (requests per hour). Each bucket is a sliding window of the instants of the last requests plus a
//! "blocked until" instant set when Brevo answered 429.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Contacts,
    Others,
}

impl Bucket {
    pub(crate) fn of(path: &str) -> Self {
        if path.starts_with("contacts") { Bucket::Contacts } else { Bucket::Others }
    }
}

struct Window {
    limit: usize,
    period: Duration,
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Window {
    fn new(limit: u32, period: Duration) -> Self {
        Self { limit: limit.max(1) as usize, period, sent: VecDeque::new(), blocked_until: None }
    }

    /// Takes a slot now, or tells when to try again.
    fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until);
            }
            self.blocked_until = None;
        }
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= self.period) {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.limit {
            return Err(*self.sent.front().expect("full window") + self.period);
        }
        self.sent.push_back(now);
        Ok(())
    }
}

pub(crate) struct RateLimiter {
    contacts: Mutex<Window>,
    others: Mutex<Window>,
}

/// The wait needed exceeds what the caller accepts.
#[derive(Debug)]
pub(crate) struct WaitTooLong(pub Duration);

impl RateLimiter {
    pub(crate) fn new(contacts_per_second: u32, others_per_hour: u32) -> Self {
        Self {
            contacts: Mutex::new(Window::new(contacts_per_second, Duration::from_secs(1))),
            others: Mutex::new(Window::new(others_per_hour, Duration::from_secs(3600))),
        }
    }

    fn window(&self, bucket: Bucket) -> std::sync::MutexGuard<'_, Window> {
        let m = match bucket {
            Bucket::Contacts => &self.contacts,
            Bucket::Others => &self.others,
        };
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a request in `bucket` may be sent, at most `max_wait` in one go.
    pub(crate) async fn acquire(&self, bucket: Bucket, max_wait: Duration) -> Result<(), WaitTooLong> {
        loop {
            let now = Instant::now();
            let next = match self.window(bucket).try_take(now) {
                Ok(()) => return Ok(()),
                Err(next) => next,
            };
            let wait = next.saturating_duration_since(now);
            if wait > max_wait {
                return Err(WaitTooLong(wait));
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// Brevo answered 429: no request of this bucket before `now + reset`.
    pub(crate) fn block_for(&self, bucket: Bucket, reset: Duration) {
        let until = Instant::now() + reset;
        let mut w = self.window(bucket);
        if w.blocked_until.is_none_or(|u| u < until) {
            w.blocked_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eleventh_contact_request_waits_for_the_window() {
        let limiter = RateLimiter::new(10, 100);
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire(Bucket::Contacts, Duration::from_secs(5)).await.unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(990));
    }

    #[tokio::test]
    async fn hourly_bucket_refuses_long_waits() {
        let limiter = RateLimiter::new(10, 2);
        limiter.acquire(Bucket::Others, Duration::ZERO).await.unwrap();
        limiter.acquire(Bucket::Others, Duration::ZERO).await.unwrap();
        let err = limiter.acquire(Bucket::Others, Duration::from_secs(1)).await.unwrap_err();
        assert!(err.0 > Duration::from_secs(3000));
    }

    #[test]
    fn buckets_follow_the_path_prefix() {
        assert_eq!(Bucket::of("contacts/lists/3/contacts/add"), Bucket::Contacts);
        assert_eq!(Bucket::of("webhooks"), Bucket::Others);
    }
}
