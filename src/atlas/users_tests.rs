//! The user calls against a scripted server: paths, versions and bodies as the spec has them,
//! role changes settled by reading back after a refusal, creates never resent, and argument
//! checks before anything is sent. Fixtures are written here, not copied from Atlas.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::atlas::models::MembershipStatus;
use crate::atlas::test_server::{DigestGate, Reply, SeenRequest, TestServer};
use crate::atlas::{ClientConfig, RetryPolicy, Timeouts};

const PUBLIC: &str = "qwertyui";
const PRIVATE: &str = "7f0c6a52-1d4e-4b8a-9c3f-2e5d6a7b8c9d";
const ORG: &str = "c0ffee0123456789abcdef01";
const PROJECT: &str = "d00d00123456789abcdef012";
const USER: &str = "5eed5eed5eed5eed5eed5eed";
const USERS: &str = "application/vnd.atlas.2025-02-19+json";

fn client(server: &TestServer) -> AtlasClient {
    AtlasClient::new(
        ClientConfig::new(PUBLIC, PRIVATE)
            .with_base_url(&server.base_url)
            .with_timeouts(Timeouts {
                connect: Duration::from_secs(2),
                attempt: Duration::from_secs(2),
                overall: Duration::from_secs(10),
            })
            .with_retry(RetryPolicy {
                max_attempts: 3,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                jitter: false,
            }),
    )
    .expect("client")
}

async fn server(routes: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> TestServer {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    TestServer::start(move |request| match gate.check(request) {
        Ok(()) => routes(request),
        Err(challenge) => challenge,
    })
    .await
}

/// Requests past the Digest gate.
fn sent(server: &TestServer) -> Vec<SeenRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.header("authorization").is_some())
        .collect()
}

fn versioned(status: u16, body: serde_json::Value) -> Reply {
    Reply::json(status, body.to_string()).header(
        "content-type",
        "application/vnd.atlas.2025-02-19+json;charset=utf-8",
    )
}

fn org_user_json(username: &str, status: &str, org_roles: &[&str]) -> serde_json::Value {
    json!({
        "createdAt": "2026-01-02T03:04:05Z",
        "firstName": "Test",
        "id": USER,
        "lastName": "Person",
        "orgMembershipStatus": status,
        "roles": {
            "groupRoleAssignments": [{"groupId": PROJECT, "groupRoles": ["GROUP_READ_ONLY"]}],
            "orgRoles": org_roles,
        },
        "teamIds": [],
        "username": username,
    })
}

fn project_user_json(roles: &[&str]) -> serde_json::Value {
    json!({
        "createdAt": "2026-01-02T03:04:05Z",
        "firstName": "Test",
        "id": USER,
        "lastName": "Person",
        "orgMembershipStatus": "ACTIVE",
        "roles": roles,
        "username": "ada@example.com",
    })
}

fn page(results: Vec<serde_json::Value>) -> serde_json::Value {
    let total = results.len();
    json!({"links": [], "results": results, "totalCount": total})
}

#[tokio::test]
async fn finds_an_org_user_by_username_with_the_2025_version() {
    let server = server(|r| {
        if r.path() == format!("/api/atlas/v2/orgs/{ORG}/users") {
            versioned(
                200,
                page(vec![org_user_json(
                    "Ada@Example.com",
                    "ACTIVE",
                    &["ORG_MEMBER"],
                )]),
            )
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    })
    .await;
    let c = client(&server);
    let user = c
        .find_org_user_by_username(ORG, "ada@example.com")
        .await
        .expect("list")
        .expect("found, whatever the case");
    assert_eq!(user.id, USER);
    assert!(user.is_active());
    assert!(user.has_org_role("ORG_MEMBER"));
    assert_eq!(user.roles_in(PROJECT), ["GROUP_READ_ONLY"]);
    assert!(user.roles_in(ORG).is_empty());
    let request = &sent(&server)[0];
    assert_eq!(request.header("accept"), Some(USERS));
    assert_eq!(
        request.path_and_query,
        format!(
            "/api/atlas/v2/orgs/{ORG}/users?username=ada%40example.com&itemsPerPage=500&pageNum=1"
        )
    );
    assert!(c
        .find_org_user_by_username(ORG, "someone-else@example.com")
        .await
        .expect("list")
        .is_none());
    assert!(matches!(
        c.find_org_user_by_username(ORG, "not an email").await,
        Err(AtlasError::InvalidArgument(_))
    ));
}

#[test]
fn statuses_are_read_and_unknown_ones_kept() {
    for (wire, status) in [
        ("PENDING", MembershipStatus::Pending),
        ("INVITATION_EXPIRED", MembershipStatus::InvitationExpired),
        ("INVITATION_REJECTED", MembershipStatus::InvitationRejected),
        (
            "SOMETHING_NEW",
            MembershipStatus::Other("SOMETHING_NEW".into()),
        ),
    ] {
        let wire: WireOrgUser = serde_json::from_value(json!({
            "id": USER, "orgMembershipStatus": wire, "roles": {"orgRoles": ["ORG_MEMBER"]},
            "username": "ada@example.com", "invitationCreatedAt": "2026-01-02T03:04:05Z",
            "inviterUsername": "owner@example.com"
        }))
        .expect("parse");
        let user = OrgUser::from(wire);
        assert_eq!(user.status, status);
        assert!(!user.is_active());
    }
}

#[tokio::test]
async fn project_user_is_none_when_not_in_the_project_but_an_unknown_project_is_an_error() {
    let server = server(|r| {
        if r.path()
            .starts_with(&format!("/api/atlas/v2/groups/{PROJECT}/users/"))
        {
            Reply::error(404, "USER_NOT_IN_GROUP", "not in group")
        } else {
            Reply::error(404, "GROUP_NOT_FOUND", "no group")
        }
    })
    .await;
    let c = client(&server);
    assert_eq!(c.project_user(PROJECT, USER).await.expect("read"), None);
    let err = c
        .project_user("0123456789abcdef01234567", USER)
        .await
        .expect_err("unknown project");
    assert!(err.is_not_found() && err.error_code() == Some("GROUP_NOT_FOUND"));
    assert!(matches!(
        c.project_user(PROJECT, "../x").await,
        Err(AtlasError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn adds_a_member_to_a_project_once() {
    let server = server(|r| {
        if r.is("POST", &format!("/api/atlas/v2/groups/{PROJECT}/users")) {
            versioned(201, project_user_json(&["GROUP_READ_ONLY"]))
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    })
    .await;
    let c = client(&server);
    let roles = vec!["GROUP_READ_ONLY".to_owned()];
    let user = c
        .add_user_to_project(PROJECT, "ada@example.com", &roles)
        .await
        .expect("added");
    assert_eq!(user.id, USER);
    assert_eq!(user.status, MembershipStatus::Active);
    let request = &sent(&server)[0];
    assert_eq!(request.header("content-type"), Some(USERS));
    assert_eq!(
        request.json(),
        json!({"username": "ada@example.com", "roles": ["GROUP_READ_ONLY"]})
    );

    for (username, roles) in [
        ("ada@example.com", vec![]),
        (
            "ada@example.com",
            vec!["GROUP_OWNER".to_owned(), "GROUP_OWNER".to_owned()],
        ),
        ("ada@example.com", vec!["group owner".to_owned()]),
        ("ada", vec!["GROUP_OWNER".to_owned()]),
    ] {
        assert!(matches!(
            c.add_user_to_project(PROJECT, username, &roles).await,
            Err(AtlasError::InvalidArgument(_))
        ));
    }
    assert_eq!(sent(&server).len(), 1, "nothing sent for bad arguments");
}

#[tokio::test]
async fn a_lost_add_answer_is_uncertain_and_never_resent() {
    let posts = Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    let server = server(move |r| {
        if r.method == http::Method::POST {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        Reply::drop_connection()
    })
    .await;
    let err = client(&server)
        .add_user_to_project(PROJECT, "ada@example.com", &["GROUP_READ_ONLY".to_owned()])
        .await
        .expect_err("lost");
    match err {
        AtlasError::CreateUncertain { desc, .. } => assert_eq!(desc, "ada@example.com"),
        other => panic!("{other:?}"),
    }
    assert_eq!(posts.load(Ordering::SeqCst), 1, "never resent");
}

#[tokio::test]
async fn role_changes_use_the_colon_verbs_and_settle_refusals_by_reading_back() {
    // The user holds GROUP_READ_ONLY; Atlas refuses adding it again and removing others.
    let server = server(|r| {
        let base = format!("/api/atlas/v2/groups/{PROJECT}/users/{USER}");
        let role = || {
            r.json()["groupRole"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        if r.is("POST", &format!("{base}:addRole")) {
            if role() == "GROUP_READ_ONLY" {
                Reply::error(409, "USER_ALREADY_HAS_ROLE", "has it")
            } else if role() == "GROUP_NOPE" {
                Reply::error(400, "INVALID_ROLE_FOR_GROUP", "no such role")
            } else {
                versioned(200, project_user_json(&["GROUP_READ_ONLY", "GROUP_OWNER"]))
            }
        } else if r.is("POST", &format!("{base}:removeRole")) {
            if role() == "GROUP_READ_ONLY" {
                Reply::error(400, "CANNOT_REMOVE_LAST_ROLE", "last one")
            } else {
                Reply::error(409, "USER_DOES_NOT_HAVE_ROLE", "lacks it")
            }
        } else if r.is("GET", &base) {
            versioned(200, project_user_json(&["GROUP_READ_ONLY"]))
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    })
    .await;
    let c = client(&server);
    assert_eq!(
        c.add_project_role(PROJECT, USER, "GROUP_OWNER")
            .await
            .expect("add"),
        RoleChange::Made
    );
    let first = &sent(&server)[0];
    assert_eq!(
        first.path(),
        format!("/api/atlas/v2/groups/{PROJECT}/users/{USER}:addRole")
    );
    assert_eq!(first.header("accept"), Some(USERS));
    assert_eq!(first.json(), json!({"groupRole": "GROUP_OWNER"}));

    assert_eq!(
        c.add_project_role(PROJECT, USER, "GROUP_READ_ONLY")
            .await
            .expect("held"),
        RoleChange::AlreadyInPlace
    );
    assert_eq!(
        c.remove_project_role(PROJECT, USER, "GROUP_CLUSTER_MANAGER")
            .await
            .expect("lacked"),
        RoleChange::AlreadyInPlace
    );
    let last = c
        .remove_project_role(PROJECT, USER, "GROUP_READ_ONLY")
        .await
        .expect_err("the last role stays");
    assert_eq!(last.error_code(), Some("CANNOT_REMOVE_LAST_ROLE"));
    let invalid = c
        .add_project_role(PROJECT, USER, "GROUP_NOPE")
        .await
        .expect_err("invalid role");
    assert_eq!(invalid.error_code(), Some("INVALID_ROLE_FOR_GROUP"));
}

#[tokio::test]
async fn removing_a_role_of_someone_no_longer_in_the_project_is_settled() {
    let server = server(|r| {
        if r.path().ends_with(":removeRole") {
            Reply::error(409, "USER_DOES_NOT_HAVE_ROLE", "lacks it")
        } else {
            Reply::error(404, "USER_NOT_IN_GROUP", "gone")
        }
    })
    .await;
    let c = client(&server);
    assert_eq!(
        c.remove_project_role(PROJECT, USER, "GROUP_OWNER")
            .await
            .expect("settled"),
        RoleChange::AlreadyInPlace
    );
    let err = c
        .remove_user_from_project(PROJECT, USER)
        .await
        .expect_err("gone");
    assert!(err.is_not_found());
    let delete = sent(&server)
        .into_iter()
        .find(|r| r.method == http::Method::DELETE)
        .expect("delete sent");
    assert_eq!(
        delete.path(),
        format!("/api/atlas/v2/groups/{PROJECT}/users/{USER}")
    );
    assert_eq!(delete.header("accept"), Some(USERS));
}

#[tokio::test]
async fn organization_roles() {
    let server = server(|r| {
        let base = format!("/api/atlas/v2/orgs/{ORG}/users/{USER}");
        if r.is("POST", &format!("{base}:addRole")) {
            versioned(
                200,
                org_user_json(
                    "ada@example.com",
                    "ACTIVE",
                    &["ORG_MEMBER", "ORG_READ_ONLY"],
                ),
            )
        } else if r.is("POST", &format!("{base}:removeRole")) {
            Reply::error(400, "USER_DOES_NOT_HAVE_ROLE", "lacks it")
        } else if r.is("GET", &base) {
            versioned(
                200,
                org_user_json("ada@example.com", "ACTIVE", &["ORG_MEMBER"]),
            )
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    })
    .await;
    let c = client(&server);
    assert_eq!(
        c.add_org_role(ORG, USER, "ORG_READ_ONLY")
            .await
            .expect("add"),
        RoleChange::Made
    );
    assert_eq!(sent(&server)[0].json(), json!({"orgRole": "ORG_READ_ONLY"}));
    assert_eq!(
        c.remove_org_role(ORG, USER, "ORG_BILLING_ADMIN")
            .await
            .expect("lacked"),
        RoleChange::AlreadyInPlace
    );
    let err = c
        .remove_org_role(ORG, USER, "ORG_MEMBER")
        .await
        .expect_err("refused while held");
    assert_eq!(err.error_code(), Some("USER_DOES_NOT_HAVE_ROLE"));
    let before = sent(&server).len();
    assert!(matches!(
        c.add_org_role(ORG, USER, "GROUP_OWNER").await,
        Err(AtlasError::InvalidArgument(_))
    ));
    assert_eq!(sent(&server).len(), before);
    assert_eq!(
        c.get_org_user(ORG, USER).await.expect("get").username,
        "ada@example.com"
    );
}

#[tokio::test]
async fn creates_a_project() {
    let server = server(|r| {
        if r.is("POST", "/api/atlas/v2/groups") {
            Reply::json(
                201,
                json!({"clusterCount": 0, "created": "2026-01-02T03:04:05Z", "id": PROJECT,
                       "links": [], "name": "jit-demo", "orgId": ORG,
                       "withDefaultAlertsSettings": true})
                .to_string(),
            )
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    })
    .await;
    let c = client(&server);
    let project = c.create_project(ORG, "jit-demo").await.expect("created");
    assert_eq!(
        project,
        Project {
            id: PROJECT.into(),
            name: "jit-demo".into(),
            org_id: ORG.into()
        }
    );
    let request = &sent(&server)[0];
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.atlas.2023-01-01+json")
    );
    assert_eq!(request.json(), json!({"name": "jit-demo", "orgId": ORG}));
    for bad in ["", "a b", "a/b", &"x".repeat(65)] {
        assert!(matches!(
            c.create_project(ORG, bad).await,
            Err(AtlasError::InvalidArgument(_))
        ));
    }
    assert_eq!(sent(&server).len(), 1);
}
