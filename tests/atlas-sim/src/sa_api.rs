//! Service-account endpoints (resource version 2024-08-05), under an organization
//! (`/orgs/{orgId}/serviceAccounts...`) or a project (`/groups/{groupId}/serviceAccounts...`).
//!
//! An organization service account holds organization roles and, once invited to projects,
//! project roles. A project service account is an organization service account with the
//! `ORG_MEMBER` role and roles in that project. Org-scoped views show the organization roles;
//! project-scoped views show the roles in that project. Deleting through an organization
//! removes the account everywhere (and revokes its tokens); deleting through a project only
//! removes it from that project.
//!
//! Checks run in the order of the API-key endpoints: path ids (400), organization or project
//! (404), caller (401/403), role (401), service account (404), body (400).

use std::net::IpAddr;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::atlas_api::{
    access_entries, authorize, caller, check_object_id, object, only, page, paging,
    parse_entry_segment, parse_json, role_names, ApiCall, ApiReply, Need, RoleScope,
};
use super::error::ApiError;
use super::ids;
use super::router::{Resource, SaScope};
use super::store::{
    format_time, AccessEntry, NewServiceAccount, ServiceAccount, ServiceAccountSecret,
    ServiceAccountUpdate, Store,
};

const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 250;
/// Bounds of `secretExpiresAfterHours` (Atlas's default organization setting).
pub const SECRET_HOURS: std::ops::RangeInclusive<u64> = 8..=8760;

// ---- views (fields in alphabetical order, as Atlas renders them) ----------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretView<'a> {
    created_at: String,
    expires_at: String,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    masked_secret_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceAccountView<'a> {
    client_id: &'a str,
    created_at: String,
    description: &'a str,
    name: &'a str,
    roles: &'a [String],
    secrets: Vec<SecretView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryView {
    cidr_block: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    request_count: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupView<'a> {
    group_id: &'a str,
    roles: &'a [String],
}

/// The plaintext secret is shown only in the answer that creates it.
fn secret_view(s: &ServiceAccountSecret, reveal: bool) -> SecretView<'_> {
    SecretView {
        created_at: format_time(s.created_at),
        expires_at: format_time(s.expires_at),
        id: &s.id,
        last_used_at: s.last_used_at.map(format_time),
        masked_secret_value: (!reveal).then(|| ids::mask_secret(&s.secret)),
        secret: reveal.then_some(s.secret.as_str()),
    }
}

fn view<'a>(sa: &'a ServiceAccount, scope: SaScope<'_>, reveal: bool) -> ServiceAccountView<'a> {
    ServiceAccountView {
        client_id: &sa.client_id,
        created_at: format_time(sa.created_at),
        description: &sa.description,
        name: &sa.name,
        roles: match scope {
            SaScope::Org(_) => &sa.roles,
            SaScope::Group(group) => sa.group_roles(group),
        },
        secrets: sa.secrets.iter().map(|s| secret_view(s, reveal)).collect(),
    }
}

fn entry_view(e: &AccessEntry) -> EntryView {
    EntryView {
        cidr_block: e.cidr_block(),
        created_at: format_time(e.created),
        ip_address: e.ip_address(),
        last_used_address: e.last_used_address.map(|ip| ip.to_string()),
        last_used_at: e.last_used_at.map(format_time),
        request_count: e.request_count,
    }
}

// ---- validation -----------------------------------------------------------------------------

/// Atlas's pattern for names and descriptions: letters, digits, space and `-_.,'`.
fn allowed_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ',' | '\'' | ' '))
}

/// A required (or, with `required = false`, optional/nullable) name or description.
fn text_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max && allowed_text(s) => {
            Ok(Some(s.clone()))
        }
        _ => Err(ApiError::invalid_attribute(field)),
    }
}

/// `secretExpiresAfterHours`: required, an integer within [`SECRET_HOURS`].
fn secret_hours(obj: &serde_json::Map<String, Value>) -> Result<u32, ApiError> {
    const FIELD: &str = "secretExpiresAfterHours";
    obj.get(FIELD)
        .and_then(Value::as_u64)
        .filter(|h| SECRET_HOURS.contains(h))
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ATTRIBUTE",
                format!(
                    "Invalid attribute {FIELD} specified: it must be an integer from {} to {} hours.",
                    SECRET_HOURS.start(),
                    SECRET_HOURS.end()
                ),
            )
            .with_params([FIELD])
        })
}

/// Role names for a service account: at least one, valid for the scope. A missing or empty
/// list is `INVALID_ATTRIBUTE` (API keys use `MISSING_API_KEY_ROLES`).
fn sa_roles(value: Option<&Value>, scope: SaScope<'_>) -> Result<Vec<String>, ApiError> {
    let role_scope = match scope {
        SaScope::Org(_) => RoleScope::Org,
        SaScope::Group(_) => RoleScope::Group,
    };
    role_names(value, role_scope).map_err(|e| {
        if e.code == "MISSING_API_KEY_ROLES" {
            ApiError::invalid_attribute("roles")
        } else {
            e
        }
    })
}

fn check_client_id(client: &str) -> Result<(), ApiError> {
    if ids::is_service_account_client_id(client) {
        Ok(())
    } else {
        Err(ApiError::path_param("clientId", client))
    }
}

// ---- scopes and permissions -----------------------------------------------------------------

/// Validates the scope's id and returns the organization it belongs to (404 if unknown).
fn scope_org(store: &Store, scope: SaScope<'_>) -> Result<String, ApiError> {
    match scope {
        SaScope::Org(org) => {
            check_object_id("orgId", org)?;
            Ok(store.org(org)?.id.clone())
        }
        SaScope::Group(group) => {
            check_object_id("groupId", group)?;
            Ok(store.project(group)?.org_id.clone())
        }
    }
}

/// Org reads need an org role; project reads a role in the project (or org owner/read-only).
fn read_need<'a>(scope: SaScope<'a>, org: &'a str) -> Need<'a> {
    match scope {
        SaScope::Org(org) => Need::OrgRead(org),
        SaScope::Group(group) => Need::GroupRead { group, org },
    }
}

/// Org writes need `ORG_OWNER`; project writes `ORG_OWNER` or `GROUP_OWNER` in the project.
fn write_need<'a>(scope: SaScope<'a>, org: &'a str) -> Need<'a> {
    match scope {
        SaScope::Org(org) => Need::OrgOwner(org),
        SaScope::Group(group) => Need::GroupWrite { group, org },
    }
}

fn find<'s>(
    store: &'s Store,
    scope: SaScope<'_>,
    client: &str,
) -> Result<&'s ServiceAccount, ApiError> {
    match scope {
        SaScope::Org(org) => store.service_account(org, client),
        SaScope::Group(group) => store.group_service_account(group, client),
    }
}

fn group_of(scope: SaScope<'_>) -> Option<&str> {
    match scope {
        SaScope::Org(_) => None,
        SaScope::Group(group) => Some(group),
    }
}

// ---- dispatch -------------------------------------------------------------------------------

/// Handles one service-account call (the store is locked by the caller).
pub fn handle(store: &mut Store, call: &ApiCall<'_>) -> Result<ApiReply, ApiError> {
    match *call.resource {
        Resource::ServiceAccounts { scope } => collection(store, call, scope),
        Resource::ServiceAccount { scope, client } => one(store, call, scope, client),
        Resource::SaSecrets { scope, client } => secrets(store, call, scope, client),
        Resource::SaSecret {
            scope,
            client,
            secret,
        } => one_secret(store, call, scope, client, secret),
        Resource::SaAccessList { scope, client } => access_list(store, call, scope, client),
        Resource::SaAccessEntry {
            scope,
            client,
            entry,
        } => access_entry(store, call, scope, client, entry),
        Resource::SaGroups { org, client } => groups(store, call, org, client),
        Resource::SaInvite { group, client } => invite(store, call, group, client),
        _ => Err(ApiError::resource_not_found(call.path)),
    }
}

/// `GET|POST .../serviceAccounts`.
fn collection(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
) -> Result<ApiReply, ApiError> {
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        authorize(me, read_need(scope, &org))?;
        let p = paging(call.query)?;
        let list = match scope {
            SaScope::Org(org) => store.org_service_accounts(org),
            SaScope::Group(group) => store.project_service_accounts(group),
        };
        Ok(ApiReply::json(
            StatusCode::OK,
            &page(call, list, &p, |sa| view(sa, scope, false)),
        ))
    } else if *m == Method::POST {
        authorize(me, write_need(scope, &org))?;
        let body = parse_json(call.body)?;
        let obj = object(&body)?;
        let name = text_field(obj, "name", MAX_NAME, true)?.unwrap_or_default();
        let description =
            text_field(obj, "description", MAX_DESCRIPTION, true)?.unwrap_or_default();
        let roles = sa_roles(obj.get("roles"), scope)?;
        let secret_hours = secret_hours(obj)?;
        let mut new = NewServiceAccount {
            name,
            description,
            secret_hours,
            ..NewServiceAccount::default()
        };
        match scope {
            SaScope::Org(_) => new.org_roles = roles,
            SaScope::Group(group) => {
                new.org_roles = vec!["ORG_MEMBER".to_owned()];
                new.project_roles.insert(group.to_owned(), roles);
            }
        }
        let sa = store.create_service_account(&org, new)?;
        Ok(ApiReply::json(StatusCode::CREATED, &view(&sa, scope, true)))
    } else {
        Err(ApiError::method_not_allowed(m.as_str()))
    }
}

/// `GET|PATCH|DELETE .../serviceAccounts/{clientId}`.
fn one(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
    client: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        authorize(me, read_need(scope, &org))?;
        let sa = find(store, scope, client)?;
        Ok(ApiReply::json(StatusCode::OK, &view(sa, scope, false)))
    } else if *m == Method::PATCH {
        authorize(me, write_need(scope, &org))?;
        find(store, scope, client)?;
        let body = parse_json(call.body)?;
        let obj = object(&body)?;
        let update = ServiceAccountUpdate {
            name: text_field(obj, "name", MAX_NAME, false)?,
            description: text_field(obj, "description", MAX_DESCRIPTION, false)?,
            roles: match obj.get("roles") {
                None | Some(Value::Null) => None,
                v => Some(sa_roles(v, scope)?),
            },
        };
        let sa = store.update_service_account(client, group_of(scope), update)?;
        Ok(ApiReply::json(StatusCode::OK, &view(&sa, scope, false)))
    } else if *m == Method::DELETE {
        authorize(me, write_need(scope, &org))?;
        match scope {
            SaScope::Org(org) => {
                store.delete_service_account(org, client)?;
            }
            SaScope::Group(group) => store.unassign_service_account(group, client)?,
        }
        Ok(ApiReply::no_content())
    } else {
        Err(ApiError::method_not_allowed(m.as_str()))
    }
}

/// `POST .../serviceAccounts/{clientId}/secrets`.
fn secrets(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
    client: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::POST])?;
    authorize(me, write_need(scope, &org))?;
    find(store, scope, client)?;
    let body = parse_json(call.body)?;
    let hours = secret_hours(object(&body)?)?;
    let secret = store.add_service_account_secret(client, hours)?;
    Ok(ApiReply::json(
        StatusCode::CREATED,
        &secret_view(&secret, true),
    ))
}

/// `DELETE .../serviceAccounts/{clientId}/secrets/{secretId}`.
fn one_secret(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
    client: &str,
    secret: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    check_object_id("secretId", secret)?;
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::DELETE])?;
    authorize(me, write_need(scope, &org))?;
    find(store, scope, client)?;
    store.delete_service_account_secret(client, secret)?;
    Ok(ApiReply::no_content())
}

/// `GET|POST .../serviceAccounts/{clientId}/accessList`: both answer the whole list.
fn access_list(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
    client: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        authorize(me, read_need(scope, &org))?;
        find(store, scope, client)?;
    } else if *m == Method::POST {
        authorize(me, write_need(scope, &org))?;
        find(store, scope, client)?;
        let nets = access_entries(call.body)?;
        store.add_service_account_access_entries(client, &nets)?;
    } else {
        return Err(ApiError::method_not_allowed(m.as_str()));
    }
    let p = paging(call.query)?;
    let sa = find(store, scope, client)?;
    let entries: Vec<&AccessEntry> = sa.access_list.iter().collect();
    Ok(ApiReply::json(
        StatusCode::OK,
        &page(call, entries, &p, entry_view),
    ))
}

/// `DELETE .../serviceAccounts/{clientId}/accessList/{ip or URL-encoded CIDR}`. A service
/// account cannot remove the entry that admits its own request.
fn access_entry(
    store: &mut Store,
    call: &ApiCall<'_>,
    scope: SaScope<'_>,
    client: &str,
    entry: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::DELETE])?;
    authorize(me, write_need(scope, &org))?;
    let net = parse_entry_segment(entry)?;
    find(store, scope, client)?;
    if me.client_id() == Some(client) && net.contains(&call.peer_ip) {
        return Err(cannot_remove_caller(call.peer_ip));
    }
    store.delete_service_account_access_entry(client, &net)?;
    Ok(ApiReply::no_content())
}

fn cannot_remove_caller(ip: IpAddr) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST",
        format!("Cannot remove the access list entry that admits the requesting address {ip}."),
    )
    .with_params([ip.to_string()])
}

/// `GET /orgs/{orgId}/serviceAccounts/{clientId}/groups`: the projects it has roles in.
fn groups(
    store: &mut Store,
    call: &ApiCall<'_>,
    org: &str,
    client: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let scope = SaScope::Org(org);
    let org_id = scope_org(store, scope)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::GET])?;
    authorize(me, read_need(scope, &org_id))?;
    let p = paging(call.query)?;
    let sa = store.service_account(org, client)?;
    let groups: Vec<(&String, &Vec<String>)> = sa.project_roles.iter().collect();
    Ok(ApiReply::json(
        StatusCode::OK,
        &page(call, groups, &p, |(group, roles)| GroupView {
            group_id: group,
            roles,
        }),
    ))
}

/// `POST /groups/{groupId}/serviceAccounts/{clientId}:invite` `{"roles":[..]}`: gives an
/// organization service account exactly these roles in the project (200).
fn invite(
    store: &mut Store,
    call: &ApiCall<'_>,
    group: &str,
    client: &str,
) -> Result<ApiReply, ApiError> {
    check_client_id(client)?;
    let scope = SaScope::Group(group);
    let org = scope_org(store, scope)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::POST])?;
    authorize(me, Need::OrgOwner(&org))?;
    store.service_account(&org, client)?;
    let body = parse_json(call.body)?;
    let roles = sa_roles(object(&body)?.get("roles"), scope)?;
    let sa = store.assign_service_account(group, client, roles)?;
    Ok(ApiReply::json(StatusCode::OK, &view(&sa, scope, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_atlas_pattern() {
        let ok = serde_json::json!({"name": "vault-role_1.x, it's"});
        assert!(text_field(ok.as_object().unwrap(), "name", MAX_NAME, true).is_ok());
        for bad in [
            serde_json::json!({"name": "a:b"}),
            serde_json::json!({"name": ""}),
            serde_json::json!({"name": "x".repeat(65)}),
            serde_json::json!({"name": 3}),
            serde_json::json!({}),
        ] {
            assert_eq!(
                text_field(bad.as_object().unwrap(), "name", MAX_NAME, true)
                    .unwrap_err()
                    .code,
                "INVALID_ATTRIBUTE",
                "{bad}"
            );
        }
        let null = serde_json::json!({"name": null});
        assert_eq!(
            text_field(null.as_object().unwrap(), "name", MAX_NAME, false).unwrap(),
            None
        );
    }

    #[test]
    fn secret_hours_are_bounded() {
        for (hours, ok) in [
            (serde_json::json!(7), false),
            (serde_json::json!(8), true),
            (serde_json::json!(8760), true),
            (serde_json::json!(8761), false),
            (serde_json::json!(-1), false),
            (serde_json::json!(12.5), false),
            (serde_json::json!("24"), false),
        ] {
            let body = serde_json::json!({ "secretExpiresAfterHours": hours });
            assert_eq!(
                secret_hours(body.as_object().unwrap()).is_ok(),
                ok,
                "{hours}"
            );
        }
    }

    #[test]
    fn roles_per_scope() {
        let org = SaScope::Org("o");
        let group = SaScope::Group("g");
        assert_eq!(
            sa_roles(Some(&serde_json::json!([])), org)
                .unwrap_err()
                .code,
            "INVALID_ATTRIBUTE"
        );
        assert_eq!(
            sa_roles(Some(&serde_json::json!(["GROUP_OWNER"])), org)
                .unwrap_err()
                .code,
            "INVALID_ROLE_FOR_ORG"
        );
        assert_eq!(
            sa_roles(Some(&serde_json::json!(["ORG_OWNER"])), group)
                .unwrap_err()
                .code,
            "INVALID_ROLE_FOR_GROUP"
        );
        assert!(sa_roles(Some(&serde_json::json!(["GROUP_READ_ONLY"])), group).is_ok());
    }
}
