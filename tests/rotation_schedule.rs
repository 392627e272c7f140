//! Automated rotation of the configured credential: the schedule fields and
//! their checks, a cron schedule and its window kept by the plugin on Vault's
//! periodic tick (Community Edition, OpenBao), and the schedule handed to
//! Vault Enterprise's rotation manager, which sends the `rotate` operation.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::{data, Login, Mount};
use vault_mongodbatlas::engine::Settings;
use vault_mongodbatlas::vault::framework::{BackendError, Operation, Response};
use vault_mongodbatlas::vault::storage::{Storage, StorageEntry};
use vault_mongodbatlas::vault::system_view::{RotationJob, StaticSystemView};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A mount with role `probe`; the test-only knob lets scheduled rotations
/// come closer than an hour apart.
async fn mount(login: Login) -> Mount {
    let settings = Settings {
        min_rotation_period: Duration::from_secs(1),
        ..Settings::default()
    };
    let m = Mount::with_settings(settings, login).await;
    let org = m.sim.org_id.clone();
    m.ok(
        Operation::Update,
        "roles/probe",
        json!({"organization_id": org, "roles": "ORG_MEMBER"}),
    )
    .await;
    m
}

async fn read_config(m: &Mount) -> serde_json::Map<String, Value> {
    let resp = m
        .ok(Operation::Read, "config", json!({}))
        .await
        .expect("config");
    data(&resp).clone()
}

/// The stored config, edited in place (as if written that long ago).
async fn edit_stored_config(m: &Mount, edit: impl FnOnce(&mut Value)) {
    let entry = m.storage.get("config").await.expect("get").expect("config");
    let mut stored: Value = serde_json::from_slice(&entry.value).expect("json");
    edit(&mut stored);
    m.storage
        .put(StorageEntry {
            value: serde_json::to_vec(&stored).expect("json"),
            ..entry
        })
        .await
        .expect("put");
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A daily cron schedule whose turn is `ago` before now.
fn daily_turn(ago: Duration) -> String {
    let turn = time::OffsetDateTime::from(SystemTime::now() - ago);
    format!("{} {} * * *", turn.minute(), turn.hour())
}

/// Runs one tick; whether it rotated the login (the stored public key or secret changed).
async fn tick_rotates(m: &Mount) -> bool {
    let before = m.storage.get("config").await.expect("get").expect("config");
    m.rollback_now().await.expect("tick");
    m.backend.tasks.idle().await;
    let after = m.storage.get("config").await.expect("get").expect("config");
    let login = |entry: &StorageEntry| {
        let v: Value = serde_json::from_slice(&entry.value).expect("json");
        (v["public_key"].clone(), v["client_secret"].clone())
    };
    login(&before) != login(&after)
}

#[tokio::test]
async fn rotation_settings_are_checked_and_named() {
    let m = Mount::with_org_role(Login::ApiKey, "probe").await;
    for (fields, says) in [
        (
            json!({"rotation_period": "10m"}),
            "rotation_period (600s) is shorter than 3600s",
        ),
        (
            json!({"rotation_schedule": "0 3 * *"}),
            "rotation_schedule \"0 3 * *\" has 4 fields",
        ),
        (json!({"rotation_schedule": "0 3 * * MON#2"}), "day-of-week"),
        (json!({"rotation_schedule": "@daily"}), "rotation_schedule"),
        (
            json!({"rotation_schedule": "0 24 * * *"}),
            "not a cron expression",
        ),
        (
            json!({"rotation_schedule": "0 3 * * *", "rotation_window": "30m"}),
            "rotation_window (1800s) is shorter than 3600s",
        ),
        (
            json!({"rotation_period": "2h", "rotation_window": "2h"}),
            "rotation_window applies to rotation_schedule only",
        ),
        (
            json!({"rotation_period": "2h", "rotation_schedule": "0 3 * * *"}),
            "rotation_period and rotation_schedule were both given",
        ),
    ] {
        let mut config = m.login(Login::ApiKey);
        config
            .as_object_mut()
            .expect("object")
            .extend(fields.as_object().expect("object").clone());
        let msg = m.user_error(Operation::Update, "config", config).await;
        assert!(msg.contains(says), "{fields}: {msg}");
    }
    // A good schedule is kept, and a read says who keeps it.
    let mut config = m.login(Login::ApiKey);
    config["rotation_schedule"] = json!("0 3 * * SUN");
    config["rotation_window"] = json!("2h");
    m.ok(Operation::Update, "config", config).await;
    let shown = read_config(&m).await;
    assert_eq!(shown["rotation_schedule"], "0 3 * * SUN");
    assert_eq!(shown["rotation_window"], 7200);
    assert_eq!(shown["rotation_period"], 0);
    assert_eq!(shown["rotation_managed_by"], "plugin", "{shown:?}");
    assert!(
        shown["next_rotation"]
            .as_str()
            .is_some_and(|t| t.ends_with("T03:00:00Z")),
        "{shown:?}"
    );
}

#[tokio::test]
async fn a_cron_schedule_rotates_once_per_turn_inside_its_window() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = mount(login).await;
        // Today's turn came 10 minutes ago; its 1 h window is open.
        let mut config = m.login(login);
        config["rotation_schedule"] = json!(daily_turn(Duration::from_secs(600)));
        config["rotation_window"] = json!("1h");
        m.ok(Operation::Update, "config", config).await;
        assert!(
            !tick_rotates(&m).await,
            "{login:?}: the config was written after the turn"
        );
        // As if the config had been written three days ago.
        edit_stored_config(&m, |c| {
            c["last_rotated"] = json!(rfc3339(SystemTime::now() - 3 * DAY));
        })
        .await;
        assert!(tick_rotates(&m).await, "{login:?}: the turn rotates");
        assert!(!tick_rotates(&m).await, "{login:?}: one rotation per turn");
        let shown = read_config(&m).await;
        assert!(
            shown["next_rotation"].as_str() > shown["last_rotated"].as_str(),
            "{login:?}: {shown:?}"
        );
        m.ok(Operation::Read, "creds/probe", json!({})).await;
    }
}

#[tokio::test]
async fn a_turn_missed_by_more_than_its_window_waits_for_the_next() {
    let m = mount(Login::ApiKey).await;
    let mut config = m.login(Login::ApiKey);
    // Today's turn came 2 h ago, with a 1 h window.
    config["rotation_schedule"] = json!(daily_turn(Duration::from_secs(7200)));
    config["rotation_window"] = json!("1h");
    m.ok(Operation::Update, "config", config).await;
    edit_stored_config(&m, |c| {
        c["last_rotated"] = json!(rfc3339(SystemTime::now() - 3 * DAY));
    })
    .await;
    assert!(!tick_rotates(&m).await, "the window closed an hour ago");
    let next = read_config(&m).await["next_rotation"]
        .as_str()
        .expect("next_rotation")
        .to_owned();
    assert!(
        next > rfc3339(SystemTime::now() + DAY - Duration::from_secs(7300)),
        "{next}"
    );
    // Without a window, the missed turn runs on the next tick.
    edit_stored_config(&m, |c| {
        c.as_object_mut().expect("object").remove("rotation_window");
    })
    .await;
    assert!(tick_rotates(&m).await);
}

/// A request that reaches Vault Enterprise's rotation manager, `jobs`.
async fn call_enterprise(
    m: &Mount,
    jobs: &Arc<Mutex<Vec<RotationJob>>>,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Option<Response>, BackendError> {
    let mut req = m.request(op, path, body, None);
    req.system = Arc::new(StaticSystemView {
        rotation_jobs: Some(jobs.clone()),
        ..StaticSystemView::default()
    });
    m.backend.handle_request(req).await
}

#[tokio::test]
async fn vault_enterprise_keeps_the_schedule_and_sends_rotate() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = mount(login).await;
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let mut config = m.login(login);
        config["rotation_schedule"] = json!("0 3 * * *");
        config["rotation_window"] = json!("2h");
        call_enterprise(&m, &jobs, Operation::Update, "config", config.clone())
            .await
            .expect("config write");
        let registered = jobs.lock().unwrap().clone();
        assert_eq!(
            registered,
            vec![RotationJob {
                name: "mongodbatlas-root-credential".into(),
                mount_point: "mongodbatlas/".into(),
                path: "config".into(),
                schedule: "0 3 * * *".into(),
                window: Duration::from_secs(7200),
                period: Duration::ZERO,
            }],
            "{login:?}"
        );
        assert_eq!(read_config(&m).await["rotation_managed_by"], "vault");

        // A turn long missed is Vault's to run: the tick leaves it alone.
        edit_stored_config(&m, |c| {
            c["last_rotated"] = json!(rfc3339(SystemTime::now() - 3 * DAY));
            c.as_object_mut().expect("object").remove("rotation_window");
        })
        .await;
        assert!(
            !tick_rotates(&m).await,
            "{login:?}: Vault keeps the schedule"
        );

        // Vault's rotation manager sends `rotate` on the job's path.
        let before = m.storage.get("config").await.expect("get").expect("config");
        let answer = call_enterprise(&m, &jobs, Operation::Rotate, "config", json!({}))
            .await
            .expect("rotate");
        assert!(answer.is_some_and(|r| r.data.is_none() && r.warnings.is_empty()));
        let after = m.storage.get("config").await.expect("get").expect("config");
        assert_ne!(before.value, after.value, "{login:?}: rotated");
        m.rollback_now().await.expect("rollback");
        assert!(m.wal_entries().await.is_empty());
        m.ok(Operation::Read, "creds/probe", json!({})).await;

        // Disabling automated rotation withdraws the job.
        config["disable_automated_rotation"] = json!(true);
        call_enterprise(&m, &jobs, Operation::Update, "config", config)
            .await
            .expect("config write");
        assert!(jobs.lock().unwrap().is_empty(), "{login:?}: job withdrawn");
        assert_eq!(read_config(&m).await["rotation_managed_by"], "");
    }
}

#[tokio::test]
async fn rotate_without_a_config_is_a_clear_error() {
    let m = Mount::new().await;
    m.storage.delete("config").await.expect("delete");
    let err = m
        .call(Operation::Rotate, "config", json!({}))
        .await
        .expect_err("no config");
    assert!(err.to_string().contains("write config first"), "{err}");
}
