//! Atlas resources as the client exposes them, and their wire forms.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::AtlasError;
use super::secret::PrivateKey;

/// A programmatic API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// 24-hex id used in paths (`{apiUserId}`); not the public key.
    pub id: String,
    pub desc: String,
    /// 8 lowercase letters; the Digest user name.
    pub public_key: String,
    /// Only present in the answer to a create: Atlas never shows it again.
    pub private_key: Option<PrivateKey>,
    pub roles: Vec<RoleAssignment>,
}

impl ApiKey {
    /// The organization the key belongs to, from its organization-scoped roles
    /// (every key has one; project keys get `ORG_MEMBER` implicitly).
    pub fn org_id(&self) -> Option<&str> {
        self.roles.iter().find_map(|r| r.org_id.as_deref())
    }
}

/// One role of a key, scoped to an organization (`org_id`) or a project (`group_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub role_name: String,
}

/// One entry of an API key's IP access list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessListEntry {
    IpAddress(IpAddr),
    CidrBlock(IpNet),
}

impl AccessListEntry {
    /// The path segment Atlas uses for the entry (`192.0.2.1`, or `192.0.2.0/24`, which the URL
    /// builder encodes as `192.0.2.0%2F24`).
    pub(crate) fn path_value(&self) -> String {
        self.to_string()
    }

    /// Whether both name the same addresses (`192.0.2.1` and `192.0.2.1/32` do; Atlas
    /// lists an address with both forms).
    pub(crate) fn same_range(&self, other: &AccessListEntry) -> bool {
        self.as_net() == other.as_net()
    }

    fn as_net(&self) -> IpNet {
        match self {
            AccessListEntry::IpAddress(ip) => IpNet::from(*ip),
            AccessListEntry::CidrBlock(net) => net.trunc(),
        }
    }
}

impl fmt::Display for AccessListEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessListEntry::IpAddress(ip) => write!(f, "{ip}"),
            AccessListEntry::CidrBlock(net) => write!(f, "{net}"),
        }
    }
}

/// Parses `192.0.2.1` as an address and `192.0.2.0/24` as a block.
impl FromStr for AccessListEntry {
    type Err = AtlasError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.contains('/') {
            IpNet::from_str(s)
                .map(AccessListEntry::CidrBlock)
                .map_err(|_| AtlasError::InvalidArgument(format!("{s:?} is not a CIDR block")))
        } else {
            IpAddr::from_str(s)
                .map(AccessListEntry::IpAddress)
                .map_err(|_| AtlasError::InvalidArgument(format!("{s:?} is not an IP address")))
        }
    }
}

/// A service account (OAuth 2.0 client). The secret is only in the answer to a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `mdb_sa_id_<24 hex>`: the OAuth client id and the id in paths.
    pub client_id: String,
    pub name: String,
    pub description: String,
    /// When the account was created (RFC 3339), as Atlas says.
    pub created_at: Option<String>,
    /// The plain-text secret: only in the answer to a create.
    pub secret: Option<PrivateKey>,
    /// When the newest secret expires (RFC 3339), as Atlas says.
    pub secret_expires_at: Option<String>,
    /// Every secret of the account (reads show them masked).
    pub secrets: Vec<AccountSecret>,
}

/// One secret of a service account.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccountSecret {
    pub id: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    /// `mdb_sa_sk_...abcd`: the last characters of the secret.
    pub masked: Option<String>,
    /// The plain text: only in the answer to a create.
    pub secret: Option<PrivateKey>,
}

impl AccountSecret {
    /// Whether this is the secret `plain` (by the characters Atlas shows of it).
    pub fn is(&self, plain: &str) -> bool {
        self.masked
            .as_deref()
            .and_then(|m| m.rsplit("...").next())
            .is_some_and(|tail| tail.len() >= 4 && plain.ends_with(tail))
    }
}

/// A user's status in an organization (`orgMembershipStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipStatus {
    /// A member of the organization.
    Active,
    /// Invited, the invitation not yet accepted.
    Pending,
    InvitationExpired,
    InvitationRejected,
    /// A status this client does not know (or none): treat as not a member.
    Other(String),
}

impl From<Option<String>> for MembershipStatus {
    fn from(wire: Option<String>) -> Self {
        match wire.as_deref() {
            Some("ACTIVE") => MembershipStatus::Active,
            Some("PENDING") => MembershipStatus::Pending,
            Some("INVITATION_EXPIRED") => MembershipStatus::InvitationExpired,
            Some("INVITATION_REJECTED") => MembershipStatus::InvitationRejected,
            _ => MembershipStatus::Other(wire.unwrap_or_default()),
        }
    }
}

/// A MongoDB Cloud user (a person) as one organization sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgUser {
    /// 24-hex user id, the same in every organization.
    pub id: String,
    /// The user's email address.
    pub username: String,
    pub status: MembershipStatus,
    pub org_roles: Vec<String>,
    /// Project id -> the user's roles in that project (projects of this organization).
    pub project_roles: BTreeMap<String, Vec<String>>,
}

impl OrgUser {
    /// An accepted member (not an open, expired or rejected invitation).
    pub fn is_active(&self) -> bool {
        self.status == MembershipStatus::Active
    }

    pub fn has_org_role(&self, role: &str) -> bool {
        self.org_roles.iter().any(|r| r == role)
    }

    /// The user's roles in a project (empty when they have none there).
    pub fn roles_in(&self, project_id: &str) -> &[String] {
        self.project_roles
            .get(project_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// A MongoDB Cloud user with roles in one project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectUser {
    pub id: String,
    pub username: String,
    pub status: MembershipStatus,
    /// The user's roles in the project.
    pub roles: Vec<String>,
}

impl ProjectUser {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A project (Atlas calls it a group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub org_id: String,
}

/// What adding or removing one role did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// Atlas made the change.
    Made,
    /// Atlas refused because the user already had (or already lacked) the role: the state
    /// asked for holds, but this call did not bring it about (or, after a resend whose first
    /// answer was lost, cannot tell whether it did).
    AlreadyInPlace,
}

// ---- wire forms ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireServiceAccount {
    client_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    secrets: Vec<WireServiceAccountSecret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireServiceAccountSecret {
    #[serde(default)]
    id: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    masked_secret_value: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

impl From<WireServiceAccountSecret> for AccountSecret {
    fn from(wire: WireServiceAccountSecret) -> Self {
        AccountSecret {
            id: wire.id,
            created_at: wire.created_at,
            expires_at: wire.expires_at,
            masked: wire.masked_secret_value,
            secret: wire.secret.filter(|v| !v.is_empty()).map(PrivateKey::new),
        }
    }
}

impl From<WireServiceAccount> for ServiceAccount {
    fn from(wire: WireServiceAccount) -> Self {
        let secrets: Vec<AccountSecret> = wire.secrets.into_iter().map(Into::into).collect();
        let newest = secrets
            .iter()
            .max_by(|a, b| a.expires_at.cmp(&b.expires_at));
        let (secret, secret_expires_at) = match newest {
            Some(s) => (s.secret.clone(), s.expires_at.clone()),
            None => (None, None),
        };
        ServiceAccount {
            client_id: wire.client_id,
            name: wire.name,
            description: wire.description,
            created_at: wire.created_at,
            secret,
            secret_expires_at,
            secrets,
        }
    }
}

/// Body of a new secret for a service account.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSecretBody {
    pub(crate) secret_expires_after_hours: u32,
}

/// Body of both service-account creates (organization and project).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateServiceAccountBody<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) roles: &'a [String],
    pub(crate) secret_expires_after_hours: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireOrgUser {
    id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    org_membership_status: Option<String>,
    #[serde(default)]
    roles: WireOrgUserRoles,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireOrgUserRoles {
    #[serde(default)]
    org_roles: Vec<String>,
    #[serde(default)]
    group_role_assignments: Vec<WireGroupRoleAssignment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGroupRoleAssignment {
    #[serde(default)]
    group_id: String,
    #[serde(default)]
    group_roles: Vec<String>,
}

impl From<WireOrgUser> for OrgUser {
    fn from(wire: WireOrgUser) -> Self {
        let mut project_roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for assignment in wire.roles.group_role_assignments {
            if !assignment.group_id.is_empty() {
                project_roles
                    .entry(assignment.group_id)
                    .or_default()
                    .extend(assignment.group_roles);
            }
        }
        OrgUser {
            id: wire.id,
            username: wire.username,
            status: wire.org_membership_status.into(),
            org_roles: wire.roles.org_roles,
            project_roles,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireProjectUser {
    id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    org_membership_status: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl From<WireProjectUser> for ProjectUser {
    fn from(wire: WireProjectUser) -> Self {
        ProjectUser {
            id: wire.id,
            username: wire.username,
            status: wire.org_membership_status.into(),
            roles: wire.roles,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireProject {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    org_id: String,
}

impl From<WireProject> for Project {
    fn from(wire: WireProject) -> Self {
        Project {
            id: wire.id,
            name: wire.name,
            org_id: wire.org_id,
        }
    }
}

/// Body of "add one user to one project" (`addGroupUsers`).
#[derive(Serialize)]
pub(crate) struct AddProjectUserBody<'a> {
    pub(crate) username: &'a str,
    pub(crate) roles: &'a [String],
}

/// Body of `:addRole` / `:removeRole` on a project user.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupRoleBody<'a> {
    pub(crate) group_role: &'a str,
}

/// Body of `:addRole` / `:removeRole` on an organization user.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrgRoleBody<'a> {
    pub(crate) org_role: &'a str,
}

/// Body of "create one project" (`createGroup`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateProjectBody<'a> {
    pub(crate) name: &'a str,
    pub(crate) org_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireApiKey {
    id: String,
    #[serde(default)]
    desc: String,
    #[serde(default)]
    public_key: String,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    roles: Vec<RoleAssignment>,
}

impl From<WireApiKey> for ApiKey {
    fn from(wire: WireApiKey) -> Self {
        ApiKey {
            id: wire.id,
            desc: wire.desc,
            public_key: wire.public_key,
            // Reads return a masked value like `********-****-****-01bdd56c8977`.
            private_key: wire
                .private_key
                .filter(|k| !k.is_empty() && !k.contains('*'))
                .map(PrivateKey::new),
            roles: wire.roles,
        }
    }
}

/// Body of both create calls (org and project).
#[derive(Serialize)]
pub(crate) struct CreateKeyBody<'a> {
    pub(crate) desc: &'a str,
    pub(crate) roles: &'a [String],
}

/// One element of the array body of "assign key to project".
#[derive(Serialize)]
pub(crate) struct ProjectRolesBody<'a> {
    pub(crate) roles: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum WireAccessListRequest {
    IpAddress(String),
    CidrBlock(String),
}

impl From<&AccessListEntry> for WireAccessListRequest {
    fn from(entry: &AccessListEntry) -> Self {
        match entry {
            AccessListEntry::IpAddress(ip) => WireAccessListRequest::IpAddress(ip.to_string()),
            AccessListEntry::CidrBlock(net) => WireAccessListRequest::CidrBlock(net.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAccessListEntry {
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    cidr_block: Option<String>,
}

impl TryFrom<WireAccessListEntry> for AccessListEntry {
    type Error = AtlasError;

    /// Atlas fills `cidrBlock` (`/32`) for address entries too, so an address wins when present.
    fn try_from(wire: WireAccessListEntry) -> Result<Self, Self::Error> {
        let unexpected = |what: &str| AtlasError::Unexpected {
            message: format!("Atlas returned an unreadable access list entry {what:?}"),
            problem: None,
        };
        if let Some(ip) = wire.ip_address.as_deref().filter(|s| !s.is_empty()) {
            return IpAddr::from_str(ip)
                .map(AccessListEntry::IpAddress)
                .map_err(|_| unexpected(ip));
        }
        match wire.cidr_block.as_deref() {
            Some(block) => IpNet::from_str(block)
                .map(AccessListEntry::CidrBlock)
                .map_err(|_| unexpected(block)),
            None => Err(unexpected("")),
        }
    }
}

/// `{"links": [...], "results": [...], "totalCount": N}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(crate) results: Vec<T>,
    #[serde(default)]
    pub(crate) links: Vec<Link>,
}

#[derive(Deserialize)]
pub(crate) struct Link {
    #[serde(default)]
    pub(crate) href: String,
    #[serde(default)]
    pub(crate) rel: String,
}

impl<T> Page<T> {
    pub(crate) fn next_href(&self) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.rel == "next" && !l.href.is_empty())
            .map(|l| l.href.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_response_keeps_private_key_and_read_masks_it() {
        let created = r#"{"desc":"vault-test","id":"6a793f752c88faeba59bba49","links":[{"href":"http://localhost:8080/api/atlas/v2/orgs/a0123456789abcdef012345a/apiKeys/6a793f752c88faeba59bba49","rel":"self"}],"privateKey":"c8150efd-c7a0-4afd-8c4f-01bdd56c8977","publicKey":"gswvkocq","roles":[{"orgId":"a0123456789abcdef012345a","roleName":"ORG_READ_ONLY"}]}"#;
        let key: ApiKey = serde_json::from_str::<WireApiKey>(created)
            .expect("parse")
            .into();
        assert_eq!(key.id, "6a793f752c88faeba59bba49");
        assert_eq!(key.public_key, "gswvkocq");
        assert_eq!(
            key.private_key.as_ref().map(PrivateKey::expose),
            Some("c8150efd-c7a0-4afd-8c4f-01bdd56c8977")
        );
        assert_eq!(key.org_id(), Some("a0123456789abcdef012345a"));
        let shown = format!("{key:?}");
        assert!(!shown.contains("c8150efd"), "{shown}");

        let read = created.replace(
            "c8150efd-c7a0-4afd-8c4f-01bdd56c8977",
            "********-****-****-01bdd56c8977",
        );
        let key: ApiKey = serde_json::from_str::<WireApiKey>(&read)
            .expect("parse")
            .into();
        assert!(key.private_key.is_none());
    }

    #[test]
    fn project_key_roles_mix_org_and_group_scopes() {
        let body = r#"{"desc":"e2e","id":"6a793fbd2c88faeba59bd3b1","privateKey":"754c8808-0ba8-4153-8eea-85daa09d408a","publicKey":"flezioeg","roles":[{"orgId":"a0123456789abcdef012345a","roleName":"ORG_MEMBER"},{"groupId":"b0123456789abcdef012345b","roleName":"GROUP_READ_ONLY"}]}"#;
        let key: ApiKey = serde_json::from_str::<WireApiKey>(body)
            .expect("parse")
            .into();
        assert_eq!(key.roles.len(), 2);
        assert_eq!(
            key.roles[1],
            RoleAssignment {
                org_id: None,
                group_id: Some("b0123456789abcdef012345b".to_owned()),
                role_name: "GROUP_READ_ONLY".to_owned(),
            }
        );
        assert_eq!(key.org_id(), Some("a0123456789abcdef012345a"));
    }

    #[test]
    fn access_list_entries_round_trip() {
        let ip: AccessListEntry = "192.168.0.229".parse().expect("ip");
        let block: AccessListEntry = "10.0.0.0/8".parse().expect("cidr");
        let v6: AccessListEntry = "2001:db8::/32".parse().expect("v6 cidr");
        let body = serde_json::to_string(
            &[ip, block, v6]
                .iter()
                .map(WireAccessListRequest::from)
                .collect::<Vec<_>>(),
        )
        .expect("json");
        assert_eq!(
            body,
            r#"[{"ipAddress":"192.168.0.229"},{"cidrBlock":"10.0.0.0/8"},{"cidrBlock":"2001:db8::/32"}]"#
        );
        assert!("10.0.0.0/33".parse::<AccessListEntry>().is_err());
        assert!("not-an-ip".parse::<AccessListEntry>().is_err());

        let listed = r#"{"links":[],"results":[{"cidrBlock":"192.168.0.229/32","count":0,"created":"2026-08-10T03:02:57Z","ipAddress":"192.168.0.229"},{"cidrBlock":"10.0.0.0/8"}],"totalCount":2}"#;
        let page: Page<WireAccessListEntry> = serde_json::from_str(listed).expect("page");
        let entries: Vec<AccessListEntry> = page
            .results
            .into_iter()
            .map(AccessListEntry::try_from)
            .collect::<Result<_, _>>()
            .expect("entries");
        assert_eq!(entries, vec![ip, block]);
    }

    #[test]
    fn finds_next_link() {
        let body = r#"{"links":[{"href":"https://cloud.mongodb.com/api/atlas/v2/orgs/o/apiKeys?pageNum=1","rel":"self"},{"href":"https://cloud.mongodb.com/api/atlas/v2/orgs/o/apiKeys?pageNum=2","rel":"next"}],"results":[],"totalCount":3}"#;
        let page: Page<WireApiKey> = serde_json::from_str(body).expect("page");
        assert_eq!(
            page.next_href(),
            Some("https://cloud.mongodb.com/api/atlas/v2/orgs/o/apiKeys?pageNum=2")
        );
    }
}
