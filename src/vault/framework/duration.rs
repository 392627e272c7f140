//! Durations as Vault accepts them: integer seconds, Go duration strings
//! (`1h30m`, `1.5h`, `300ms`) or whole days (`7d`).

use std::time::Duration;

use serde_json::Value;

/// The longest duration Vault can hold: Go's `time.Duration` is i64 nanoseconds
/// (about 292 years). Anything longer would be stored saturated or wrapped.
pub(crate) const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses a duration the way Vault's `parseutil.ParseDurationSecond` does.
/// Negative durations are rejected: no TTL in this project can be negative;
/// so are durations beyond [`MAX_DURATION`].
pub fn parse_duration(value: &Value) -> Result<Duration, String> {
    let duration = match value {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                Ok(Duration::from_secs(secs))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()) {
                // Saturates at u64::MAX seconds, which the check below refuses.
                Ok(Duration::from_secs(f as u64))
            } else {
                Err(format!("{n} is not a non-negative number of seconds"))
            }
        }
        Value::String(s) => parse_duration_str(s.trim()),
        other => Err(format!("{other} is not a duration")),
    }?;
    if duration > MAX_DURATION {
        return Err(format!(
            "{value} is longer than Vault can represent: at most {} seconds (about 292 years)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(duration)
}

fn parse_duration_str(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Some(days) = s.strip_suffix('d') {
        return days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is not a whole number of days"));
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    parse_go_duration(s)
}

/// Fraction digits that matter: 10^19 * 3.6e12 ns (an hour) still fits a u128.
const MAX_FRACTION_DIGITS: usize = 19;

/// Go's `time.ParseDuration` grammar: `[+]( <decimal><unit> )+`, units ns us µs ms s m h.
fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let bad =
        || format!("{input:?} is not a duration (use seconds, or e.g. \"1h30m\", \"90s\", \"7d\")");
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut nanos = int.checked_mul(unit_nanos).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Digits past the 19th are below a nanosecond even in hours (Go
            // drops them too); keeping them would overflow `frac * unit_nanos`.
            let digits = &frac_part[..frac_part.len().min(MAX_FRACTION_DIGITS)];
            let frac: u128 = digits.parse().map_err(|_| bad())?;
            let scale = 10u128.pow(digits.len() as u32);
            nanos = nanos
                .checked_add(frac * unit_nanos / scale)
                .ok_or_else(bad)?;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(bad)?;
        rest = next;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| bad())?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_vault_forms() {
        let cases = [
            (json!(3600), 3600),
            (json!("3600"), 3600),
            (json!("1h30m"), 5400),
            (json!("1.5h"), 5400),
            (json!("90s"), 90),
            (json!("7d"), 7 * 86400),
            (json!(""), 0),
            (json!(null), 0),
            (json!("2h0m0s"), 7200),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(&input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
        }
        assert_eq!(
            parse_duration(&json!("300ms")),
            Ok(Duration::from_millis(300))
        );
    }

    /// Found by the property test below: a long fraction overflowed
    /// `frac * unit_nanos` (a panic with overflow checks).
    #[test]
    fn long_fractions_do_not_overflow() {
        assert_eq!(
            parse_duration(&json!(".6000000000000000000000000000m")),
            Ok(Duration::from_secs(36))
        );
        assert_eq!(
            parse_duration(&json!("0.99999999999999999999999999999999999999h")),
            Ok(Duration::from_nanos(3_599_999_999_999))
        );
    }

    #[test]
    fn refuses_what_a_go_duration_cannot_hold() {
        let max = MAX_DURATION.as_secs();
        assert_eq!(parse_duration(&json!(max)), Ok(Duration::from_secs(max)));
        assert_eq!(
            parse_duration(&json!("2562047h47m16.854775807s")),
            Ok(MAX_DURATION)
        );
        for too_long in [
            json!(9_999_999_999_999u64),
            json!("9999999999999"),
            json!(max + 1),
            json!(u64::MAX),
            json!(1e300),
            json!("2562048h"),
            json!("106752d"),
            json!("2562047h47m16.854775808s"),
        ] {
            let e = parse_duration(&too_long).expect_err("too long");
            assert!(e.contains("longer than Vault can represent"), "{e}");
        }
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        for bad in [
            json!("abc"),
            json!("-1h"),
            json!(-5),
            json!("1x"),
            json!("h"),
            json!(true),
            json!("1.d"),
            json!("1.2.3h"),
            json!("9999999999999999999999999999999999999999h"),
        ] {
            assert!(parse_duration(&bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the text, a duration or an error; never a panic (overflow included).
        #[test]
        fn any_text_parses_or_errs(s in ".{0,40}") {
            let _ = parse_duration(&Value::String(s));
        }

        /// Text built from the grammar's own pieces, where overflows hide.
        #[test]
        fn grammar_shaped_text_parses_or_errs(
            parts in proptest::collection::vec(("[0-9]{0,40}", proptest::option::of("\\.[0-9]{0,45}"), "(ns|us|µs|ms|s|m|h|d|x|)"), 1..4),
            sign in "[+-]?",
        ) {
            let text: String = std::iter::once(sign)
                .chain(parts.into_iter().map(|(i, f, u)| format!("{i}{}{u}", f.unwrap_or_default())))
                .collect();
            if let Ok(d) = parse_duration(&Value::String(text.clone())) {
                proptest::prop_assert!(!text.starts_with('-') || d.is_zero(), "{text} -> {d:?}");
            }
        }

        #[test]
        fn any_number_is_seconds_or_rejected(f in proptest::num::f64::ANY) {
            let value = serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null);
            match parse_duration(&value) {
                Ok(d) => proptest::prop_assert!(value.is_null() || f >= 0.0, "{f} -> {d:?}"),
                Err(_) => proptest::prop_assert!(
                    f < 0.0 || f >= (MAX_DURATION.as_secs() + 1) as f64,
                    "{f} rejected"
                ),
            }
        }

        #[test]
        fn seconds_and_days_round_trip(secs in 0..=MAX_DURATION.as_secs(), days in 0u64..100_000) {
            proptest::prop_assert_eq!(parse_duration(&Value::from(secs)), Ok(Duration::from_secs(secs)));
            proptest::prop_assert_eq!(parse_duration(&Value::String(secs.to_string())), Ok(Duration::from_secs(secs)));
            proptest::prop_assert_eq!(parse_duration(&Value::String(format!("{days}d"))), Ok(Duration::from_secs(days * 86_400)));
        }

        #[test]
        fn seconds_beyond_a_go_duration_are_rejected(secs in (MAX_DURATION.as_secs() + 1)..=u64::MAX) {
            proptest::prop_assert!(parse_duration(&Value::from(secs)).is_err());
            proptest::prop_assert!(parse_duration(&Value::String(secs.to_string())).is_err());
        }

        #[test]
        fn negatives_are_rejected(n in 1i64..=i64::MAX, unit in "(ns|ms|s|m|h)") {
            proptest::prop_assert!(parse_duration(&Value::from(-n)).is_err());
            let negative_text = format!("-{n}{unit}");
            proptest::prop_assert!(parse_duration(&Value::String(negative_text)).is_err());
        }

        #[test]
        fn fractions_are_exact_to_the_nanosecond(whole in 0u64..1_000, millis in 0u64..1_000) {
            let text = format!("{whole}.{millis:03}s");
            proptest::prop_assert_eq!(
                parse_duration(&Value::String(text)),
                Ok(Duration::from_secs(whole) + Duration::from_millis(millis))
            );
        }

        #[test]
        fn go_strings_round_trip(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            let got = parse_duration(&Value::String(text)).expect("valid");
            proptest::prop_assert_eq!(got, Duration::from_secs(h * 3600 + m * 60 + s));
        }
    }
}
