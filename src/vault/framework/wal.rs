//! Write-ahead log entries, stored as Vault's Go framework stores them
//! (`wal/<uuid>`, `{"type","data","created_at"}`), so entries written by
//! either implementation are read by the other.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vault::storage::{get_json, put_json, Storage, StorageError};

pub const WAL_PREFIX: &str = "wal/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WalEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    /// Unix seconds.
    pub created_at: i64,
}

/// Records `data` before an external side effect; returns the entry id.
pub async fn put(storage: &dyn Storage, kind: &str, data: Value) -> Result<String, StorageError> {
    let id = uuid::Uuid::new_v4().to_string();
    let entry = WalEntry {
        kind: kind.to_string(),
        data,
        created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    put_json(storage, &format!("{WAL_PREFIX}{id}"), &entry).await?;
    Ok(id)
}

pub async fn get(storage: &dyn Storage, id: &str) -> Result<Option<WalEntry>, StorageError> {
    get_json(storage, &format!("{WAL_PREFIX}{id}")).await
}

pub async fn delete(storage: &dyn Storage, id: &str) -> Result<(), StorageError> {
    storage.delete(&format!("{WAL_PREFIX}{id}")).await
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<String>, StorageError> {
    storage.list(WAL_PREFIX).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::storage::InMemStorage;

    #[tokio::test]
    async fn round_trips_in_go_framework_shape() {
        let s = InMemStorage::default();
        let id = put(&s, "apiKey", serde_json::json!({"k": 1}))
            .await
            .expect("put");
        let raw = s
            .get(&format!("wal/{id}"))
            .await
            .expect("get")
            .expect("present");
        let v: Value = serde_json::from_slice(&raw.value).expect("json");
        assert_eq!(v["type"], "apiKey");
        assert!(v["created_at"].is_i64());
        assert_eq!(list(&s).await.expect("list"), vec![id.clone()]);
        assert_eq!(get(&s, &id).await.expect("get").expect("some").data["k"], 1);
        delete(&s, &id).await.expect("delete");
        assert!(list(&s).await.expect("list").is_empty());
    }
}
