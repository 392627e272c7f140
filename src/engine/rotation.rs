//! `rotate-root`: replace the plugin's own Atlas credential without ever
//! losing access or leaving one behind.
//!
//! An API-key login gets a new key with the old one's roles, project roles
//! and access list; a service-account login gets a new secret on the same
//! account. Either way the order is: WAL entry, create, verify that the new
//! credential works, store it in `config`, delete the old one, drop the entry.
//! Until the new credential is stored, `config` holds the old one, which still
//! works; from then on, the new one. The rollback of a leftover entry keeps
//! whichever credential `config` holds and deletes the other, so after it
//! exactly one exists. A rotation first undoes such leftovers itself: once a
//! later rotation has replaced the credential an earlier one stored, the
//! rollback of the earlier entry would keep neither and find nothing to delete,
//! while the credential the earlier rotation replaced stayed in Atlas. One
//! rotation runs at a time per mount; it runs as a detached task, so a client
//! that hangs up does not stop it halfway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{self, Config};
use super::issuance::unique_name;
use super::{schedule, AtlasContext, Engine};
use crate::atlas::{AccountSecret, AtlasClient, AtlasError};
use crate::vault::framework::{
    handler_with, rollback_handler, wal, BackendError, FieldData, Hook, Operation, Path, Request,
    Response, WalRollback,
};

/// The WAL kind of a rotation.
pub(crate) const WAL_KIND: &str = "root_rotation";

/// A new service-account secret lives as long as the one it replaces, within
/// Atlas' bounds; this long when the old one's lifetime is unknown.
const DEFAULT_SECRET_HOURS: u32 = 8760;

const SYNOPSIS: &str = "Rotate the Atlas credential in config.";
const DESCRIPTION: &str = "Replaces the API key or service-account secret in config with a new \
one and deletes the old one. An API key is replaced by a new key with the same organization \
roles, project roles and access list; a service account gets a new secret. The new credential is \
verified before it is stored, and the old one is deleted only after; a failure at any step \
leaves config with a credential that works, and Vault's WAL rollback deletes whatever is left \
over. The answer names the new public key or client id, never a secret.";

pub(crate) fn path(engine: &Engine) -> Path {
    Path::new("rotate-root")
        .operation(Operation::Update, handler_with(engine, rotate_root))
        .help(SYNOPSIS, DESCRIPTION)
}

pub(crate) fn wal_rollback(engine: &Engine) -> (&'static str, WalRollback) {
    let engine = engine.clone();
    (
        WAL_KIND,
        rollback_handler(move |req, data| rollback(engine.clone(), req, data)),
    )
}

/// What a crash mid-rotation would leave, and what decides which credential stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RotationRecord {
    /// `api_key` or `service_account`.
    login: String,
    org_id: String,
    /// API key login: the old key, and the new one as far as it is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    old_key_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    new_key_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    new_public_key: String,
    /// Finds the new key if its create's answer was lost.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    new_description: String,
    /// Service-account login: the account and its old and new secrets.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    old_secret_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    new_secret_id: String,
}

impl RotationRecord {
    fn value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

async fn rotate_root(
    engine: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let running = engine.clone();
    // Detached: a client that hangs up does not stop a rotation halfway.
    engine
        .tasks()
        .run(async move {
            let _one_at_a_time = running.rotation_lock().await;
            rotate(&running, req).await
        })
        .await
        .map(Some)
}

/// One rotation; the caller holds the rotation lock.
async fn rotate(engine: &Engine, req: Request) -> Result<Response, BackendError> {
    undo_leftovers(engine, &req).await?;
    let config = config::load(req.storage.as_ref())
        .await?
        .ok_or_else(|| BackendError::user("no Atlas credentials configured: write config first"))?;
    let client = engine
        .client(&req)
        .await?
        .ok_or_else(|| BackendError::user("no Atlas credentials configured: write config first"))?;
    let rotation = Rotation {
        engine: engine.clone(),
        req,
        config,
        client,
    };
    if rotation.config.client_id.is_empty() {
        rotation.rotate_key().await
    } else {
        rotation.rotate_secret().await
    }
}

/// Vault Enterprise's rotation manager keeping the schedule: its `rotate`
/// operation runs the same rotation as `rotate-root`.
pub(crate) fn rotate_credential(engine: &Engine) -> Hook {
    let engine = engine.clone();
    Arc::new(move |req| {
        let engine = engine.clone();
        Box::pin(async move {
            let _one_at_a_time = engine.rotation_lock().await;
            tracing::info!("rotating the configured Atlas credential for Vault's rotation manager");
            rotate(&engine, req).await.map(drop)
        })
    })
}

/// Vault's periodic tick: rotates when the schedule says so (unless Vault's
/// rotation manager keeps it), or when a service account's secret has less
/// than a fifth of its life left.
/// The rotation schedule's part of Vault's periodic tick.
pub(crate) async fn tick(engine: Engine, req: Request) -> Result<(), BackendError> {
    let Some(mut config) = config::load(req.storage.as_ref()).await? else {
        return Ok(());
    };
    if config.disable_automated_rotation {
        return Ok(());
    }
    // A rotation under way (on demand) is all the rotation needed now.
    let Ok(_one_at_a_time) = engine.try_rotation_lock() else {
        return Ok(());
    };
    if !config.client_id.is_empty() && config.secret_expires_at.is_empty() {
        learn_secret_lifetime(&engine, &req, &mut config).await?;
    }
    let now = SystemTime::now();
    let scheduled = if config.rotation_job_id.is_empty() {
        schedule::scheduled(&config, now, engine.settings().min_rotation_period)
    } else {
        None
    };
    let due = match (scheduled, schedule::expiring(&config)) {
        (Some(a), Some(b)) => a.min(b),
        (Some(due), None) | (None, Some(due)) => due,
        (None, None) => return Ok(()),
    };
    if due > now {
        return Ok(());
    }
    tracing::info!(due = %schedule::rfc3339(due), "rotating the configured Atlas credential on schedule");
    rotate(&engine, req).await.map(drop)
}

/// Reads when the configured service account's secret was created and
/// expires, and records it in `config` (once: rotations record it after).
async fn learn_secret_lifetime(
    engine: &Engine,
    req: &Request,
    config: &mut Config,
) -> Result<(), BackendError> {
    let Some(client) = engine.client(req).await? else {
        return Ok(());
    };
    let rotation = Rotation {
        engine: engine.clone(),
        req: req.clone(),
        config: config.clone(),
        client,
    };
    let (_, account) = rotation.find_configured_account().await?;
    let current = rotation.current_secret(&account.secrets)?;
    config.credential_id = current.id;
    config.secret_created_at = current.created_at.unwrap_or_default();
    config.secret_expires_at = current.expires_at.unwrap_or_default();
    // The credential itself is unchanged: the cached client stays.
    config::store(req.storage.as_ref(), config).await
}

struct Rotation {
    engine: Engine,
    req: Request,
    config: Config,
    client: AtlasClient,
}

impl Rotation {
    /// A client for `config` as it would be stored.
    fn client_for(&self, config: &Config) -> Result<AtlasClient, BackendError> {
        AtlasClient::new(
            config
                .client_config()
                .with_timeouts(self.engine.settings().timeouts),
        )
        .map_err(|e| BackendError::internal(format!("the new credential's client: {e}")))
    }

    async fn rotate_key(self) -> Result<Response, BackendError> {
        let (org, old) = self.find_configured_key().await?;
        let access_list = self
            .client
            .list_access_list(&org, &old.id)
            .await
            .context("reading the configured key's access list")?;
        let mut org_roles = Vec::new();
        let mut project_roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for role in &old.roles {
            match (&role.org_id, &role.group_id) {
                (Some(_), _) => org_roles.push(role.role_name.clone()),
                (None, Some(project)) => project_roles
                    .entry(project.clone())
                    .or_default()
                    .push(role.role_name.clone()),
                (None, None) => {}
            }
        }
        let storage = self.req.storage.as_ref();
        let mut record = RotationRecord {
            login: "api_key".into(),
            org_id: org.clone(),
            old_key_id: old.id.clone(),
            // Untagged: tidy must never take the mount's own login for an orphan.
            new_description: unique_name("root", "+=,.@_-", 250, ""),
            ..RotationRecord::default()
        };
        let wal_id = wal::put(storage, WAL_KIND, record.value()).await?;
        let new = match self
            .client
            .create_org_key(&org, &record.new_description, &org_roles)
            .await
        {
            Ok(key) => key,
            Err(e) => {
                let settled = !matches!(e, AtlasError::CreateUncertain { .. });
                return Err(self.abort(&wal_id, &record, settled, e.into()).await);
            }
        };
        record.new_key_id = new.id.clone();
        record.new_public_key = new.public_key.clone();
        let private_key = new
            .private_key
            .as_ref()
            .map(|k| k.expose().to_owned())
            .unwrap_or_default();
        let configured = async {
            wal::put_at(storage, &wal_id, WAL_KIND, record.value()).await?;
            for (project, roles) in &project_roles {
                self.client
                    .assign_key_to_project(project, &new.id, roles)
                    .await
                    .context("giving the new key the old one's project roles")?;
            }
            self.client
                .add_access_list(&org, &new.id, &access_list)
                .await
                .context("giving the new key the old one's access list")?;
            let rotated = Config {
                public_key: new.public_key.clone(),
                private_key: private_key.clone(),
                credential_id: new.id.clone(),
                last_rotated: schedule::rfc3339(SystemTime::now()),
                ..self.config.clone()
            };
            self.client_for(&rotated)?
                .get_org_key(&org, &new.id)
                .await
                .context("the new key does not work")?;
            Ok::<Config, BackendError>(rotated)
        }
        .await;
        let rotated = match configured {
            Ok(rotated) => rotated,
            Err(e) => return Err(self.abort(&wal_id, &record, true, e).await),
        };
        self.store(&rotated).await.map_err(|e| {
            BackendError::internal(format!(
                "storing the new key failed ({e}); config still holds the old key, and Vault's WAL rollback deletes the new one"
            ))
        })?;
        let new_client = self.client_for(&rotated)?;
        let mut resp = Response::json(json!({
            "login": "api_key",
            "public_key": new.public_key,
            "key_id": new.id,
        }));
        match delete_key(&new_client, &org, &old.id).await {
            Ok(()) => self.settle(&wal_id).await,
            Err(e) => resp.add_warning(format!(
                "the old key {} could not be deleted yet ({e}); Vault's WAL rollback deletes it",
                old.id
            )),
        }
        tracing::info!(key_id = %new.id, "rotated the configured Atlas API key");
        Ok(resp)
    }

    async fn rotate_secret(self) -> Result<Response, BackendError> {
        let client_id = self.config.client_id.clone();
        let (org, account) = self.find_configured_account().await?;
        let current = self.current_secret(&account.secrets)?;
        if account.secrets.len() >= 2 {
            return Err(BackendError::user(format!(
                "service account {client_id} already has {} secrets, Atlas' maximum: after a failed rotation, Vault's WAL rollback deletes the extra one within minutes; otherwise delete the one that config does not use (not {}) in Atlas; then rotate again",
                account.secrets.len(),
                current.id
            )));
        }
        let hours = secret_hours(&current);
        let storage = self.req.storage.as_ref();
        let mut record = RotationRecord {
            login: "service_account".into(),
            org_id: org.clone(),
            client_id: client_id.clone(),
            old_secret_id: current.id.clone(),
            ..RotationRecord::default()
        };
        let wal_id = wal::put(storage, WAL_KIND, record.value()).await?;
        let new = match self
            .client
            .create_service_account_secret(&org, &client_id, hours)
            .await
        {
            Ok(secret) => secret,
            Err(e) => {
                let settled = !matches!(e, AtlasError::CreateUncertain { .. });
                return Err(self.abort(&wal_id, &record, settled, e.into()).await);
            }
        };
        record.new_secret_id = new.id.clone();
        let plain = new
            .secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        let rotated = Config {
            client_secret: plain,
            credential_id: new.id.clone(),
            last_rotated: schedule::rfc3339(SystemTime::now()),
            secret_created_at: new.created_at.clone().unwrap_or_default(),
            secret_expires_at: new.expires_at.clone().unwrap_or_default(),
            ..self.config.clone()
        };
        let verified = async {
            wal::put_at(storage, &wal_id, WAL_KIND, record.value()).await?;
            self.client_for(&rotated)?
                .list_org_ids()
                .await
                .context("the new secret does not work")?;
            Ok::<(), BackendError>(())
        }
        .await;
        if let Err(e) = verified {
            return Err(self.abort(&wal_id, &record, true, e).await);
        }
        self.store(&rotated).await.map_err(|e| {
            BackendError::internal(format!(
                "storing the new secret failed ({e}); config still holds the old one, and Vault's WAL rollback deletes the new one"
            ))
        })?;
        let new_client = self.client_for(&rotated)?;
        let mut resp = Response::json(json!({
            "login": "service_account",
            "client_id": client_id,
            "secret_id": new.id,
            "secret_expires_at": new.expires_at,
        }));
        match delete_secret(&new_client, &org, &client_id, &current.id).await {
            Ok(()) => self.settle(&wal_id).await,
            Err(e) => resp.add_warning(format!(
                "the old secret {} could not be deleted yet ({e}); Vault's WAL rollback deletes it",
                current.id
            )),
        }
        tracing::info!(client_id = %client_id, secret_id = %new.id, "rotated the configured service account's secret");
        Ok(resp)
    }

    /// The organization and key of the configured API key.
    async fn find_configured_key(&self) -> Result<(String, crate::atlas::ApiKey), BackendError> {
        for org in self
            .client
            .list_org_ids()
            .await
            .context("listing the organizations of the configured key")?
        {
            let keys = self
                .client
                .list_org_keys(&org)
                .await
                .context("listing the organization's API keys")?;
            if let Some(key) = keys
                .into_iter()
                .find(|k| k.public_key == self.config.public_key)
            {
                return Ok((org, key));
            }
        }
        Err(BackendError::user(format!(
            "the configured API key {} is not among the keys of the organizations it can see; rotation needs an Organization Owner key",
            self.config.public_key
        )))
    }

    /// The organization and account of the configured service account.
    async fn find_configured_account(
        &self,
    ) -> Result<(String, crate::atlas::ServiceAccount), BackendError> {
        for org in self
            .client
            .list_org_ids()
            .await
            .context("listing the organizations of the configured service account")?
        {
            match self
                .client
                .get_service_account(&org, &self.config.client_id)
                .await
            {
                Ok(account) => return Ok((org, account)),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e).context("reading the configured service account"),
            }
        }
        Err(BackendError::user(format!(
            "the configured service account {} is not in the organizations it can see",
            self.config.client_id
        )))
    }

    /// The secret `config` holds: by the id a rotation stored, else by the
    /// characters Atlas shows of it.
    fn current_secret(&self, secrets: &[AccountSecret]) -> Result<AccountSecret, BackendError> {
        let by_id = secrets
            .iter()
            .find(|s| !self.config.credential_id.is_empty() && s.id == self.config.credential_id);
        let mut by_tail = secrets.iter().filter(|s| s.is(&self.config.client_secret));
        by_id
            .or_else(|| match (by_tail.next(), by_tail.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            })
            .cloned()
            .ok_or_else(|| {
                BackendError::user(
                    "cannot tell which of the service account's secrets config holds; write config with the secret again, then rotate",
                )
            })
    }

    /// Stores the rotated config and drops the cached client (its token is revoked).
    async fn store(&self, rotated: &Config) -> Result<(), BackendError> {
        config::store(self.req.storage.as_ref(), rotated).await?;
        self.engine.reset_client();
        Ok(())
    }

    /// Done: the WAL entry goes.
    async fn settle(&self, wal_id: &str) {
        if let Err(e) = wal::delete(self.req.storage.as_ref(), wal_id).await {
            // Harmless: the rollback finds nothing to delete and drops it.
            tracing::debug!(wal_id, error = %e, "could not delete a settled rotation WAL entry");
        }
    }

    /// A rotation that failed before storing: delete the new credential now if
    /// possible (the entry goes with it), else leave the entry to the rollback.
    async fn abort(
        &self,
        wal_id: &str,
        record: &RotationRecord,
        nothing_uncertain: bool,
        failure: BackendError,
    ) -> BackendError {
        let created = !record.new_key_id.is_empty() || !record.new_secret_id.is_empty();
        if !created && nothing_uncertain {
            self.settle(wal_id).await;
            return failure.with_note("config still holds the old credential");
        }
        match delete_new(&self.client, record).await {
            Ok(()) => {
                self.settle(wal_id).await;
                failure.with_note(
                    "the new credential was deleted; config still holds the old one",
                )
            }
            Err(e) => failure.with_note(&format!(
                "config still holds the old credential; the new one could not be deleted yet ({e}), and Vault's WAL rollback deletes it"
            )),
        }
    }
}

/// Lifetime of a new secret: the old one's, within Atlas' bounds.
fn secret_hours(old: &AccountSecret) -> u32 {
    let parse = |t: &Option<String>| {
        t.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    match (parse(&old.created_at), parse(&old.expires_at)) {
        (Some(created), Some(expires)) if expires > created => {
            let hours = (expires - created).whole_hours();
            u32::try_from(hours.clamp(8, 8760)).unwrap_or(DEFAULT_SECRET_HOURS)
        }
        _ => DEFAULT_SECRET_HOURS,
    }
}

async fn delete_key(client: &AtlasClient, org: &str, key_id: &str) -> Result<(), AtlasError> {
    match client.delete_org_key(org, key_id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

async fn delete_secret(
    client: &AtlasClient,
    org: &str,
    client_id: &str,
    secret_id: &str,
) -> Result<(), AtlasError> {
    match client
        .delete_service_account_secret(org, client_id, secret_id)
        .await
    {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Deletes the credential a rotation created (or may have), with a client
/// that still works.
async fn delete_new(client: &AtlasClient, record: &RotationRecord) -> Result<(), BackendError> {
    let org = &record.org_id;
    if record.login == "service_account" {
        if !record.new_secret_id.is_empty() {
            return delete_secret(client, org, &record.client_id, &record.new_secret_id)
                .await
                .context("deleting the new secret");
        }
        // The create's answer was lost: every secret but the old one is new.
        let account = client
            .get_service_account(org, &record.client_id)
            .await
            .context("reading the service account")?;
        for secret in account
            .secrets
            .iter()
            .filter(|s| s.id != record.old_secret_id)
        {
            delete_secret(client, org, &record.client_id, &secret.id)
                .await
                .context("deleting the new secret")?;
        }
        return Ok(());
    }
    let key_id = if record.new_key_id.is_empty() {
        match client
            .find_org_key_by_desc(org, &record.new_description)
            .await
            .context("looking up the new key")?
        {
            Some(key) => key.id,
            None => return Ok(()),
        }
    } else {
        record.new_key_id.clone()
    };
    delete_key(client, org, &key_id)
        .await
        .context("deleting the new key")
}

/// Vault's WAL rollback of a rotation a crash or a failure interrupted.
async fn rollback(engine: Engine, req: Request, data: Value) -> Result<(), BackendError> {
    let record: RotationRecord = serde_json::from_value(data)
        .map_err(|e| BackendError::internal(format!("unreadable {WAL_KIND} record: {e}")))?;
    // A rotation has no overall deadline: a slow Atlas can keep one running
    // past the WAL's minimum age. Its entry waits for the next pass.
    let Ok(_no_rotation) = engine.try_rotation_lock() else {
        return Err(BackendError::internal(
            "a rotation is under way; its WAL entry is kept for the next rollback pass",
        ));
    };
    undo(&engine, &req, &record).await
}

/// Before a rotation (the caller holds the rotation lock, so no rotation that
/// wrote one is still running): undoes every rotation entry left in the WAL
/// and drops it, as the rollback would. Fails, and the new rotation with it,
/// while Atlas refuses: otherwise the credential such an entry names for
/// deletion could outlive the credential the new rotation replaces.
async fn undo_leftovers(engine: &Engine, req: &Request) -> Result<(), BackendError> {
    let storage = req.storage.as_ref();
    for id in wal::list(storage).await? {
        let Some(entry) = wal::get(storage, &id).await? else {
            continue;
        };
        if entry.kind != WAL_KIND {
            continue;
        }
        let Ok(record) = serde_json::from_value::<RotationRecord>(entry.data) else {
            // The rollback reports it; it does not block rotations.
            continue;
        };
        undo(engine, req, &record).await.map_err(|e| {
            e.with_note(
                "an earlier rotation left a credential that could not be deleted yet; rotate again once Atlas answers (Vault's WAL rollback retries it too)",
            )
        })?;
        wal::delete(storage, &id).await?;
    }
    Ok(())
}

/// Undoes one interrupted rotation: keeps the credential `config` holds,
/// deletes the other. The caller holds the rotation lock.
async fn undo(engine: &Engine, req: &Request, record: &RotationRecord) -> Result<(), BackendError> {
    let client = engine.revoking_client(req).await?;
    let config = config::load(req.storage.as_ref())
        .await?
        .unwrap_or_default();
    let rotated = match record.login.as_str() {
        "service_account" => {
            !record.new_secret_id.is_empty() && config.credential_id == record.new_secret_id
        }
        _ => !record.new_public_key.is_empty() && config.public_key == record.new_public_key,
    };
    if !rotated {
        return delete_new(&client, record).await;
    }
    // The new credential is in config: the old one goes.
    if record.login == "service_account" {
        delete_secret(
            &client,
            &record.org_id,
            &record.client_id,
            &record.old_secret_id,
        )
        .await
        .context("deleting the old secret")
    } else {
        delete_key(&client, &record.org_id, &record.old_key_id)
            .await
            .context("deleting the old key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_lives_as_long_as_the_old_one() {
        let old = AccountSecret {
            created_at: Some("2030-01-01T00:00:00Z".into()),
            expires_at: Some("2030-01-31T00:00:00Z".into()),
            ..AccountSecret::default()
        };
        assert_eq!(secret_hours(&old), 720);
        assert_eq!(
            secret_hours(&AccountSecret::default()),
            DEFAULT_SECRET_HOURS
        );
    }
}
