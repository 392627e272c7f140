//! Roles across several projects (`project_ids`): an organization API key or
//! service account given `project_roles` in every listed project, all or
//! nothing, and gone from every project when its lease is revoked.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use atlas_sim::FaultRule;
use serde_json::{json, Value};
use support::{data, Login, Mount};
use vault_mongodbatlas::vault::framework::Operation;
use vault_mongodbatlas::vault::storage::Storage;

/// Three new projects in the simulator's organization.
fn three_projects(m: &Mount) -> Vec<String> {
    (0..3)
        .map(|i| {
            m.sim
                .create_project(None, None, Some(format!("multi-{i}")))
                .expect("project")
                .id
        })
        .collect()
}

/// The projects where the issued credential (by public key or client id) holds `roles`.
fn projects_holding(m: &Mount, issued: &Value) -> Vec<(String, Vec<String>)> {
    let inventory = m.sim.inventory();
    let mut held: Vec<(String, Vec<String>)> = if let Some(pk) = issued["public_key"].as_str() {
        let key = inventory
            .key_by_public_key(pk)
            .expect("issued key in Atlas");
        let mut by_project = std::collections::BTreeMap::<String, Vec<String>>::new();
        for role in &key.roles {
            if let Some(group) = &role.group_id {
                by_project
                    .entry(group.clone())
                    .or_default()
                    .push(role.role_name.clone());
            }
        }
        by_project.into_iter().collect()
    } else {
        let id = issued["client_id"].as_str().expect("client_id");
        let account = inventory.service_account(id).expect("issued account");
        account.project_roles.clone().into_iter().collect()
    };
    for (_, roles) in &mut held {
        roles.sort();
    }
    held.sort();
    held
}

fn multi_project_role(m: &Mount, kind: &str, projects: &[String]) -> Value {
    json!({
        "credential_type": kind,
        "organization_id": m.sim.org_id,
        "roles": "ORG_MEMBER",
        "project_ids": projects.join(","),
        "project_roles": ["GROUP_READ_ONLY", "GROUP_DATA_ACCESS_READ_ONLY"],
    })
}

#[tokio::test]
async fn both_credential_types_join_every_listed_project_and_leave_them_all() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = Mount::logged_in(login).await;
        let projects = three_projects(&m);
        for kind in ["api_key", "service_account"] {
            m.ok(
                Operation::Update,
                "roles/multi",
                multi_project_role(&m, kind, &projects),
            )
            .await;
            let resp = m.issue("multi").await;
            let issued = Value::Object(data(&resp).clone());
            let mut want: Vec<(String, Vec<String>)> = projects
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        vec![
                            "GROUP_DATA_ACCESS_READ_ONLY".into(),
                            "GROUP_READ_ONLY".into(),
                        ],
                    )
                })
                .collect();
            want.sort();
            assert_eq!(projects_holding(&m, &issued), want, "{login:?} {kind}");
            m.revoke(resp.secret.expect("lease")).await.expect("revoke");
            assert_eq!(
                m.issued_keys() + m.issued_service_accounts(),
                0,
                "{login:?} {kind}: gone"
            );
            let inventory = m.sim.inventory();
            for project in &projects {
                assert!(
                    !inventory.api_keys.iter().any(|k| !k.seeded
                        && k.roles
                            .iter()
                            .any(|r| r.group_id.as_deref() == Some(project))),
                    "{login:?} {kind}: a key left in {project}"
                );
                assert!(
                    !inventory
                        .service_accounts
                        .iter()
                        .any(|a| !a.seeded && a.project_roles.contains_key(project)),
                    "{login:?} {kind}: an account left in {project}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_failed_third_assignment_deletes_the_credential_before_answering() {
    let m = Mount::new().await;
    let projects = three_projects(&m);
    for (kind, path) in [
        (
            "api_key",
            format!("^/api/atlas/v2/groups/{}/apiKeys/", projects[2]),
        ),
        (
            "service_account",
            format!("^/api/atlas/v2/groups/{}/serviceAccounts/", projects[2]),
        ),
    ] {
        m.ok(
            Operation::Update,
            "roles/multi",
            multi_project_role(&m, kind, &projects),
        )
        .await;
        let fault = m
            .sim
            .add_fault(FaultRule::status(None, &path, 400))
            .expect("fault");
        let err = m
            .call(Operation::Read, "creds/multi", json!({}))
            .await
            .expect_err("the third assignment fails");
        assert!(err.is_user(), "{kind}: Atlas' 400 is the caller's: {err}");
        assert!(m.sim.remove_fault(fault));
        assert_eq!(
            m.issued_keys() + m.issued_service_accounts(),
            0,
            "{kind}: deleted before the error returned"
        );
        assert!(
            m.wal_entries().await.is_empty(),
            "{kind}: nothing left to roll back"
        );
    }
}

#[tokio::test]
async fn project_ids_are_checked_and_stored_only_when_used() {
    let m = Mount::new().await;
    let org = m.sim.org_id.clone();
    let projects = three_projects(&m);
    let base =
        json!({"organization_id": org, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"});
    let with = |extra: Value| {
        let mut role = base.clone();
        role.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        role
    };
    for (extra, says) in [
        (
            json!({"project_ids": [projects[0], projects[1]], "project_id": projects[2]}),
            "project_id and project_ids were both given",
        ),
        (
            json!({"project_ids": [projects[0], projects[0].to_uppercase()]}),
            "is listed twice",
        ),
        (
            json!({"project_ids": format!("{},nope", projects[0])}),
            "project_ids: \"nope\" is not an Atlas project id",
        ),
        (
            json!({"project_ids": [projects[0]], "organization_id": ""}),
            "project_ids needs organization_id",
        ),
        (
            json!({"project_ids": [projects[0]], "project_roles": ""}),
            "project_roles is required",
        ),
    ] {
        let msg = m
            .user_error(Operation::Update, "roles/bad", with(extra.clone()))
            .await;
        assert!(msg.contains(says), "{extra}: {msg}");
    }

    // The old fields: stored exactly as the official plugin stores them, read without project_ids.
    m.ok(
        Operation::Update,
        "roles/one",
        with(json!({"project_id": projects[0]})),
    )
    .await;
    let stored: Value = serde_json::from_slice(
        &m.storage
            .get("roles/one")
            .await
            .expect("get")
            .expect("role")
            .value,
    )
    .expect("json");
    assert!(stored.get("project_ids").is_none(), "{stored}");
    let read = m
        .ok(Operation::Read, "roles/one", json!({}))
        .await
        .expect("role");
    assert!(!data(&read).contains_key("project_ids"));

    // The new field, as a JSON array: stored and read back.
    m.ok(
        Operation::Update,
        "roles/many",
        with(json!({"project_ids": projects})),
    )
    .await;
    let stored: Value = serde_json::from_slice(
        &m.storage
            .get("roles/many")
            .await
            .expect("get")
            .expect("role")
            .value,
    )
    .expect("json");
    assert_eq!(stored["project_ids"], json!(projects));
    assert_eq!(stored["project_id"], "");
    let read = m
        .ok(Operation::Read, "roles/many", json!({}))
        .await
        .expect("role");
    assert_eq!(data(&read)["project_ids"], json!(projects));
    // Moving a one-project role to several: clear project_id in the same write.
    m.ok(
        Operation::Update,
        "roles/one",
        json!({"project_id": "", "project_ids": [projects[1], projects[2]]}),
    )
    .await;
}
