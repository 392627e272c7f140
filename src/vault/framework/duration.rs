//! Durations as Vault accepts them: integer seconds, Go duration strings
//! (`1h30m`, `1.5h`, `300ms`) or whole days (`7d`).

use std::time::Duration;

use serde_json::Value;

/// Parses a duration the way Vault's `parseutil.ParseDurationSecond` does.
/// Negative durations are rejected: no TTL in this project can be negative.
pub fn parse_duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                Ok(Duration::from_secs(secs))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()) {
                Ok(Duration::from_secs(f as u64))
            } else {
                Err(format!("{n} is not a non-negative number of seconds"))
            }
        }
        Value::String(s) => parse_duration_str(s.trim()),
        other => Err(format!("{other} is not a duration")),
    }
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
            let frac: u128 = frac_part.parse().map_err(|_| bad())?;
            let scale = 10u128
                .checked_pow(u32::try_from(frac_part.len()).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            nanos += frac * unit_nanos / scale;
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
        ] {
            assert!(parse_duration(&bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn go_strings_round_trip(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            let got = parse_duration(&Value::String(text)).expect("valid");
            proptest::prop_assert_eq!(got, Duration::from_secs(h * 3600 + m * 60 + s));
        }
    }
}
