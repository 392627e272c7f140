//! Issuing a programmatic API key.
//!
//! Every key that exists in Atlas is either handed to Vault as a lease, or
//! deleted before the request returns, or recorded in the WAL so the next
//! rollback deletes it. Nothing else can leak a live key.
//!
//! Vault drops a request whose client hangs up, at whatever await it is on, so
//! the issuance runs as a detached task ([`Tasks::hand_over`]) that always runs
//! to the end. The WAL entry is written before the create and deleted only when
//! the key is handed to a request that is still waiting, or once the key is
//! gone; a key nobody is waiting for is deleted by the task itself. The task
//! gives up at the issue timeout and answers at most [`CLEANUP_GRACE`] later,
//! before Vault gives up on the request; a cleanup that takes longer goes on
//! after the answer.
//!
//! [`Tasks::hand_over`]: crate::vault::framework::Tasks::hand_over

use std::time::Duration;

use rand::Rng;
use serde_json::{Map, Value};
use tokio::time::{timeout_at, Instant};

use super::delete::delete_wal_key;
use super::{secret_type, KeyRecord, KeyScope, SECRET_TYPE};
use crate::atlas::{AccessListEntry, ApiKey, AtlasClient, AtlasError};
use crate::engine::roles::Role;
use crate::engine::{lease, AtlasContext, Engine, ISSUE_TIMEOUT_ENV};
use crate::vault::framework::{wal, BackendError, Handover, Request, Response, SecretType};

/// Atlas' limit on an API key description.
const MAX_DESCRIPTION: usize = 250;
const RANDOM_SUFFIX: usize = 20;
/// After a failure or the issue timeout, time to delete what the issuance
/// created before answering. The default issue timeout plus this stays under
/// Vault's default request limit (90 s).
const CLEANUP_GRACE: Duration = Duration::from_secs(10);

/// Issues a key for a validated role, with the mount's Atlas client.
pub(crate) async fn issue(
    engine: &Engine,
    req: Request,
    name: &str,
    role: Role,
    client: AtlasClient,
) -> Result<Response, BackendError> {
    let scope = KeyScope::of(&role)?;
    let entries = role.access_list()?;
    // Nothing above changed anything; from here on, the task owns the issuance.
    let issuance = Issuance {
        secret_type: secret_type(engine),
        limit: engine.settings().issue_timeout,
        req,
        name: name.to_string(),
        role,
        scope,
        entries,
        client,
    };
    engine
        .tasks()
        .hand_over(move |handover| issuance.run(handover))
        .await
}

/// `vault-<role>-<20 random base62>`, role sanitised as the official plugin does
/// and shortened if needed to stay within Atlas' 250 characters.
fn description(role: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let sanitized: String = role
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let room = MAX_DESCRIPTION - "vault-".len() - 1 - RANDOM_SUFFIX;
    let sanitized: String = sanitized.chars().take(room).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..RANDOM_SUFFIX)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect();
    format!("vault-{sanitized}-{suffix}")
}

/// One issuance, owned by its detached task.
struct Issuance {
    secret_type: SecretType,
    limit: Duration,
    req: Request,
    name: String,
    role: Role,
    scope: KeyScope,
    entries: Vec<AccessListEntry>,
    client: AtlasClient,
}

/// What exists in Atlas, as far as the issuance knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Created {
    /// No create was sent, or Atlas refused it in a way that proves nothing exists.
    Nothing,
    /// A create was sent and its outcome is unknown (in flight, or its answer lost).
    Unknown,
    /// The key exists; its id is in `Progress::record`.
    Key,
}

struct Progress {
    wal_id: Option<String>,
    record: KeyRecord,
    created: Created,
}

/// What became of the key of an issuance that failed or was abandoned.
enum Cleanup {
    NothingCreated,
    Deleted,
    /// Still recorded in the WAL: the periodic rollback deletes it.
    LeftForRollback(String),
}

impl Cleanup {
    fn note(&self) -> Option<String> {
        match self {
            Self::NothingCreated => None,
            Self::Deleted => Some("the key was deleted".into()),
            Self::LeftForRollback(why) => Some(format!(
                "the key it may have created could not be deleted yet ({why}); it is recorded, and Vault's periodic WAL rollback deletes it"
            )),
        }
    }
}

type Answer = Handover<Result<Response, BackendError>>;

impl Issuance {
    async fn run(self, answer: Answer) {
        let deadline = Instant::now() + self.limit;
        let mut progress = Progress {
            wal_id: None,
            record: KeyRecord {
                role: self.name.clone(),
                description: description(&self.name),
                organization_id: self.role.organization_id.clone(),
                project_id: self.role.project_id.clone(),
                ..KeyRecord::default()
            },
            created: Created::Nothing,
        };
        let failure = match timeout_at(deadline, self.create_key(&mut progress, &answer)).await {
            Ok(Ok(response)) => return self.hand_over(progress, response, answer).await,
            Ok(Err(e)) => e,
            Err(_) => BackendError::internal(format!(
                "Atlas did not finish issuing the key within {}s ({ISSUE_TIMEOUT_ENV}); the issuance was abandoned",
                self.limit.as_secs()
            )),
        };
        if answer.abandoned() {
            return self.clean_up_abandoned(progress).await;
        }
        // Clean up before answering if time allows; otherwise answer, then finish.
        let cleanup = self.clean_up(&mut progress);
        tokio::pin!(cleanup);
        match timeout_at(deadline + CLEANUP_GRACE, &mut cleanup).await {
            Ok(outcome) => {
                let failure = match outcome.note() {
                    Some(note) => failure.with_note(&note),
                    None => failure,
                };
                let _ = answer.deliver(Err(failure)).await;
            }
            Err(_) => {
                let _ = answer
                    .deliver(Err(failure.with_note(
                        "the plugin is still deleting any key it created, and records it for the WAL rollback until it is gone",
                    )))
                    .await;
                if let Some(note) = cleanup.await.note() {
                    tracing::warn!(role = %self.name, outcome = %note, "finished cleaning up an issuance that ran out of time");
                }
            }
        }
    }

    /// WAL entry, create, access list and project assignment: the response to hand over.
    async fn create_key(
        &self,
        progress: &mut Progress,
        answer: &Answer,
    ) -> Result<Response, BackendError> {
        let storage = self.req.storage.as_ref();
        let wal_id = wal::put(storage, SECRET_TYPE, progress.record.to_value()).await?;
        progress.wal_id = Some(wal_id.clone());
        if answer.abandoned() {
            return Err(abandoned());
        }
        let desc = progress.record.description.clone();
        let create = async {
            match self.scope {
                KeyScope::Org | KeyScope::OrgAssignedToProject => {
                    self.client
                        .create_org_key(&self.role.organization_id, &desc, self.role.roles())
                        .await
                }
                KeyScope::Project => {
                    self.client
                        .create_project_key(&self.role.project_id, &desc, self.role.roles())
                        .await
                }
            }
        };
        progress.created = Created::Unknown;
        // The mount's TTLs come from Vault while Atlas creates the key.
        let (created, ttls) = tokio::join!(create, lease::ttls(&self.req, &self.role));
        let key = match created {
            Ok(key) => key,
            Err(e) => {
                // Only an answer that proves nothing was created clears the record.
                if !matches!(e, AtlasError::CreateUncertain { .. }) {
                    progress.created = Created::Nothing;
                }
                return Err(e).context("creating the Atlas API key");
            }
        };
        let key_org = key
            .org_id()
            .map(str::to_string)
            .unwrap_or_else(|| self.role.organization_id.clone());
        progress.record.programmatic_api_key_id = key.id.clone();
        progress.record.key_org_id = key_org.clone();
        progress.created = Created::Key;
        if answer.abandoned() {
            return Err(abandoned());
        }

        // Recording the id (so a rollback deletes the key directly instead of
        // searching by description) overlaps with the key's remaining setup.
        let (recorded, configured) = tokio::join!(
            wal::put_at(storage, &wal_id, SECRET_TYPE, progress.record.to_value()),
            self.configure(&key, &key_org),
        );
        configured.context("configuring the new Atlas API key")?;
        recorded?;
        let (ttl, max_ttl) = ttls
            .map_err(|e| BackendError::internal(format!("reading the mount's lease TTLs: {e}")))?;
        let private_key = key.private_key.as_ref().ok_or_else(|| {
            BackendError::internal("Atlas created the key but returned no private key")
        })?;

        let mut data = Map::new();
        data.insert("public_key".into(), Value::String(key.public_key.clone()));
        data.insert(
            "private_key".into(),
            Value::String(private_key.expose().to_string()),
        );
        data.insert("description".into(), Value::String(desc));
        let internal = progress.record.to_map();
        Ok(self.secret_type.response(data, internal, ttl, max_ttl))
    }

    /// Access list and project assignment of a freshly created key.
    async fn configure(&self, key: &ApiKey, key_org: &str) -> Result<(), AtlasError> {
        if !self.entries.is_empty() {
            self.client
                .add_access_list(key_org, &key.id, &self.entries)
                .await?;
        }
        if self.scope == KeyScope::OrgAssignedToProject {
            self.client
                .assign_key_to_project(&self.role.project_id, &key.id, self.role.project_roles())
                .await?;
        }
        Ok(())
    }

    /// Gives the key to the request if it still waits; else deletes it.
    async fn hand_over(self, mut progress: Progress, response: Response, answer: Answer) {
        let storage = self.req.storage.as_ref();
        let failure = match progress.wal_id.clone() {
            _ if answer.abandoned() => abandoned(),
            // The entry goes first: once Vault may hold a lease on the key, no
            // rollback may delete it.
            Some(wal_id) => match wal::delete(storage, &wal_id).await {
                Ok(()) => {
                    if answer.deliver(Ok(response)).await {
                        tracing::debug!(role = %self.name, key_id = %progress.record.programmatic_api_key_id, "issued Atlas API key");
                        return;
                    }
                    // The request went before taking the key: record it again, then delete it.
                    if let Err(e) =
                        wal::put_at(storage, &wal_id, SECRET_TYPE, progress.record.to_value()).await
                    {
                        tracing::warn!(key_id = %progress.record.programmatic_api_key_id, error = %e, "could not record an abandoned key again; deleting it now");
                    }
                    return self.clean_up_abandoned(progress).await;
                }
                Err(e) => BackendError::from(e),
            },
            None => BackendError::internal("an issued key without a WAL entry"),
        };
        if answer.abandoned() {
            return self.clean_up_abandoned(progress).await;
        }
        let outcome = self.clean_up(&mut progress).await;
        let failure = match outcome.note() {
            Some(note) => failure.with_note(&note),
            None => failure,
        };
        let _ = answer.deliver(Err(failure)).await;
    }

    async fn clean_up_abandoned(self, mut progress: Progress) {
        let outcome = self.clean_up(&mut progress).await;
        tracing::warn!(
            role = %self.name,
            key_id = %progress.record.programmatic_api_key_id,
            outcome = outcome.note().as_deref().unwrap_or("nothing was created"),
            "the request for this key was abandoned (the client went away or Vault's deadline passed)"
        );
    }

    /// Deletes whatever the issuance created; the WAL entry goes only with proof
    /// that nothing is left.
    async fn clean_up(&self, progress: &mut Progress) -> Cleanup {
        let storage = self.req.storage.as_ref();
        let Some(wal_id) = progress.wal_id.clone() else {
            return Cleanup::NothingCreated;
        };
        let outcome = match progress.created {
            Created::Nothing => Cleanup::NothingCreated,
            Created::Key | Created::Unknown => {
                match delete_wal_key(&self.client, &self.req, &progress.record).await {
                    Ok(true) => Cleanup::Deleted,
                    // A create still in flight at Atlas may land later: keep the record.
                    Ok(false) => {
                        return Cleanup::LeftForRollback(
                            "Atlas shows no key with its description yet".into(),
                        )
                    }
                    Err(e) => {
                        // The entry may lack the id (its write failed or raced): write it again.
                        if let Err(e) =
                            wal::put_at(storage, &wal_id, SECRET_TYPE, progress.record.to_value())
                                .await
                        {
                            tracing::warn!(wal_id = %wal_id, error = %e, "could not update the WAL entry of a key awaiting deletion");
                        }
                        return Cleanup::LeftForRollback(e.to_string());
                    }
                }
            }
        };
        if let Err(e) = wal::delete(storage, &wal_id).await {
            // Harmless: the rollback finds the key gone and drops the entry.
            tracing::debug!(wal_id = %wal_id, error = %e, "could not delete a settled WAL entry");
        }
        progress.wal_id = None;
        outcome
    }
}

fn abandoned() -> BackendError {
    BackendError::internal("the request was abandoned before the key was handed over")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_sanitised_unique_and_short_enough() {
        let d = description("my role/x");
        assert!(d.starts_with("vault-my_role_x-"), "{d}");
        assert_eq!(d.len(), "vault-my_role_x-".len() + RANDOM_SUFFIX);
        assert_ne!(description("a"), description("a"));
        assert!(description(&"r".repeat(400)).len() <= MAX_DESCRIPTION);
    }
}
