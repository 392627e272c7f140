//! Atlas's token-bucket rate limits for the API-key and service-account endpoints.
//!
//! One bucket per organization (`/orgs/{orgId}/apiKeys…`, `/orgs/{orgId}/serviceAccounts…`,
//! default capacity 500, +250 every 60 s) and one per project (`/groups/{groupId}/apiKeys…`,
//! default capacity 1200, +500 every 60 s). Refill is discrete: `refill` tokens each `period`,
//! capped at `capacity`, which yields Atlas-like `Retry-After` values ("retry after 55 seconds").
//!
//! The OAuth token endpoint has its own buckets, one per caller IP and client id (Atlas:
//! 50 requests per minute). They are off by default (`token_enabled: false`): load tests and
//! plugin suites obtain many tokens from one address, and a default-on limit would make them
//! fail for a reason unrelated to what they test. Turn them on with `token_enabled` (admin
//! `PUT /admin/ratelimit`, config file, or `--token-rate-limit`); `enabled: false` still turns
//! every bucket off.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketConfig {
    pub capacity: u64,
    /// Tokens added each period.
    pub refill: u64,
    pub period_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitConfig {
    /// Master switch for every bucket.
    pub enabled: bool,
    pub org: BucketConfig,
    pub project: BucketConfig,
    /// Whether `POST /api/oauth/token` is limited (per caller IP and client id).
    #[serde(default)]
    pub token_enabled: bool,
    #[serde(default = "default_token_bucket")]
    pub token: BucketConfig,
}

/// Atlas's documented token-endpoint limit: 50 requests per minute per IP and client.
pub fn default_token_bucket() -> BucketConfig {
    BucketConfig {
        capacity: 50,
        refill: 50,
        period_ms: 60_000,
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            org: BucketConfig {
                capacity: 500,
                refill: 250,
                period_ms: 60_000,
            },
            project: BucketConfig {
                capacity: 1200,
                refill: 500,
                period_ms: 60_000,
            },
            token_enabled: false,
            token: default_token_bucket(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Org,
    Project,
    /// The token endpoint; the id is `<ip>|<client id>`.
    Token,
}

/// Outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u64,
    pub remaining: u64,
    /// Set when the request is refused: seconds until the next refill.
    pub retry_after: Option<u64>,
}

struct Bucket {
    tokens: u64,
    last_refill: Instant,
}

pub struct RateLimiter {
    config: RwLock<RateLimitConfig>,
    org_buckets: Mutex<HashMap<String, Bucket>>,
    project_buckets: Mutex<HashMap<String, Bucket>>,
    token_buckets: Mutex<HashMap<String, Bucket>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config: RwLock::new(config),
            org_buckets: Mutex::new(HashMap::new()),
            project_buckets: Mutex::new(HashMap::new()),
            token_buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> RateLimitConfig {
        *self
            .config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the configuration and refills every bucket.
    pub fn set_config(&self, config: RateLimitConfig) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        self.reset();
    }

    pub fn reset(&self) {
        lock(&self.org_buckets).clear();
        lock(&self.project_buckets).clear();
        lock(&self.token_buckets).clear();
    }

    /// Takes a token from the bucket of `id`; None when rate limiting is off.
    pub fn take(&self, scope: Scope, id: &str) -> Option<Decision> {
        let config = self.config();
        if !config.enabled || (scope == Scope::Token && !config.token_enabled) {
            return None;
        }
        let (cfg, buckets) = match scope {
            Scope::Org => (config.org, &self.org_buckets),
            Scope::Project => (config.project, &self.project_buckets),
            Scope::Token => (config.token, &self.token_buckets),
        };
        let now = Instant::now();
        let period = Duration::from_millis(cfg.period_ms.max(1));
        let mut buckets = lock(buckets);
        let bucket = match buckets.get_mut(id) {
            Some(b) => b,
            None => buckets.entry(id.to_owned()).or_insert(Bucket {
                tokens: cfg.capacity,
                last_refill: now,
            }),
        };
        let periods = now.duration_since(bucket.last_refill).as_nanos() / period.as_nanos();
        if periods > 0 {
            let added = u64::try_from(periods)
                .unwrap_or(u64::MAX)
                .saturating_mul(cfg.refill);
            bucket.tokens = bucket.tokens.saturating_add(added).min(cfg.capacity);
            let advance = period.saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
            bucket.last_refill = bucket.last_refill.checked_add(advance).unwrap_or(now);
        }
        if bucket.tokens == 0 {
            let wait = (bucket.last_refill + period).saturating_duration_since(now);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Some(Decision {
                limit: cfg.capacity,
                remaining: 0,
                retry_after: Some(secs.max(1)),
            });
        }
        bucket.tokens -= 1;
        Some(Decision {
            limit: cfg.capacity,
            remaining: bucket.tokens,
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(period_ms: u64) -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            org: BucketConfig {
                capacity: 3,
                refill: 2,
                period_ms,
            },
            project: BucketConfig {
                capacity: 1,
                refill: 1,
                period_ms,
            },
            token_enabled: true,
            token: BucketConfig {
                capacity: 2,
                refill: 2,
                period_ms,
            },
        }
    }

    #[test]
    fn drains_then_refuses_with_retry_after() {
        let rl = RateLimiter::new(tiny(60_000));
        let remaining: Vec<u64> = (0..3)
            .map(|_| rl.take(Scope::Org, "o").unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = rl.take(Scope::Org, "o").unwrap();
        assert_eq!(refused.remaining, 0);
        let retry = refused.retry_after.unwrap();
        assert!((59..=60).contains(&retry), "{retry}");
        // Buckets are per id and per scope.
        assert_eq!(rl.take(Scope::Org, "other").unwrap().remaining, 2);
        assert_eq!(rl.take(Scope::Project, "o").unwrap().remaining, 0);
    }

    #[test]
    fn refills_in_discrete_steps_up_to_capacity() {
        let rl = RateLimiter::new(tiny(20));
        for _ in 0..3 {
            rl.take(Scope::Org, "o").unwrap();
        }
        assert!(rl.take(Scope::Org, "o").unwrap().retry_after.is_some());
        std::thread::sleep(Duration::from_millis(25));
        let d = rl.take(Scope::Org, "o").unwrap();
        assert_eq!(d.retry_after, None);
        assert!(d.remaining <= 2);
    }

    #[test]
    fn token_buckets_are_off_by_default_and_separate() {
        let rl = RateLimiter::new(RateLimitConfig::default());
        assert_eq!(rl.take(Scope::Token, "127.0.0.1|c"), None);
        let rl = RateLimiter::new(tiny(60_000));
        assert_eq!(rl.take(Scope::Token, "ip|c").unwrap().remaining, 1);
        assert_eq!(rl.take(Scope::Token, "ip|c").unwrap().remaining, 0);
        assert!(rl.take(Scope::Token, "ip|c").unwrap().retry_after.is_some());
        assert!(rl.take(Scope::Token, "ip|d").unwrap().retry_after.is_none());
        assert!(rl.take(Scope::Org, "ip|c").unwrap().retry_after.is_none());
        let old: RateLimitConfig = serde_json::from_str(
            r#"{"enabled":true,"org":{"capacity":1,"refill":1,"period_ms":1},"project":{"capacity":1,"refill":1,"period_ms":1}}"#,
        )
        .unwrap();
        assert!(!old.token_enabled);
        assert_eq!(old.token, default_token_bucket());
    }

    #[test]
    fn disabled_and_reset() {
        let rl = RateLimiter::new(tiny(60_000));
        rl.take(Scope::Project, "p").unwrap();
        assert!(rl.take(Scope::Project, "p").unwrap().retry_after.is_some());
        rl.reset();
        assert!(rl.take(Scope::Project, "p").unwrap().retry_after.is_none());
        rl.set_config(RateLimitConfig {
            enabled: false,
            ..tiny(1)
        });
        assert_eq!(rl.take(Scope::Project, "p"), None);
    }
}
