//! Fault injection: rules that match requests by method and path regex and then fail them
//! with a status, drop the connection, add latency, or only count them.
//!
//! Each rule counts the requests it matches. With `nth` it acts only on the nth match
//! (1-based); with `times` on the first `times` matches; with neither on every match. With
//! `skip` the first `skip` matches pass untouched and `nth`/`times` count from the next one
//! (e.g. the second of two calls to the same path, once or on every attempt).
//! Rules are evaluated after authentication succeeded (Digest, a bearer token, or the client
//! credentials of `/api/oauth/token` and `/api/oauth/revoke`; so counts are logical calls,
//! independent of how many challenge round trips a client makes) unless `before_auth` is set.
//! Paths are matched as sent, so `^/api/oauth/token$` targets the token endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::StatusCode;
use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with `status` (default 503) and an Atlas error body.
    #[default]
    Status,
    /// Close the connection without a response.
    Reset,
    /// Handle the request, then close the connection without sending the answer
    /// (a create that reached Atlas whose response was lost).
    ResetAfter,
    /// Delay the request by `latency_ms`, then handle it normally.
    Latency,
    /// Only count matching requests.
    Count,
}

/// A fault rule, as accepted by `POST /admin/faults` (JSON, snake_case field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Regex matched against the request path (without query string), e.g.
    /// `^/api/atlas/v2/orgs/[^/]+/apiKeys$`.
    pub path: String,
    #[serde(default)]
    pub action: FaultAction,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// `Retry-After` seconds to send with a status fault.
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Act only on the nth matching request (1-based).
    #[serde(default)]
    pub nth: Option<u64>,
    /// Act on the first `times` matching requests.
    #[serde(default)]
    pub times: Option<u64>,
    /// Let the first `skip` matching requests pass; `nth` and `times` count after them.
    #[serde(default)]
    pub skip: Option<u64>,
    /// Evaluate before authentication (then challenges and refused credentials count as
    /// matches too).
    #[serde(default)]
    pub before_auth: bool,
}

impl FaultRule {
    fn new(method: Option<&str>, path: &str, action: FaultAction) -> Self {
        Self {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            action,
            ..Self::default()
        }
    }

    /// Fail matching requests with `status` (method None = any method).
    pub fn status(method: Option<&str>, path: &str, status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(method, path, FaultAction::Status)
        }
    }

    /// Close the connection of matching requests without answering.
    pub fn reset(method: Option<&str>, path: &str) -> Self {
        Self::new(method, path, FaultAction::Reset)
    }

    /// Executes the request, then drops the connection: the caller cannot know it happened.
    pub fn reset_after(method: Option<&str>, path: &str) -> Self {
        Self::new(method, path, FaultAction::ResetAfter)
    }

    /// Delay matching requests.
    pub fn latency(method: Option<&str>, path: &str, latency: Duration) -> Self {
        Self {
            latency_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            ..Self::new(method, path, FaultAction::Latency)
        }
    }

    /// Only count matching requests.
    pub fn count(method: Option<&str>, path: &str) -> Self {
        Self::new(method, path, FaultAction::Count)
    }

    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    pub fn skip(mut self, n: u64) -> Self {
        self.skip = Some(n);
        self
    }

    pub fn error_code(mut self, code: &str) -> Self {
        self.error_code = Some(code.to_owned());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn before_auth(mut self) -> Self {
        self.before_auth = true;
        self
    }
}

/// A rule with its counters, as `GET /admin/faults` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub id: u64,
    pub rule: FaultRule,
    /// Requests that matched method and path.
    pub matched: u64,
    /// Requests the rule acted on.
    pub fired: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status {
        status: StatusCode,
        code: String,
        detail: String,
        retry_after: Option<u64>,
    },
    Reset,
}

#[derive(Debug, Default)]
pub struct FaultEffect {
    pub latency: Duration,
    pub failure: Option<Failure>,
    /// Handle the request, then drop the connection instead of answering.
    pub reset_after: bool,
    pub fired: bool,
}

struct ActiveRule {
    id: u64,
    rule: FaultRule,
    path: Regex,
    matched: AtomicU64,
    fired: AtomicU64,
}

#[derive(Default)]
pub struct Faults {
    rules: RwLock<Vec<Arc<ActiveRule>>>,
    any: AtomicBool,
    next_id: AtomicU64,
}

fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        500 => "UNEXPECTED_ERROR",
        503 => "SERVICE_UNAVAILABLE",
        429 => "RATE_LIMITED",
        _ => "SIMULATED_FAULT",
    }
}

impl Faults {
    pub fn add(&self, rule: FaultRule) -> Result<u64, String> {
        let path = Regex::new(&rule.path).map_err(|e| format!("invalid path regex: {e}"))?;
        if rule.action == FaultAction::Status {
            let status = rule.status.unwrap_or(503);
            StatusCode::from_u16(status).map_err(|_| format!("invalid status {status}"))?;
        }
        if rule.nth == Some(0) {
            return Err("nth is 1-based".into());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let active = Arc::new(ActiveRule {
            id,
            rule,
            path,
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        });
        let mut rules = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rules.push(active);
        self.any.store(true, Ordering::Release);
        Ok(id)
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|r| r.id != id);
        self.any.store(!rules.is_empty(), Ordering::Release);
        rules.len() != before
    }

    pub fn clear(&self) {
        let mut rules = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rules.clear();
        self.any.store(false, Ordering::Release);
    }

    pub fn list(&self) -> Vec<FaultStatus> {
        let rules = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rules
            .iter()
            .map(|r| FaultStatus {
                id: r.id,
                rule: r.rule.clone(),
                matched: r.matched.load(Ordering::Relaxed),
                fired: r.fired.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Applies the rules of one phase to a request.
    pub fn evaluate(&self, method: &str, path: &str, before_auth: bool) -> FaultEffect {
        let mut effect = FaultEffect::default();
        if !self.any.load(Ordering::Acquire) {
            return effect;
        }
        let rules: Vec<Arc<ActiveRule>> = {
            let rules = self
                .rules
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rules
                .iter()
                .filter(|r| r.rule.before_auth == before_auth)
                .cloned()
                .collect()
        };
        for r in rules {
            if r.rule
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || !r.path.is_match(path)
            {
                continue;
            }
            let matched = r.matched.fetch_add(1, Ordering::Relaxed) + 1;
            let skip = r.rule.skip.unwrap_or(0);
            let n = matched.saturating_sub(skip);
            let acts = n > 0
                && match (r.rule.nth, r.rule.times) {
                    (Some(nth), _) => n == nth,
                    (None, Some(times)) => n <= times,
                    (None, None) => true,
                };
            if !acts || r.rule.action == FaultAction::Count {
                continue;
            }
            r.fired.fetch_add(1, Ordering::Relaxed);
            effect.fired = true;
            match r.rule.action {
                FaultAction::Latency => {
                    effect.latency += Duration::from_millis(r.rule.latency_ms.unwrap_or(0));
                }
                FaultAction::Reset if effect.failure.is_none() => {
                    effect.failure = Some(Failure::Reset)
                }
                FaultAction::ResetAfter => effect.reset_after = true,
                FaultAction::Status if effect.failure.is_none() => {
                    let status = StatusCode::from_u16(r.rule.status.unwrap_or(503))
                        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    effect.failure = Some(Failure::Status {
                        status,
                        code: r
                            .rule
                            .error_code
                            .clone()
                            .unwrap_or_else(|| default_code(status).to_owned()),
                        detail: r
                            .rule
                            .detail
                            .clone()
                            .unwrap_or_else(|| "Simulated fault injected by atlas-sim.".into()),
                        retry_after: r.rule.retry_after,
                    });
                }
                _ => {}
            }
        }
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "^/api/atlas/v2/orgs/[^/]+/apiKeys$";

    #[test]
    fn nth_fires_once_and_counts_all_matches() {
        let f = Faults::default();
        let id = f
            .add(FaultRule::status(Some("POST"), KEYS, 500).nth(2))
            .unwrap();
        let fired: Vec<bool> = (0..4)
            .map(|_| {
                f.evaluate("POST", "/api/atlas/v2/orgs/abc/apiKeys", false)
                    .failure
                    .is_some()
            })
            .collect();
        assert_eq!(fired, [false, true, false, false]);
        assert!(f
            .evaluate("GET", "/api/atlas/v2/orgs/abc/apiKeys", false)
            .failure
            .is_none());
        assert!(f
            .evaluate("POST", "/api/atlas/v2/orgs/abc/apiKeys", true)
            .failure
            .is_none());
        let status = &f.list()[0];
        assert_eq!((status.id, status.matched, status.fired), (id, 4, 1));
        assert!(f.remove(id));
        assert!(!f.remove(id));
    }

    #[test]
    fn times_latency_reset_and_defaults() {
        let f = Faults::default();
        f.add(FaultRule::reset(None, "/reset").times(1)).unwrap();
        f.add(FaultRule::latency(None, "/slow", Duration::from_millis(30)))
            .unwrap();
        f.add(FaultRule::status(None, "/busy", 503)).unwrap();
        assert_eq!(
            f.evaluate("GET", "/reset", false).failure,
            Some(Failure::Reset)
        );
        assert_eq!(f.evaluate("GET", "/reset", false).failure, None);
        assert_eq!(
            f.evaluate("GET", "/slow", false).latency,
            Duration::from_millis(30)
        );
        match f.evaluate("GET", "/busy", false).failure {
            Some(Failure::Status { status, code, .. }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(code, "SERVICE_UNAVAILABLE");
            }
            other => panic!("{other:?}"),
        }
        f.clear();
        assert!(!f.evaluate("GET", "/busy", false).fired);
    }

    #[test]
    fn skip_lets_the_first_matches_pass() {
        let f = Faults::default();
        f.add(FaultRule::status(Some("GET"), "/orgs$", 500).skip(1))
            .unwrap();
        f.add(FaultRule::reset(None, "/once$").skip(2).times(1))
            .unwrap();
        let fails = |path: &str| f.evaluate("GET", path, false).failure.is_some();
        assert_eq!(
            (0..4).map(|_| fails("/orgs")).collect::<Vec<_>>(),
            [false, true, true, true]
        );
        assert_eq!(
            (0..4).map(|_| fails("/once")).collect::<Vec<_>>(),
            [false, false, true, false]
        );
        let status = &f.list()[0];
        assert_eq!((status.matched, status.fired), (4, 3));
    }

    #[test]
    fn invalid_rules_are_refused() {
        let f = Faults::default();
        assert!(f.add(FaultRule::count(None, "(")).is_err());
        assert!(f.add(FaultRule::status(None, "x", 1000)).is_err());
        assert!(f.add(FaultRule::count(None, "x").nth(0)).is_err());
    }

    #[test]
    fn rule_json_uses_snake_case() {
        let rule: FaultRule =
            serde_json::from_str(r#"{"method":"POST","path":"x","action":"reset","nth":3}"#)
                .unwrap();
        assert_eq!(rule, FaultRule::reset(Some("POST"), "x").nth(3));
    }
}
