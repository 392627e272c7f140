//! Logs as hclog JSON lines on stderr, which go-plugin's host parses and
//! re-logs under the plugin's name at the right level.
//!
//! hclog's host-side parser is strict: `@message` must be a string and
//! `@timestamp` must have exactly six fractional digits, or the line is
//! demoted to plain text. Nothing is ever written to stdout.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Environment variable selecting the level: trace, debug, info (default), warn, error.
pub const LOG_LEVEL_ENV: &str = "PLUGIN_LOG_LEVEL";

/// Targets logged at the chosen level: this crate and its binaries.
const OUR_TARGETS: [&str; 4] = [
    "vault_mongodbatlas",
    "vault_plugin_secrets_mongodbatlas",
    "example_plugin",
    "atlas_sim",
];

/// Installs the global subscriber. Safe to call more than once.
pub fn init() {
    let level = std::env::var(LOG_LEVEL_ENV).ok();
    let _ = subscriber(level.as_deref(), std::io::stderr).try_init();
}

/// hclog lines for `level` (`PLUGIN_LOG_LEVEL`; unset or unknown: info) on `writer`.
fn subscriber<W>(level: Option<&str>, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // A static per-target filter, not EnvFilter: the level is one variable, and
    // EnvFilter would link a regex engine into the plugin for nothing.
    let ours = level
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // Transport libraries: their debug output only when tracing, and never
    // more than our own level otherwise.
    let deps = if ours == LevelFilter::TRACE {
        LevelFilter::DEBUG
    } else {
        ours.min(LevelFilter::WARN)
    };
    let filter = Targets::new()
        .with_default(deps)
        .with_targets(OUR_TARGETS.map(|target| (target, ours)));
    // A registry with layers: `fmt()`'s own subscriber would add its default
    // INFO ceiling and drop debug lines whatever the filter says.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .event_format(HclogJson),
        )
        .with(filter)
}

/// One JSON object per event, in hclog's shape.
pub struct HclogJson;

impl<S, N> FormatEvent<S, N> for HclogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = hclog_line(
            event.metadata().level(),
            event.metadata().target(),
            time::OffsetDateTime::now_utc(),
            |v| event.record(v),
        );
        writeln!(writer, "{line}")
    }
}

fn hclog_line(
    level: &Level,
    target: &str,
    now: time::OffsetDateTime,
    record: impl FnOnce(&mut FieldsVisitor),
) -> String {
    let mut visitor = FieldsVisitor::default();
    record(&mut visitor);
    let mut obj = Map::new();
    obj.insert("@level".into(), Value::String(level_name(level).into()));
    obj.insert(
        "@message".into(),
        Value::String(visitor.message.unwrap_or_default()),
    );
    obj.insert("@module".into(), Value::String(module_name(target)));
    obj.insert("@timestamp".into(), Value::String(timestamp(now)));
    obj.extend(visitor.fields);
    Value::Object(obj).to_string()
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `vault_mongodbatlas::engine::creds` -> `mongodbatlas.engine.creds`.
fn module_name(target: &str) -> String {
    let mut parts = target.split("::");
    let first = parts.next().unwrap_or_default();
    let head = if first.starts_with("vault_") || first.starts_with("vault-") {
        "mongodbatlas"
    } else {
        first
    };
    std::iter::once(head)
        .chain(parts)
        .collect::<Vec<_>>()
        .join(".")
}

/// `2006-01-02T15:04:05.000000Z07:00` in UTC.
fn timestamp(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

#[derive(Default)]
struct FieldsVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldsVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.message = Some(text);
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for FieldsVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Held by unit tests that install a capturing subscriber. tracing caches
/// each call site's interest across all live subscribers; one test's
/// subscriber going away while another test's is being consulted can leave a
/// call site cached as uninteresting, and the other test then misses events.
#[cfg(test)]
pub(crate) fn capture_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tracing::callsite::rebuild_interest_cache();
    guard
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_at(level: Option<&str>) -> Vec<Value> {
        let _exclusive = crate::logging::capture_lock();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(level, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "vault_mongodbatlas::engine::creds", "ours debug");
            tracing::info!(target: "vault_mongodbatlas::engine", "ours info");
            tracing::debug!(target: "h2::codec", "dep debug");
            tracing::warn!(target: "h2::codec", "dep warn");
        });
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("hclog json"))
            .collect()
    }

    fn messages(lines: &[Value]) -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l["@message"].as_str())
            .collect()
    }

    #[test]
    fn level_applies_to_our_targets_and_dependencies_stay_quiet() {
        assert_eq!(messages(&lines_at(None)), ["ours info", "dep warn"]);
        assert_eq!(
            messages(&lines_at(Some("bogus"))),
            ["ours info", "dep warn"]
        );
        assert_eq!(
            messages(&lines_at(Some(" DEBUG "))),
            ["ours debug", "ours info", "dep warn"]
        );
        assert_eq!(
            messages(&lines_at(Some("trace"))),
            ["ours debug", "ours info", "dep debug", "dep warn"]
        );
        assert_eq!(messages(&lines_at(Some("error"))), Vec::<&str>::new());
    }

    #[test]
    fn timestamp_has_exactly_six_fraction_digits() {
        let t = time::macros::datetime!(2026-11-23 22:33:48.1 UTC);
        assert_eq!(timestamp(t), "2026-11-23T22:33:48.100000Z");
    }

    #[test]
    fn module_names_read_like_hclog_names() {
        assert_eq!(
            module_name("vault_mongodbatlas::engine::creds"),
            "mongodbatlas.engine.creds"
        );
        assert_eq!(module_name("h2::codec"), "h2.codec");
    }

    #[test]
    fn line_is_hclog_json_with_string_message() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let line = hclog_line(&Level::WARN, "vault_mongodbatlas::x", t, |_| {});
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "");
        assert_eq!(v["@module"], "mongodbatlas.x");
        assert_eq!(v["@timestamp"], "2026-01-02T03:04:05.000000Z");
    }
}
