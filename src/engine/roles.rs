//! `roles/<name>`: what `creds/<name>` issues.
//!
//! Stored at `roles/<name>` in the official plugin's format: TTLs as Go
//! durations (integer nanoseconds), lists as JSON arrays (or `null`), and
//! `credential_type` only when it is not the API key (the official plugin's
//! roles have no such field and are written back unchanged).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{api_key, service_account, user_access, Engine};
use crate::atlas::AccessListEntry;
use crate::vault::framework::{
    existence_check, handler, handler_with, BackendError, FieldData, FieldSchema, FieldType,
    Operation, Path, Request, Response,
};
use crate::vault::storage::{get_json, put_json, Storage};

/// `roles/` + Vault's generic name pattern (`framework.GenericNameRegex`).
const ROLE_PATTERN: &str = r"roles/(?P<name>\w(([\w.-]+)?\w)?)";
pub(crate) const PREFIX: &str = "roles/";

/// Go `time.Duration` in JSON: integer nanoseconds.
mod go_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ns = i64::deserialize(d)?;
        Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
    }
}

/// The kind of credential a role issues; each has its own module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CredentialType {
    /// A programmatic API key ([`api_key`]): every role the official plugin wrote.
    #[default]
    ApiKey,
    /// A service account ([`service_account`]), MongoDB's recommended credential.
    ServiceAccount,
    /// Roles granted to a person for the lease ([`user_access`]): no credential is created.
    UserAccess,
}

impl CredentialType {
    const ALL: [(&'static str, Self); 3] = [
        ("api_key", Self::ApiKey),
        ("service_account", Self::ServiceAccount),
        ("user_access", Self::UserAccess),
    ];

    fn parse(raw: &str) -> Result<Self, BackendError> {
        let raw = raw.trim();
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(raw))
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(name, _)| *name).collect();
                BackendError::user(format!(
                    "credential_type: {raw:?} is not a credential type; use one of {}",
                    names.join(", ")
                ))
            })
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("", |(name, _)| name)
    }

    fn is_api_key(&self) -> bool {
        *self == Self::ApiKey
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Role {
    #[serde(default)]
    pub project_id: String,
    /// Legacy field of the official plugin, always empty; kept for the format.
    #[serde(default)]
    pub database_name: String,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub organization_id: String,
    #[serde(default)]
    pub cidr_blocks: Option<Vec<String>>,
    #[serde(default)]
    pub ip_addresses: Option<Vec<String>>,
    #[serde(default)]
    pub project_roles: Option<Vec<String>>,
    #[serde(default, with = "go_duration")]
    pub ttl: Duration,
    #[serde(default, with = "go_duration")]
    pub max_ttl: Duration,
    #[serde(default, skip_serializing_if = "CredentialType::is_api_key")]
    pub credential_type: CredentialType,
    /// Several projects instead of `project_id`'s one; stored only when given,
    /// so a role with the official plugin's fields keeps its format.
    #[serde(default, skip_serializing_if = "no_ids")]
    pub project_ids: Option<Vec<String>>,
    /// `user_access`: glob patterns (`*`, `?`) of the usernames that may be granted.
    #[serde(default, skip_serializing_if = "no_ids")]
    pub allowed_users: Option<Vec<String>>,
    /// `user_access`: the requester's identity-entity metadata key holding
    /// their username: people can then grant only themselves.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username_from_entity: String,
}

fn no_ids(ids: &Option<Vec<String>>) -> bool {
    ids.as_ref().is_none_or(Vec::is_empty)
}

/// Where a role's credential lives, from which of its ids are set (the
/// official plugin's rule: its roles have no explicit field for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// An organization credential with `roles`.
    Org,
    /// A project credential with `roles`.
    Project,
    /// An organization credential with `roles`, given `project_roles` in each
    /// of the role's projects ([`Role::assigned_projects`]).
    OrgAssignedToProject,
}

impl Scope {
    pub(crate) fn of(role: &Role) -> Result<Self, BackendError> {
        if !role.project_ids().is_empty() {
            return if role.organization_id.is_empty() {
                Err(BackendError::user(
                    "project_ids needs organization_id: the credential is an organization credential given project_roles in each listed project; for a project credential, set project_id instead",
                ))
            } else {
                Ok(Self::OrgAssignedToProject)
            };
        }
        match (role.organization_id.is_empty(), role.project_id.is_empty()) {
            (false, true) => Ok(Self::Org),
            (true, false) => Ok(Self::Project),
            (false, false) => Ok(Self::OrgAssignedToProject),
            (true, true) => Err(BackendError::user(
                "organization_id or project_id is required: set organization_id for an organization credential, project_id for a project credential, or both for an organization credential with roles in that project",
            )),
        }
    }
}

impl Role {
    /// The scope, with `roles` (and `project_roles`) fit for it.
    pub(crate) fn check_scope_roles(&self) -> Result<Scope, BackendError> {
        let scope = Scope::of(self)?;
        let (role_scope, prefix) = match scope {
            Scope::Org | Scope::OrgAssignedToProject => ("organization", "ORG_"),
            Scope::Project => ("project", "GROUP_"),
        };
        if self.roles().is_empty() {
            return Err(BackendError::user(format!(
                "roles is required and must not be empty: give at least one {role_scope} role, e.g. {prefix}READ_ONLY"
            )));
        }
        check_role_names("roles", self.roles(), prefix, role_scope)?;
        if scope == Scope::OrgAssignedToProject {
            if self.project_roles().is_empty() {
                return Err(BackendError::user(
                    "project_roles is required if both organization_id and project_id (or project_ids) are supplied: give at least one project role, e.g. GROUP_READ_ONLY",
                ));
            }
            check_role_names("project_roles", self.project_roles(), "GROUP_", "project")?;
        }
        Ok(scope)
    }

    pub(crate) fn roles(&self) -> &[String] {
        self.roles.as_deref().unwrap_or_default()
    }

    pub(crate) fn project_ids(&self) -> &[String] {
        self.project_ids.as_deref().unwrap_or_default()
    }

    /// The projects an organization credential is given `project_roles` in:
    /// `project_ids`, or `project_id`.
    pub(crate) fn assigned_projects(&self) -> Vec<&str> {
        if self.project_ids().is_empty() {
            [self.project_id.as_str()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect()
        } else {
            self.project_ids().iter().map(String::as_str).collect()
        }
    }

    pub(crate) fn project_roles(&self) -> &[String] {
        self.project_roles.as_deref().unwrap_or_default()
    }

    pub(crate) fn ip_addresses(&self) -> &[String] {
        self.ip_addresses.as_deref().unwrap_or_default()
    }

    pub(crate) fn cidr_blocks(&self) -> &[String] {
        self.cidr_blocks.as_deref().unwrap_or_default()
    }

    /// The key's access list: CIDR blocks, then IP addresses (the official
    /// plugin's order). Atlas refuses an access list naming one address twice
    /// (an IP counts as its /32 or /128 block), so that is refused here too.
    pub(crate) fn access_list(&self) -> Result<Vec<AccessListEntry>, BackendError> {
        let entries = self.parse_access_list()?;
        let mut seen = std::collections::HashSet::new();
        for (entry, raw) in entries
            .iter()
            .zip(self.cidr_blocks().iter().chain(self.ip_addresses()))
        {
            let (field, net) = match entry {
                AccessListEntry::CidrBlock(net) => ("cidr_blocks", *net),
                AccessListEntry::IpAddress(ip) => ("ip_addresses", IpNet::from(*ip)),
            };
            if !seen.insert(net) {
                return Err(BackendError::user(format!(
                    "{field}: {raw:?} repeats an address already in ip_addresses or cidr_blocks ({net}); Atlas refuses duplicate addresses"
                )));
            }
        }
        Ok(entries)
    }

    fn parse_access_list(&self) -> Result<Vec<AccessListEntry>, BackendError> {
        let cidrs = self.cidr_blocks().iter().map(|c| {
            c.parse::<IpNet>()
                .map(AccessListEntry::CidrBlock)
                .map_err(|_| {
                    BackendError::user(format!(
                        "cidr_blocks: {c:?} is not a CIDR block (e.g. 192.0.2.0/24)"
                    ))
                })
        });
        let ips = self.ip_addresses().iter().map(|ip| {
            ip.parse::<IpAddr>()
                .map(AccessListEntry::IpAddress)
                .map_err(|_| {
                    BackendError::user(format!(
                        "ip_addresses: {ip:?} is not an IP address (e.g. 192.0.2.10)"
                    ))
                })
        });
        cidrs.chain(ips).collect()
    }

    /// The role as read back (TTLs in seconds, as the Terraform provider expects):
    /// exactly the official plugin's fields, plus `credential_type` when it is
    /// not the API key and `project_ids` when set (so a drop-in read stays identical).
    fn to_response(&self) -> Response {
        let mut resp = Response::json(json!({
            "project_id": self.project_id,
            "database_name": self.database_name,
            "roles": self.roles,
            "organization_id": self.organization_id,
            "cidr_blocks": self.cidr_blocks,
            "ip_addresses": self.ip_addresses,
            "project_roles": self.project_roles,
            "ttl": self.ttl.as_secs(),
            "max_ttl": self.max_ttl.as_secs(),
        }));
        if let Some(data) = resp.data.as_mut() {
            if !self.credential_type.is_api_key() {
                data.insert("credential_type".into(), self.credential_type.name().into());
            }
            if !no_ids(&self.project_ids) {
                data.insert("project_ids".into(), json!(self.project_ids));
            }
            if self.credential_type == CredentialType::UserAccess {
                data.insert("allowed_users".into(), json!(self.allowed_users));
                data.insert(
                    "username_from_entity".into(),
                    json!(self.username_from_entity),
                );
            }
        }
        resp
    }

    /// Everything Atlas would reject, caught before any credential is created.
    pub(crate) fn validate(&self) -> Result<(), BackendError> {
        for (field, id) in [
            ("organization_id", &self.organization_id),
            ("project_id", &self.project_id),
        ] {
            if !id.is_empty() && !is_atlas_id(id) {
                return Err(BackendError::user(format!(
                    "{field} {id:?} is not an Atlas id (24 hexadecimal characters)"
                )));
            }
        }
        self.check_project_ids()?;
        if self.credential_type != CredentialType::UserAccess
            && (!no_ids(&self.allowed_users) || !self.username_from_entity.is_empty())
        {
            return Err(BackendError::user(
                "allowed_users and username_from_entity are for user_access roles only: set credential_type=user_access, or leave them out",
            ));
        }
        match self.credential_type {
            CredentialType::ApiKey => api_key::check_role(self)?,
            CredentialType::ServiceAccount => service_account::check_role(self)?,
            CredentialType::UserAccess => user_access::check_role(self)?,
        }
        self.access_list()?;
        if !self.max_ttl.is_zero() && self.ttl > self.max_ttl {
            return Err(BackendError::user(format!(
                "ttl ({}s) exceeds max_ttl ({}s): lower ttl or raise max_ttl",
                self.ttl.as_secs(),
                self.max_ttl.as_secs()
            )));
        }
        Ok(())
    }
}

impl Role {
    /// `project_ids`: Atlas ids, none twice, and not with `project_id`.
    fn check_project_ids(&self) -> Result<(), BackendError> {
        let ids = self.project_ids();
        if ids.is_empty() {
            return Ok(());
        }
        if !self.project_id.is_empty() {
            return Err(BackendError::user(
                "project_id and project_ids were both given: use project_ids alone for several projects (clear project_id with project_id=\"\"), or project_id alone for one",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !is_atlas_id(id) {
                return Err(BackendError::user(format!(
                    "project_ids: {id:?} is not an Atlas project id (24 hexadecimal characters)"
                )));
            }
            if !seen.insert(id.to_ascii_lowercase()) {
                return Err(BackendError::user(format!(
                    "project_ids: {id:?} is listed twice; list each project once"
                )));
            }
        }
        Ok(())
    }
}

fn check_role_names(
    field: &str,
    names: &[String],
    prefix: &str,
    scope: &str,
) -> Result<(), BackendError> {
    match names.iter().find(|n| !n.starts_with(prefix)) {
        Some(bad) => Err(BackendError::user(format!(
            "{field}: {bad:?} is not an Atlas {scope} role (they start with {prefix}, e.g. {prefix}READ_ONLY)"
        ))),
        None => Ok(()),
    }
}

fn is_atlas_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The role-name rule, as the paths' pattern states it plus what Vault's storage adds.
pub(crate) const NAME_RULE: &str = "a role name is letters, digits, '_', '-' and '.', starts and ends with a letter, digit or '_', and does not contain \"..\"";

/// Checks a role name beyond what the path pattern (Vault's `GenericNameRegex`)
/// enforces: the pattern lets `a..b` through, and Vault's storage then refuses
/// the key as a parent reference, which would surface as a 500.
pub(crate) fn check_name(name: &str) -> Result<(), BackendError> {
    if name.is_empty() || name.contains("..") {
        return Err(BackendError::user(format!(
            "role name {name:?} is not valid: {NAME_RULE}"
        )));
    }
    Ok(())
}

/// The role stored under `name`; a name that breaks [`NAME_RULE`] is a user
/// error here, so every path that looks a role up (creds too) answers 400.
pub(crate) async fn load(storage: &dyn Storage, name: &str) -> Result<Option<Role>, BackendError> {
    check_name(name)?;
    Ok(get_json(storage, &format!("{PREFIX}{name}")).await?)
}

fn role_name(fields: &FieldData) -> Result<String, BackendError> {
    let name = fields.required_string("name")?;
    check_name(&name)?;
    Ok(name)
}

/// Applies the supplied fields on top of the stored role (writes merge).
fn merge(mut role: Role, fields: &FieldData) -> Result<Role, BackendError> {
    if let Some(v) = fields.string("organization_id")? {
        role.organization_id = v.trim().to_string();
    }
    if let Some(v) = fields.string("project_id")? {
        role.project_id = v.trim().to_string();
    }
    for (name, slot) in [
        ("roles", &mut role.roles),
        ("project_roles", &mut role.project_roles),
        ("ip_addresses", &mut role.ip_addresses),
        ("cidr_blocks", &mut role.cidr_blocks),
        ("project_ids", &mut role.project_ids),
        ("allowed_users", &mut role.allowed_users),
    ] {
        if fields.is_set(name) {
            *slot = fields.strings(name)?;
        }
    }
    if let Some(ttl) = fields.duration("ttl")? {
        role.ttl = ttl;
    }
    if let Some(max_ttl) = fields.duration("max_ttl")? {
        role.max_ttl = max_ttl;
    }
    if let Some(v) = fields.string("username_from_entity")? {
        role.username_from_entity = v.trim().to_string();
    }
    if let Some(v) = fields.string("credential_type")? {
        role.credential_type = CredentialType::parse(&v)?;
    }
    Ok(role)
}

fn name_field() -> FieldSchema {
    FieldSchema::new(
        "name",
        FieldType::LowerCaseString,
        "Name of the role (lower-cased).",
    )
    .required()
}

const LIST_SYNOPSIS: &str = "List the roles.";
const LIST_DESCRIPTION: &str = "Lists the names of all roles of this mount.";
const SYNOPSIS: &str = "Manage the roles that define which Atlas credentials are issued.";
const DESCRIPTION: &str = "A role issues one of three kinds of programmatic API key \
(credential_type api_key, the default): organization_id alone gives an organization key with \
`roles` (ORG_*); project_id alone gives a project key with `roles` (GROUP_*); both give an \
organization key with `roles`, assigned to the project with `project_roles`; project_ids instead \
of project_id assigns it to several projects. ip_addresses and \
cidr_blocks become the key's access list. Writes merge into an existing role. ttl and max_ttl \
bound the leases of issued keys.";

pub(crate) fn paths(engine: &Engine) -> Vec<Path> {
    let list = Path::new("roles/?")
        .operation(Operation::List, handler(list_roles))
        .help(LIST_SYNOPSIS, LIST_DESCRIPTION);
    let write = handler_with(engine, write_role);
    let role = Path::new(ROLE_PATTERN)
        .field(name_field())
        .field(FieldSchema::new("organization_id", FieldType::String, "Atlas organization id. With it alone, the role issues organization keys; with project_id too, organization keys assigned to that project."))
        .field(FieldSchema::new("project_id", FieldType::String, "Atlas project id. With it alone, the role issues project keys."))
        .field(FieldSchema::new("project_ids", FieldType::CommaStringSlice, "Several Atlas project ids (a list, a comma-separated string or a JSON array), instead of project_id: with organization_id, each issued organization credential gets project_roles in every listed project. Each project once."))
        .field(FieldSchema::new("roles", FieldType::CommaStringSlice, "Atlas roles of the key: organization roles (ORG_*) for organization keys, project roles (GROUP_*) for project keys. At least one.").required())
        .field(FieldSchema::new("project_roles", FieldType::CommaStringSlice, "Project roles (GROUP_*) given to the organization key in project_id; required when both organization_id and project_id are set."))
        .field(FieldSchema::new("ip_addresses", FieldType::CommaStringSlice, "IP addresses added to each key's access list."))
        .field(FieldSchema::new("cidr_blocks", FieldType::CommaStringSlice, "CIDR blocks added to each key's access list."))
        .field(FieldSchema::new("ttl", FieldType::DurationSecond, "Lease TTL of issued keys (seconds or a duration such as 1h); 0 uses the mount default."))
        .field(FieldSchema::new("max_ttl", FieldType::DurationSecond, "Maximum lifetime of issued keys; 0 uses the mount maximum."))
        .field(FieldSchema::new("credential_type", FieldType::String, "What creds/<name> issues: api_key (a programmatic API key; the default, and what every role without this field issues), service_account (an Atlas service account: client_id and client_secret, whose secret Atlas expires at the latest an hour after the lease's max_ttl), or user_access (just-in-time access: roles granted to an existing organization member for the lease)."))
        .field(FieldSchema::new("allowed_users", FieldType::CommaStringSlice, "user_access: the MongoDB Cloud usernames that may be granted, as glob patterns (* and ?, case-insensitive), e.g. *@example.com."))
        .field(FieldSchema::new("username_from_entity", FieldType::String, "user_access: the metadata key of the requester's Vault identity entity that holds their MongoDB Cloud username (e.g. email): the requester can then grant only themselves."))
        .operation(Operation::Create, write.clone())
        .operation(Operation::Update, write)
        .operation(Operation::Read, handler(read_role))
        .operation(Operation::Delete, handler_with(engine, delete_role))
        .existence(existence_check(role_exists))
        .help(SYNOPSIS, DESCRIPTION);
    vec![list, role]
}

async fn list_roles(req: Request, _: FieldData) -> Result<Option<Response>, BackendError> {
    Ok(Some(Response::list(req.storage.list(PREFIX).await?)))
}

async fn read_role(req: Request, fields: FieldData) -> Result<Option<Response>, BackendError> {
    let role = load(req.storage.as_ref(), &role_name(&fields)?).await?;
    Ok(role.map(|r| r.to_response()))
}

async fn role_exists(req: Request, fields: FieldData) -> Result<bool, BackendError> {
    Ok(load(req.storage.as_ref(), &role_name(&fields)?)
        .await?
        .is_some())
}

async fn write_role(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let name = role_name(&fields)?;
    // Writes merge (read, modify, write): without this, two concurrent writes
    // of different fields would each drop the other's.
    let _serialized = engine.role_writes().await;
    let stored = load(req.storage.as_ref(), &name).await?.unwrap_or_default();
    let role = merge(stored, &fields)?;
    role.validate()?;
    put_json(req.storage.as_ref(), &format!("{PREFIX}{name}"), &role).await?;
    engine.forget_role(&name);
    Ok(None)
}

async fn delete_role(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let name = role_name(&fields)?;
    // So a delete cannot fall between a merge's read and its write.
    let _serialized = engine.role_writes().await;
    req.storage.delete(&format!("{PREFIX}{name}")).await?;
    engine.forget_role(&name);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ORG: &str = "5f0c4f2b8c1e4a3d2b1a0f9e";

    #[test]
    fn reads_the_official_storage_format() {
        let stored = r#"{"project_id":"","database_name":"","roles":["ORG_MEMBER"],"organization_id":"5f0c4f2b8c1e4a3d2b1a0f9e","cidr_blocks":null,"ip_addresses":["192.0.2.1"],"project_roles":null,"ttl":3600000000000,"max_ttl":7200000000000}"#;
        let role: Role = serde_json::from_str(stored).expect("decode");
        assert_eq!(role.ttl, Duration::from_secs(3600));
        assert_eq!(role.credential_type, CredentialType::ApiKey);
        assert_eq!(serde_json::to_string(&role).expect("encode"), stored);
    }

    #[test]
    fn validation_names_the_field_and_the_fix() {
        let base = Role {
            organization_id: ORG.into(),
            roles: Some(vec!["ORG_MEMBER".into()]),
            ..Role::default()
        };
        assert!(base.validate().is_ok());
        let cases: Vec<(Role, &str)> = vec![
            (
                Role {
                    roles: Some(vec![]),
                    ..base.clone()
                },
                "roles is required",
            ),
            (
                Role {
                    project_id: ORG.into(),
                    ..base.clone()
                },
                "project_roles is required if both organization_id and project_id",
            ),
            (
                Role {
                    ip_addresses: Some(vec!["300.1.1.1".into()]),
                    ..base.clone()
                },
                "ip_addresses",
            ),
            (
                Role {
                    cidr_blocks: Some(vec!["10.0.0.0/99".into()]),
                    ..base.clone()
                },
                "cidr_blocks",
            ),
            (
                Role {
                    cidr_blocks: Some(vec!["192.0.2.1/32".into()]),
                    ip_addresses: Some(vec!["192.0.2.1".into()]),
                    ..base.clone()
                },
                "ip_addresses: \"192.0.2.1\" repeats an address",
            ),
            (
                Role {
                    cidr_blocks: Some(vec!["10.0.0.0/8".into(), "10.0.0.0/8".into()]),
                    ..base.clone()
                },
                "cidr_blocks: \"10.0.0.0/8\" repeats",
            ),
            (
                Role {
                    ttl: Duration::from_secs(10),
                    max_ttl: Duration::from_secs(5),
                    ..base.clone()
                },
                "ttl (10s) exceeds max_ttl (5s)",
            ),
            (
                Role {
                    organization_id: String::new(),
                    ..base.clone()
                },
                "organization_id or project_id is required",
            ),
            (
                Role {
                    organization_id: "xyz".into(),
                    ..base.clone()
                },
                "not an Atlas id",
            ),
            (
                Role {
                    roles: Some(vec!["GROUP_READ_ONLY".into()]),
                    ..base.clone()
                },
                "not an Atlas organization role",
            ),
        ];
        for (role, expected) in cases {
            match role.validate() {
                Err(BackendError::User(msg)) => assert!(
                    msg.contains(expected),
                    "{msg:?} should contain {expected:?}"
                ),
                other => panic!("expected a user error containing {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn names_with_parent_references_are_user_errors() {
        for good in ["a", "a.b", "my-role_1", "a.b.c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["a..b", "..", "a...b", ""] {
            match check_name(bad) {
                Err(BackendError::User(msg)) => {
                    assert!(msg.contains("role name"), "{msg}");
                    assert!(msg.contains(NAME_RULE), "{msg}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn load_refuses_a_bad_name_before_storage() {
        let storage = crate::vault::storage::InMemStorage::default();
        assert!(matches!(
            load(&storage, "a..b").await,
            Err(BackendError::User(_))
        ));
        assert!(matches!(load(&storage, "a.b").await, Ok(None)));
    }

    #[test]
    fn credential_type_is_named_and_stored_only_when_not_an_api_key() {
        assert_eq!(
            CredentialType::parse(" API_KEY ").expect("api_key"),
            CredentialType::ApiKey
        );
        match CredentialType::parse("password") {
            Err(BackendError::User(msg)) => {
                assert!(msg.starts_with("credential_type: \"password\""), "{msg}");
                assert!(msg.contains("api_key"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let role = Role {
            organization_id: ORG.into(),
            credential_type: CredentialType::ApiKey,
            ..Role::default()
        };
        let stored = serde_json::to_value(&role).expect("encode");
        assert!(stored.get("credential_type").is_none(), "{stored}");
    }

    #[test]
    fn role_read_reports_seconds() {
        let role = Role {
            ttl: Duration::from_secs(60),
            ..Role::default()
        };
        let data = role.to_response().data.expect("data");
        assert_eq!(data["ttl"], Value::from(60));
        assert_eq!(data["roles"], Value::Null);
        assert!(
            !data.contains_key("credential_type"),
            "an API-key role reads as the official plugin's"
        );
        let account = Role {
            credential_type: CredentialType::ServiceAccount,
            ..Role::default()
        };
        assert_eq!(
            account.to_response().data.expect("data")["credential_type"],
            "service_account"
        );
    }
}
