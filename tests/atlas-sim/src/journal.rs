//! A bounded journal of Atlas API exchanges (method, path, bodies, status) that tests dump,
//! e.g. to validate request and response bodies against the OpenAPI spec.
//!
//! Secrets never enter the journal: `privateKey` values are redacted the way Atlas redacts
//! them on reads, service-account `secret` values are masked, OAuth `access_token`,
//! `refresh_token` and `client_secret` values in JSON bodies and `token`, `client_secret`
//! (and similar) parameters in form bodies are replaced by `REDACTED`. Authorization headers
//! (Digest, Basic, Bearer) are not recorded at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Route template, e.g. `POST /api/atlas/v2/orgs/{orgId}/apiKeys`.
    pub route: String,
    /// Public key of the authenticated caller, if an API key authenticated.
    pub public_key: Option<String>,
    /// Client id of the authenticated service account (bearer token, or Basic credentials
    /// at the OAuth endpoints).
    #[serde(default)]
    pub client_id: Option<String>,
    pub request_content_type: Option<String>,
    pub request_body: String,
    pub status: u16,
    pub response_content_type: Option<String>,
    pub response_body: String,
}

pub struct Journal {
    capacity: AtomicUsize,
    next_seq: AtomicU64,
    entries: Mutex<VecDeque<JournalEntry>>,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity),
            next_seq: AtomicU64::new(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity.load(Ordering::Relaxed) > 0
    }

    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while entries.len() > capacity {
            entries.pop_front();
        }
    }

    /// Appends an entry (its `seq` is assigned here), dropping the oldest when full.
    pub fn push(&self, mut entry: JournalEntry) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if capacity == 0 {
            return;
        }
        entry.request_body = redact_body(entry.request_body);
        entry.response_body = redact_body(entry.response_body);
        entry.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while entries.len() >= capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Entries with `seq > since`, oldest first.
    pub fn entries(&self, since: u64) -> Vec<JournalEntry> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().filter(|e| e.seq > since).cloned().collect()
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Replaces secrets in place: what a redacted value reads.
const REDACTED: &str = "REDACTED";

/// JSON fields whose string values are OAuth credentials.
const JSON_TOKEN_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token", "client_secret"];

/// Form parameters whose values are credentials.
const FORM_SECRET_FIELDS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
];

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &*val) {
                    ("privateKey", Value::String(s)) if !s.starts_with("********") => {
                        *val = Value::String(ids::redact_private_key(s));
                    }
                    ("secret", Value::String(s)) => *val = Value::String(ids::mask_secret(s)),
                    (field, Value::String(_)) if JSON_TOKEN_FIELDS.contains(&field) => {
                        *val = Value::String(REDACTED.into());
                    }
                    _ => redact_value(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

fn has_json_secret(body: &str) -> bool {
    body.contains("\"privateKey\"")
        || body.contains("\"secret\"")
        || JSON_TOKEN_FIELDS
            .iter()
            .any(|f| body.contains(&format!("\"{f}\"")))
}

/// Redacts credential parameters of a form body, keeping the other pairs byte for byte.
fn redact_form(body: &str) -> String {
    body.split('&')
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let key = url::form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if FORM_SECRET_FIELDS.contains(&key.as_str()) {
                format!("{raw_key}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn looks_like_form_secret(body: &str) -> bool {
    FORM_SECRET_FIELDS
        .iter()
        .any(|f| body.contains(&format!("{f}=")))
}

/// Redacts secrets in a JSON or form body; bodies without secret-looking fields pass
/// unchanged. A body that looks secret-bearing but parses as neither is withheld.
fn redact_body(body: String) -> String {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if !has_json_secret(&body) {
            return body;
        }
        return match serde_json::from_str::<Value>(&body) {
            Ok(mut v) => {
                redact_value(&mut v);
                serde_json::to_string(&v).unwrap_or_default()
            }
            Err(_) => String::from("<unparsable body containing secrets withheld>"),
        };
    }
    if looks_like_form_secret(&body) {
        return redact_form(&body);
    }
    if has_json_secret(&body) {
        return String::from("<unparsable body containing secrets withheld>");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> JournalEntry {
        JournalEntry {
            seq: 0,
            method: "POST".into(),
            path: "/p".into(),
            route: "POST /p".into(),
            public_key: None,
            client_id: None,
            request_content_type: None,
            request_body: String::new(),
            status: 200,
            response_content_type: None,
            response_body: body.into(),
        }
    }

    #[test]
    fn bounded_ordered_and_redacted() {
        let j = Journal::new(2);
        j.push(entry("{}"));
        j.push(entry(
            r#"{"privateKey":"c8150efd-c7a0-4afd-8c4f-01bdd56c8977","publicKey":"abcdefgh"}"#,
        ));
        j.push(entry(r#"{"secrets":[{"secret":"mdb_sa_sk_abcdefghij"}]}"#));
        let all = j.entries(0);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        assert!(all[0]
            .response_body
            .contains("********-****-****-01bdd56c8977"));
        assert!(!all[0].response_body.contains("c8150efd"));
        assert!(!all[1].response_body.contains("abcdefghij"));
        assert_eq!(j.entries(2).len(), 1);
        j.clear();
        assert!(j.entries(0).is_empty());
        j.set_capacity(0);
        j.push(entry("{}"));
        assert!(j.entries(0).is_empty());
    }

    #[test]
    fn oauth_tokens_and_form_secrets_are_redacted() {
        let j = Journal::new(10);
        j.push(entry(
            r#"{"access_token":"eyJhbGciOi.payload.sig","expires_in":3600,"token_type":"Bearer"}"#,
        ));
        let mut e = entry("");
        e.request_body = "token=eyJhbGciOi.payload.sig&token_type_hint=access_token".into();
        j.push(e);
        let mut e = entry("");
        e.request_body = "grant_type=client_credentials&client_secret=mdb_sa_sk_zzzz1234".into();
        j.push(e);
        let mut e = entry("");
        e.request_body = "grant_type=client_credentials".into();
        j.push(e);
        let all = j.entries(0);
        assert!(!all[0].response_body.contains("eyJhbGciOi"));
        assert!(all[0].response_body.contains(r#""expires_in":3600"#));
        assert_eq!(
            all[1].request_body,
            "token=REDACTED&token_type_hint=access_token"
        );
        assert_eq!(
            all[2].request_body,
            "grant_type=client_credentials&client_secret=REDACTED"
        );
        assert_eq!(all[3].request_body, "grant_type=client_credentials");
        assert_eq!(
            redact_body(r#"secret: "secret" oops"#.into()),
            "<unparsable body containing secrets withheld>"
        );
    }
}
