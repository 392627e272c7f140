//! The plugin's own record of the credentials it issued and has not yet
//! revoked: `issued/<secret type>/<Atlas id>`, in local storage like the WAL.
//!
//! An entry is written before the credential is handed to Vault and removed
//! once Atlas confirms the delete, so a credential bearing the mount's tag that
//! neither the record nor the WAL holds is one Vault cannot know of (its lease
//! went with a restored snapshot): `tidy` deletes it. An entry also says how
//! long the credential may live (its lease's maximum lifetime, extended when a
//! renewal extends it), so one whose lease Vault lost is deleted after that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vault::storage::{get_json, put_json, Storage, StorageError};

pub(crate) const PREFIX: &str = "issued/";

/// The lease data key holding [`Entry::lives_until`], so a renewal knows
/// without a storage read whether it extends the credential's lifetime.
pub(crate) const LIVES_UNTIL: &str = "lives_until";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The secret type (`programmatic_api_key`, `service_account`).
    pub kind: String,
    /// The credential's Atlas id.
    pub id: String,
    /// The credential type's record, as in the lease: what deletes it.
    pub data: Value,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds: no lease on the credential can outlive this.
    pub lives_until: i64,
}

impl Entry {
    pub(crate) fn new(kind: &str, id: &str, data: Value, max_ttl: Duration) -> Self {
        let issued_at = unix(SystemTime::now());
        Self {
            kind: kind.to_owned(),
            id: id.to_owned(),
            data,
            issued_at,
            lives_until: issued_at.saturating_add(secs(max_ttl)),
        }
    }
}

pub(crate) fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map(secs).unwrap_or_default()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn key(kind: &str, id: &str) -> String {
    format!("{PREFIX}{kind}/{id}")
}

pub(crate) async fn put(storage: &dyn Storage, entry: &Entry) -> Result<(), StorageError> {
    put_json(storage, &key(&entry.kind, &entry.id), entry).await
}

pub(crate) async fn get(
    storage: &dyn Storage,
    kind: &str,
    id: &str,
) -> Result<Option<Entry>, StorageError> {
    get_json(storage, &key(kind, id)).await
}

pub(crate) async fn remove(
    storage: &dyn Storage,
    kind: &str,
    id: &str,
) -> Result<(), StorageError> {
    storage.delete(&key(kind, id)).await
}

/// Removes the entry of a credential that is gone; a failure only leaves an
/// entry `tidy` prunes later, so it is logged, not returned.
pub(crate) async fn forget(storage: &dyn Storage, kind: &str, id: &str) {
    if id.is_empty() {
        return;
    }
    if let Err(e) = remove(storage, kind, id).await {
        tracing::debug!(kind, id, error = %e, "could not remove the record of a deleted credential; tidy prunes it");
    }
}

/// Every entry, of every kind.
pub(crate) async fn list(storage: &dyn Storage) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    for folder in storage.list(PREFIX).await? {
        let Some(kind) = folder.strip_suffix('/') else {
            continue;
        };
        for id in storage.list(&format!("{PREFIX}{kind}/")).await? {
            if let Some(entry) = get(storage, kind, &id).await? {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::storage::InMemStorage;
    use serde_json::json;

    #[tokio::test]
    async fn entries_round_trip_per_kind_and_id() {
        let s = InMemStorage::default();
        let a = Entry::new(
            "programmatic_api_key",
            "k1",
            json!({"role": "r"}),
            Duration::from_secs(60),
        );
        let b = Entry::new("service_account", "mdb_sa_id_1", json!({}), Duration::ZERO);
        put(&s, &a).await.expect("put");
        put(&s, &b).await.expect("put");
        assert_eq!(a.lives_until - a.issued_at, 60);
        let mut all = list(&s).await.expect("list");
        all.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(all, vec![a.clone(), b.clone()]);
        assert_eq!(
            get(&s, "service_account", "mdb_sa_id_1")
                .await
                .expect("get"),
            Some(b)
        );
        forget(&s, "programmatic_api_key", "k1").await;
        assert_eq!(list(&s).await.expect("list").len(), 1);
        assert!(s
            .get("issued/service_account/mdb_sa_id_1")
            .await
            .expect("raw")
            .is_some());
    }
}
