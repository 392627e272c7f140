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
}

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
        }
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

    /// The resource version a v2 client must ask for.
    pub fn v2_version(&self) -> &'static str {
        if self.is_service_account() {
            "2024-08-05"
        } else {
            "2023-01-01"
        }
    }

    pub fn exists_in(&self, version: ApiVersion) -> bool {
        !(version == ApiVersion::V1 && self.is_service_account())
    }
}

/// `{clientId}:invite` (the colon possibly percent-encoded) -> the client id.
fn invite_target(seg: &str) -> Option<&str> {
    [":invite", "%3Ainvite", "%3ainvite"]
        .iter()
        .find_map(|suffix| seg.strip_suffix(suffix))
        .filter(|client| !client.is_empty())
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
        (2, ["groups", group, ..]) => Resource::Group { group },
        (3, ["groups", group, "apiKeys", ..]) => Resource::GroupKeys { group },
        (4, ["groups", group, "apiKeys", key, ..]) => Resource::GroupKey { group, key },
        _ => return None,
    };
    r.exists_in(version).then_some((version, r))
}

/// Checks a v2 `Accept` header against the resource version.
/// Missing or other version: 406; malformed date: 400 `INVALID_VERSION_DATE`.
pub fn negotiate_v2(
    accept: Option<&str>,
    required: &'static str,
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
    if requested != required {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            format!("Version {requested} of {resource} is not available. Available versions: {required}."),
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
        assert!(negotiate_v2(Some(ok), "2023-01-01", "/x").is_ok());
        assert!(negotiate_v2(
            Some("application/vnd.atlas.2023-01-01+json;charset=utf-8, */*"),
            "2023-01-01",
            "/x"
        )
        .is_ok());
        assert_eq!(
            negotiate_v2(None, "2023-01-01", "/x").unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            negotiate_v2(Some("application/json"), "2023-01-01", "/x")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            negotiate_v2(Some(ok), "2024-08-05", "/x")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        let bad = negotiate_v2(
            Some("application/vnd.atlas.2023-13-01+json"),
            "2023-01-01",
            "/x",
        )
        .unwrap_err();
        assert_eq!(
            (bad.status, bad.code.as_ref()),
            (StatusCode::BAD_REQUEST, "INVALID_VERSION_DATE")
        );
    }
}
