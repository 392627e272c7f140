//! Operator knobs read once from the plugin's environment, which Vault sets from
//! the catalog entry (`vault plugin register -env=NAME=value`). Every knob has the
//! production default; tests and slow networks shorten or lengthen them.

use std::time::Duration;

use serde_json::Value;

use crate::atlas::Timeouts;
use crate::vault::framework::parse_duration;

/// Time limit of one HTTP exchange with Atlas (default 30s).
pub const ATTEMPT_TIMEOUT_ENV: &str = "MONGODBATLAS_ATTEMPT_TIMEOUT";
/// Time limit of one Atlas call including its retries (default 90s).
pub const CALL_TIMEOUT_ENV: &str = "MONGODBATLAS_CALL_TIMEOUT";
/// Time limit of a whole issuance, from its WAL entry to the answer (default 75s).
pub const ISSUE_TIMEOUT_ENV: &str = "MONGODBATLAS_ISSUE_TIMEOUT";
/// Age a write-ahead-log entry must reach before the rollback deletes its key (default 10m).
pub const WAL_ROLLBACK_MIN_AGE_ENV: &str = "MONGODBATLAS_WAL_ROLLBACK_MIN_AGE";

/// Test-only: the shortest `rotation_period` and `rotation_window` config
/// accepts, and the least time between two scheduled rotations (default 1h),
/// so a test can watch a scheduled rotation happen.
pub const MIN_ROTATION_PERIOD_ENV: &str = "MONGODBATLAS_MIN_ROTATION_PERIOD";

/// Vault gives up on a request after `max_request_duration` (90 s by default) and
/// answers `context canceled`; the plugin answers first, with what happened.
const DEFAULT_ISSUE_TIMEOUT: Duration = Duration::from_secs(75);
/// A WAL entry younger than the issue timeout may belong to an issuance still
/// running; the rollback must never race one.
const DEFAULT_WAL_ROLLBACK_MIN_AGE: Duration = Duration::from_secs(10 * 60);
/// WAL entries carry whole seconds, so an entry can look up to 1 s older than it is.
const WAL_AGE_SLACK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?}: {reason}")]
pub struct SettingsError {
    name: &'static str,
    value: String,
    reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub timeouts: Timeouts,
    /// An issuance answers within this; what it created is cleaned up after.
    pub issue_timeout: Duration,
    pub wal_rollback_min_age: Duration,
    /// The shortest automated rotation period and window, and the least
    /// time between scheduled rotations (tests lower it).
    pub min_rotation_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            issue_timeout: DEFAULT_ISSUE_TIMEOUT,
            wal_rollback_min_age: DEFAULT_WAL_ROLLBACK_MIN_AGE,
            min_rotation_period: Duration::from_secs(3600),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Unset or empty variables keep their defaults; anything unparsable or zero is
    /// refused, so a typo stops the plugin at launch instead of changing behaviour.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        let knob = |name: &'static str, slot: &mut Duration| -> Result<(), SettingsError> {
            let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                return Ok(());
            };
            let error = |reason: String| SettingsError {
                name,
                value: value.clone(),
                reason,
            };
            match parse_duration(&Value::String(value.clone())) {
                Ok(d) if d.is_zero() => Err(error("must be greater than zero".into())),
                Ok(d) => {
                    *slot = d;
                    Ok(())
                }
                Err(reason) => Err(error(reason)),
            }
        };
        knob(ATTEMPT_TIMEOUT_ENV, &mut settings.timeouts.attempt)?;
        knob(CALL_TIMEOUT_ENV, &mut settings.timeouts.overall)?;
        knob(ISSUE_TIMEOUT_ENV, &mut settings.issue_timeout)?;
        knob(WAL_ROLLBACK_MIN_AGE_ENV, &mut settings.wal_rollback_min_age)?;
        knob(MIN_ROTATION_PERIOD_ENV, &mut settings.min_rotation_period)?;
        // A rollback that can see an issuance's entry while the issuance runs
        // would delete a key that is about to be leased.
        let shortest = settings.issue_timeout + WAL_AGE_SLACK;
        if settings.wal_rollback_min_age < shortest {
            return Err(SettingsError {
                name: WAL_ROLLBACK_MIN_AGE_ENV,
                value: lookup(WAL_ROLLBACK_MIN_AGE_ENV).unwrap_or_default(),
                reason: format!(
                    "must be at least {}s: {ISSUE_TIMEOUT_ENV} ({}s, the longest an issuance runs) plus {}s, \
                     or the rollback could delete the key of an issuance still running",
                    shortest.as_secs(),
                    settings.issue_timeout.as_secs(),
                    WAL_AGE_SLACK.as_secs()
                ),
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_without_environment() {
        assert_eq!(Settings::from_lookup(lookup(&[])), Ok(Settings::default()));
        assert_eq!(
            Settings::default().wal_rollback_min_age,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn knobs_accept_vault_durations() {
        let s = Settings::from_lookup(lookup(&[
            (ATTEMPT_TIMEOUT_ENV, "2s"),
            (CALL_TIMEOUT_ENV, "1m30s"),
            (ISSUE_TIMEOUT_ENV, "3"),
            (WAL_ROLLBACK_MIN_AGE_ENV, "5"),
            ("UNRELATED", "x"),
        ]))
        .expect("valid");
        assert_eq!(s.timeouts.attempt, Duration::from_secs(2));
        assert_eq!(s.timeouts.overall, Duration::from_secs(90));
        assert_eq!(s.timeouts.connect, Timeouts::default().connect);
        assert_eq!(s.issue_timeout, Duration::from_secs(3));
        assert_eq!(s.wal_rollback_min_age, Duration::from_secs(5));
    }

    #[test]
    fn a_rollback_age_within_the_issue_timeout_is_refused() {
        // The default issue timeout (75 s) with a 10 s minimum age: the rollback
        // would race running issuances.
        let err = Settings::from_lookup(lookup(&[(WAL_ROLLBACK_MIN_AGE_ENV, "10s")]))
            .expect_err("refused")
            .to_string();
        assert!(err.starts_with(WAL_ROLLBACK_MIN_AGE_ENV), "{err}");
        assert!(
            err.contains(ISSUE_TIMEOUT_ENV) && err.contains("77s"),
            "{err}"
        );
        let err = Settings::from_lookup(lookup(&[
            (ISSUE_TIMEOUT_ENV, "20s"),
            (WAL_ROLLBACK_MIN_AGE_ENV, "21s"),
        ]))
        .expect_err("refused")
        .to_string();
        assert!(err.contains("22s"), "{err}");
        let ok = Settings::from_lookup(lookup(&[
            (ISSUE_TIMEOUT_ENV, "20s"),
            (WAL_ROLLBACK_MIN_AGE_ENV, "22s"),
        ]))
        .expect("accepted");
        assert_eq!(ok.wal_rollback_min_age, Duration::from_secs(22));
    }

    #[test]
    fn the_issuance_answers_before_vault_gives_up() {
        // Vault's default max_request_duration is 90 s.
        assert!(Settings::default().issue_timeout < Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for bad in ["soon", "0", "-5s"] {
            let err = Settings::from_lookup(lookup(&[(CALL_TIMEOUT_ENV, bad)]))
                .expect_err("refused")
                .to_string();
            assert!(err.starts_with(CALL_TIMEOUT_ENV), "{err}");
        }
    }
}
