//! Input the engine must refuse up front (issue 11, items 2, 3 and 7), driven
//! in-process through the engine's Backend against the Atlas simulator.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Map, Value};
use vault_mongodbatlas::engine::MongoDbAtlas;
use vault_mongodbatlas::vault::framework::{Backend, BackendError, Operation, Request, Response};
use vault_mongodbatlas::vault::in_memory::InMemoryMount;
use vault_mongodbatlas::vault::storage::{InMemStorage, Storage, StorageEntry, StorageError};
use vault_mongodbatlas::vault::system_view::StaticSystemView;

const PASSWORD: &str = "s3cretpw";

struct Mount {
    backend: Backend,
    storage: Arc<dyn Storage>,
    system: Arc<StaticSystemView>,
    sim: SimHandle,
}

impl Mount {
    /// A mount not yet configured, and a simulator to point it at.
    async fn bare() -> Self {
        Self::with_storage(|s| s).await
    }

    /// Like [`Mount::bare`], with the mount's storage wrapped by `wrap`.
    async fn with_storage(wrap: impl FnOnce(Arc<InMemStorage>) -> Arc<dyn Storage>) -> Self {
        let cfg = SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..SimConfig::default()
        };
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        let InMemoryMount {
            backend,
            storage,
            system,
        } = InMemoryMount::new(&MongoDbAtlas::default()).expect("backend");
        Self {
            backend,
            storage: wrap(storage),
            system,
            sim,
        }
    }

    /// A mount configured with the simulator's credentials.
    async fn configured() -> Self {
        let m = Self::bare().await;
        let written = m.call(Operation::Update, "config", m.sim_config()).await;
        assert!(matches!(written, Ok(None)), "{written:?}");
        m
    }

    fn sim_config(&self) -> Value {
        json!({"public_key": self.sim.public_key, "private_key": self.sim.private_key, "base_url": self.sim.base_url})
    }

    fn config_with(&self, field: &str, value: Value) -> Value {
        let mut body = self.sim_config();
        body[field] = value;
        body
    }

    async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, BackendError> {
        self.backend
            .handle_request(Request {
                operation,
                path: path.into(),
                data: data.as_object().cloned().unwrap_or_default(),
                secret: None,
                mount_point: "mongodbatlas/".into(),
                entity_id: String::new(),
                id: "input-validation".into(),
                storage: self.storage.clone(),
                system: self.system.clone(),
            })
            .await
    }

    async fn user_error(&self, op: Operation, path: &str, data: Value) -> String {
        match self.call(op, path, data).await {
            Err(e) if e.is_user() => e.to_string(),
            other => panic!("expected a user error (400) from {path}, got {other:?}"),
        }
    }

    async fn read(&self, path: &str) -> Option<Response> {
        self.call(Operation::Read, path, json!({}))
            .await
            .unwrap_or_else(|e| panic!("read {path}: {e:?}"))
    }

    /// As Vault does after a storage write it did not make through the engine.
    fn invalidate_config(&self) {
        if let Some(invalidate) = &self.backend.invalidate {
            invalidate("config");
        }
    }

    async fn stored_config(&self) -> Option<Map<String, Value>> {
        let entry = self.storage.get("config").await.expect("get")?;
        serde_json::from_slice(&entry.value).expect("config json")
    }
}

fn data(resp: &Response) -> &Map<String, Value> {
    resp.data.as_ref().expect("data")
}

// ------------------------------------------------------------ item 2: base_url

#[tokio::test]
async fn base_urls_the_client_would_refuse_are_refused_at_write() {
    let m = Mount::bare().await;
    let cases = [
        (
            format!("https://user:{PASSWORD}@cloud.mongodb.com"),
            "user name or password",
        ),
        (
            format!("https://user:{PASSWORD}@cloud.mongodb.com:99999"),
            "not an absolute URL",
        ),
        (
            format!("https://:{PASSWORD}@127.0.0.1:1"),
            "user name or password",
        ),
        (
            "https://cloud.mongodb.com/?envelope=true".to_owned(),
            "query or fragment",
        ),
        (
            "https://cloud.mongodb.com/#top".to_owned(),
            "query or fragment",
        ),
        ("ftp://cloud.mongodb.com".to_owned(), "must use https"),
        ("cloud.mongodb.com".to_owned(), "not an absolute URL"),
    ];
    for (url, why) in cases {
        let msg = m
            .user_error(
                Operation::Update,
                "config",
                m.config_with("base_url", json!(url)),
            )
            .await;
        assert!(msg.starts_with("base_url "), "{url}: {msg}");
        assert!(msg.contains(why), "{url}: {msg:?} should say {why:?}");
        assert!(!msg.contains(PASSWORD), "{url}: password shown: {msg}");
        assert!(m.stored_config().await.is_none(), "{url} was stored");
    }
}

#[tokio::test]
async fn a_stored_base_url_with_a_password_is_never_shown() {
    // Captures every log line of this test (its runtime runs on this thread).
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogBuffer(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let m = Mount::configured().await;
    // As an older version accepted it.
    let port = m.sim.base_url.rsplit(':').next().expect("port");
    let old = json!({
        "public_key": m.sim.public_key,
        "private_key": m.sim.private_key,
        "base_url": format!("http://admin:{PASSWORD}@127.0.0.1:{port}"),
    });
    m.storage
        .put(StorageEntry {
            key: "config".into(),
            value: serde_json::to_vec(&old).expect("json"),
            seal_wrap: true,
        })
        .await
        .expect("put");
    m.invalidate_config();

    let read = m.read("config").await.expect("config");
    let shown = format!("{read:?}");
    assert!(!shown.contains(PASSWORD), "config read shows it: {shown}");
    assert_eq!(
        data(&read)["base_url"],
        json!(format!("http://***@127.0.0.1:{port}"))
    );
    assert!(
        read.warnings.iter().any(|w| w.contains("base_url")),
        "{:?}",
        read.warnings
    );

    let role = json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"});
    assert!(m.call(Operation::Update, "roles/r", role).await.is_ok());
    let msg = m.user_error(Operation::Read, "creds/r", json!({})).await;
    assert!(msg.contains("base_url"), "{msg}");
    assert!(!msg.contains(PASSWORD), "creds error shows it: {msg}");

    let logged =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(!logged.contains(PASSWORD), "logged: {logged}");
}

struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------- item 3: plain HTTP

const REMOTE_HTTP: &str = "http://192.0.2.10:8080";

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_by_default() {
    let m = Mount::bare().await;
    for flag in [None, Some(json!(false)), Some(json!("false"))] {
        let mut body = m.config_with("base_url", json!(REMOTE_HTTP));
        if let Some(flag) = flag {
            body["allow_insecure_http"] = flag;
        }
        let msg = m.user_error(Operation::Update, "config", body).await;
        assert!(msg.starts_with("base_url "), "{msg}");
        assert!(msg.contains("unencrypted"), "{msg}");
        assert!(msg.contains("allow_insecure_http=true"), "{msg}");
    }
    assert!(m.stored_config().await.is_none());
}

#[tokio::test]
async fn the_insecure_http_opt_in_warns_on_every_write_and_read() {
    let m = Mount::bare().await;
    let mut body = m.config_with("base_url", json!(REMOTE_HTTP));
    body["allow_insecure_http"] = json!(true);
    let written = m
        .call(Operation::Update, "config", body)
        .await
        .expect("lab config accepted")
        .expect("a response carrying the warning");
    assert!(
        written.warnings.iter().any(|w| w.contains("unencrypted")
            && w.contains("Digest")
            && w.contains("allow_insecure_http")),
        "{:?}",
        written.warnings
    );
    for _ in 0..2 {
        let read = m.read("config").await.expect("config");
        assert_eq!(data(&read)["allow_insecure_http"], json!(true));
        assert_eq!(data(&read)["base_url"], json!(REMOTE_HTTP));
        assert!(
            read.warnings.iter().any(|w| w.contains("unencrypted")),
            "{:?}",
            read.warnings
        );
    }
    let stored = m.stored_config().await.expect("stored");
    assert_eq!(stored["allow_insecure_http"], json!(true));

    // A later write without the flag turns it off (every write replaces the config).
    let written = m.call(Operation::Update, "config", m.sim_config()).await;
    assert!(matches!(written, Ok(None)), "{written:?}");
    let read = m.read("config").await.expect("config");
    assert_eq!(data(&read)["allow_insecure_http"], json!(false));
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    let stored = m.stored_config().await.expect("stored");
    assert!(!stored.contains_key("allow_insecure_http"), "{stored:?}");
}

#[tokio::test]
async fn loopback_http_and_https_need_no_opt_in_and_give_no_warning() {
    let m = Mount::configured().await;
    let read = m.read("config").await.expect("config");
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_eq!(data(&read)["base_url"], json!(m.sim.base_url));
    let written = m
        .call(
            Operation::Update,
            "config",
            m.config_with("base_url", json!("https://cloud.mongodbgov.com/")),
        )
        .await;
    assert!(matches!(written, Ok(None)), "{written:?}");
}

#[tokio::test]
async fn an_old_plain_http_config_is_refused_by_the_client_and_flagged_on_read() {
    let m = Mount::configured().await;
    let old = json!({"public_key": m.sim.public_key, "private_key": m.sim.private_key, "base_url": REMOTE_HTTP});
    m.storage
        .put(StorageEntry {
            key: "config".into(),
            value: serde_json::to_vec(&old).expect("json"),
            seal_wrap: true,
        })
        .await
        .expect("put");
    m.invalidate_config();
    let read = m.read("config").await.expect("config");
    assert!(
        read.warnings
            .iter()
            .any(|w| w.contains("allow_insecure_http")),
        "{:?}",
        read.warnings
    );
    let role = json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"});
    assert!(m.call(Operation::Update, "roles/r", role).await.is_ok());
    let msg = m.user_error(Operation::Read, "creds/r", json!({})).await;
    assert!(msg.contains("allow_insecure_http"), "{msg}");
}

// ------------------------------------------------------ item 7: smaller things

#[tokio::test]
async fn role_names_with_parent_references_are_400_naming_the_rule() {
    let m = Mount::configured().await;
    let role = json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"});
    for (op, path, body) in [
        (Operation::Update, "roles/a..b", role.clone()),
        (Operation::Create, "roles/a..b", role.clone()),
        (Operation::Read, "roles/a..b", json!({})),
        (Operation::Delete, "roles/a..b", json!({})),
        (Operation::Read, "creds/a..b", json!({})),
        (Operation::Update, "creds/a...b", json!({})),
    ] {
        let msg = m.user_error(op, path, body).await;
        assert!(msg.contains("role name"), "{path}: {msg}");
        assert!(msg.contains("does not contain \"..\""), "{path}: {msg}");
    }
    // Single dots stay valid, as in Vault's name pattern.
    assert!(m.call(Operation::Update, "roles/a.b", role).await.is_ok());
    assert!(m.read("roles/a.b").await.is_some());
}

#[tokio::test]
async fn durations_beyond_a_go_duration_are_400_naming_the_field() {
    let m = Mount::configured().await;
    for field in ["ttl", "max_ttl"] {
        for value in [
            json!(9_999_999_999_999u64),
            json!("9999999999999"),
            json!("106752d"),
        ] {
            let role =
                json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", field: value});
            let msg = m.user_error(Operation::Update, "roles/long", role).await;
            assert!(msg.contains(&format!("\"{field}\"")), "{msg}");
            assert!(msg.contains("longer than Vault can represent"), "{msg}");
        }
    }
    assert!(m.read("roles/long").await.is_none(), "nothing stored");
    // The longest representable TTL is still accepted.
    let role = json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", "ttl": "2562047h", "max_ttl": "2562047h"});
    assert!(m.call(Operation::Update, "roles/long", role).await.is_ok());
    let read = m.read("roles/long").await.expect("role");
    assert_eq!(data(&read)["ttl"], json!(2_562_047u64 * 3600));
}

#[tokio::test]
async fn key_shapes_are_checked_on_config_write() {
    let m = Mount::bare().await;
    for bad in [
        json!("abc\"defg"),
        json!("abcd\nefgh"),
        json!("abcd efgh"),
        json!("a".repeat(65)),
        json!("abcd/efg"),
        json!(""),
    ] {
        let msg = m
            .user_error(
                Operation::Update,
                "config",
                m.config_with("public_key", bad.clone()),
            )
            .await;
        assert!(msg.contains("public_key"), "{bad}: {msg}");
    }
    for bad in [
        format!("{PASSWORD}\nmore"),
        format!("{PASSWORD}\rmore"),
        format!("{PASSWORD}\u{7}"),
    ] {
        let msg = m
            .user_error(
                Operation::Update,
                "config",
                m.config_with("private_key", json!(bad)),
            )
            .await;
        assert!(msg.contains("private_key"), "{msg}");
        assert!(!msg.contains(PASSWORD), "private key echoed: {msg}");
    }
    assert!(m.stored_config().await.is_none());
    // The simulator's keys (as Atlas': 8 lowercase letters) and a service-account id pass.
    let written = m.call(Operation::Update, "config", m.sim_config()).await;
    assert!(matches!(written, Ok(None)), "{written:?}");
    let sa = m.config_with("public_key", json!("mdb_sa_id_0123456789abcdef01234567"));
    assert!(matches!(
        m.call(Operation::Update, "config", sa).await,
        Ok(None)
    ));
}

/// Storage whose reads take a while, so concurrent read-merge-writes overlap.
struct SlowReads {
    inner: Arc<InMemStorage>,
    delay: Duration,
}

#[tonic::async_trait]
impl Storage for SlowReads {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError> {
        tokio::time::sleep(self.delay).await;
        self.inner.get(key).await
    }

    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError> {
        self.inner.put(entry).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merge_writes_of_one_role_keep_every_field() {
    let m = Mount::with_storage(|inner| {
        Arc::new(SlowReads {
            inner,
            delay: Duration::from_millis(20),
        })
    })
    .await;
    let org = m.sim.org_id.clone();
    let base = json!({"organization_id": org, "roles": "ORG_MEMBER"});
    assert!(m
        .call(Operation::Update, "roles/shared", base)
        .await
        .is_ok());

    let m = Arc::new(m);
    let updates = [
        json!({"ip_addresses": ["192.0.2.10"]}),
        json!({"cidr_blocks": ["198.51.100.0/24"]}),
        json!({"ttl": 60}),
        json!({"max_ttl": 600}),
        json!({"roles": ["ORG_MEMBER", "ORG_READ_ONLY"]}),
    ];
    let writes = updates.into_iter().map(|body| {
        let m = m.clone();
        tokio::spawn(async move { m.call(Operation::Update, "roles/shared", body).await })
    });
    for written in futures::future::join_all(writes).await {
        let written = written.expect("task");
        assert!(matches!(written, Ok(None)), "{written:?}");
    }

    let read = m.read("roles/shared").await.expect("role");
    let role = data(&read);
    assert_eq!(role["ip_addresses"], json!(["192.0.2.10"]), "{role:?}");
    assert_eq!(role["cidr_blocks"], json!(["198.51.100.0/24"]), "{role:?}");
    assert_eq!(role["ttl"], json!(60), "{role:?}");
    assert_eq!(role["max_ttl"], json!(600), "{role:?}");
    assert_eq!(
        role["roles"],
        json!(["ORG_MEMBER", "ORG_READ_ONLY"]),
        "{role:?}"
    );
    assert_eq!(role["organization_id"], json!(org), "{role:?}");
}
