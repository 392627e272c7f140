//! Integration tests for MongoDB Cloud users (people) in the Atlas simulator: organization
//! users, project membership and roles (version 2025-02-19), invitations for non-members,
//! the retired (sunset) user endpoints, project creation, the admin API for members, the
//! inventory, permissions and fault rules. Clients authenticate with bearer tokens.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use atlas_sim::{
    FaultRule, MembershipStatus, NewOrgUserRequest, NewServiceAccountRequest, SimConfig, SimHandle,
    Simulator,
};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const USERS: &str = "application/vnd.atlas.2025-02-19+json";
const V2: &str = "application/vnd.atlas.2023-01-01+json";

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        self
    }

    #[track_caller]
    fn refused(self, status: u16, code: &str) -> Self {
        assert_eq!(
            (self.status.as_u16(), self.code().as_str()),
            (status, code),
            "{}",
            self.text
        );
        self
    }
}

/// A bearer-token client of one simulator.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn new(sim: &SimHandle, client_id: &str, secret: &str) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        let resp = http
            .post(format!("{}/api/oauth/token", sim.base_url))
            .header("Authorization", format!("Basic {basic}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            http,
            base: sim.base_url.clone(),
            token,
        }
    }

    async fn owner(sim: &SimHandle) -> Self {
        Self::new(sim, &sim.sa_client_id, &sim.sa_client_secret).await
    }

    async fn call(&self, method: Method, path: &str, version: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}/api/atlas/v2{path}", self.base))
            .header("Accept", version)
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(body) = body {
            req = req.header("Content-Type", version).body(body.to_string());
        }
        let resp = req.send().await.expect("request failed");
        Resp {
            status: resp.status(),
            content_type: resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            text: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, USERS, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, USERS, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, USERS, None).await
    }
}

async fn start() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

fn member(sim: &SimHandle, username: &str, org_roles: &[&str]) -> String {
    sim.add_org_user(NewOrgUserRequest {
        username: username.into(),
        org_roles: org_roles.iter().map(|r| (*r).to_owned()).collect(),
        ..NewOrgUserRequest::default()
    })
    .unwrap()
    .id
}

fn roles(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn organization_users_are_listed_filtered_and_read() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let org = sim.org_id.clone();
    let alice = member(&sim, "alice@example.com", &["ORG_MEMBER"]);
    member(&sim, "bob@example.com", &["ORG_READ_ONLY"]);

    let list = c.get(&format!("/orgs/{org}/users")).await.expect(200);
    assert!(
        list.content_type.starts_with(USERS),
        "{}",
        list.content_type
    );
    let list = list.json();
    assert_eq!(list["totalCount"], 2);
    let found = c
        .get(&format!("/orgs/{org}/users?username=ALICE%40example.com"))
        .await
        .expect(200)
        .json();
    assert_eq!(found["results"].as_array().unwrap().len(), 1);
    let user = &found["results"][0];
    assert_eq!(user["id"], alice.as_str());
    assert_eq!(user["orgMembershipStatus"], "ACTIVE");
    assert_eq!(user["roles"]["orgRoles"], json!(["ORG_MEMBER"]));
    assert!(user["firstName"].is_string() && user["createdAt"].is_string());

    // Filters survive pagination.
    let page = c
        .get(&format!(
            "/orgs/{org}/users?username=alice%40example.com&itemsPerPage=1"
        ))
        .await
        .expect(200)
        .json();
    let selfie = page["links"][0]["href"].as_str().unwrap();
    assert!(selfie.contains("username=alice%40example.com"), "{selfie}");

    let one = c
        .get(&format!("/orgs/{org}/users/{alice}"))
        .await
        .expect(200)
        .json();
    assert_eq!(one["username"], "alice@example.com");
    c.get(&format!("/orgs/{org}/users/0123456789abcdef01234567"))
        .await
        .refused(404, "USER_NOT_FOUND");
    c.get(&format!("/orgs/{org}/users/alice"))
        .await
        .refused(400, "PATH_PARAM_PARSE_ERROR");
    c.get(&format!("/orgs/{org}/users?username=not-an-email"))
        .await
        .refused(400, "INVALID_ATTRIBUTE");
    c.get("/orgs/0123456789abcdef01234567/users")
        .await
        .refused(404, "ORG_NOT_FOUND");
}

#[tokio::test]
async fn project_membership_and_roles_change_one_role_at_a_time() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let group = sim.project_id.clone();
    let alice = member(&sim, "alice@example.com", &["ORG_MEMBER"]);
    let users = format!("/groups/{group}/users");

    let added = c
        .post(
            &users,
            json!({"username":"alice@example.com","roles":["GROUP_READ_ONLY"]}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(added["id"], alice.as_str());
    assert_eq!(added["orgMembershipStatus"], "ACTIVE");
    assert_eq!(added["roles"], json!(["GROUP_READ_ONLY"]));
    c.post(
        &users,
        json!({"username":"alice@example.com","roles":["GROUP_OWNER"]}),
    )
    .await
    .refused(409, "USER_ALREADY_IN_GROUP");

    let one = format!("{users}/{alice}");
    let got = c.get(&one).await.expect(200).json();
    assert_eq!(got["roles"], json!(["GROUP_READ_ONLY"]));
    let listed = c
        .get(&format!("{users}?username=alice%40example.com"))
        .await
        .expect(200)
        .json();
    assert_eq!(listed["results"][0]["id"], alice.as_str());

    let after = c
        .post(
            &format!("{one}:addRole"),
            json!({"groupRole":"GROUP_DATA_ACCESS_READ_ONLY"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        roles(&after["roles"]),
        ["GROUP_DATA_ACCESS_READ_ONLY", "GROUP_READ_ONLY"]
    );
    c.post(
        &format!("{one}:addRole"),
        json!({"groupRole":"GROUP_READ_ONLY"}),
    )
    .await
    .refused(409, "USER_ALREADY_HAS_ROLE");
    c.post(&format!("{one}:addRole"), json!({"groupRole":"ORG_OWNER"}))
        .await
        .refused(400, "INVALID_ROLE_FOR_GROUP");
    c.post(
        &format!("{one}:removeRole"),
        json!({"groupRole":"GROUP_READ_ONLY"}),
    )
    .await
    .expect(200);
    c.post(
        &format!("{one}:removeRole"),
        json!({"groupRole":"GROUP_READ_ONLY"}),
    )
    .await
    .refused(409, "USER_DOES_NOT_HAVE_ROLE");
    c.post(
        &format!("{one}:removeRole"),
        json!({"groupRole":"GROUP_DATA_ACCESS_READ_ONLY"}),
    )
    .await
    .refused(400, "CANNOT_REMOVE_LAST_ROLE");
    // The colon may come percent-encoded.
    c.post(
        &format!("{one}%3AaddRole"),
        json!({"groupRole":"GROUP_OWNER"}),
    )
    .await
    .expect(200);
    assert_eq!(
        sim.inventory().project_members(&group)["alice@example.com"],
        ["GROUP_DATA_ACCESS_READ_ONLY", "GROUP_OWNER"]
    );

    c.delete(&one).await.expect(204);
    c.delete(&one).await.refused(404, "USER_NOT_IN_GROUP");
    c.get(&one).await.refused(404, "USER_NOT_IN_GROUP");
    c.post(
        &format!("{one}:addRole"),
        json!({"groupRole":"GROUP_OWNER"}),
    )
    .await
    .refused(404, "USER_NOT_IN_GROUP");
    assert!(sim.inventory().project_members(&group).is_empty());
    let org_view = sim.inventory();
    let alice_org = org_view.org_user(&sim.org_id, "alice@example.com").unwrap();
    assert_eq!(
        alice_org.status,
        MembershipStatus::Active,
        "still an org member"
    );

    c.get(&format!("/groups/0123456789abcdef01234567/users/{alice}"))
        .await
        .refused(404, "GROUP_NOT_FOUND");
    c.get(&format!("{users}/0123456789abcdef01234567"))
        .await
        .refused(404, "USER_NOT_FOUND");
}

#[tokio::test]
async fn non_members_are_invited_as_the_spec_says() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let group = sim.project_id.clone();
    let invited = c
        .post(
            &format!("/groups/{group}/users"),
            json!({"username":"carol@example.com","roles":["GROUP_READ_ONLY"]}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(invited["orgMembershipStatus"], "PENDING");
    assert!(invited["invitationCreatedAt"].is_string());
    assert!(invited["inviterUsername"].as_str().unwrap().contains('@'));
    assert!(invited.get("firstName").is_none());
    let inv = sim.inventory();
    let carol = inv.org_user(&sim.org_id, "carol@example.com").unwrap();
    assert_eq!(carol.status, MembershipStatus::Pending);
    assert_eq!(carol.org_roles, ["ORG_MEMBER"]);
    assert!(!carol.seeded);
    // Only active users by filter.
    let active = c
        .get(&format!(
            "/groups/{group}/users?orgMembershipStatuses=ACTIVE"
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(active["totalCount"], 0);
    // The invitation is accepted (admin): active, project roles kept.
    let accepted = sim
        .add_org_user(NewOrgUserRequest {
            username: "carol@example.com".into(),
            ..NewOrgUserRequest::default()
        })
        .unwrap();
    assert_eq!(accepted.status, MembershipStatus::Active);
    assert_eq!(accepted.project_roles[&group], ["GROUP_READ_ONLY"]);
    assert!(sim.remove_org_user(&accepted.id));
    assert!(!sim.remove_org_user(&accepted.id));
    assert!(sim.inventory().org_users.is_empty());
}

#[tokio::test]
async fn organization_roles_are_added_and_removed() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let org = sim.org_id.clone();
    let dave = member(&sim, "dave@example.com", &["ORG_MEMBER"]);
    let one = format!("/orgs/{org}/users/{dave}");
    let after = c
        .post(
            &format!("{one}:addRole"),
            json!({"orgRole":"ORG_GROUP_CREATOR"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        roles(&after["roles"]["orgRoles"]),
        ["ORG_GROUP_CREATOR", "ORG_MEMBER"]
    );
    c.post(&format!("{one}:addRole"), json!({"orgRole":"ORG_MEMBER"}))
        .await
        .refused(409, "USER_ALREADY_HAS_ROLE");
    c.post(&format!("{one}:addRole"), json!({"orgRole":"GROUP_OWNER"}))
        .await
        .refused(400, "INVALID_ROLE_FOR_ORG");
    c.post(
        &format!("{one}:removeRole"),
        json!({"orgRole":"ORG_GROUP_CREATOR"}),
    )
    .await
    .expect(200);
    c.post(
        &format!("{one}:removeRole"),
        json!({"orgRole":"ORG_GROUP_CREATOR"}),
    )
    .await
    .refused(400, "USER_DOES_NOT_HAVE_ROLE");
    c.post(
        &format!("{one}:removeRole"),
        json!({"orgRole":"ORG_MEMBER"}),
    )
    .await
    .refused(400, "CANNOT_REMOVE_LAST_ROLE");
    c.post(
        &format!("/orgs/{org}/users/0123456789abcdef01234567:addRole"),
        json!({"orgRole":"ORG_MEMBER"}),
    )
    .await
    .refused(404, "USER_NOT_FOUND");
}

#[tokio::test]
async fn deprecated_user_endpoints_are_gone_after_their_sunset() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let (org, group) = (sim.org_id.clone(), sim.project_id.clone());
    let alice = member(&sim, "alice@example.com", &["ORG_MEMBER"]);
    for (method, path, version) in [
        (Method::GET, format!("/orgs/{org}/users"), V2),
        (Method::GET, format!("/groups/{group}/users"), V2),
        (Method::DELETE, format!("/groups/{group}/users/{alice}"), V2),
        (
            Method::PUT,
            format!("/groups/{group}/users/{alice}/roles"),
            V2,
        ),
        (Method::PUT, format!("/orgs/{org}/users/{alice}/roles"), V2),
        (
            Method::POST,
            format!("/groups/{group}/access"),
            "application/vnd.atlas.2023-02-01+json",
        ),
        (
            Method::GET,
            "/users/byName/alice@example.com".to_owned(),
            V2,
        ),
        (Method::GET, format!("/users/{alice}"), V2),
        (Method::POST, format!("/groups/{group}/invites"), V2),
    ] {
        let body = (method != Method::GET && method != Method::DELETE)
            .then(|| json!({"roles":["GROUP_READ_ONLY"]}));
        let resp = c.call(method.clone(), &path, version, body).await;
        assert_eq!(
            (resp.status.as_u16(), resp.code().as_str()),
            (410, "VERSION_GONE"),
            "{method} {path}: {}",
            resp.text
        );
    }
    // The new version of a retired resource does not exist either.
    c.call(
        Method::PUT,
        &format!("/groups/{group}/users/{alice}/roles"),
        USERS,
        Some(json!({})),
    )
    .await
    .refused(406, "NOT_ACCEPTABLE");
    let stats = sim.stats();
    assert!(
        stats
            .routes
            .contains_key("PUT /api/atlas/v2/groups/{groupId}/users/{userId}/roles"),
        "{:?}",
        stats.routes.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        sim.inventory().project_members(&group).len(),
        0,
        "nothing changed"
    );
}

#[tokio::test]
async fn projects_are_created_with_the_oldest_org_owner_as_owner() {
    let sim = start().await;
    let c = Client::owner(&sim).await;
    let org = sim.org_id.clone();
    member(&sim, "owner@example.com", &["ORG_OWNER"]);
    member(&sim, "later-owner@example.com", &["ORG_OWNER"]);
    let created = c
        .call(
            Method::POST,
            "/groups",
            V2,
            Some(json!({"name":"jit-demo","orgId":org})),
        )
        .await
        .expect(201)
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["orgId"], org.as_str());
    assert_eq!(created["clusterCount"], 0);
    assert_eq!(created["withDefaultAlertsSettings"], true);
    assert_eq!(
        sim.inventory().project_members(&id),
        BTreeMap::from([(
            "owner@example.com".to_owned(),
            vec!["GROUP_OWNER".to_owned()]
        )])
    );
    c.call(
        Method::POST,
        "/groups",
        V2,
        Some(json!({"name":"jit-demo","orgId":org})),
    )
    .await
    .refused(409, "GROUP_ALREADY_EXISTS");
    c.call(
        Method::POST,
        "/groups",
        V2,
        Some(json!({"name":"bad name","orgId":org})),
    )
    .await
    .refused(400, "INVALID_ATTRIBUTE");
    c.call(
        Method::POST,
        "/groups",
        V2,
        Some(json!({"name":"x","orgId":"0123456789abcdef01234567"})),
    )
    .await
    .refused(404, "ORG_NOT_FOUND");
    let listed = c
        .call(Method::GET, "/groups", V2, None)
        .await
        .expect(200)
        .json();
    assert_eq!(listed["totalCount"], 2);
    // projectOwnerId names the owner.
    let later = sim
        .inventory()
        .org_user(&org, "later-owner@example.com")
        .unwrap()
        .id
        .clone();
    let second = c
        .call(
            Method::POST,
            &format!("/groups?projectOwnerId={later}"),
            V2,
            Some(json!({"name":"jit-demo-2","orgId":org})),
        )
        .await
        .expect(201)
        .json();
    let members = sim
        .inventory()
        .project_members(second["id"].as_str().unwrap());
    assert_eq!(
        members.keys().collect::<Vec<_>>(),
        ["later-owner@example.com"]
    );
}

#[tokio::test]
async fn permissions_and_faults_apply_to_user_endpoints() {
    let sim = start().await;
    let group = sim.project_id.clone();
    let alice = member(&sim, "alice@example.com", &["ORG_MEMBER"]);
    let weak = sim
        .create_service_account(NewServiceAccountRequest {
            org_roles: vec!["ORG_MEMBER".into()],
            ..NewServiceAccountRequest::default()
        })
        .unwrap();
    let c = Client::new(&sim, &weak.client_id, &weak.client_secret).await;
    c.post(
        &format!("/groups/{group}/users"),
        json!({"username":"alice@example.com","roles":["GROUP_READ_ONLY"]}),
    )
    .await
    .refused(401, "USER_UNAUTHORIZED");
    c.call(Method::POST, "/groups", V2, Some(json!({"name":"nope"})))
        .await
        .refused(401, "USER_UNAUTHORIZED");
    c.get(&format!("/orgs/{}/users", sim.org_id))
        .await
        .expect(200);

    let owner = Client::owner(&sim).await;
    owner
        .post(
            &format!("/groups/{group}/users"),
            json!({"username":"alice@example.com","roles":["GROUP_READ_ONLY"]}),
        )
        .await
        .expect(201);
    sim.add_fault(FaultRule::status(Some("POST"), ":removeRole$", 503).times(1))
        .unwrap();
    owner
        .post(
            &format!("/groups/{group}/users/{alice}:removeRole"),
            json!({"groupRole":"GROUP_READ_ONLY"}),
        )
        .await
        .expect(503);
    assert_eq!(sim.stats().faults_fired, 1);
}
