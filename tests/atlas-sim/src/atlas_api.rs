//! The Atlas Administration API endpoints the simulator serves: organization and project API
//! keys, key access lists, and organization/project reads; service accounts are in
//! [`super::sa_api`]. Callers are API keys (Digest) or service accounts (Bearer token).
//!
//! Each call takes the store lock once, checks that the resources exist (404), that the
//! caller may act on them (401 `USER_UNAUTHORIZED`), validates the body (400), applies the
//! change and renders the response, all without awaiting.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use http::{Method, StatusCode};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::ids;
use super::router::{ApiVersion, Resource};
use super::store::{
    format_time, AccessEntry, ApiKey, NewKey, RoleAssignment, ServiceAccount, Store,
};

pub const ORG_ROLES: &[&str] = &[
    "ORG_OWNER",
    "ORG_MEMBER",
    "ORG_GROUP_CREATOR",
    "ORG_BILLING_ADMIN",
    "ORG_BILLING_READ_ONLY",
    "ORG_STREAM_PROCESSING_ADMIN",
    "ORG_READ_ONLY",
];

pub const GROUP_ROLES: &[&str] = &[
    "GROUP_OWNER",
    "GROUP_CLUSTER_MANAGER",
    "GROUP_STREAM_PROCESSING_OWNER",
    "GROUP_DATA_ACCESS_ADMIN",
    "GROUP_DATA_ACCESS_READ_WRITE",
    "GROUP_DATA_ACCESS_READ_ONLY",
    "GROUP_DATABASE_ACCESS_ADMIN",
    "GROUP_BACKUP_MANAGER",
    "GROUP_OBSERVABILITY_VIEWER",
    "GROUP_READ_ONLY",
    "GROUP_SEARCH_INDEX_EDITOR",
];

const MAX_DESC: usize = 250;
const MAX_ITEMS_PER_PAGE: u64 = 500;

/// Who authenticated a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// Digest: the API key's public key.
    Key(String),
    /// Bearer token: the service account's client id.
    ServiceAccount(String),
}

/// One authenticated API call.
pub struct ApiCall<'a> {
    pub version: ApiVersion,
    pub resource: &'a Resource<'a>,
    pub method: &'a Method,
    /// Raw path as sent (used for list self links).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub caller: &'a CallerId,
    pub peer_ip: IpAddr,
    /// `scheme://host[:port]` for links.
    pub base: &'a str,
}

/// A successful answer: status and optional JSON body.
pub struct ApiReply {
    pub status: StatusCode,
    pub body: Option<Vec<u8>>,
}

impl ApiReply {
    pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        Self {
            status,
            body: Some(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    pub(super) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

// ---- response views (fields in Atlas's alphabetical order) ---------------------------------

#[derive(Serialize)]
pub(super) struct Link {
    pub(super) href: String,
    pub(super) rel: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyView<'a> {
    desc: &'a str,
    id: &'a str,
    links: [Link; 1],
    private_key: String,
    public_key: &'a str,
    roles: &'a [RoleAssignment],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page<T> {
    links: Vec<Link>,
    results: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessEntryView {
    cidr_block: String,
    count: u64,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    links: [Link; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgView<'a> {
    id: &'a str,
    is_deleted: bool,
    links: [Link; 1],
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupView<'a> {
    cluster_count: u32,
    created: String,
    id: &'a str,
    links: [Link; 1],
    name: &'a str,
    org_id: &'a str,
}

// ---- pagination -----------------------------------------------------------------------------

pub(super) struct Paging {
    page_num: u64,
    items_per_page: u64,
    include_count: bool,
}

pub(super) fn paging(query: Option<&str>) -> Result<Paging, ApiError> {
    let mut p = Paging {
        page_num: 1,
        items_per_page: 100,
        include_count: true,
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "pageNum" => {
                p.page_num = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::invalid_attribute("pageNum"))?;
            }
            "itemsPerPage" => {
                p.items_per_page = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ITEMS_PER_PAGE).contains(n))
                    .ok_or_else(|| ApiError::invalid_attribute("itemsPerPage"))?;
            }
            "includeCount" => {
                p.include_count = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::invalid_attribute("includeCount")),
                };
            }
            _ => {}
        }
    }
    Ok(p)
}

pub(super) fn page<T, U>(
    call: &ApiCall<'_>,
    items: Vec<T>,
    p: &Paging,
    render: impl Fn(T) -> U,
) -> Page<U> {
    let total = items.len();
    let per = usize::try_from(p.items_per_page).unwrap_or(usize::MAX);
    let start = usize::try_from(p.page_num - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(per);
    // Filters (e.g. `username`) stay in the links; the paging parameters are set anew.
    let mut filters = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(call.query.unwrap_or("").as_bytes()) {
        if !matches!(k.as_ref(), "pageNum" | "itemsPerPage" | "includeCount") {
            filters.append_pair(&k, &v);
        }
    }
    let filters = filters.finish();
    let link = |page_num: u64, rel: &'static str| Link {
        href: format!(
            "{}{}?{filters}{}includeCount={}&pageNum={}&itemsPerPage={}",
            call.base,
            call.path,
            if filters.is_empty() { "" } else { "&" },
            p.include_count,
            page_num,
            p.items_per_page
        ),
        rel,
    };
    let mut links = Vec::with_capacity(3);
    if p.page_num > 1 {
        links.push(link(p.page_num - 1, "previous"));
    }
    links.push(link(p.page_num, "self"));
    if start.saturating_add(per) < total {
        links.push(link(p.page_num + 1, "next"));
    }
    let results = items
        .into_iter()
        .skip(start)
        .take(per)
        .map(render)
        .collect();
    Page {
        links,
        results,
        total_count: p.include_count.then_some(total),
    }
}

// ---- rendering ------------------------------------------------------------------------------

fn key_view<'a>(call: &ApiCall<'_>, key: &'a ApiKey, reveal: bool) -> KeyView<'a> {
    KeyView {
        desc: &key.desc,
        id: &key.id,
        links: [Link {
            href: format!(
                "{}{}/orgs/{}/apiKeys/{}",
                call.base,
                call.version.prefix(),
                key.org_id,
                key.id
            ),
            rel: "self",
        }],
        private_key: if reveal {
            key.private_key.clone()
        } else {
            ids::redact_private_key(&key.private_key)
        },
        public_key: &key.public_key,
        roles: &key.roles,
    }
}

fn entry_view(call: &ApiCall<'_>, key: &ApiKey, e: &AccessEntry) -> AccessEntryView {
    AccessEntryView {
        cidr_block: e.cidr_block(),
        count: 0,
        created: format_time(e.created),
        ip_address: e.ip_address(),
        links: [Link {
            href: format!(
                "{}{}/orgs/{}/apiKeys/{}/accessList/{}",
                call.base,
                call.version.prefix(),
                key.org_id,
                key.id,
                e.path_segment()
            ),
            rel: "self",
        }],
    }
}

// ---- validation -----------------------------------------------------------------------------

pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::malformed_json())
}

pub(super) fn object(v: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(ApiError::malformed_json)
}

pub(super) fn check_object_id(name: &str, value: &str) -> Result<(), ApiError> {
    if ids::is_object_id(value) {
        Ok(())
    } else {
        Err(ApiError::path_param(name, value))
    }
}

fn desc_field(
    obj: &serde_json::Map<String, Value>,
    required: bool,
) -> Result<Option<String>, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_API_KEY_DESC",
            format!("The API key description must be between 1 and {MAX_DESC} characters long."),
        )
    };
    match obj.get("desc") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_DESC => {
            Ok(Some(s.clone()))
        }
        _ => Err(invalid()),
    }
}

#[derive(Clone, Copy)]
pub(super) enum RoleScope {
    Org,
    Group,
}

fn missing_roles() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "MISSING_API_KEY_ROLES",
        "The API key must have at least one role.",
    )
}

/// Validates a `roles` array of role names; returns them without duplicates, in order.
pub(super) fn role_names(value: Option<&Value>, scope: RoleScope) -> Result<Vec<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err(missing_roles());
    };
    let items = value
        .as_array()
        .ok_or_else(|| ApiError::invalid_attribute("roles"))?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| ApiError::invalid_attribute("roles"))?;
        let (known, code, what) = match scope {
            RoleScope::Org => (ORG_ROLES, "INVALID_ROLE_FOR_ORG", "an organization"),
            RoleScope::Group => (GROUP_ROLES, "INVALID_ROLE_FOR_GROUP", "a project"),
        };
        if !known.contains(&name) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code,
                format!("Role {name} is invalid for {what}."),
            )
            .with_params([name]));
        }
        if !out.iter().any(|r| r == name) {
            out.push(name.to_owned());
        }
    }
    if out.is_empty() {
        return Err(missing_roles());
    }
    Ok(out)
}

fn invalid_address(addr: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_IP_ADDRESS_OR_CIDR_NOTATION",
        format!("The address {addr} must be in valid IP address or CIDR notation."),
    )
    .with_params([addr])
}

/// Parses an access-list path segment: an IP, or a CIDR with its slash as `%2F`.
pub(super) fn parse_entry_segment(raw: &str) -> Result<IpNet, ApiError> {
    let decoded = percent_decode(raw).ok_or_else(|| invalid_address(raw))?;
    if decoded.contains('/') {
        decoded
            .parse::<IpNet>()
            .map_err(|_| invalid_address(&decoded))
    } else {
        decoded
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| invalid_address(&decoded))
    }
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn access_entries(body: &[u8]) -> Result<Vec<IpNet>, ApiError> {
    let value = parse_json(body)?;
    let items = value.as_array().ok_or_else(ApiError::malformed_json)?;
    let mut nets: Vec<IpNet> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let obj = object(item)?;
        let ip = obj.get("ipAddress").and_then(Value::as_str);
        let cidr = obj.get("cidrBlock").and_then(Value::as_str);
        let net = match (ip, cidr) {
            (Some(ip), None) => ip
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| invalid_address(ip))?,
            (None, Some(cidr)) => {
                if !cidr.contains('/') {
                    return Err(invalid_address(cidr));
                }
                cidr.parse::<IpNet>().map_err(|_| invalid_address(cidr))?
            }
            (Some(ip), Some(cidr)) => {
                let a = ip
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| invalid_address(ip))?;
                let b = cidr.parse::<IpNet>().map_err(|_| invalid_address(cidr))?;
                if a != b {
                    return Err(ApiError::invalid_attribute("cidrBlock"));
                }
                a
            }
            (None, None) => return Err(ApiError::invalid_attribute("ipAddress")),
        };
        if !seen.insert(net) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "DUPLICATE_ADDRESSES_IN_INPUT",
                format!("The address {net} appears more than once in the input."),
            )
            .with_params([net.to_string()]));
        }
        nets.push(net);
    }
    Ok(nets)
}

// ---- permissions ----------------------------------------------------------------------------

pub(super) enum Need<'a> {
    OrgRead(&'a str),
    OrgOwner(&'a str),
    GroupRead {
        group: &'a str,
        org: &'a str,
    },
    GroupWrite {
        group: &'a str,
        org: &'a str,
    },
    /// Creating projects: `ORG_OWNER` or `ORG_GROUP_CREATOR`.
    OrgGroupCreator(&'a str),
}

/// The authenticated principal: an API key or a service account, with the same role rules.
#[derive(Clone, Copy)]
pub(super) enum Caller<'s> {
    Key(&'s ApiKey),
    ServiceAccount(&'s ServiceAccount),
}

impl Caller<'_> {
    pub(super) fn org_id(&self) -> &str {
        match self {
            Self::Key(k) => &k.org_id,
            Self::ServiceAccount(s) => &s.org_id,
        }
    }

    fn has_org_role(&self, role: &str) -> bool {
        match self {
            Self::Key(k) => k.has_org_role(role),
            Self::ServiceAccount(s) => s.has_org_role(role),
        }
    }

    fn any_org_role(&self) -> bool {
        match self {
            Self::Key(k) => k.org_roles().next().is_some(),
            Self::ServiceAccount(s) => !s.roles.is_empty(),
        }
    }

    fn in_group(&self, group: &str) -> bool {
        match self {
            Self::Key(k) => k.in_group(group),
            Self::ServiceAccount(s) => s.in_group(group),
        }
    }

    fn has_group_role(&self, group: &str, role: &str) -> bool {
        match self {
            Self::Key(k) => k.group_roles(group).any(|r| r == role),
            Self::ServiceAccount(s) => s.group_roles(group).iter().any(|r| r == role),
        }
    }

    fn access_list(&self) -> &[AccessEntry] {
        match self {
            Self::Key(k) => &k.access_list,
            Self::ServiceAccount(s) => &s.access_list,
        }
    }

    /// What an invitation names as its inviter (`inviterUsername`, an email address): the
    /// simulator's stand-in for the programmatic caller.
    pub(super) fn inviter_username(&self) -> String {
        match self {
            Self::Key(k) => format!("{}@api-keys.atlas-sim.example.com", k.public_key),
            Self::ServiceAccount(s) => {
                format!("{}@service-accounts.atlas-sim.example.com", s.client_id)
            }
        }
    }

    /// The client id when the caller is a service account.
    pub(super) fn client_id(&self) -> Option<&str> {
        match self {
            Self::Key(_) => None,
            Self::ServiceAccount(s) => Some(&s.client_id),
        }
    }
}

pub(super) fn authorize(caller: Caller<'_>, need: Need<'_>) -> Result<(), ApiError> {
    let in_org = |org: &str| caller.org_id() == org;
    let allowed = match need {
        Need::OrgRead(org) => in_org(org) && caller.any_org_role(),
        Need::OrgOwner(org) => in_org(org) && caller.has_org_role("ORG_OWNER"),
        Need::GroupRead { group, org } => {
            in_org(org)
                && (caller.in_group(group)
                    || caller.has_org_role("ORG_OWNER")
                    || caller.has_org_role("ORG_READ_ONLY"))
        }
        Need::GroupWrite { group, org } => {
            in_org(org)
                && (caller.has_org_role("ORG_OWNER") || caller.has_group_role(group, "GROUP_OWNER"))
        }
        Need::OrgGroupCreator(org) => {
            in_org(org)
                && (caller.has_org_role("ORG_OWNER") || caller.has_org_role("ORG_GROUP_CREATOR"))
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::unauthorized_action())
    }
}

/// 403 `IP_ADDRESS_NOT_ON_ACCESS_LIST` when the principal has an access list without `ip`.
pub fn check_access_list(entries: &[AccessEntry], ip: IpAddr) -> Result<(), ApiError> {
    if entries.is_empty() || entries.iter().any(|e| e.net.contains(&ip)) {
        return Ok(());
    }
    let ip = ip.to_string();
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "IP_ADDRESS_NOT_ON_ACCESS_LIST",
        format!("IP address {ip} is not allowed to access this resource."),
    )
    .with_params([ip]))
}

pub(super) fn caller<'s>(store: &'s Store, call: &ApiCall<'_>) -> Result<Caller<'s>, ApiError> {
    let who = match call.caller {
        CallerId::Key(public_key) => {
            let (id, _) = store
                .credentials(public_key)
                .ok_or_else(ApiError::unauthorized_action)?;
            Caller::Key(
                store
                    .key_by_id(id)
                    .ok_or_else(ApiError::unauthorized_action)?,
            )
        }
        CallerId::ServiceAccount(client_id) => Caller::ServiceAccount(
            store
                .service_account_by_id(client_id)
                .ok_or_else(ApiError::unauthorized_action)?,
        ),
    };
    check_access_list(who.access_list(), call.peer_ip)?;
    Ok(who)
}

// ---- dispatch -------------------------------------------------------------------------------

/// Handles one authenticated call against the store.
pub fn handle(store: &Mutex<Store>, call: &ApiCall<'_>) -> Result<ApiReply, ApiError> {
    let mut store = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = &mut *store;
    let m = call.method;
    match *call.resource {
        Resource::Orgs => {
            // A key or service account belongs to one organization.
            let who = caller(store, call)?;
            only(m, &[Method::GET])?;
            let p = paging(call.query)?;
            let o = store.org(who.org_id())?;
            let prefix = call.version.prefix();
            Ok(ApiReply::json(
                StatusCode::OK,
                &page(call, vec![o], &p, |o| OrgView {
                    id: &o.id,
                    is_deleted: false,
                    links: [Link {
                        href: format!("{}{prefix}/orgs/{}", call.base, o.id),
                        rel: "self",
                    }],
                    name: &o.name,
                }),
            ))
        }
        Resource::Org { org } => {
            check_object_id("orgId", org)?;
            let o = store.org(org)?;
            authorize(caller(store, call)?, Need::OrgRead(org))?;
            only(m, &[Method::GET])?;
            Ok(ApiReply::json(
                StatusCode::OK,
                &OrgView {
                    id: &o.id,
                    is_deleted: false,
                    links: [Link {
                        href: format!("{}{}/orgs/{}", call.base, call.version.prefix(), o.id),
                        rel: "self",
                    }],
                    name: &o.name,
                },
            ))
        }
        Resource::Group { group } => {
            check_object_id("groupId", group)?;
            let p = store.project(group)?;
            authorize(
                caller(store, call)?,
                Need::GroupRead {
                    group,
                    org: &p.org_id,
                },
            )?;
            only(m, &[Method::GET])?;
            Ok(ApiReply::json(
                StatusCode::OK,
                &GroupView {
                    cluster_count: 0,
                    created: p.created.map(format_time).unwrap_or_default(),
                    id: &p.id,
                    links: [Link {
                        href: format!("{}{}/groups/{}", call.base, call.version.prefix(), p.id),
                        rel: "self",
                    }],
                    name: &p.name,
                    org_id: &p.org_id,
                },
            ))
        }
        Resource::OrgKeys { org } => {
            check_object_id("orgId", org)?;
            store.org(org)?;
            let me = caller(store, call)?;
            if *m == Method::GET {
                authorize(me, Need::OrgRead(org))?;
                let p = paging(call.query)?;
                let keys = store.org_keys(org);
                Ok(ApiReply::json(
                    StatusCode::OK,
                    &page(call, keys, &p, |k| key_view(call, k, false)),
                ))
            } else if *m == Method::POST {
                authorize(me, Need::OrgOwner(org))?;
                let body = parse_json(call.body)?;
                let obj = object(&body)?;
                let desc = desc_field(obj, true)?.unwrap_or_default();
                let roles = role_names(obj.get("roles"), RoleScope::Org)?;
                let roles = roles.iter().map(|r| RoleAssignment::org(org, r)).collect();
                let key = store.create_key(
                    org,
                    NewKey {
                        desc,
                        roles,
                        ..NewKey::default()
                    },
                )?;
                Ok(ApiReply::json(StatusCode::OK, &key_view(call, &key, true)))
            } else {
                Err(ApiError::method_not_allowed(m.as_str()))
            }
        }
        Resource::OrgKey { org, key } => {
            check_object_id("orgId", org)?;
            check_object_id("apiUserId", key)?;
            store.org(org)?;
            let me = caller(store, call)?;
            if *m == Method::GET {
                authorize(me, Need::OrgRead(org))?;
                let k = store.key_in_org(org, key)?;
                Ok(ApiReply::json(StatusCode::OK, &key_view(call, k, false)))
            } else if *m == Method::PATCH {
                authorize(me, Need::OrgOwner(org))?;
                let body = parse_json(call.body)?;
                let obj = object(&body)?;
                let desc = desc_field(obj, false)?;
                let roles = match obj.get("roles") {
                    None | Some(Value::Null) => None,
                    v => Some(role_names(v, RoleScope::Org)?),
                };
                if desc.is_none() && roles.is_none() {
                    return Err(ApiError::invalid_attribute("desc"));
                }
                let k = store.update_key(org, key, desc, roles)?;
                Ok(ApiReply::json(StatusCode::OK, &key_view(call, &k, false)))
            } else if *m == Method::DELETE {
                authorize(me, Need::OrgOwner(org))?;
                store.delete_key(org, key)?;
                Ok(ApiReply::no_content())
            } else {
                Err(ApiError::method_not_allowed(m.as_str()))
            }
        }
        Resource::AccessList { org, key } => {
            check_object_id("orgId", org)?;
            check_object_id("apiUserId", key)?;
            store.org(org)?;
            let me = caller(store, call)?;
            if *m == Method::GET {
                authorize(me, Need::OrgRead(org))?;
            } else if *m == Method::POST {
                authorize(me, Need::OrgOwner(org))?;
                store.key_in_org(org, key)?;
                let nets = access_entries(call.body)?;
                store.add_access_entries(org, key, &nets)?;
            } else {
                return Err(ApiError::method_not_allowed(m.as_str()));
            }
            let p = paging(call.query)?;
            let k = store.key_in_org(org, key)?;
            let entries: Vec<&AccessEntry> = k.access_list.iter().collect();
            Ok(ApiReply::json(
                StatusCode::OK,
                &page(call, entries, &p, |e| entry_view(call, k, e)),
            ))
        }
        Resource::AccessEntry { org, key, entry } => {
            check_object_id("orgId", org)?;
            check_object_id("apiUserId", key)?;
            store.org(org)?;
            let me = caller(store, call)?;
            let net = parse_entry_segment(entry)?;
            if *m == Method::GET {
                authorize(me, Need::OrgRead(org))?;
                let k = store.key_in_org(org, key)?;
                let e = store.access_entry(org, key, &net)?;
                Ok(ApiReply::json(StatusCode::OK, &entry_view(call, k, e)))
            } else if *m == Method::DELETE {
                authorize(me, Need::OrgOwner(org))?;
                store.delete_access_entry(org, key, &net)?;
                Ok(ApiReply::no_content())
            } else {
                Err(ApiError::method_not_allowed(m.as_str()))
            }
        }
        Resource::GroupKeys { group } => {
            check_object_id("groupId", group)?;
            let org = store.project(group)?.org_id.clone();
            let me = caller(store, call)?;
            if *m == Method::GET {
                authorize(me, Need::GroupRead { group, org: &org })?;
                let p = paging(call.query)?;
                let keys = store.project_keys(group);
                Ok(ApiReply::json(
                    StatusCode::OK,
                    &page(call, keys, &p, |k| key_view(call, k, false)),
                ))
            } else if *m == Method::POST {
                authorize(me, Need::GroupWrite { group, org: &org })?;
                let body = parse_json(call.body)?;
                let obj = object(&body)?;
                let desc = desc_field(obj, true)?.unwrap_or_default();
                let group_roles = role_names(obj.get("roles"), RoleScope::Group)?;
                let mut roles = vec![RoleAssignment::org(&org, "ORG_MEMBER")];
                roles.extend(group_roles.iter().map(|r| RoleAssignment::group(group, r)));
                let key = store.create_key(
                    &org,
                    NewKey {
                        desc,
                        roles,
                        ..NewKey::default()
                    },
                )?;
                Ok(ApiReply::json(StatusCode::OK, &key_view(call, &key, true)))
            } else {
                Err(ApiError::method_not_allowed(m.as_str()))
            }
        }
        Resource::GroupKey { group, key } => {
            check_object_id("groupId", group)?;
            check_object_id("apiUserId", key)?;
            let org = store.project(group)?.org_id.clone();
            let me = caller(store, call)?;
            authorize(me, Need::GroupWrite { group, org: &org })?;
            if *m == Method::POST {
                // v2 "assign": a JSON array of {"roles": [...]}.
                let body = parse_json(call.body)?;
                let items = body.as_array().ok_or_else(ApiError::malformed_json)?;
                let mut roles: Vec<Value> = Vec::new();
                for item in items {
                    match object(item)?.get("roles") {
                        Some(Value::Array(r)) => roles.extend(r.iter().cloned()),
                        Some(Value::Null) | None => {}
                        Some(_) => return Err(ApiError::invalid_attribute("roles")),
                    }
                }
                let roles = role_names(Some(&Value::Array(roles)), RoleScope::Group)?;
                store.set_project_roles(group, key, &roles)?;
                Ok(ApiReply::no_content())
            } else if *m == Method::PATCH {
                // v2 "update roles" and v1.0 "assign": {"roles": [...]} (optionally "desc").
                let body = parse_json(call.body)?;
                let obj = object(&body)?;
                let desc = desc_field(obj, false)?;
                let roles = match obj.get("roles") {
                    None | Some(Value::Null) => None,
                    v => Some(role_names(v, RoleScope::Group)?),
                };
                let mut k = match roles {
                    Some(roles) => store.set_project_roles(group, key, &roles)?,
                    None if desc.is_some() => {
                        let k = store.key_in_org(&org, key)?;
                        if !k.in_group(group) {
                            return Err(ApiError::api_key_not_found(key));
                        }
                        k.clone()
                    }
                    None => return Err(missing_roles()),
                };
                if let Some(desc) = desc {
                    k = store.update_key(&org, key, Some(desc), None)?;
                }
                Ok(ApiReply::json(StatusCode::OK, &key_view(call, &k, false)))
            } else if *m == Method::DELETE {
                store.unassign(group, key)?;
                Ok(ApiReply::no_content())
            } else {
                Err(ApiError::method_not_allowed(m.as_str()))
            }
        }
        Resource::ServiceAccounts { .. }
        | Resource::ServiceAccount { .. }
        | Resource::SaAccessList { .. }
        | Resource::SaAccessEntry { .. }
        | Resource::SaSecrets { .. }
        | Resource::SaSecret { .. }
        | Resource::SaGroups { .. }
        | Resource::SaInvite { .. } => super::sa_api::handle(store, call),
        Resource::Groups
        | Resource::OrgUsers { .. }
        | Resource::OrgUser { .. }
        | Resource::OrgUserRole { .. }
        | Resource::GroupUsers { .. }
        | Resource::GroupUser { .. }
        | Resource::GroupUserRole { .. } => super::users_api::handle(store, call),
        // Refused during version negotiation (410); never reaches a handler.
        Resource::Retired { .. } => Err(ApiError::resource_not_found(call.path)),
    }
}

pub(super) fn only(m: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(m) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(m.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_validated_per_scope() {
        let v = serde_json::json!(["ORG_OWNER", "ORG_OWNER", "ORG_READ_ONLY"]);
        assert_eq!(
            role_names(Some(&v), RoleScope::Org).unwrap(),
            ["ORG_OWNER", "ORG_READ_ONLY"]
        );
        assert_eq!(
            role_names(Some(&v), RoleScope::Group).unwrap_err().code,
            "INVALID_ROLE_FOR_GROUP"
        );
        let g = serde_json::json!(["GROUP_READ_ONLY"]);
        assert_eq!(
            role_names(Some(&g), RoleScope::Org).unwrap_err().code,
            "INVALID_ROLE_FOR_ORG"
        );
        assert_eq!(
            role_names(Some(&serde_json::json!([])), RoleScope::Org)
                .unwrap_err()
                .code,
            "MISSING_API_KEY_ROLES"
        );
        assert_eq!(
            role_names(None, RoleScope::Org).unwrap_err().code,
            "MISSING_API_KEY_ROLES"
        );
    }

    #[test]
    fn descriptions_are_bounded() {
        let ok = serde_json::json!({"desc": "x".repeat(250)});
        assert!(desc_field(ok.as_object().unwrap(), true).is_ok());
        let long = serde_json::json!({"desc": "x".repeat(251)});
        assert_eq!(
            desc_field(long.as_object().unwrap(), true)
                .unwrap_err()
                .code,
            "INVALID_API_KEY_DESC"
        );
        let empty = serde_json::json!({"desc": ""});
        assert!(desc_field(empty.as_object().unwrap(), false).is_err());
        let none = serde_json::json!({});
        assert_eq!(desc_field(none.as_object().unwrap(), false).unwrap(), None);
        assert!(desc_field(none.as_object().unwrap(), true).is_err());
    }

    #[test]
    fn access_list_input_parsing() {
        let nets = access_entries(br#"[{"ipAddress":"192.168.0.229"},{"cidrBlock":"10.0.0.0/24"},{"ipAddress":"2001:db8::1"}]"#).unwrap();
        assert_eq!(nets[0].to_string(), "192.168.0.229/32");
        assert_eq!(nets[1].to_string(), "10.0.0.0/24");
        assert_eq!(nets[2].to_string(), "2001:db8::1/128");
        for bad in [
            r#"[{"ipAddress":"300.1.1.1"}]"#,
            r#"[{"cidrBlock":"10.0.0.0"}]"#,
            r#"[{"cidrBlock":"10.0.0.0/33"}]"#,
        ] {
            assert_eq!(
                access_entries(bad.as_bytes()).unwrap_err().code,
                "INVALID_IP_ADDRESS_OR_CIDR_NOTATION",
                "{bad}"
            );
        }
        assert_eq!(
            access_entries(br#"[{"ipAddress":"1.2.3.4"},{"cidrBlock":"1.2.3.4/32"}]"#)
                .unwrap_err()
                .code,
            "DUPLICATE_ADDRESSES_IN_INPUT"
        );
        assert_eq!(access_entries(b"{}").unwrap_err().code, "INVALID_JSON");
    }

    #[test]
    fn entry_segments_decode_cidr() {
        assert_eq!(
            parse_entry_segment("10.0.0.0%2F24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            parse_entry_segment("10.0.0.0%2f24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            parse_entry_segment("52.190.182.226").unwrap().to_string(),
            "52.190.182.226/32"
        );
        assert!(parse_entry_segment("nope").is_err());
        assert!(parse_entry_segment("1.2.3.4%2").is_err());
    }

    #[test]
    fn paging_bounds() {
        assert!(paging(Some("itemsPerPage=500&pageNum=2&includeCount=false")).is_ok());
        assert_eq!(
            paging(Some("itemsPerPage=501")).err().unwrap().code,
            "INVALID_ATTRIBUTE"
        );
        assert!(paging(Some("pageNum=0")).is_err());
        assert!(paging(Some("includeCount=maybe")).is_err());
    }
}
