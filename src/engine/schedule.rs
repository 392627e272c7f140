//! When the configured credential rotates by itself: on a period or a cron
//! schedule (with an optional window), and, with a service-account login,
//! before its secret expires.
//!
//! The schedule has Vault's automated-rotation semantics: five cron fields in
//! UTC (Vault's grammar: no seconds, no `@daily`, no `L`/`W`/`#`), a window
//! after each turn past which a missed turn waits for the next one, and a
//! period counted from the last rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::config::Config;

/// What a schedule's error message shows as the expected form.
const SCHEDULE_FORM: &str = "five fields, minute hour day-of-month month day-of-week, in UTC (e.g. \"0 3 * * SUN\": 03:00 every Sunday)";

/// Parses a rotation schedule as Vault does (robfig/cron's standard parser,
/// minute to day-of-week). The error says what is wrong, for a 400.
pub(crate) fn parse_schedule(text: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} fields; a rotation schedule has {SCHEDULE_FORM}",
            fields.len()
        ));
    }
    for (field, name) in
        fields
            .iter()
            .zip(["minute", "hour", "day-of-month", "month", "day-of-week"])
    {
        check_field(field, name, matches!(name, "month" | "day-of-week"))?;
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&fields.join(" "))
        .map_err(|e| format!("is not a cron expression: {e}; give {SCHEDULE_FORM}"))
}

/// The characters Vault's parser takes in one field: numbers, ranges, steps,
/// lists, `*` and `?`, and in month and day-of-week three-letter names.
fn check_field(field: &str, name: &str, names_allowed: bool) -> Result<(), String> {
    for part in field.split([',', '-', '/']) {
        let ok = part == "*"
            || part == "?"
            || (!part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
            || (names_allowed && part.len() == 3 && part.chars().all(|c| c.is_ascii_alphabetic()));
        if !ok {
            return Err(format!(
                "has {part:?} in its {name} field; use numbers, ranges (1-5), steps (*/2), lists (1,3), * or ?{}",
                if names_allowed { ", or three-letter names" } else { "" }
            ));
        }
        // robfig/cron counts Sunday as 0 only.
        if name == "day-of-week" && part.parse::<u8>().is_ok_and(|d| d > 6) {
            return Err(format!(
                "has {part} in its day-of-week field; days are 0 (Sunday) to 6 (Saturday)"
            ));
        }
    }
    Ok(())
}

fn utc(at: SystemTime) -> DateTime<Utc> {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn system(at: DateTime<Utc>) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).unwrap_or(0))
}

/// The schedule's turn as of `now`: a past turn still inside its window (due),
/// else the next one. `earliest` keeps turns at least that far apart.
fn cron_turn(
    cron: &Cron,
    window: Duration,
    earliest: SystemTime,
    now: SystemTime,
) -> Option<SystemTime> {
    let first = system(cron.find_next_occurrence(&utc(earliest), true).ok()?);
    if first > now || window.is_zero() {
        return Some(first);
    }
    // Missed turns (Vault was down, say): the latest one, if its window is still open.
    let latest = system(cron.find_previous_occurrence(&utc(now), true).ok()?);
    if latest >= first && now < latest + window {
        return Some(latest);
    }
    cron.find_next_occurrence(&utc(now), false).ok().map(system)
}

/// When the schedule (period or cron) next wants a rotation; `None`: none set.
/// `min_gap` is the least time between two scheduled rotations.
pub(crate) fn scheduled(config: &Config, now: SystemTime, min_gap: Duration) -> Option<SystemTime> {
    let last = parse_time(&config.last_rotated).unwrap_or(now);
    if config.rotation_period > 0 {
        return Some(last + Duration::from_secs(config.rotation_period));
    }
    if config.rotation_schedule.is_empty() {
        return None;
    }
    let cron = parse_schedule(&config.rotation_schedule).ok()?;
    // At least a second after the last rotation: a turn rotates once.
    let earliest = last + min_gap.max(Duration::from_secs(1));
    cron_turn(
        &cron,
        Duration::from_secs(config.rotation_window),
        earliest,
        now,
    )
}

/// When a service account's secret has a fifth of its life left.
pub(crate) fn expiring(config: &Config) -> Option<SystemTime> {
    let created = parse_time(&config.secret_created_at)?;
    let expires = parse_time(&config.secret_expires_at)?;
    let life = expires.duration_since(created).ok()?;
    Some(created + life.mul_f64(0.8))
}

/// When the next automated rotation is due, whoever runs it: the schedule's
/// next turn or the secret's expiry, whichever comes first. `None`: never.
pub(crate) fn next_rotation(
    config: &Config,
    now: SystemTime,
    min_gap: Duration,
) -> Option<SystemTime> {
    if config.disable_automated_rotation {
        return None;
    }
    match (scheduled(config, now, min_gap), expiring(config)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// A time as config and its read show it.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(text: &str) -> SystemTime {
        parse_time(text).expect("time")
    }

    fn with_schedule(schedule: &str, window: u64, last: &str) -> Config {
        Config {
            rotation_schedule: schedule.into(),
            rotation_window: window,
            last_rotated: last.into(),
            ..Config::default()
        }
    }

    #[test]
    fn schedules_follow_vaults_grammar() {
        for good in [
            "0 3 * * SUN",
            "0 3 * * 0",
            "*/30 * * * *",
            "0 0 1,15 * ?",
            "15 2 * JAN-MAR MON-FRI",
            "  0   3 * * 6 ",
        ] {
            assert!(parse_schedule(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "0 fields"),
            ("0 0 3 * * SUN", "6 fields"),
            ("@daily", "1 fields"),
            ("0 3 L * *", "day-of-month"),
            ("0 3 * * 5L", "day-of-week"),
            ("0 3 * * FRI#2", "day-of-week"),
            ("0 3 * * 7", "0 (Sunday) to 6"),
            ("0 25 * * *", "not a cron expression"),
            ("61 3 * * *", "not a cron expression"),
            ("0 3 * * XYZ", "not a cron expression"),
            ("0 3 * FOO *", "not a cron expression"),
        ] {
            match parse_schedule(bad) {
                Err(msg) => assert!(msg.contains(says), "{bad:?}: {msg}"),
                Ok(_) => panic!("{bad:?} was accepted"),
            }
        }
    }

    #[test]
    fn a_period_counts_from_the_last_rotation() {
        let config = Config {
            rotation_period: 3600,
            last_rotated: "2030-01-01T00:00:00Z".into(),
            ..Config::default()
        };
        let now = at("2030-01-01T00:30:00Z");
        assert_eq!(
            scheduled(&config, now, HOUR),
            Some(at("2030-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn a_schedule_turns_once_per_occurrence() {
        // Daily at 03:00, last rotated at 03:00:20 on the 1st.
        let config = with_schedule("0 3 * * *", 0, "2030-01-01T03:00:20Z");
        for now in ["2030-01-01T03:00:30Z", "2030-01-01T12:00:00Z"] {
            assert_eq!(
                scheduled(&config, at(now), Duration::ZERO),
                Some(at("2030-01-02T03:00:00Z")),
                "{now}"
            );
        }
        // Without a window, a missed turn is due whenever the tick comes.
        assert_eq!(
            scheduled(&config, at("2030-01-05T10:00:00Z"), Duration::ZERO),
            Some(at("2030-01-02T03:00:00Z"))
        );
    }

    #[test]
    fn a_missed_turn_waits_for_the_next_window() {
        // Daily at 03:00 with a 2 h window; the 1st's rotation was done.
        let config = with_schedule("0 3 * * *", 7200, "2030-01-01T03:00:10Z");
        let due = at("2030-01-02T03:00:00Z");
        assert_eq!(
            scheduled(&config, at("2030-01-02T04:59:00Z"), Duration::ZERO),
            Some(due),
            "inside the window: due"
        );
        assert_eq!(
            scheduled(&config, at("2030-01-02T05:00:00Z"), Duration::ZERO),
            Some(at("2030-01-03T03:00:00Z")),
            "the window closed: the next turn"
        );
        // Days later, the latest turn's window is open again.
        assert_eq!(
            scheduled(&config, at("2030-01-04T03:30:00Z"), Duration::ZERO),
            Some(at("2030-01-04T03:00:00Z"))
        );
    }

    #[test]
    fn scheduled_turns_keep_the_least_gap() {
        // Every 5 minutes, but at most once an hour.
        let config = with_schedule("*/5 * * * *", 0, "2030-01-01T00:00:00Z");
        assert_eq!(
            scheduled(&config, at("2030-01-01T00:10:00Z"), HOUR),
            Some(at("2030-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn the_next_rotation_is_the_schedule_or_a_fifth_of_the_secret_left() {
        let now = at("2030-01-01T00:00:00Z");
        let mut config = Config::default();
        assert_eq!(next_rotation(&config, now, HOUR), None, "nothing set");
        config.rotation_period = 3600;
        config.last_rotated = "2030-01-01T00:00:00Z".into();
        assert_eq!(
            next_rotation(&config, now, HOUR),
            Some(at("2030-01-01T01:00:00Z"))
        );
        // A secret living 10 days is replaced after 8, unless the schedule comes first.
        config.secret_created_at = "2030-01-01T00:00:00Z".into();
        config.secret_expires_at = "2030-01-11T00:00:00Z".into();
        assert_eq!(
            next_rotation(&config, now, HOUR),
            Some(at("2030-01-01T01:00:00Z"))
        );
        config.rotation_period = 0;
        assert_eq!(
            next_rotation(&config, now, HOUR),
            Some(at("2030-01-09T00:00:00Z"))
        );
        config.disable_automated_rotation = true;
        assert_eq!(next_rotation(&config, now, HOUR), None);
    }
}
