//! Framework types to and from Vault's wire messages (sdk/plugin/pb rules:
//! JSON strings for maps, nanoseconds for durations, always a timestamp).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::framework::{BackendError, LeaseOptions, Operation, Request, Response, Secret};
use super::storage::Storage;
use super::system_view::SystemView;
use crate::proto::pb;

/// Go's zero `time.Time` as a protobuf timestamp, what Go plugins send for "unset".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Parses a JSON object sent as a string; empty and `null` mean no data.
pub fn json_map(s: &str) -> Result<Map<String, Value>, String> {
    let s = s.trim();
    if s.is_empty() || s == "null" {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("expected a JSON object, got {other}")),
        Err(e) => field_by_field(s).ok_or_else(|| format!("invalid JSON: {e}")),
    }
}

/// Vault forwards numbers as the caller wrote them (Go's `json.Number`), so
/// `{"ttl": 1e400}` reaches us though no f64 holds it. Rather than failing the
/// whole request without naming a field, such a value is kept as its text, and
/// the field's parser rejects it by name.
fn field_by_field(s: &str) -> Option<Map<String, Value>> {
    let raw: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(s).ok()?;
    Some(
        raw.into_iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(v.get())
                    .unwrap_or_else(|_| Value::String(v.get().to_string()));
                (k, value)
            })
            .collect(),
    )
}

/// Always valid JSON: Vault decodes it before looking at any error.
pub fn json_string(m: Option<&Map<String, Value>>) -> String {
    match m {
        Some(m) => Value::Object(m.clone()).to_string(),
        None => "null".to_string(),
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn duration(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

pub fn timestamp(t: Option<SystemTime>) -> prost_types::Timestamp {
    let Some(t) = t else {
        return prost_types::Timestamp {
            seconds: GO_ZERO_TIME_SECONDS,
            nanos: 0,
        };
    };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => prost_types::Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(_) => prost_types::Timestamp {
            seconds: GO_ZERO_TIME_SECONDS,
            nanos: 0,
        },
    }
}

fn system_time(ts: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds < 0 {
        return None; // Go's zero time or pre-1970: "unset" for our purposes.
    }
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

pub fn lease_from_pb(l: Option<&pb::LeaseOptions>) -> LeaseOptions {
    let Some(l) = l else {
        return LeaseOptions::default();
    };
    LeaseOptions {
        ttl: duration(l.ttl),
        max_ttl: duration(l.max_ttl),
        renewable: l.renewable,
        increment: duration(l.increment),
        issue_time: system_time(l.issue_time.as_ref()),
    }
}

pub fn lease_to_pb(l: &LeaseOptions) -> pb::LeaseOptions {
    pb::LeaseOptions {
        ttl: nanos(l.ttl),
        renewable: l.renewable,
        increment: nanos(l.increment),
        issue_time: Some(timestamp(l.issue_time)),
        max_ttl: nanos(l.max_ttl),
    }
}

pub fn secret_from_pb(s: &pb::Secret) -> Result<Secret, String> {
    Ok(Secret {
        lease: lease_from_pb(s.lease_options.as_ref()),
        internal_data: json_map(&s.internal_data)
            .map_err(|e| format!("secret internal data: {e}"))?,
        lease_id: s.lease_id.clone(),
    })
}

pub fn secret_to_pb(s: &Secret) -> pb::Secret {
    pb::Secret {
        lease_options: Some(lease_to_pb(&s.lease)),
        internal_data: json_string(Some(&s.internal_data)),
        lease_id: s.lease_id.clone(),
    }
}

/// A wire request as the framework sees it, for the mount with `storage` and
/// `system`. Undecodable request data is the caller's error (a 400).
pub fn request_from_pb(
    req: pb::Request,
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
) -> Result<Request, BackendError> {
    let operation = Operation::parse(&req.operation).ok_or(BackendError::UnsupportedOperation)?;
    let data = json_map(&req.data).map_err(|e| BackendError::user(format!("request data: {e}")))?;
    let secret = req
        .secret
        .as_ref()
        .map(secret_from_pb)
        .transpose()
        .map_err(BackendError::internal)?;
    Ok(Request {
        operation,
        path: req.path,
        data,
        secret,
        mount_point: req.mount_point,
        entity_id: req.entity_id,
        id: req.id,
        storage,
        system,
    })
}

pub fn response_to_pb(r: &Response) -> pb::Response {
    pb::Response {
        secret: r.secret.as_ref().map(secret_to_pb),
        data: json_string(r.data.as_ref()),
        warnings: r.warnings.clone(),
        ..Default::default()
    }
}

// Vault's ProtoError.err_type values.
const ERR_UNKNOWN: u32 = 0;
const ERR_CODED: u32 = 3;
const ERR_UNSUPPORTED_OPERATION: u32 = 5;
const ERR_UNSUPPORTED_PATH: u32 = 6;
const ERR_PERMISSION_DENIED: u32 = 8;

/// A handler's outcome as Vault expects it: user errors are an error
/// *response* (HTTP 400 with the message), everything else a ProtoError.
pub fn outcome_to_pb(
    result: Result<Option<Response>, BackendError>,
) -> (Option<pb::Response>, Option<pb::ProtoError>) {
    match result {
        Ok(resp) => (resp.as_ref().map(response_to_pb), None),
        Err(e) if e.is_user() => {
            let mut data = Map::new();
            data.insert("error".into(), Value::String(e.to_string()));
            (Some(response_to_pb(&Response::with_data(data))), None)
        }
        Err(e) => (None, Some(error_to_pb(&e))),
    }
}

pub fn error_to_pb(e: &BackendError) -> pb::ProtoError {
    let (err_type, err_code) = match e {
        BackendError::Coded { code, .. } => (ERR_CODED, i64::from(*code)),
        BackendError::UnsupportedOperation => (ERR_UNSUPPORTED_OPERATION, 0),
        BackendError::UnsupportedPath => (ERR_UNSUPPORTED_PATH, 0),
        BackendError::PermissionDenied => (ERR_PERMISSION_DENIED, 0),
        _ => (ERR_UNKNOWN, 0),
    };
    pb::ProtoError {
        err_type,
        err_msg: e.to_string(),
        err_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_data_are_empty_maps() {
        assert!(json_map("").expect("ok").is_empty());
        assert!(json_map("null").expect("ok").is_empty());
        assert!(json_map("[1]").is_err());
        assert_eq!(json_string(None), "null");
    }

    #[test]
    fn numbers_beyond_f64_stay_with_their_field() {
        let m = json_map(r#"{"ttl": 1e400, "roles": [1, -1e999], "ok": "x"}"#).expect("ok");
        assert_eq!(m["ttl"], Value::String("1e400".into()));
        assert_eq!(m["roles"], Value::String("[1, -1e999]".into()));
        assert_eq!(m["ok"], Value::String("x".into()));
        assert!(json_map(r#"{"ttl": 1e400"#).is_err());
    }

    #[test]
    fn unset_time_is_go_zero_time() {
        assert_eq!(timestamp(None).seconds, GO_ZERO_TIME_SECONDS);
        assert_eq!(system_time(Some(&timestamp(None))), None);
        let now = SystemTime::now();
        let back = system_time(Some(&timestamp(Some(now)))).expect("some");
        assert_eq!(back, now);
    }

    #[test]
    fn user_errors_become_error_responses() {
        let (resp, err) = outcome_to_pb(Err(BackendError::user("bad ttl")));
        assert!(err.is_none());
        assert_eq!(resp.expect("resp").data, r#"{"error":"bad ttl"}"#);
        let (resp, err) = outcome_to_pb(Err(BackendError::internal("boom")));
        assert!(resp.is_none());
        assert_eq!(err.expect("err").err_type, ERR_UNKNOWN);
    }

    #[test]
    fn durations_are_nanoseconds() {
        let l = LeaseOptions {
            ttl: Duration::from_secs(2),
            ..Default::default()
        };
        let p = lease_to_pb(&l);
        assert_eq!(p.ttl, 2_000_000_000);
        assert!(p.issue_time.is_some());
        assert_eq!(lease_from_pb(Some(&p)).ttl, Duration::from_secs(2));
    }
}
