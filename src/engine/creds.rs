//! `creds/<name>`: issue a fresh Atlas programmatic API key for a role.
//!
//! Every key that exists in Atlas is either handed to Vault as a lease, or
//! deleted before the request returns, or recorded in the WAL so the next
//! rollback deletes it. Nothing else can leak a live key.

use rand::Rng;
use serde_json::{json, Map, Value};

use super::lease::{self, WalKey};
use super::role::{self, KeyMode, Role};
use super::{atlas_error, Engine, SECRET_TYPE};
use crate::atlas::{AccessListEntry, ApiKey, AtlasClient, AtlasError};
use crate::vault::framework::{
    handler, wal, BackendError, FieldSchema, FieldType, Operation, Path, Request, Response,
};

const CREDS_PATTERN: &str = r"creds/(?P<name>\w(([\w.-]+)?\w)?)";
/// Atlas' limit on an API key description.
const MAX_DESCRIPTION: usize = 250;
const RANDOM_SUFFIX: usize = 20;

pub fn path(engine: &Engine) -> Path {
    let engine = engine.clone();
    let issue = handler(move |req, fields| {
        let engine = engine.clone();
        async move {
            let name = fields.required_string("name")?;
            issue(&engine, req, &name).await.map(Some)
        }
    });
    Path::new(CREDS_PATTERN)
        .field(
            FieldSchema::new(
                "name",
                FieldType::LowerCaseString,
                "Name of the role to issue a key for.",
            )
            .required(),
        )
        .operation(Operation::Read, issue.clone())
        .operation(Operation::Update, issue)
        .help(
            "Issue an Atlas programmatic API key for a role.",
            "Creates a new Atlas programmatic API key as the role describes and returns its \
             public_key, private_key and description with a renewable lease. The key is deleted \
             from Atlas when the lease is revoked or expires. Read and update both issue a key.",
        )
}

/// `vault-<role>-<20 random base62>`, role sanitised as the official plugin does
/// and shortened if needed to stay within Atlas' 250 characters.
pub fn description(role: &str) -> String {
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

async fn issue(engine: &Engine, req: Request, name: &str) -> Result<Response, BackendError> {
    let role = role::load(req.storage.as_ref(), name).await?.ok_or_else(|| {
        BackendError::user(format!("role {name:?} does not exist: create it first with `vault write <mount>/roles/{name} ...`"))
    })?;
    role.validate()
        .map_err(|e| BackendError::user(format!("role {name:?} cannot issue keys: {e}")))?;
    let mode = role
        .mode()
        .ok_or_else(|| BackendError::internal("validated role without a mode"))?;
    let entries = role.access_list()?;
    let client = engine.client(&req).await?.ok_or_else(|| {
        BackendError::user("no Atlas credentials configured: write them first with `vault write <mount>/config public_key=... private_key=...`")
    })?;

    let desc = description(name);
    let mut wal_key = WalKey {
        description: desc.clone(),
        organization_id: role.organization_id.clone(),
        project_id: role.project_id.clone(),
        ..WalKey::default()
    };
    let storage = req.storage.as_ref();
    let wal_id = wal::put(storage, SECRET_TYPE, wal_key.to_json()).await?;

    let create = async {
        match mode {
            KeyMode::Org | KeyMode::OrgAssignedToProject => {
                client
                    .create_org_key(&role.organization_id, &desc, role.roles())
                    .await
            }
            KeyMode::Project => {
                client
                    .create_project_key(&role.project_id, &desc, role.roles())
                    .await
            }
        }
    };
    // The mount's TTLs come from Vault while Atlas creates the key.
    let (created, ttls) = tokio::join!(create, lease::ttls(&req, &role));
    let key = match created {
        Ok(key) => key,
        Err(e) => {
            // A create Atlas may have executed stays in the WAL for rollback to find by description.
            if !matches!(e, AtlasError::CreateUncertain { .. }) {
                wal::delete(storage, &wal_id).await?;
            }
            return Err(atlas_error("creating the Atlas API key", e));
        }
    };
    let key_org = key
        .org_id()
        .map(str::to_string)
        .unwrap_or_else(|| role.organization_id.clone());
    wal_key.programmatic_api_key_id = key.id.clone();
    wal_key.key_org_id = key_org.clone();

    // Recording the id (so a rollback deletes the key directly instead of
    // searching by description) overlaps with the key's remaining setup.
    let (recorded, configured) = tokio::join!(
        wal::put_at(storage, &wal_id, SECRET_TYPE, wal_key.to_json()),
        finish_key(&client, &role, mode, &key, &key_org, &entries),
    );
    let failure = match (configured, recorded, &ttls, &key.private_key) {
        (Err(e), _, _, _) => Some(atlas_error(
            "configuring the new Atlas API key (the key was deleted)",
            e,
        )),
        (_, Err(e), _, _) => Some(BackendError::from(e)),
        (_, _, Err(e), _) => Some(BackendError::internal(format!(
            "reading the mount's lease TTLs: {e}"
        ))),
        (_, _, _, None) => Some(BackendError::internal(
            "Atlas created the key but returned no private key; the key was deleted",
        )),
        _ => None,
    };
    if let Some(err) = failure {
        match lease::delete_key(&client, &key_org, &key.id).await {
            Ok(()) => wal::delete(storage, &wal_id).await?,
            Err(e) => {
                tracing::warn!(key_id = %key.id, error = %e, "could not delete a half-configured key; the WAL rollback will retry")
            }
        }
        return Err(err);
    }
    let (ttl, max_ttl) = ttls?;
    let private_key = key
        .private_key
        .as_ref()
        .map(|k| k.expose().to_string())
        .unwrap_or_default();
    // Only now may the key outlive this request: Vault takes over its lifetime.
    wal::delete(storage, &wal_id).await?;
    tracing::debug!(role = %name, key_id = %key.id, "issued Atlas API key");

    let mut data = Map::new();
    data.insert("public_key".into(), Value::String(key.public_key.clone()));
    data.insert("private_key".into(), Value::String(private_key));
    data.insert("description".into(), Value::String(desc));
    let internal = match json!({
        "programmatic_api_key_id": key.id,
        "project_id": role.project_id,
        "organization_id": role.organization_id,
        "role": name,
        "key_org_id": key_org,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Ok(lease::secret_type(engine).response(data, internal, ttl, max_ttl))
}

/// Access list and project assignment of a freshly created key.
async fn finish_key(
    client: &AtlasClient,
    role: &Role,
    mode: KeyMode,
    key: &ApiKey,
    key_org: &str,
    entries: &[AccessListEntry],
) -> Result<(), AtlasError> {
    if !entries.is_empty() {
        client.add_access_list(key_org, &key.id, entries).await?;
    }
    if mode == KeyMode::OrgAssignedToProject {
        client
            .assign_key_to_project(&role.project_id, &key.id, role.project_roles())
            .await?;
    }
    Ok(())
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
