//! What every lease of this engine shares, whatever its credential type: TTLs
//! come from its role (else the mount), renewal extends within them, and
//! revocation and WAL rollback delete what the lease's (or entry's) record names.

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::roles::{self, Role};
use super::tidy::record as issued_record;
use super::Engine;
use crate::atlas::AtlasClient;
use crate::vault::framework::{
    handler_with, rollback_handler, BackendError, FieldData, Handler, Request, Response, SecretType,
};

/// A credential type's record: both its lease's internal data and its WAL
/// entries' data, so revocation and rollback find the same credential.
pub(crate) trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The lease's `secret_type` and the kind of the WAL entries.
    const KIND: &'static str;
    /// How messages and logs name the credential: "API key", "service account".
    const NOUN: &'static str;

    /// The credential's id in Atlas; empty until its create answered.
    fn id(&self) -> &str;

    /// Deletes what the record names (by id, else by looking it up).
    /// `Ok(true)`: it is gone, now or before; `Ok(false)`: nothing by the
    /// record's name exists (yet).
    fn delete(
        &self,
        client: &AtlasClient,
        req: &Request,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    fn read(value: Value) -> Result<Self, BackendError> {
        serde_json::from_value(value)
            .map_err(|e| BackendError::internal(format!("unreadable {} record: {e}", Self::KIND)))
    }
}

/// The secret type of records `R`: `renew` as given, revocation and rollback
/// through [`Record::delete`].
pub(crate) fn secret_type<R: Record>(engine: &Engine, renew: Handler) -> SecretType {
    let rolling_back = engine.clone();
    SecretType {
        name: R::KIND,
        renew: Some(renew),
        revoke: Some(handler_with(engine, revoke::<R>)),
        rollback: Some(rollback_handler(move |req, data| {
            rollback::<R>(rolling_back.clone(), req, data)
        })),
    }
}

/// Deletes the credential behind a lease. Fails (so Vault retries) unless it is gone.
async fn revoke<R: Record>(
    engine: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let secret = req
        .secret
        .as_ref()
        .ok_or_else(|| BackendError::internal("revoke without a secret"))?;
    let record = R::read(Value::Object(secret.internal_data.clone()))?;
    if record.id().is_empty() {
        return Err(BackendError::internal(format!(
            "the lease names no Atlas {}; nothing identifies what to delete",
            R::NOUN
        )));
    }
    let client = engine.revoking_client(&req).await?;
    record.delete(&client, &req).await.map_err(|e| {
        BackendError::internal(format!("revoking Atlas {} {}: {e}", R::NOUN, record.id()))
    })?;
    issued_record::forget(req.storage.as_ref(), R::KIND, record.id()).await;
    tracing::debug!(id = %record.id(), "revoked Atlas {}", R::NOUN);
    Ok(None)
}

/// Undoes the WAL entry of an issuance: deletes its credential if one exists.
async fn rollback<R: Record>(
    engine: Engine,
    req: Request,
    data: Value,
) -> Result<(), BackendError> {
    let record = R::read(data)?;
    let client = engine.revoking_client(&req).await?;
    if record.delete(&client, &req).await? {
        issued_record::forget(req.storage.as_ref(), R::KIND, record.id()).await;
    }
    Ok(())
}

/// The part of every lease's internal data that renewal reads.
#[derive(Deserialize)]
struct Issued {
    #[serde(default)]
    role: String,
    /// Absent from leases issued before the record of issued credentials.
    #[serde(default)]
    lives_until: Option<i64>,
}

/// Lease TTLs for a role: its own when set, else the mount's.
pub(crate) async fn ttls(req: &Request, role: &Role) -> Result<(Duration, Duration), BackendError> {
    let ttl = if role.ttl.is_zero() {
        req.system.default_lease_ttl().await?
    } else {
        role.ttl
    };
    let max_ttl = if role.max_ttl.is_zero() {
        req.system.max_lease_ttl().await?
    } else {
        role.max_ttl
    };
    Ok((ttl, max_ttl.max(ttl)))
}

/// Extends by the requested increment, else the role's ttl, else the mount
/// default, never past max_ttl from the original issue time. A renewal that
/// lets the lease live longer than its credential's record says (the role's or
/// the mount's max_ttl was raised) extends the record first, so `tidy` never
/// deletes a credential a lease still holds.
pub(crate) async fn renew<R: Record>(
    _: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let mut secret = req
        .secret
        .clone()
        .ok_or_else(|| BackendError::internal("renew without a secret"))?;
    let issued: Issued = serde_json::from_value(Value::Object(secret.internal_data.clone()))
        .map_err(|e| BackendError::internal(format!("unreadable lease data: {e}")))?;
    let name = issued.role;
    let role = roles::load(req.storage.as_ref(), &name).await?.ok_or_else(|| {
        BackendError::user(format!(
            "role {name:?} no longer exists, so its leases cannot be renewed; they stay valid until they expire"
        ))
    })?;
    let (role_ttl, max_ttl) = ttls(&req, &role).await?;
    let mut ttl = if secret.lease.increment.is_zero() {
        role_ttl
    } else {
        secret.lease.increment
    };
    let now = SystemTime::now();
    let horizon = match secret.lease.issue_time {
        Some(issued_at) => {
            let age = now.duration_since(issued_at).unwrap_or_default();
            ttl = ttl.min(max_ttl.saturating_sub(age));
            issued_at + max_ttl
        }
        None => now + ttl,
    };
    if let Some(lives_until) = issued.lives_until {
        let horizon = issued_record::unix(horizon);
        if horizon > lives_until {
            extend_record::<R>(&req, &secret.internal_data, horizon).await?;
            secret
                .internal_data
                .insert(issued_record::LIVES_UNTIL.into(), horizon.into());
        }
    }
    secret.lease.ttl = ttl;
    secret.lease.max_ttl = max_ttl;
    Ok(Some(Response {
        secret: Some(secret),
        ..Response::default()
    }))
}

/// Moves the record's `lives_until` of the lease's credential to `horizon`.
async fn extend_record<R: Record>(
    req: &Request,
    internal: &serde_json::Map<String, Value>,
    horizon: i64,
) -> Result<(), BackendError> {
    let record = R::read(Value::Object(internal.clone()))?;
    let storage = req.storage.as_ref();
    let Some(mut entry) = issued_record::get(storage, R::KIND, record.id()).await? else {
        return Ok(());
    };
    if entry.lives_until < horizon {
        entry.lives_until = horizon;
        issued_record::put(storage, &entry).await?;
    }
    Ok(())
}
