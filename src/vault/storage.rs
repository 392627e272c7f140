//! Vault's logical storage as seen by a backend: per-mount, key/value, with
//! `/`-separated prefixes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::goplugin::broker::BrokerChannel;
use crate::goplugin::MAX_MESSAGE_SIZE;
use crate::proto::pb;
use crate::proto::pb::storage_client::StorageClient;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub seal_wrap: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage {op} {key:?} failed: {message}")]
    Backend {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("storage entry {key:?} is not valid JSON for its type: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
    #[error("could not encode storage entry {key:?}: {source}")]
    Encode {
        key: String,
        source: serde_json::Error,
    },
}

#[tonic::async_trait]
pub trait Storage: Send + Sync {
    /// Keys directly under `prefix` (sub-folders end with `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError>;
    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError>;
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
}

/// JSON helpers shared by everything that stores structs.
pub async fn get_json<T: DeserializeOwned>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<T>, StorageError> {
    match s.get(key).await? {
        None => Ok(None),
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|source| StorageError::Decode {
                key: key.to_string(),
                source,
            }),
    }
}

pub async fn put_json<T: Serialize + ?Sized>(
    s: &dyn Storage,
    key: &str,
    value: &T,
) -> Result<(), StorageError> {
    let value = serde_json::to_vec(value).map_err(|source| StorageError::Encode {
        key: key.to_string(),
        source,
    })?;
    s.put(StorageEntry {
        key: key.to_string(),
        value,
        seal_wrap: false,
    })
    .await
}

/// Vault's storage over the brokered gRPC connection.
#[derive(Clone)]
pub struct GrpcStorage {
    client: StorageClient<BrokerChannel>,
}

impl GrpcStorage {
    pub fn new(channel: BrokerChannel) -> Self {
        let client = StorageClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Self { client }
    }
}

fn failed(op: &'static str, key: &str, message: impl ToString) -> StorageError {
    StorageError::Backend {
        op,
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// Vault reports storage errors in the `err` string of a successful reply.
fn check(op: &'static str, key: &str, err: String) -> Result<(), StorageError> {
    if err.is_empty() {
        Ok(())
    } else {
        Err(failed(op, key, err))
    }
}

#[tonic::async_trait]
impl Storage for GrpcStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let reply = self
            .client
            .clone()
            .list(pb::StorageListArgs {
                prefix: prefix.to_string(),
            })
            .await
            .map_err(|s| failed("list", prefix, s.message()))?
            .into_inner();
        check("list", prefix, reply.err)?;
        Ok(reply.keys)
    }

    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError> {
        let reply = self
            .client
            .clone()
            .get(pb::StorageGetArgs {
                key: key.to_string(),
            })
            .await
            .map_err(|s| failed("get", key, s.message()))?
            .into_inner();
        check("get", key, reply.err)?;
        Ok(reply.entry.map(|e| StorageEntry {
            key: e.key,
            value: e.value,
            seal_wrap: e.seal_wrap,
        }))
    }

    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError> {
        let key = entry.key.clone();
        let reply = self
            .client
            .clone()
            .put(pb::StoragePutArgs {
                entry: Some(pb::StorageEntry {
                    key: entry.key,
                    value: entry.value,
                    seal_wrap: entry.seal_wrap,
                }),
            })
            .await
            .map_err(|s| failed("put", &key, s.message()))?
            .into_inner();
        check("put", &key, reply.err)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let reply = self
            .client
            .clone()
            .delete(pb::StorageDeleteArgs {
                key: key.to_string(),
            })
            .await
            .map_err(|s| failed("delete", key, s.message()))?
            .into_inner();
        check("delete", key, reply.err)
    }
}

/// In-memory storage with Vault's list semantics, for tests.
#[derive(Default)]
pub struct InMemStorage {
    entries: Mutex<BTreeMap<String, StorageEntry>>,
}

impl InMemStorage {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StorageEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Vault's storage view refuses any key containing `..` (`logical.ErrRelativePath`);
/// the in-memory storage does too, so tests see what a real mount sees.
fn sanity_check(op: &'static str, key: &str) -> Result<(), StorageError> {
    if key.contains("..") {
        return Err(failed(op, key, "relative paths not supported"));
    }
    Ok(())
}

#[tonic::async_trait]
impl Storage for InMemStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        sanity_check("list", prefix)?;
        let mut keys: Vec<String> = Vec::new();
        for key in self.entries().keys().filter(|k| k.starts_with(prefix)) {
            let rest = &key[prefix.len()..];
            let item = match rest.find('/') {
                Some(i) => rest[..=i].to_string(),
                None => rest.to_string(),
            };
            if keys.last() != Some(&item) && !keys.contains(&item) {
                keys.push(item);
            }
        }
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError> {
        sanity_check("get", key)?;
        Ok(self.entries().get(key).cloned())
    }

    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError> {
        sanity_check("put", &entry.key)?;
        self.entries().insert(entry.key.clone(), entry);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        sanity_check("delete", key)?;
        self.entries().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inmem_lists_one_level() {
        let s = InMemStorage::default();
        for k in ["roles/a", "roles/b", "roles/x/y", "config"] {
            put_json(&s, k, &1).await.expect("put");
        }
        assert_eq!(s.list("roles/").await.expect("list"), vec!["a", "b", "x/"]);
        assert_eq!(s.list("").await.expect("list"), vec!["config", "roles/"]);
        s.delete("roles/a").await.expect("delete");
        assert_eq!(get_json::<i32>(&s, "roles/a").await.expect("get"), None);
    }

    #[tokio::test]
    async fn inmem_refuses_parent_references_like_vault() {
        let s = InMemStorage::default();
        assert!(put_json(&s, "roles/a..b", &1).await.is_err());
        assert!(s.get("roles/a..b").await.is_err());
        assert!(s.delete("roles/..").await.is_err());
        assert!(s.list("roles/../").await.is_err());
    }
}
