//! MongoDB Cloud user endpoints (resource version 2025-02-19) and project creation
//! (`/groups`, version 2023-01-01).
//!
//! - `GET /orgs/{orgId}/users` (filters `username`, `orgMembershipStatuses`, the deprecated
//!   `orgMembershipStatus`; `ACTIVE` and `PENDING` by default), `GET /orgs/{orgId}/users/{userId}`,
//!   `POST /orgs/{orgId}/users/{userId}:addRole|:removeRole` `{"orgRole"}` (200, the user).
//! - `GET /groups/{groupId}/users` (filter `username`, statuses as above),
//!   `POST /groups/{groupId}/users` `{"username","roles"}` (201): an organization member (active
//!   or invited) gets the roles; anyone else is invited to the organization, as the spec says
//!   Atlas does (a `PENDING` user with `ORG_MEMBER`), so a caller that must only grant access
//!   to existing members checks the organization user first.
//!   `GET|DELETE /groups/{groupId}/users/{userId}` (200 / 204),
//!   `POST /groups/{groupId}/users/{userId}:addRole|:removeRole` `{"groupRole"}` (200, the user).
//! - `GET /groups` (the caller's visible projects), `POST /groups` `{"name","orgId"}`: **201**
//!   as real Atlas answers (recorded; the spec says 200), 409 `GROUP_ALREADY_EXISTS` for a name
//!   taken in the organization; `projectOwnerId`, else the oldest active `ORG_OWNER` user,
//!   becomes `GROUP_OWNER` of the new project (the spec's default).
//!
//! Checks run in the order of the other endpoints: path ids (400), organization or project
//! (404), caller (401/403), role (401), user (404), body (400), state (409). Error codes
//! for users are documented in [`super::org_users`].

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::atlas_api::{
    authorize, caller, check_object_id, object, only, page, paging, parse_json, role_names,
    ApiCall, ApiReply, Link, Need, RoleScope,
};
use super::error::ApiError;
use super::ids;
use super::org_users::{
    format_opt, is_email, user_not_found, CloudUser, MembershipStatus, OrgMembership, RoleChange,
};
use super::router::{Resource, RoleAction};
use super::store::{format_time, Project, Store};

/// Longest project name (`Group.name`: `^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`).
const MAX_GROUP_NAME: usize = 64;

// ---- views (fields in alphabetical order, as Atlas renders them) ----------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupRoleAssignmentView<'a> {
    group_id: &'a str,
    group_roles: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgRolesView<'a> {
    group_role_assignments: Vec<GroupRoleAssignmentView<'a>>,
    org_roles: &'a [String],
}

/// What active and pending users share; the other fields depend on the status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Person<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    invitation_created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invitation_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inviter_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    org_membership_status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgUserView<'a> {
    #[serde(flatten)]
    person: Person<'a>,
    roles: OrgRolesView<'a>,
    team_ids: [&'a str; 0],
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupUserView<'a> {
    #[serde(flatten)]
    person: Person<'a>,
    roles: &'a [String],
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProjectView<'a> {
    cluster_count: u32,
    created: String,
    id: &'a str,
    links: [Link; 1],
    name: &'a str,
    org_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    with_default_alerts_settings: Option<bool>,
}

/// Active users show their profile; invited ones the invitation.
fn person<'a>(user: &'a CloudUser, m: &'a OrgMembership) -> Person<'a> {
    let active = m.status == MembershipStatus::Active;
    Person {
        created_at: active.then(|| format_time(user.created_at)),
        first_name: active.then_some(user.first_name.as_str()),
        id: &user.id,
        invitation_created_at: if active {
            None
        } else {
            format_opt(m.invitation_created_at)
        },
        invitation_expires_at: if active {
            None
        } else {
            format_opt(m.invitation_expires_at)
        },
        inviter_username: if active {
            None
        } else {
            m.inviter_username.as_deref()
        },
        last_name: active.then_some(user.last_name.as_str()),
        org_membership_status: m.status.as_str(),
    }
}

fn org_user_view<'a>(user: &'a CloudUser, m: &'a OrgMembership) -> OrgUserView<'a> {
    OrgUserView {
        person: person(user, m),
        roles: OrgRolesView {
            group_role_assignments: m
                .project_roles
                .iter()
                .map(|(group_id, group_roles)| GroupRoleAssignmentView {
                    group_id,
                    group_roles,
                })
                .collect(),
            org_roles: &m.org_roles,
        },
        team_ids: [],
        username: &user.username,
    }
}

fn group_user_view<'a>(
    user: &'a CloudUser,
    m: &'a OrgMembership,
    group: &str,
) -> GroupUserView<'a> {
    GroupUserView {
        person: person(user, m),
        roles: m
            .project_roles
            .get(group)
            .map(Vec::as_slice)
            .unwrap_or_default(),
        username: &user.username,
    }
}

fn project_view<'a>(call: &ApiCall<'_>, p: &'a Project, created: bool) -> ProjectView<'a> {
    ProjectView {
        cluster_count: 0,
        created: p.created.map(format_time).unwrap_or_default(),
        id: &p.id,
        links: [Link {
            href: format!("{}{}/groups/{}", call.base, call.version.prefix(), p.id),
            rel: "self",
        }],
        name: &p.name,
        org_id: &p.org_id,
        with_default_alerts_settings: created.then_some(true),
    }
}

// ---- validation -----------------------------------------------------------------------------

fn check_user_id(user: &str) -> Result<(), ApiError> {
    check_object_id("userId", user)
}

/// The list filters: `username` and the membership statuses (`ACTIVE` and `PENDING` unless
/// `orgMembershipStatuses` (repeatable) or the deprecated `orgMembershipStatus` say otherwise;
/// not both).
struct Filters {
    username: Option<String>,
    statuses: Vec<MembershipStatus>,
}

fn filters(query: Option<&str>) -> Result<Filters, ApiError> {
    let mut username = None;
    let mut plural: Vec<MembershipStatus> = Vec::new();
    let mut single: Option<MembershipStatus> = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "username" => {
                if !is_email(&v) {
                    return Err(ApiError::invalid_attribute("username"));
                }
                username = Some(v.into_owned());
            }
            "orgMembershipStatuses" => {
                let status = MembershipStatus::parse(&v)
                    .ok_or_else(|| ApiError::invalid_attribute("orgMembershipStatuses"))?;
                if !plural.contains(&status) {
                    plural.push(status);
                }
            }
            "orgMembershipStatus" => {
                single = Some(
                    MembershipStatus::parse(&v)
                        .ok_or_else(|| ApiError::invalid_attribute("orgMembershipStatus"))?,
                );
            }
            _ => {}
        }
    }
    let statuses = match (single, plural.is_empty()) {
        (Some(_), false) => return Err(ApiError::invalid_attribute("orgMembershipStatus")),
        (Some(one), true) => vec![one],
        (None, false) => plural,
        (None, true) => vec![MembershipStatus::Active, MembershipStatus::Pending],
    };
    Ok(Filters { username, statuses })
}

impl Filters {
    fn admits(&self, user: &CloudUser, m: &OrgMembership) -> bool {
        self.statuses.contains(&m.status)
            && self
                .username
                .as_deref()
                .is_none_or(|name| name.eq_ignore_ascii_case(&user.username))
    }
}

/// `{"groupRole": "..."}` or `{"orgRole": "..."}`: one valid role name.
fn one_role(body: &[u8], scope: RoleScope) -> Result<String, ApiError> {
    let field = match scope {
        RoleScope::Org => "orgRole",
        RoleScope::Group => "groupRole",
    };
    let value = parse_json(body)?;
    let role = object(&value)?
        .get(field)
        .filter(|v| v.is_string())
        .ok_or_else(|| ApiError::invalid_attribute(field))?;
    let mut names = role_names(Some(&Value::Array(vec![role.clone()])), scope)?;
    names
        .pop()
        .ok_or_else(|| ApiError::invalid_attribute(field))
}

/// `addGroupUsers`' body: an email `username` and at least one distinct project role.
fn group_user_request(body: &[u8]) -> Result<(String, Vec<String>), ApiError> {
    let value = parse_json(body)?;
    let obj = object(&value)?;
    let username = obj
        .get("username")
        .and_then(Value::as_str)
        .filter(|u| is_email(u))
        .ok_or_else(|| ApiError::invalid_attribute("username"))?;
    let roles = obj.get("roles");
    if let Some(Value::Array(items)) = roles {
        let mut seen: Vec<&Value> = Vec::with_capacity(items.len());
        for item in items {
            if seen.contains(&item) {
                return Err(ApiError::invalid_attribute("roles"));
            }
            seen.push(item);
        }
    }
    let roles = role_names(roles, RoleScope::Group).map_err(|e| {
        if e.code == "MISSING_API_KEY_ROLES" {
            ApiError::invalid_attribute("roles")
        } else {
            e
        }
    })?;
    Ok((username.to_owned(), roles))
}

/// A project name as the spec's pattern allows: 1 to 64 letters, digits and `-_.(),:&@+'`.
fn valid_group_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_GROUP_NAME).contains(&count)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.(),:&@+'".contains(c))
}

// ---- dispatch -------------------------------------------------------------------------------

/// Handles one user or project-collection call (the store is locked by the caller).
pub fn handle(store: &mut Store, call: &ApiCall<'_>) -> Result<ApiReply, ApiError> {
    match *call.resource {
        Resource::Groups => groups(store, call),
        Resource::OrgUsers { org } => org_users(store, call, org),
        Resource::OrgUser { org, user } => org_user(store, call, org, user),
        Resource::OrgUserRole { org, user, action } => {
            org_user_role(store, call, org, user, action)
        }
        Resource::GroupUsers { group } => group_users(store, call, group),
        Resource::GroupUser { group, user } => group_user(store, call, group, user),
        Resource::GroupUserRole {
            group,
            user,
            action,
        } => group_user_role(store, call, group, user, action),
        _ => Err(ApiError::resource_not_found(call.path)),
    }
}

fn change(action: RoleAction) -> RoleChange {
    match action {
        RoleAction::Add => RoleChange::Add,
        RoleAction::Remove => RoleChange::Remove,
    }
}

/// `GET /orgs/{orgId}/users`.
fn org_users(store: &mut Store, call: &ApiCall<'_>, org: &str) -> Result<ApiReply, ApiError> {
    check_object_id("orgId", org)?;
    store.org(org)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::GET])?;
    authorize(me, Need::OrgRead(org))?;
    let p = paging(call.query)?;
    let f = filters(call.query)?;
    let list: Vec<_> = store
        .org_users(org)
        .into_iter()
        .filter(|(u, m)| f.admits(u, m))
        .collect();
    Ok(ApiReply::json(
        StatusCode::OK,
        &page(call, list, &p, |(u, m)| org_user_view(u, m)),
    ))
}

/// `GET /orgs/{orgId}/users/{userId}`.
fn org_user(
    store: &mut Store,
    call: &ApiCall<'_>,
    org: &str,
    user: &str,
) -> Result<ApiReply, ApiError> {
    check_object_id("orgId", org)?;
    check_user_id(user)?;
    store.org(org)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::GET])?;
    authorize(me, Need::OrgRead(org))?;
    let f = filters(call.query)?;
    let (u, m) = store.org_user(org, user)?;
    if !f.statuses.contains(&m.status) {
        return Err(user_not_found(user));
    }
    Ok(ApiReply::json(StatusCode::OK, &org_user_view(u, m)))
}

/// `POST /orgs/{orgId}/users/{userId}:addRole|:removeRole` `{"orgRole"}`.
fn org_user_role(
    store: &mut Store,
    call: &ApiCall<'_>,
    org: &str,
    user: &str,
    action: RoleAction,
) -> Result<ApiReply, ApiError> {
    check_object_id("orgId", org)?;
    check_user_id(user)?;
    store.org(org)?;
    let me = caller(store, call)?;
    only(call.method, &[Method::POST])?;
    authorize(me, Need::OrgOwner(org))?;
    store.org_user(org, user).and_then(|(_, m)| {
        if m.status.belongs() {
            Ok(())
        } else {
            Err(user_not_found(user))
        }
    })?;
    let role = one_role(call.body, RoleScope::Org)?;
    store.change_org_role(org, user, change(action), &role)?;
    let (u, m) = store.org_user(org, user)?;
    Ok(ApiReply::json(StatusCode::OK, &org_user_view(u, m)))
}

/// `GET|POST /groups/{groupId}/users`.
fn group_users(store: &mut Store, call: &ApiCall<'_>, group: &str) -> Result<ApiReply, ApiError> {
    check_object_id("groupId", group)?;
    let org = store.project(group)?.org_id.clone();
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        authorize(me, Need::GroupRead { group, org: &org })?;
        let p = paging(call.query)?;
        let f = filters(call.query)?;
        let list: Vec<_> = store
            .group_users(group)?
            .into_iter()
            .filter(|(u, m)| f.admits(u, m))
            .collect();
        Ok(ApiReply::json(
            StatusCode::OK,
            &page(call, list, &p, |(u, m)| group_user_view(u, m, group)),
        ))
    } else if *m == Method::POST {
        authorize(me, Need::GroupWrite { group, org: &org })?;
        let inviter = me.inviter_username();
        let (username, roles) = group_user_request(call.body)?;
        let id = store.add_group_user(group, &username, roles, &inviter)?;
        let (u, m) = store.group_user(group, &id)?;
        Ok(ApiReply::json(
            StatusCode::CREATED,
            &group_user_view(u, m, group),
        ))
    } else {
        Err(ApiError::method_not_allowed(m.as_str()))
    }
}

/// `GET|DELETE /groups/{groupId}/users/{userId}`.
fn group_user(
    store: &mut Store,
    call: &ApiCall<'_>,
    group: &str,
    user: &str,
) -> Result<ApiReply, ApiError> {
    check_object_id("groupId", group)?;
    check_user_id(user)?;
    let org = store.project(group)?.org_id.clone();
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        authorize(me, Need::GroupRead { group, org: &org })?;
        let (u, membership) = store.group_user(group, user)?;
        Ok(ApiReply::json(
            StatusCode::OK,
            &group_user_view(u, membership, group),
        ))
    } else if *m == Method::DELETE {
        authorize(me, Need::GroupWrite { group, org: &org })?;
        store.remove_group_user(group, user)?;
        Ok(ApiReply::no_content())
    } else {
        Err(ApiError::method_not_allowed(m.as_str()))
    }
}

/// `POST /groups/{groupId}/users/{userId}:addRole|:removeRole` `{"groupRole"}`.
fn group_user_role(
    store: &mut Store,
    call: &ApiCall<'_>,
    group: &str,
    user: &str,
    action: RoleAction,
) -> Result<ApiReply, ApiError> {
    check_object_id("groupId", group)?;
    check_user_id(user)?;
    let org = store.project(group)?.org_id.clone();
    let me = caller(store, call)?;
    only(call.method, &[Method::POST])?;
    authorize(me, Need::GroupWrite { group, org: &org })?;
    store.group_user(group, user)?;
    let role = one_role(call.body, RoleScope::Group)?;
    store.change_group_role(group, user, change(action), &role)?;
    let (u, m) = store.group_user(group, user)?;
    Ok(ApiReply::json(
        StatusCode::OK,
        &group_user_view(u, m, group),
    ))
}

/// `GET|POST /groups`.
fn groups(store: &mut Store, call: &ApiCall<'_>) -> Result<ApiReply, ApiError> {
    let me = caller(store, call)?;
    let m = call.method;
    if *m == Method::GET {
        let p = paging(call.query)?;
        let visible: Vec<&Project> = store
            .org_projects(me.org_id())
            .into_iter()
            .filter(|p| {
                authorize(
                    me,
                    Need::GroupRead {
                        group: &p.id,
                        org: &p.org_id,
                    },
                )
                .is_ok()
            })
            .collect();
        return Ok(ApiReply::json(
            StatusCode::OK,
            &page(call, visible, &p, |p| project_view(call, p, false)),
        ));
    }
    if *m != Method::POST {
        return Err(ApiError::method_not_allowed(m.as_str()));
    }
    let owner = url::form_urlencoded::parse(call.query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "projectOwnerId")
        .map(|(_, v)| v.into_owned());
    if owner.as_deref().is_some_and(|id| !ids::is_object_id(id)) {
        return Err(ApiError::invalid_attribute("projectOwnerId"));
    }
    let body = parse_json(call.body)?;
    let obj = object(&body)?;
    // orgId is required by the spec; without it Atlas takes the caller's organization.
    let org = match obj.get("orgId") {
        None | Some(Value::Null) => me.org_id().to_owned(),
        Some(Value::String(id)) if ids::is_object_id(id) => id.clone(),
        Some(_) => return Err(ApiError::invalid_attribute("orgId")),
    };
    store.org(&org)?;
    authorize(me, Need::OrgGroupCreator(&org))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| valid_group_name(n))
        .ok_or_else(|| ApiError::invalid_attribute("name"))?;
    // Atlas for Government only: "In Commercial Atlas, this field will be rejected".
    if obj.contains_key("regionUsageRestrictions") {
        return Err(ApiError::invalid_attribute("regionUsageRestrictions"));
    }
    if store.project_by_name(&org, name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "GROUP_ALREADY_EXISTS",
            format!("A group with name \"{name}\" already exists."),
        )
        .with_params([name]));
    }
    let owner = match owner {
        Some(id) => {
            let (_, m) = store.org_user(&org, &id)?;
            if m.status != MembershipStatus::Active {
                return Err(user_not_found(&id));
            }
            Some(id)
        }
        None => store.oldest_org_owner(&org),
    };
    let project = store
        .create_project(None, &org, name.to_owned())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNEXPECTED_ERROR", e))?;
    if let Some(owner) = owner {
        store.make_group_owner(&org, &project.id, &owner);
    }
    Ok(ApiReply::json(
        StatusCode::CREATED,
        &project_view(call, &project, true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_spec_pattern() {
        for ok in [
            "p",
            "setup-e2e-186",
            "Ünïcode_1.(a),b:c&d@e+f'g",
            &"x".repeat(64),
        ] {
            assert!(valid_group_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", &"x".repeat(65), "a\"b"] {
            assert!(!valid_group_name(bad), "{bad}");
        }
    }

    #[test]
    fn list_filters() {
        let f = filters(None).unwrap();
        assert_eq!(
            f.statuses,
            [MembershipStatus::Active, MembershipStatus::Pending]
        );
        let f = filters(Some(
            "username=a%40b.co&orgMembershipStatuses=ACTIVE&orgMembershipStatuses=INVITATION_EXPIRED",
        ))
        .unwrap();
        assert_eq!(f.username.as_deref(), Some("a@b.co"));
        assert_eq!(
            f.statuses,
            [
                MembershipStatus::Active,
                MembershipStatus::InvitationExpired
            ]
        );
        for bad in [
            "username=nobody",
            "orgMembershipStatuses=GONE",
            "orgMembershipStatus=ACTIVE&orgMembershipStatuses=PENDING",
        ] {
            assert_eq!(
                filters(Some(bad)).err().unwrap().code,
                "INVALID_ATTRIBUTE",
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies() {
        let (user, roles) =
            group_user_request(br#"{"username":"a@b.co","roles":["GROUP_READ_ONLY"]}"#).unwrap();
        assert_eq!(
            (user.as_str(), roles.as_slice()),
            ("a@b.co", &["GROUP_READ_ONLY".to_owned()][..])
        );
        for (bad, code) in [
            (r#"{"username":"a@b.co","roles":[]}"#, "INVALID_ATTRIBUTE"),
            (r#"{"username":"a@b.co"}"#, "INVALID_ATTRIBUTE"),
            (
                r#"{"username":"ab.co","roles":["GROUP_OWNER"]}"#,
                "INVALID_ATTRIBUTE",
            ),
            (
                r#"{"username":"a@b.co","roles":["GROUP_OWNER","GROUP_OWNER"]}"#,
                "INVALID_ATTRIBUTE",
            ),
            (
                r#"{"username":"a@b.co","roles":["ORG_OWNER"]}"#,
                "INVALID_ROLE_FOR_GROUP",
            ),
        ] {
            assert_eq!(
                group_user_request(bad.as_bytes()).unwrap_err().code,
                code,
                "{bad}"
            );
        }
        assert_eq!(
            one_role(br#"{"orgRole":"ORG_READ_ONLY"}"#, RoleScope::Org).unwrap(),
            "ORG_READ_ONLY"
        );
        assert_eq!(
            one_role(br#"{"groupRole":"ORG_READ_ONLY"}"#, RoleScope::Group)
                .unwrap_err()
                .code,
            "INVALID_ROLE_FOR_GROUP"
        );
        assert_eq!(
            one_role(br#"{"orgRole":3}"#, RoleScope::Org)
                .unwrap_err()
                .code,
            "INVALID_ATTRIBUTE"
        );
    }
}
