//! Maps request paths to Atlas resources, and negotiates the versioned media type.

use http::StatusCode;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/api/atlas/v2`: versioned by `Accept: application/vnd.atlas.<date>+json`.
    V2,
    /// `/api/atlas/v1.0`: the deprecated API the official Go plugin uses (plain JSON).
    V1,
}

impl ApiVersion {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::V2 => "/api/atlas/v2",
            Self::V1 => "/api/atlas/v1.0",
        }
    }
}

/// Where a service-account route lives: under an organization or under a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaScope<'a> {
    Org(&'a str),
    Group(&'a str),
}

/// `{userId}:addRole` or `{userId}:removeRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleAction {
    Add,
    Remove,
}

/// A recognised resource, with its raw (still percent-encoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/orgs`: the organizations the caller belongs to.
    Orgs,
    Org {
        org: &'a str,
    },
    OrgKeys {
        org: &'a str,
    },
    OrgKey {
        org: &'a str,
        key: &'a str,
    },
    AccessList {
        org: &'a str,
        key: &'a str,
    },
    AccessEntry {
        org: &'a str,
        key: &'a str,
        entry: &'a str,
    },
    Group {
        group: &'a str,
    },
    GroupKeys {
        group: &'a str,
    },
    GroupKey {
        group: &'a str,
        key: &'a str,
    },
    /// `/orgs/{orgId}/serviceAccounts` or `/groups/{groupId}/serviceAccounts`.
    ServiceAccounts {
        scope: SaScope<'a>,
    },
    ServiceAccount {
        scope: SaScope<'a>,
        client: &'a str,
    },
    SaAccessList {
        scope: SaScope<'a>,
        client: &'a str,
    },
    SaAccessEntry {
        scope: SaScope<'a>,
        client: &'a str,
        entry: &'a str,
    },
    SaSecrets {
        scope: SaScope<'a>,
        client: &'a str,
    },
    SaSecret {
        scope: SaScope<'a>,
        client: &'a str,
        secret: &'a str,
    },
    /// `/orgs/{orgId}/serviceAccounts/{clientId}/groups`.
    SaGroups {
        org: &'a str,
        client: &'a str,
    },
    /// `/groups/{groupId}/serviceAccounts/{clientId}:invite` (literal colon).
    SaInvite {
        group: &'a str,
        client: &'a str,
    },
    /// `/groups`: list and create projects.
    Groups,
    /// `/orgs/{orgId}/users` (version 2025-02-19, like every user resource below).
    OrgUsers {
        org: &'a str,
    },
    OrgUser {
        org: &'a str,
        user: &'a str,
    },
    /// `/orgs/{orgId}/users/{userId}:addRole` / `:removeRole`.
    OrgUserRole {
        org: &'a str,
        user: &'a str,
        action: RoleAction,
    },
    GroupUsers {
        group: &'a str,
    },
    GroupUser {
        group: &'a str,
        user: &'a str,
    },
    /// `/groups/{groupId}/users/{userId}:addRole` / `:removeRole`.
    GroupUserRole {
        group: &'a str,
        user: &'a str,
        action: RoleAction,
    },
    /// A deprecated user or invitation resource whose only version (`version`) is past its
    /// sunset: every request gets 410 `VERSION_GONE` (or 406 for another version).
    Retired {
        template: &'static str,
        version: &'static str,
    },
}

/// Version 2025-02-19: the MongoDB Cloud user resources.
pub const USERS_VERSION: &str = "2025-02-19";
/// The deprecated versions of the user resources, gone after 2027-07-01 (`x-sunset`).
const USERS_SUNSET: &[&str] = &["2023-01-01"];

impl Resource<'_> {
    pub fn template(&self) -> &'static str {
        match self {
            Self::Orgs => "/orgs",
            Self::Org { .. } => "/orgs/{orgId}",
            Self::OrgKeys { .. } => "/orgs/{orgId}/apiKeys",
            Self::OrgKey { .. } => "/orgs/{orgId}/apiKeys/{apiUserId}",
            Self::AccessList { .. } => "/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
            Self::AccessEntry { .. } => "/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
            Self::Group { .. } => "/groups/{groupId}",
            Self::GroupKeys { .. } => "/groups/{groupId}/apiKeys",
            Self::GroupKey { .. } => "/groups/{groupId}/apiKeys/{apiUserId}",
            Self::ServiceAccounts { scope } => match scope {
                SaScope::Org(_) => "/orgs/{orgId}/serviceAccounts",
                SaScope::Group(_) => "/groups/{groupId}/serviceAccounts",
            },
            Self::ServiceAccount { scope, .. } => match scope {
                SaScope::Org(_) => "/orgs/{orgId}/serviceAccounts/{clientId}",
                SaScope::Group(_) => "/groups/{groupId}/serviceAccounts/{clientId}",
            },
            Self::SaAccessList { scope, .. } => match scope {
                SaScope::Org(_) => "/orgs/{orgId}/serviceAccounts/{clientId}/accessList",
                SaScope::Group(_) => "/groups/{groupId}/serviceAccounts/{clientId}/accessList",
            },
            Self::SaAccessEntry { scope, .. } => match scope {
                SaScope::Org(_) => {
                    "/orgs/{orgId}/serviceAccounts/{clientId}/accessList/{ipAddress}"
                }
                SaScope::Group(_) => {
                    "/groups/{groupId}/serviceAccounts/{clientId}/accessList/{ipAddress}"
                }
            },
            Self::SaSecrets { scope, .. } => match scope {
                SaScope::Org(_) => "/orgs/{orgId}/serviceAccounts/{clientId}/secrets",
                SaScope::Group(_) => "/groups/{groupId}/serviceAccounts/{clientId}/secrets",
            },
            Self::SaSecret { scope, .. } => match scope {
                SaScope::Org(_) => "/orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}",
                SaScope::Group(_) => {
                    "/groups/{groupId}/serviceAccounts/{clientId}/secrets/{secretId}"
                }
            },
            Self::SaGroups { .. } => "/orgs/{orgId}/serviceAccounts/{clientId}/groups",
            Self::SaInvite { .. } => "/groups/{groupId}/serviceAccounts/{clientId}:invite",
            Self::Groups => "/groups",
            Self::OrgUsers { .. } => "/orgs/{orgId}/users",
            Self::OrgUser { .. } => "/orgs/{orgId}/users/{userId}",
            Self::OrgUserRole { action, .. } => match action {
                RoleAction::Add => "/orgs/{orgId}/users/{userId}:addRole",
                RoleAction::Remove => "/orgs/{orgId}/users/{userId}:removeRole",
            },
            Self::GroupUsers { .. } => "/groups/{groupId}/users",
            Self::GroupUser { .. } => "/groups/{groupId}/users/{userId}",
            Self::GroupUserRole { action, .. } => match action {
                RoleAction::Add => "/groups/{groupId}/users/{userId}:addRole",
                RoleAction::Remove => "/groups/{groupId}/users/{userId}:removeRole",
            },
            Self::Retired { template, .. } => template,
        }
    }

    /// The MongoDB Cloud user resources (version 2025-02-19).
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Self::OrgUsers { .. }
                | Self::OrgUser { .. }
                | Self::OrgUserRole { .. }
                | Self::GroupUsers { .. }
                | Self::GroupUser { .. }
                | Self::GroupUserRole { .. }
        )
    }

    pub fn is_service_account(&self) -> bool {
        matches!(
            self,
            Self::ServiceAccounts { .. }
                | Self::ServiceAccount { .. }
                | Self::SaAccessList { .. }
                | Self::SaAccessEntry { .. }
                | Self::SaSecrets { .. }
                | Self::SaSecret { .. }
                | Self::SaGroups { .. }
                | Self::SaInvite { .. }
        )
    }

    /// The resource version a v2 client must ask for (for a retired resource, the one it had).
    pub fn v2_version(&self) -> &'static str {
        match self {
            Self::Retired { version, .. } => version,
            r if r.is_service_account() => "2024-08-05",
            r if r.is_user() => USERS_VERSION,
            _ => "2023-01-01",
        }
    }

    /// Versions past their sunset date: 410 `VERSION_GONE`. The user resources' 2023-01-01
    /// versions (listing users, removing one) are sunset as of 2027-07-01; the simulator
    /// answers as Atlas does after that date, whatever the method.
    pub fn sunset_versions(&self) -> &'static [&'static str] {
        match self {
            Self::OrgUsers { .. }
            | Self::OrgUser { .. }
            | Self::GroupUsers { .. }
            | Self::GroupUser { .. } => USERS_SUNSET,
            _ => &[],
        }
    }

    pub fn is_retired(&self) -> bool {
        matches!(self, Self::Retired { .. })
    }

    pub fn exists_in(&self, version: ApiVersion) -> bool {
        version == ApiVersion::V2
            || !(self.is_service_account()
                || self.is_user()
                || self.is_retired()
                || *self == Self::Groups)
    }
}

/// `{clientId}:invite` (the colon possibly percent-encoded) -> the client id.
fn invite_target(seg: &str) -> Option<&str> {
    [":invite", "%3Ainvite", "%3ainvite"]
        .iter()
        .find_map(|suffix| seg.strip_suffix(suffix))
        .filter(|client| !client.is_empty())
}

/// `{userId}:addRole` / `{userId}:removeRole` (the colon possibly percent-encoded).
fn role_action(seg: &str) -> Option<(&str, RoleAction)> {
    [
        (":addRole", RoleAction::Add),
        ("%3AaddRole", RoleAction::Add),
        ("%3aaddRole", RoleAction::Add),
        (":removeRole", RoleAction::Remove),
        ("%3AremoveRole", RoleAction::Remove),
        ("%3aremoveRole", RoleAction::Remove),
    ]
    .iter()
    .find_map(|(suffix, action)| seg.strip_suffix(suffix).map(|user| (user, *action)))
    .filter(|(user, _)| !user.is_empty())
}

const fn retired(template: &'static str, version: &'static str) -> Resource<'static> {
    Resource::Retired { template, version }
}

/// Splits `/api/atlas/<version>/...` into version and resource. None: not an Atlas API path
/// (or an unknown resource).
pub fn route(path: &str) -> Option<(ApiVersion, Resource<'_>)> {
    let (version, rest) = if let Some(rest) = path.strip_prefix("/api/atlas/v2/") {
        (ApiVersion::V2, rest)
    } else if let Some(rest) = path.strip_prefix("/api/atlas/v1.0/") {
        (ApiVersion::V1, rest)
    } else {
        return None;
    };
    let mut segs = [""; 6];
    let mut n = 0;
    for seg in rest.split('/') {
        if n == segs.len() {
            return None;
        }
        segs[n] = seg;
        n += 1;
    }
    if segs[..n].iter().any(|s| s.is_empty()) {
        return None;
    }
    let r = match (n, segs) {
        (1, ["orgs", ..]) => Resource::Orgs,
        (2, ["orgs", org, ..]) => Resource::Org { org },
        (3, ["orgs", org, "apiKeys", ..]) => Resource::OrgKeys { org },
        (4, ["orgs", org, "apiKeys", key, ..]) => Resource::OrgKey { org, key },
        (5, ["orgs", org, "apiKeys", key, "accessList", ..]) => Resource::AccessList { org, key },
        (6, ["orgs", org, "apiKeys", key, "accessList", entry]) => {
            Resource::AccessEntry { org, key, entry }
        }
        (3, ["orgs", org, "serviceAccounts", ..]) => Resource::ServiceAccounts {
            scope: SaScope::Org(org),
        },
        (4, ["orgs", org, "serviceAccounts", client, ..]) => Resource::ServiceAccount {
            scope: SaScope::Org(org),
            client,
        },
        (5, ["orgs", org, "serviceAccounts", client, "groups", ..]) => {
            Resource::SaGroups { org, client }
        }
        (3, ["groups", group, "serviceAccounts", ..]) => Resource::ServiceAccounts {
            scope: SaScope::Group(group),
        },
        (4, ["groups", group, "serviceAccounts", seg, ..]) => match invite_target(seg) {
            Some(client) => Resource::SaInvite { group, client },
            None => Resource::ServiceAccount {
                scope: SaScope::Group(group),
                client: seg,
            },
        },
        (5, [kind @ ("orgs" | "groups"), id, "serviceAccounts", client, sub, ..]) => {
            let scope = if kind == "orgs" {
                SaScope::Org(id)
            } else {
                SaScope::Group(id)
            };
            match sub {
                "accessList" => Resource::SaAccessList { scope, client },
                "secrets" => Resource::SaSecrets { scope, client },
                _ => return None,
            }
        }
        (6, [kind @ ("orgs" | "groups"), id, "serviceAccounts", client, sub, last]) => {
            let scope = if kind == "orgs" {
                SaScope::Org(id)
            } else {
                SaScope::Group(id)
            };
            match sub {
                "accessList" => Resource::SaAccessEntry {
                    scope,
                    client,
                    entry: last,
                },
                "secrets" => Resource::SaSecret {
                    scope,
                    client,
                    secret: last,
                },
                _ => return None,
            }
        }
        (1, ["groups", ..]) => Resource::Groups,
        (3, ["orgs", org, "users", ..]) => Resource::OrgUsers { org },
        (4, ["orgs", org, "users", seg, ..]) => match role_action(seg) {
            Some((user, action)) => Resource::OrgUserRole { org, user, action },
            None => Resource::OrgUser { org, user: seg },
        },
        (3, ["groups", group, "users", ..]) => Resource::GroupUsers { group },
        (4, ["groups", group, "users", seg, ..]) => match role_action(seg) {
            Some((user, action)) => Resource::GroupUserRole {
                group,
                user,
                action,
            },
            None => Resource::GroupUser { group, user: seg },
        },
        // Deprecated user and invitation resources, past their sunset (2027-07-01).
        (5, ["groups", _, "users", _, "roles", ..]) => {
            retired("/groups/{groupId}/users/{userId}/roles", "2023-01-01")
        }
        (5, ["orgs", _, "users", _, "roles", ..]) => {
            retired("/orgs/{orgId}/users/{userId}/roles", "2023-01-01")
        }
        (3, ["groups", _, "access", ..]) => retired("/groups/{groupId}/access", "2023-02-01"),
        (3, ["groups", _, "invites", ..]) => retired("/groups/{groupId}/invites", "2023-01-01"),
        (4, ["groups", _, "invites", ..]) => {
            retired("/groups/{groupId}/invites/{invitationId}", "2023-01-01")
        }
        (3, ["orgs", _, "invites", ..]) => retired("/orgs/{orgId}/invites", "2023-01-01"),
        (4, ["orgs", _, "invites", ..]) => {
            retired("/orgs/{orgId}/invites/{invitationId}", "2023-01-01")
        }
        (1, ["users", ..]) => retired("/users", "2023-01-01"),
        (2, ["users", ..]) => retired("/users/{userId}", "2023-01-01"),
        (3, ["users", "byName", ..]) => retired("/users/byName/{userName}", "2023-01-01"),
        (2, ["groups", group, ..]) => Resource::Group { group },
        (3, ["groups", group, "apiKeys", ..]) => Resource::GroupKeys { group },
        (4, ["groups", group, "apiKeys", key, ..]) => Resource::GroupKey { group, key },
        _ => return None,
    };
    r.exists_in(version).then_some((version, r))
}

/// Checks a v2 `Accept` header against the resource's version.
/// Missing or other version: 406; malformed date: 400 `INVALID_VERSION_DATE`; a version past
/// its sunset (one of `sunset`, or the only version of a `retired` resource): 410 `VERSION_GONE`.
pub fn negotiate_v2(
    accept: Option<&str>,
    required: &'static str,
    sunset: &[&str],
    retired: bool,
    path: &str,
) -> Result<(), ApiError> {
    let requested = accept.and_then(|accept| {
        accept.split(',').find_map(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            media
                .strip_prefix("application/vnd.atlas.")
                .and_then(|v| v.strip_suffix("+json"))
        })
    });
    let resource = path.trim_start_matches('/');
    let Some(requested) = requested else {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            format!(
                "No version specified for {resource}. Send Accept: application/vnd.atlas.{required}+json."
            ),
        )
        .with_params([resource.to_owned()]));
    };
    if !is_date(requested) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_VERSION_DATE",
            format!("Invalid version date {requested}."),
        )
        .with_params([requested]));
    }
    if (retired && requested == required) || sunset.contains(&requested) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "VERSION_GONE",
            format!(
                "Version {requested} of {resource} is past its sunset date and no longer available."
            ),
        )
        .with_params([requested, resource]));
    }
    if retired || requested != required {
        let available = if retired { "none" } else { required };
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            format!("Version {requested} of {resource} is not available. Available versions: {available}."),
        )
        .with_params([requested, resource]));
    }
    Ok(())
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_atlas_paths() {
        let (v, r) = route("/api/atlas/v2/orgs/o/apiKeys/k/accessList/10.0.0.0%2F24").unwrap();
        assert_eq!(v, ApiVersion::V2);
        assert_eq!(
            r,
            Resource::AccessEntry {
                org: "o",
                key: "k",
                entry: "10.0.0.0%2F24"
            }
        );
        assert_eq!(
            route("/api/atlas/v1.0/groups/g/apiKeys").unwrap(),
            (ApiVersion::V1, Resource::GroupKeys { group: "g" })
        );
        assert_eq!(
            route("/api/atlas/v2/orgs/o/serviceAccounts").unwrap().1,
            Resource::ServiceAccounts {
                scope: SaScope::Org("o")
            }
        );
        assert_eq!(
            route("/api/atlas/v2/groups/g/serviceAccounts/mdb_sa_id_1:invite")
                .unwrap()
                .1,
            Resource::SaInvite {
                group: "g",
                client: "mdb_sa_id_1"
            }
        );
        assert_eq!(
            route("/api/atlas/v2/groups/g/serviceAccounts/c%3Ainvite")
                .unwrap()
                .1
                .template(),
            "/groups/{groupId}/serviceAccounts/{clientId}:invite"
        );
        assert_eq!(
            route("/api/atlas/v2/groups/g/serviceAccounts/c/accessList/10.0.0.0%2F8")
                .unwrap()
                .1,
            Resource::SaAccessEntry {
                scope: SaScope::Group("g"),
                client: "c",
                entry: "10.0.0.0%2F8"
            }
        );
        assert_eq!(
            route("/api/atlas/v2/orgs/o/serviceAccounts/c/secrets/s")
                .unwrap()
                .1
                .template(),
            "/orgs/{orgId}/serviceAccounts/{clientId}/secrets/{secretId}"
        );
        assert_eq!(
            route("/api/atlas/v2/orgs/o/serviceAccounts/c/groups")
                .unwrap()
                .1
                .v2_version(),
            "2024-08-05"
        );
        assert!(route("/api/atlas/v2/groups/g/serviceAccounts/c/groups").is_none());
        assert!(route("/api/atlas/v2/orgs/o/serviceAccounts/c/bogus").is_none());
        assert!(route("/api/atlas/v1.0/groups/g/serviceAccounts").is_none());
        assert!(route("/api/atlas/v1.0/orgs/o/serviceAccounts").is_none());
        assert!(route("/api/atlas/v2/orgs/o/apiKeys/").is_none());
        assert!(route("/api/atlas/v2/orgs/o/apiKeys/k/accessList/10.0.0.0/24").is_none());
        assert!(route("/api/atlas/v2/clusters").is_none());
        assert!(route("/admin/stats").is_none());
    }

    #[test]
    fn negotiates_versions() {
        let ok = "application/vnd.atlas.2023-01-01+json";
        assert!(negotiate_v2(Some(ok), "2023-01-01", &[], false, "/x").is_ok());
        assert!(negotiate_v2(
            Some("application/vnd.atlas.2023-01-01+json;charset=utf-8, */*"),
            "2023-01-01",
            &[],
            false,
            "/x"
        )
        .is_ok());
        assert_eq!(
            negotiate_v2(None, "2023-01-01", &[], false, "/x")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            negotiate_v2(Some("application/json"), "2023-01-01", &[], false, "/x")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            negotiate_v2(Some(ok), "2024-08-05", &[], false, "/x")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        let bad = negotiate_v2(
            Some("application/vnd.atlas.2023-13-01+json"),
            "2023-01-01",
            &[],
            false,
            "/x",
        )
        .unwrap_err();
        assert_eq!(
            (bad.status, bad.code.as_ref()),
            (StatusCode::BAD_REQUEST, "INVALID_VERSION_DATE")
        );
        let gone = negotiate_v2(Some(ok), "2025-02-19", &["2023-01-01"], false, "/x").unwrap_err();
        assert_eq!(
            (gone.status, gone.code.as_ref()),
            (StatusCode::GONE, "VERSION_GONE")
        );
        let retired = negotiate_v2(Some(ok), "2023-01-01", &[], true, "/x").unwrap_err();
        assert_eq!(retired.status, StatusCode::GONE);
        let other = negotiate_v2(
            Some("application/vnd.atlas.2025-02-19+json"),
            "2023-01-01",
            &[],
            true,
            "/x",
        )
        .unwrap_err();
        assert_eq!(other.status, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn routes_user_resources() {
        let g = "/api/atlas/v2/groups/g/users";
        assert_eq!(route(g).unwrap().1, Resource::GroupUsers { group: "g" });
        assert_eq!(
            route(&format!("{g}/u")).unwrap().1,
            Resource::GroupUser {
                group: "g",
                user: "u"
            }
        );
        assert_eq!(
            route(&format!("{g}/u:addRole")).unwrap().1,
            Resource::GroupUserRole {
                group: "g",
                user: "u",
                action: RoleAction::Add
            }
        );
        assert_eq!(
            route("/api/atlas/v2/orgs/o/users/u%3AremoveRole")
                .unwrap()
                .1
                .template(),
            "/orgs/{orgId}/users/{userId}:removeRole"
        );
        assert_eq!(
            route("/api/atlas/v2/orgs/o/users/u")
                .unwrap()
                .1
                .v2_version(),
            "2025-02-19"
        );
        assert_eq!(route("/api/atlas/v2/groups").unwrap().1, Resource::Groups);
        for (path, template) in [
            (
                "/api/atlas/v2/groups/g/users/u/roles",
                "/groups/{groupId}/users/{userId}/roles",
            ),
            (
                "/api/atlas/v2/orgs/o/users/u/roles",
                "/orgs/{orgId}/users/{userId}/roles",
            ),
            ("/api/atlas/v2/groups/g/access", "/groups/{groupId}/access"),
            (
                "/api/atlas/v2/users/byName/a@b.co",
                "/users/byName/{userName}",
            ),
            (
                "/api/atlas/v2/orgs/o/invites/i",
                "/orgs/{orgId}/invites/{invitationId}",
            ),
        ] {
            let (_, r) = route(path).unwrap();
            assert!(r.is_retired(), "{path}");
            assert_eq!(r.template(), template);
        }
        assert!(route("/api/atlas/v1.0/groups/g/users").is_none());
        assert!(route("/api/atlas/v1.0/groups").is_none());
        assert!(
            route("/api/atlas/v2/groups/g/users/:addRole").unwrap().1
                == Resource::GroupUser {
                    group: "g",
                    user: ":addRole"
                }
        );
    }
}
