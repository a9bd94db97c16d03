//! The answers of identity providers, reused for a short time.
//!
//! Without it every request, garbage tokens included, costs a call to the identity provider
//! (introspection endpoint, custom endpoint, GitHub, the Kubernetes API server). Accepted tokens
//! are kept for `ttl_seconds`, refusals for `negative_ttl_seconds`; an unreachable or failing
//! provider (503) is never cached. The cache holds at most `max_entries` answers and drops the
//! oldest first. Keys are SHA-256 digests of the token and whatever else the answer depends on,
//! never the token itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use ferrostack_config::AuthCacheConfig;

use super::error::AuthError;
use crate::User;

/// The key of one answer: a digest of everything it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `parts` (the token first). Parts are length-prefixed, so `("ab", "c")` and
    /// `("a", "bc")` differ.
    pub(crate) fn of(parts: &[&[u8]]) -> Self {
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for p in parts {
            buf.extend_from_slice(&(p.len() as u64).to_be_bytes());
            buf.extend_from_slice(p);
        }
        let d = digest(&SHA256, &buf);
        let mut key = [0u8; 32];
        key.copy_from_slice(d.as_ref());
        Self(key)
    }
}

/// A bounded map of recent answers with their expiry. Shared by every worker of a provider.
pub(crate) struct AuthCache {
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Answer, expiry and the sequence number of the insertion that wrote it.
    map: HashMap<CacheKey, (Result<User, AuthError>, Instant, u64)>,
    /// Insertions in order, oldest first; entries overwritten since are skipped on eviction.
    order: VecDeque<(CacheKey, u64)>,
    seq: u64,
}

impl AuthCache {
    pub(crate) fn new(config: &AuthCacheConfig) -> Self {
        Self {
            ttl: Duration::from_secs(config.ttl_seconds),
            negative_ttl: Duration::from_secs(config.negative_ttl_seconds),
            max_entries: config.max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The answer for `key` when there is a fresh one, else ask `provider` and keep its answer.
    pub(crate) async fn get_or_ask<F>(&self, key: CacheKey, provider: F) -> Result<User, AuthError>
    where
        F: Future<Output = Result<User, AuthError>>,
    {
        if let Some(hit) = self.get(key, Instant::now()) {
            return hit;
        }
        let answer = provider.await;
        self.put(key, &answer, Instant::now());
        answer
    }

    fn get(&self, key: CacheKey, now: Instant) -> Option<Result<User, AuthError>> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match inner.map.get(&key) {
            Some((answer, expires, _)) if *expires > now => Some(answer.clone()),
            Some(_) => {
                inner.map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: CacheKey, answer: &Result<User, AuthError>, now: Instant) {
        let ttl = match answer {
            Ok(_) => self.ttl,
            // A refusal of this token by a provider that answered.
            Err(AuthError::Rejected(_)) => self.negative_ttl,
            // Unavailable, timeouts: ask again next time.
            Err(_) => return,
        };
        if ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.seq += 1;
        let seq = inner.seq;
        inner.map.insert(key, (answer.clone(), now + ttl, seq));
        inner.order.push_back((key, seq));
        while inner.map.len() > self.max_entries {
            let Some((old, old_seq)) = inner.order.pop_front() else { break };
            if inner.map.get(&old).is_some_and(|(_, _, s)| *s == old_seq) {
                inner.map.remove(&old);
            }
        }
        // Overwritten keys leave stale entries in `order`; keep it within twice the map's size.
        if inner.order.len() > 2 * self.max_entries {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|(_, _, cur)| cur == s));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl: u64, negative: u64, max: usize) -> AuthCache {
        AuthCache::new(&AuthCacheConfig { ttl_seconds: ttl, negative_ttl_seconds: negative, max_entries: max })
    }

    fn key(token: &str) -> CacheKey {
        CacheKey::of(&[token.as_bytes()])
    }

    fn alice() -> Result<User, AuthError> {
        Ok(User::without_attributes("alice"))
    }

    #[test]
    fn keys_are_length_prefixed() {
        assert_ne!(CacheKey::of(&[b"ab", b"c"]), CacheKey::of(&[b"a", b"bc"]));
        assert_eq!(CacheKey::of(&[b"ab", b"c"]), CacheKey::of(&[b"ab", b"c"]));
    }

    #[test]
    fn answers_expire_after_their_ttl() {
        let c = cache(30, 5, 10);
        let t0 = Instant::now();
        c.put(key("good"), &alice(), t0);
        c.put(key("bad"), &Err(AuthError::rejected("no")), t0);
        assert_eq!(c.get(key("good"), t0 + Duration::from_secs(29)), Some(alice()));
        assert_eq!(c.get(key("bad"), t0 + Duration::from_secs(4)), Some(Err(AuthError::rejected("no"))));
        assert_eq!(c.get(key("bad"), t0 + Duration::from_secs(5)), None, "negative answers expire sooner");
        assert_eq!(c.get(key("good"), t0 + Duration::from_secs(30)), None);
        assert_eq!(c.len(), 0, "expired answers are dropped when found");
    }

    #[test]
    fn unavailable_is_never_cached_and_zero_ttl_is_off() {
        let c = cache(30, 5, 10);
        let t0 = Instant::now();
        c.put(key("a"), &Err(AuthError::Unavailable), t0);
        c.put(key("b"), &Err(AuthError::Timeout), t0);
        assert_eq!(c.len(), 0);
        let off = cache(0, 0, 10);
        off.put(key("a"), &alice(), t0);
        off.put(key("b"), &Err(AuthError::rejected("no")), t0);
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn bounded_oldest_first() {
        let c = cache(30, 5, 3);
        let t0 = Instant::now();
        for t in ["a", "b", "c", "d"] {
            c.put(key(t), &alice(), t0);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(key("a"), t0), None, "the oldest went first");
        assert!(c.get(key("d"), t0).is_some());
        // Rewriting a key many times keeps both the map and the order bounded.
        for _ in 0..100 {
            c.put(key("d"), &alice(), t0);
        }
        assert_eq!(c.len(), 3);
        assert!(c.inner.lock().map(|i| i.order.len()).unwrap_or_default() <= 6);
        assert!(c.get(key("b"), t0).is_some() && c.get(key("c"), t0).is_some());
    }
}
