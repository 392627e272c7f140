//! Requests and responses as engine code sees them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::backend::WalRollback;
use super::path::Handler;
use crate::vault::storage::Storage;
use crate::vault::system_view::SystemView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Help,
    AliasLookahead,
    ResolveRole,
    Header,
    Renew,
    Revoke,
    Rollback,
    /// Vault Enterprise's rotation manager: rotate the backend's credential.
    Rotate,
}

impl Operation {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => Self::Create,
            "read" => Self::Read,
            "update" => Self::Update,
            "patch" => Self::Patch,
            "delete" => Self::Delete,
            "list" => Self::List,
            "help" => Self::Help,
            "alias-lookahead" => Self::AliasLookahead,
            "resolve-role" => Self::ResolveRole,
            "header" => Self::Header,
            "renew" => Self::Renew,
            "revoke" => Self::Revoke,
            "rollback" => Self::Rollback,
            "rotate" => Self::Rotate,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Help => "help",
            Self::AliasLookahead => "alias-lookahead",
            Self::ResolveRole => "resolve-role",
            Self::Header => "header",
            Self::Renew => "renew",
            Self::Revoke => "revoke",
            Self::Rollback => "rollback",
            Self::Rotate => "rotate",
        }
    }
}

/// Lease settings of a secret. Vault's core clamps TTLs to the mount's limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseOptions {
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub renewable: bool,
    /// The increment the caller asked for on renew.
    pub increment: Duration,
    /// When the lease was first issued (set by Vault on renew/revoke).
    pub issue_time: Option<SystemTime>,
}

/// A leased secret: in a response when issuing, in the request on renew/revoke.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secret {
    pub lease: LeaseOptions,
    /// Engine data Vault keeps with the lease and hands back on renew/revoke;
    /// `secret_type` selects the [`SecretType`].
    pub internal_data: Map<String, Value>,
    pub lease_id: String,
}

impl Secret {
    pub fn internal_str(&self, key: &str) -> Option<&str> {
        self.internal_data.get(key).and_then(Value::as_str)
    }
}

/// A kind of leased secret, with what renewing and revoking it means, and how
/// to undo a WAL entry of an issuance that never became a lease.
#[derive(Clone)]
pub struct SecretType {
    /// The lease's `secret_type`, and the kind of the WAL entries it writes.
    pub name: &'static str,
    pub renew: Option<Handler>,
    pub revoke: Option<Handler>,
    /// Undoes a WAL entry of kind `name`; `Ok` deletes the entry.
    pub rollback: Option<WalRollback>,
}

impl SecretType {
    /// A response that leases `data`; `internal` is kept by Vault for renew/revoke.
    pub fn response(
        &self,
        data: Map<String, Value>,
        mut internal: Map<String, Value>,
        ttl: Duration,
        max_ttl: Duration,
    ) -> Response {
        internal.insert("secret_type".into(), Value::String(self.name.into()));
        Response {
            data: Some(data),
            secret: Some(Secret {
                lease: LeaseOptions {
                    ttl,
                    max_ttl,
                    renewable: self.renew.is_some(),
                    increment: Duration::ZERO,
                    issue_time: Some(SystemTime::now()),
                },
                internal_data: internal,
                lease_id: String::new(),
            }),
            warnings: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Request {
    pub operation: Operation,
    /// Path relative to the mount.
    pub path: String,
    pub data: Map<String, Value>,
    pub secret: Option<Secret>,
    pub mount_point: String,
    /// The Vault identity entity of the requester (empty for a root token).
    pub entity_id: String,
    pub id: String,
    pub storage: Arc<dyn Storage>,
    pub system: Arc<dyn SystemView>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<Secret>,
    pub warnings: Vec<String>,
}

impl Response {
    pub fn with_data(data: Map<String, Value>) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }

    /// Builds the data map from a JSON object literal; anything else becomes `{}`.
    pub fn json(value: Value) -> Self {
        match value {
            Value::Object(map) => Self::with_data(map),
            _ => Self::with_data(Map::new()),
        }
    }

    pub fn add_warning(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// `{"keys": [...]}`, the shape of every list response.
    pub fn list(keys: Vec<String>) -> Self {
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(keys));
        Self::with_data(data)
    }
}
