//! A bounded journal of Atlas API exchanges (method, path, bodies, status) that tests dump,
//! e.g. to validate request and response bodies against the OpenAPI spec.
//!
//! Secrets never enter the journal: `privateKey` values are redacted the way Atlas redacts
//! them on reads, and service-account `secret` values are masked. Authorization headers are
//! not recorded at all.

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
    /// Public key of the authenticated caller, if authentication succeeded.
    pub public_key: Option<String>,
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
        entry.request_body = redact_secrets(entry.request_body);
        entry.response_body = redact_secrets(entry.response_body);
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

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &*val) {
                    ("privateKey", Value::String(s)) if !s.starts_with("********") => {
                        *val = Value::String(ids::redact_private_key(s));
                    }
                    ("secret", Value::String(s)) => *val = Value::String(ids::mask_secret(s)),
                    _ => redact_value(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// Redacts secrets in a JSON body; bodies without secret-looking fields pass unchanged.
fn redact_secrets(body: String) -> String {
    if !body.contains("\"privateKey\"") && !body.contains("\"secret\"") {
        return body;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(mut v) => {
            redact_value(&mut v);
            serde_json::to_string(&v).unwrap_or_default()
        }
        Err(_) => String::from("<unparsable body containing secrets withheld>"),
    }
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
}
