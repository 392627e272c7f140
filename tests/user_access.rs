//! Just-in-time access for people (`credential_type=user_access`) in-process
//! against the simulator: grants of organization and project roles to an
//! existing member, overlapping leases, roles held before, who may be granted,
//! faults at each Atlas step, and abandoned requests. After each, the person
//! holds exactly their original roles plus what live leases need.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use atlas_sim::{FaultRule, NewOrgUserRequest};
use serde_json::{json, Value};
use support::{data, Login, Mount};
use vault_mongodbatlas::atlas::Timeouts;
use vault_mongodbatlas::engine::Settings;
use vault_mongodbatlas::vault::framework::{Operation, Secret};
use vault_mongodbatlas::vault::system_view::StaticSystemView;

const ALICE: &str = "alice@example.com";

/// A person's roles: organization roles, and project -> roles.
type Roles = (Vec<String>, BTreeMap<String, Vec<String>>);

/// A mount, a second project, and Alice: an organization member with
/// GROUP_READ_ONLY in the simulator's project.
async fn setup() -> (Mount, String) {
    // A persistent Atlas failure gives up after 2 s (the fault test injects many).
    let settings = Settings {
        timeouts: Timeouts {
            attempt: Duration::from_secs(1),
            overall: Duration::from_secs(2),
            ..Timeouts::default()
        },
        ..Settings::default()
    };
    let m = Mount::with_settings(settings, Login::ApiKey).await;
    let second = m
        .sim
        .create_project(None, None, Some("second".into()))
        .expect("project")
        .id;
    m.sim
        .add_org_user(NewOrgUserRequest {
            username: ALICE.into(),
            org_roles: vec!["ORG_MEMBER".into()],
            project_roles: BTreeMap::from([(
                m.sim.project_id.clone(),
                vec!["GROUP_READ_ONLY".into()],
            )]),
            ..NewOrgUserRequest::default()
        })
        .expect("alice");
    (m, second)
}

fn roles_of(m: &Mount, username: &str) -> Roles {
    let inventory = m.sim.inventory();
    let user = inventory
        .org_users
        .iter()
        .find(|u| u.username == username)
        .expect("user");
    let mut org = user.org_roles.clone();
    org.sort();
    let mut projects = user.project_roles.clone();
    for roles in projects.values_mut() {
        roles.sort();
    }
    (org, projects)
}

async fn role(m: &Mount, name: &str, body: Value) {
    let mut body = body;
    body["credential_type"] = json!("user_access");
    m.ok(Operation::Update, &format!("roles/{name}"), body)
        .await;
}

async fn grant(m: &Mount, role: &str, username: &str) -> (Value, Secret) {
    let resp = m
        .ok(
            Operation::Update,
            &format!("creds/{role}"),
            json!({"username": username}),
        )
        .await
        .expect("grant");
    (
        Value::Object(data(&resp).clone()),
        resp.secret.expect("lease"),
    )
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn overlapping_grants_keep_what_the_other_needs_and_restore_the_original() {
    let (m, second) = setup().await;
    let project = m.sim.project_id.clone();
    let original = roles_of(&m, ALICE);
    role(
        &m,
        "oncall",
        json!({"organization_id": m.sim.org_id, "project_ids": [project, second],
               "roles": "ORG_BILLING_ADMIN", "project_roles": "GROUP_OWNER",
               "allowed_users": "*@example.com", "ttl": "1h"}),
    )
    .await;
    role(
        &m,
        "reader",
        json!({"project_id": project, "project_roles": "GROUP_OWNER,GROUP_DATA_ACCESS_READ_ONLY",
               "allowed_users": ALICE}),
    )
    .await;

    let (answer, first) = grant(&m, "oncall", ALICE).await;
    assert_eq!(answer["username"], ALICE);
    assert_eq!(answer["org_roles"], json!(["ORG_BILLING_ADMIN"]));
    assert_eq!(answer["project_roles"][&second], json!(["GROUP_OWNER"]));
    assert!(answer["expires_at"].as_str().is_some_and(|t| !t.is_empty()));
    let (org, projects) = roles_of(&m, ALICE);
    assert_eq!(org, sorted(&["ORG_BILLING_ADMIN", "ORG_MEMBER"]));
    assert_eq!(
        projects[&project],
        sorted(&["GROUP_OWNER", "GROUP_READ_ONLY"])
    );
    assert_eq!(
        projects[&second],
        sorted(&["GROUP_OWNER"]),
        "added to the second project"
    );

    let (_, other) = grant(&m, "reader", ALICE).await;
    assert_eq!(
        roles_of(&m, ALICE).1[&project],
        sorted(&[
            "GROUP_DATA_ACCESS_READ_ONLY",
            "GROUP_OWNER",
            "GROUP_READ_ONLY"
        ])
    );

    // The first ends: GROUP_OWNER in the project stays (the other needs it), the rest goes.
    m.revoke(first.clone()).await.expect("revoke");
    let (org, projects) = roles_of(&m, ALICE);
    assert_eq!(org, sorted(&["ORG_MEMBER"]));
    assert_eq!(
        projects[&project],
        sorted(&[
            "GROUP_DATA_ACCESS_READ_ONLY",
            "GROUP_OWNER",
            "GROUP_READ_ONLY"
        ])
    );
    assert!(
        !projects.contains_key(&second),
        "removed from the project it was added to"
    );
    // A retried revocation changes nothing.
    m.revoke(first).await.expect("revoke again");

    // The second ends: exactly the original roles, GROUP_READ_ONLY (held before) kept.
    m.revoke(other).await.expect("revoke");
    assert_eq!(roles_of(&m, ALICE), original);
    assert!(
        m.storage_keys("user_access/").await.is_empty(),
        "no ledger left"
    );
}

#[tokio::test]
async fn who_may_be_granted() {
    let (m, _) = setup().await;
    let project = m.sim.project_id.clone();
    m.sim
        .add_org_user(NewOrgUserRequest {
            username: "invited@example.com".into(),
            status: Some(atlas_sim::MembershipStatus::Pending),
            ..NewOrgUserRequest::default()
        })
        .expect("invited");
    role(
        &m,
        "owner",
        json!({"project_id": project, "project_roles": "GROUP_OWNER", "allowed_users": "*@example.com,ops-?@corp.example"}),
    )
    .await;
    for (username, says) in [
        (
            "mallory@evil.example",
            "is not allowed by this role: allowed_users is *@example.com, ops-?@corp.example",
        ),
        ("bob@example.com", "is not a member of organization"),
        ("invited@example.com", "has not accepted their invitation"),
    ] {
        let msg = m
            .user_error(
                Operation::Update,
                "creds/owner",
                json!({"username": username}),
            )
            .await;
        assert!(msg.contains(says), "{username}: {msg}");
    }
    let msg = m
        .user_error(Operation::Update, "creds/owner", json!({}))
        .await;
    assert!(msg.contains("username is required"), "{msg}");
    assert!(
        m.sim
            .inventory()
            .org_users
            .iter()
            .all(|u| u.username != "bob@example.com"),
        "nobody invited"
    );

    // Bad roles: each a 400 naming the field.
    for (body, says) in [
        (
            json!({"project_id": project, "project_roles": "GROUP_OWNER"}),
            "allowed_users or username_from_entity is required",
        ),
        (
            json!({"project_id": project, "allowed_users": "*"}),
            "project_roles is required",
        ),
        (
            json!({"organization_id": m.sim.org_id, "roles": "GROUP_OWNER", "allowed_users": "*"}),
            "roles: \"GROUP_OWNER\" is not an Atlas organization role",
        ),
        (
            json!({"project_id": project, "project_roles": "GROUP_OWNER", "allowed_users": "*", "ip_addresses": "192.0.2.1"}),
            "ip_addresses and cidr_blocks are for credentials",
        ),
    ] {
        let mut body = body;
        body["credential_type"] = json!("user_access");
        let msg = m.user_error(Operation::Update, "roles/bad", body).await;
        assert!(msg.contains(says), "{msg}");
    }
    let msg = m
        .user_error(
            Operation::Update,
            "roles/key",
            json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", "allowed_users": "*"}),
        )
        .await;
    assert!(msg.contains("for user_access roles only"), "{msg}");
}

#[tokio::test]
async fn people_grant_themselves_from_their_entity() {
    let (m, _) = setup().await;
    let project = m.sim.project_id.clone();
    role(
        &m,
        "self",
        json!({"project_id": project, "project_roles": "GROUP_OWNER", "username_from_entity": "email"}),
    )
    .await;
    let system = Arc::new(StaticSystemView {
        entities: BTreeMap::from([
            (
                "ent-alice".to_owned(),
                BTreeMap::from([("email".to_owned(), ALICE.to_owned())]),
            ),
            ("ent-none".to_owned(), BTreeMap::new()),
        ]),
        ..StaticSystemView::default()
    });
    let call = |entity: &str, body: Value| {
        let mut req = m.request(Operation::Update, "creds/self", body, None);
        req.entity_id = entity.to_owned();
        req.system = system.clone();
        m.backend.handle_request(req)
    };
    let resp = call("ent-alice", json!({}))
        .await
        .expect("grant")
        .expect("lease");
    assert_eq!(data(&resp)["username"], ALICE);
    assert!(roles_of(&m, ALICE).1[&project].contains(&"GROUP_OWNER".to_owned()));
    for (entity, body, says) in [
        (
            "ent-alice",
            json!({"username": "bob@example.com"}),
            "grants only the requester's own access",
        ),
        ("ent-none", json!({}), "has no \"email\" metadata"),
        ("", json!({}), "has no entity"),
    ] {
        let err = call(entity, body).await.expect_err("refused");
        assert!(
            err.is_user() && err.to_string().contains(says),
            "{entity}: {err}"
        );
    }
    m.revoke(resp.secret.expect("lease")).await.expect("revoke");
    assert_eq!(
        roles_of(&m, ALICE).1[&project],
        sorted(&["GROUP_READ_ONLY"])
    );
}

/// The Atlas calls of a grant and of a revocation, as fault paths.
const STEPS: [(&str, &str); 9] = [
    ("GET", "/orgs/[^/]+/users$"),
    ("GET", "/orgs/[^/]+/users/[^/:]+$"),
    ("GET", "/groups/[^/]+/users/[^/:]+$"),
    ("POST", "/groups/[^/]+/users$"),
    ("POST", "/groups/[^/]+/users/[^/]+:addRole$"),
    ("POST", "/orgs/[^/]+/users/[^/]+:addRole$"),
    ("POST", "/groups/[^/]+/users/[^/]+:removeRole$"),
    ("POST", "/orgs/[^/]+/users/[^/]+:removeRole$"),
    ("DELETE", "/groups/[^/]+/users/[^/:]+$"),
];

#[tokio::test]
async fn a_fault_at_any_step_leaves_no_role_beyond_a_live_lease() {
    let (m, second) = setup().await;
    let project = m.sim.project_id.clone();
    let original = roles_of(&m, ALICE);
    role(
        &m,
        "oncall",
        json!({"organization_id": m.sim.org_id, "project_ids": [project, second],
               "roles": "ORG_BILLING_ADMIN", "project_roles": "GROUP_OWNER", "allowed_users": "*"}),
    )
    .await;
    for (method, path) in STEPS {
        for status in [500, 400] {
            let fault = m
                .sim
                .add_fault(FaultRule::status(Some(method), path, status))
                .expect("fault");
            let granted = m
                .call(
                    Operation::Update,
                    "creds/oncall",
                    json!({"username": ALICE}),
                )
                .await;
            assert!(m.sim.remove_fault(fault));
            let mut hit = granted.is_err();
            if let Ok(Some(resp)) = granted {
                // The fault hit a revocation-only call: revoke with it in place, then without.
                let secret = resp.secret.expect("lease");
                let fault = m
                    .sim
                    .add_fault(FaultRule::status(Some(method), path, status))
                    .expect("fault");
                let refused = m.revoke(secret.clone()).await;
                assert!(m.sim.remove_fault(fault));
                hit = refused.is_err();
                if hit {
                    m.revoke(secret).await.expect("revoke once Atlas is back");
                }
            }
            assert!(
                hit,
                "{method} {path} {status}: the fault hit neither the grant nor its revocation"
            );
            m.backend.tasks.idle().await;
            m.rollback_now().await.expect("rollback");
            assert_eq!(roles_of(&m, ALICE), original, "{method} {path} {status}");
            assert!(
                m.wal_entries().await.is_empty(),
                "{method} {path} {status}: WAL left"
            );
            assert!(
                m.storage_keys("user_access/").await.is_empty(),
                "{method} {path} {status}: ledger left"
            );
        }
    }
}

#[tokio::test]
async fn a_grant_abandoned_at_any_step_leaves_no_role_beyond_a_live_lease() {
    let (m, second) = setup().await;
    let project = m.sim.project_id.clone();
    let original = roles_of(&m, ALICE);
    role(
        &m,
        "oncall",
        json!({"organization_id": m.sim.org_id, "project_ids": [project, second],
               "roles": "ORG_BILLING_ADMIN", "project_roles": "GROUP_OWNER", "allowed_users": "*"}),
    )
    .await;
    for (method, path) in STEPS {
        // Atlas is slow at this step; the client hangs up while it works.
        let fault = m
            .sim
            .add_fault(FaultRule::latency(
                Some(method),
                path,
                Duration::from_millis(300),
            ))
            .expect("fault");
        let request = m.call(
            Operation::Update,
            "creds/oncall",
            json!({"username": ALICE}),
        );
        let abandoned = tokio::time::timeout(Duration::from_millis(150), request).await;
        assert!(m.sim.remove_fault(fault));
        if let Ok(Ok(Some(resp))) = abandoned {
            // The step is not part of a grant (a revocation's): the lease was received.
            m.revoke(resp.secret.expect("lease")).await.expect("revoke");
        }
        m.backend.tasks.idle().await;
        m.rollback_now().await.expect("rollback");
        assert_eq!(
            roles_of(&m, ALICE),
            original,
            "abandoned at {method} {path}"
        );
        assert!(
            m.wal_entries().await.is_empty(),
            "{method} {path}: WAL left"
        );
        assert!(
            m.storage_keys("user_access/").await.is_empty(),
            "{method} {path}: ledger left"
        );
    }
}
