//! Admission: a token bucket per client and one for the whole node, so one noisy client is
//! slowed down without starving the others, and a crowd cannot overwhelm the node. The HTTP API
//! keys clients by address; the mesh's request handler by peer id. Sans-IO: the caller passes
//! the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Instant;

/// Sustained requests per second; each bucket holds one second's worth as burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub per_client: NonZeroU32,
    pub total: NonZeroU32,
    /// Tasks (each a draw: `openTask` and `fixSeed`, paid by the operator) the node opens per
    /// minute for devices that ask for a project with no open task.
    pub openings_per_minute: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_client: NonZeroU32::new(100).expect("non-zero"),
            total: NonZeroU32::new(500).expect("non-zero"),
            openings_per_minute: NonZeroU32::new(20).expect("non-zero"),
        }
    }
}

impl Limits {
    /// What the mesh's request handler admits per peer and in all. An entry node relays every
    /// device's slot and input requests to each member, and a coordinator polls its members, so
    /// a peer's rate is well above one device's.
    /// Program sources and modules a node serves (each up to a megabyte): per peer and in all,
    /// per second.
    pub fn large_answers() -> Self {
        Limits {
            per_client: NonZeroU32::new(2).expect("non-zero"),
            total: NonZeroU32::new(16).expect("non-zero"),
            ..Limits::default()
        }
    }

    pub fn peers() -> Self {
        Limits {
            per_client: NonZeroU32::new(200).expect("non-zero"),
            total: NonZeroU32::new(2000).expect("non-zero"),
            ..Limits::default()
        }
    }
}

/// Client buckets kept at most; idle (full) buckets are dropped first.
const MAX_CLIENTS: usize = 16_384;

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This client sent too many requests.
    Client,
    /// The node as a whole is at its limit.
    Node,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Self {
        Bucket {
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.last = now;
    }
}

/// A budget of actions: up to `burst` at once, refilling at `per_minute`.
#[derive(Debug)]
pub struct Budget {
    per_second: f64,
    burst: f64,
    bucket: Bucket,
}

impl Budget {
    /// `per_minute` actions a minute, all of them available at once.
    pub fn per_minute(per_minute: NonZeroU32, now: Instant) -> Self {
        let burst = f64::from(per_minute.get());
        Budget {
            per_second: burst / 60.0,
            burst,
            bucket: Bucket {
                tokens: burst,
                last: now,
            },
        }
    }

    /// Takes one action from the budget, or says it is spent.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.bucket.last)
            .as_secs_f64();
        self.bucket.tokens = (self.bucket.tokens + elapsed * self.per_second).min(self.burst);
        self.bucket.last = now;
        if self.bucket.tokens < 1.0 {
            return false;
        }
        self.bucket.tokens -= 1.0;
        true
    }
}

/// The node's admission state.
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    limits: Limits,
    total: Bucket,
    clients: HashMap<K, Bucket>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(limits: Limits, now: Instant) -> Self {
        RateLimiter {
            limits,
            total: Bucket::full(f64::from(limits.total.get()), now),
            clients: HashMap::new(),
        }
    }

    /// Takes one token from `client`'s bucket and the node's, or says which was empty.
    pub fn admit(&mut self, client: K, now: Instant) -> Result<(), Refusal> {
        let per_client = f64::from(self.limits.per_client.get());
        let total = f64::from(self.limits.total.get());
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            self.clients.retain(|_, b| {
                b.refill(per_client, now);
                b.tokens < per_client
            });
            if self.clients.len() >= MAX_CLIENTS {
                return Err(Refusal::Node);
            }
        }
        let bucket = self
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(per_client, now));
        bucket.refill(per_client, now);
        self.total.refill(total, now);
        if bucket.tokens < 1.0 {
            return Err(Refusal::Client);
        }
        if self.total.tokens < 1.0 {
            return Err(Refusal::Node);
        }
        bucket.tokens -= 1.0;
        self.total.tokens -= 1.0;
        Ok(())
    }

    /// Client buckets held (for tests and metrics).
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn limits(per_client: u32, total: u32) -> Limits {
        Limits {
            per_client: NonZeroU32::new(per_client).unwrap(),
            total: NonZeroU32::new(total).unwrap(),
            ..Limits::default()
        }
    }

    #[test]
    fn a_budget_allows_its_burst_then_refills_per_minute() {
        let now = Instant::now();
        let mut b = Budget::per_minute(NonZeroU32::new(6).unwrap(), now);
        assert_eq!((0..10).filter(|_| b.take(now)).count(), 6);
        // One more every ten seconds, never more than the burst.
        assert!(!b.take(now + Duration::from_secs(9)));
        assert!(b.take(now + Duration::from_secs(11)));
        let later = now + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 6);
    }

    #[test]
    fn a_noisy_client_is_refused_while_others_are_served() {
        let now = Instant::now();
        let mut l: RateLimiter = RateLimiter::new(limits(10, 25), now);
        for _ in 0..10 {
            assert_eq!(l.admit(ip(1), now), Ok(()));
        }
        assert_eq!(l.admit(ip(1), now), Err(Refusal::Client));
        assert_eq!(l.admit(ip(2), now), Ok(()));
    }

    #[test]
    fn the_node_limit_holds_across_clients() {
        let now = Instant::now();
        let mut l: RateLimiter = RateLimiter::new(limits(10, 25), now);
        let served = (0..50).filter(|i| l.admit(ip(*i), now).is_ok()).count();
        assert_eq!(served, 25);
        assert_eq!(l.admit(ip(200), now), Err(Refusal::Node));
    }

    #[test]
    fn buckets_refill_with_time_up_to_one_second_of_burst() {
        let now = Instant::now();
        let mut l: RateLimiter = RateLimiter::new(limits(10, 25), now);
        while l.admit(ip(1), now).is_ok() {}
        let later = now + Duration::from_millis(500);
        let served = (0..20).filter(|_| l.admit(ip(1), later).is_ok()).count();
        assert_eq!(served, 5);
        let much_later = now + Duration::from_secs(60);
        let served = (0..20)
            .filter(|_| l.admit(ip(1), much_later).is_ok())
            .count();
        assert_eq!(served, 10);
    }

    #[test]
    fn idle_clients_are_forgotten_when_the_table_is_full() {
        let now = Instant::now();
        let mut l: RateLimiter = RateLimiter::new(limits(1, u32::MAX), now);
        for i in 0..MAX_CLIENTS as u32 {
            assert!(l.admit(IpAddr::from(i.to_be_bytes()), now).is_ok());
        }
        // All buckets are empty now: a new client finds no room.
        assert_eq!(l.admit(ip(255), now), Err(Refusal::Node));
        // A second later they are all full again, so they are dropped for the newcomer.
        let later = now + Duration::from_secs(1);
        assert_eq!(l.admit(ip(255), later), Ok(()));
        assert_eq!(l.clients(), 1);
    }
}
