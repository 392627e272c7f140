//! Request counters: totals, digest challenges, bearer and OAuth client failures, and
//! per-route counts by status.
//!
//! Routes are templates such as `POST /api/atlas/v2/orgs/{orgId}/apiKeys` or
//! `POST /api/oauth/token`, so a test can count the Atlas round trips one issuance costs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Default)]
struct RouteCounters {
    total: u64,
    challenges: u64,
    by_status: BTreeMap<u16, u64>,
}

#[derive(Default)]
pub struct Stats {
    requests_total: AtomicU64,
    challenges: AtomicU64,
    stale_challenges: AtomicU64,
    auth_failures: AtomicU64,
    bearer_failures: AtomicU64,
    token_failures: AtomicU64,
    rate_limited: AtomicU64,
    faults_fired: AtomicU64,
    routes: Mutex<HashMap<RouteKey, RouteCounters>>,
}

/// A route template without per-request allocation: method, API prefix and path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey {
    pub method: &'static str,
    /// `/api/atlas/v2`, `/api/atlas/v1.0`, or empty (OAuth endpoints, unmatched paths).
    pub prefix: &'static str,
    /// E.g. `/orgs/{orgId}/apiKeys`, `/api/oauth/token`, or `<unmatched>`.
    pub template: &'static str,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", self.method, self.prefix, self.template)
    }
}

/// Per-route counters in a [`StatsSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// Every request to the route, challenges included.
    pub total: u64,
    /// Requests answered with a digest challenge (401 + WWW-Authenticate).
    pub challenges: u64,
    /// Status code (as a string) -> count.
    pub by_status: BTreeMap<String, u64>,
}

impl RouteStats {
    /// Requests that got past authentication.
    pub fn authenticated(&self) -> u64 {
        self.total - self.challenges
    }

    pub fn status(&self, status: u16) -> u64 {
        self.by_status
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }
}

/// What `GET /admin/stats` returns. Admin requests are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Atlas API requests (every HTTP request outside /admin), challenges included.
    pub requests_total: u64,
    /// 401 answers carrying a digest challenge.
    pub challenges: u64,
    /// Challenges with `stale=true` (expired/unknown nonce or reused nc).
    pub stale_challenges: u64,
    /// Requests with digest credentials that were wrong (unknown user, bad digest, ...).
    pub auth_failures: u64,
    /// Admin API requests with an unknown, expired or revoked bearer token (401).
    #[serde(default)]
    pub bearer_failures: u64,
    /// OAuth endpoint requests answered `invalid_client` (401).
    #[serde(default)]
    pub token_failures: u64,
    /// 429 answers from the token buckets.
    pub rate_limited: u64,
    /// Requests a fault rule acted on.
    pub faults_fired: u64,
    /// Route template (`METHOD /api/atlas/...`) -> counters.
    pub routes: BTreeMap<String, RouteStats>,
}

impl StatsSnapshot {
    /// Counters of one route template; zero when the route was never called.
    pub fn route(&self, route: &str) -> RouteStats {
        self.routes.get(route).cloned().unwrap_or_default()
    }
}

/// The kind of challenge, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    None,
    Fresh,
    Stale,
    BadCredentials,
    /// Not a challenge: a bearer token was refused (401 without `WWW-Authenticate`).
    BadBearer,
    /// Not a challenge: the OAuth token endpoint refused the client credentials.
    BadClient,
}

impl Stats {
    pub fn record(&self, route: RouteKey, status: u16, challenge: Challenge) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        let challenged = matches!(
            challenge,
            Challenge::Fresh | Challenge::Stale | Challenge::BadCredentials
        );
        match challenge {
            Challenge::None => {}
            Challenge::BadBearer => {
                self.bearer_failures.fetch_add(1, Ordering::Relaxed);
            }
            Challenge::BadClient => {
                self.token_failures.fetch_add(1, Ordering::Relaxed);
            }
            Challenge::Fresh => {
                self.challenges.fetch_add(1, Ordering::Relaxed);
            }
            Challenge::Stale => {
                self.challenges.fetch_add(1, Ordering::Relaxed);
                self.stale_challenges.fetch_add(1, Ordering::Relaxed);
            }
            Challenge::BadCredentials => {
                self.challenges.fetch_add(1, Ordering::Relaxed);
                self.auth_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = routes.entry(route).or_default();
        counters.total += 1;
        counters.challenges += u64::from(challenged);
        *counters.by_status.entry(status).or_default() += 1;
    }

    pub fn fault_fired(&self) {
        self.faults_fired.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        StatsSnapshot {
            requests_total: self.requests_total.load(Ordering::Relaxed),
            challenges: self.challenges.load(Ordering::Relaxed),
            stale_challenges: self.stale_challenges.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            bearer_failures: self.bearer_failures.load(Ordering::Relaxed),
            token_failures: self.token_failures.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            faults_fired: self.faults_fired.load(Ordering::Relaxed),
            routes: routes
                .iter()
                .map(|(route, c)| {
                    let by_status = c
                        .by_status
                        .iter()
                        .map(|(s, n)| (s.to_string(), *n))
                        .collect();
                    (
                        route.to_string(),
                        RouteStats {
                            total: c.total,
                            challenges: c.challenges,
                            by_status,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn reset(&self) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.clear();
        for counter in [
            &self.requests_total,
            &self.challenges,
            &self.stale_challenges,
            &self.auth_failures,
            &self.bearer_failures,
            &self.token_failures,
            &self.rate_limited,
            &self.faults_fired,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_status_and_challenge() {
        let stats = Stats::default();
        let x = RouteKey {
            method: "POST",
            prefix: "",
            template: "/x",
        };
        let y = RouteKey {
            method: "GET",
            prefix: "",
            template: "/y",
        };
        stats.record(x, 401, Challenge::Fresh);
        stats.record(x, 200, Challenge::None);
        stats.record(y, 401, Challenge::Stale);
        stats.record(y, 429, Challenge::None);
        stats.record(y, 401, Challenge::BadCredentials);
        stats.record(y, 401, Challenge::BadBearer);
        stats.record(x, 401, Challenge::BadClient);
        let snap = stats.snapshot();
        assert_eq!(snap.requests_total, 7);
        assert_eq!(snap.challenges, 3);
        assert_eq!((snap.bearer_failures, snap.token_failures), (1, 1));
        assert_eq!(snap.stale_challenges, 1);
        assert_eq!(snap.auth_failures, 1);
        assert_eq!(snap.rate_limited, 1);
        let x = snap.route("POST /x");
        assert_eq!(
            (x.total, x.challenges, x.authenticated(), x.status(200)),
            (3, 1, 2, 1)
        );
        assert_eq!(snap.route("nope"), RouteStats::default());
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
