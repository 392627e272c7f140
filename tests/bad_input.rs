//! Bad input for every field of `config`, `roles/<name>` and `creds/<name>`,
//! driven through the engine's Backend in-process against the Atlas simulator
//! (as tests/engine.rs does). Properties: nothing panics; a malformed request
//! is a user error (HTTP 400 at Vault's edge) whose message names the
//! offending field; a well-formed one still succeeds; unknown fields never
//! make a request fail.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use atlas_sim::{SimConfig, SimHandle, Simulator};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};
use vault_mongodbatlas::engine::MongoDbAtlas;
use vault_mongodbatlas::vault::framework::{
    parse_duration, Backend, BackendError, Operation, Request, Response, Secret,
};
use vault_mongodbatlas::vault::in_memory::InMemoryMount;
use vault_mongodbatlas::vault::storage::{InMemStorage, Storage, StorageEntry};
use vault_mongodbatlas::vault::system_view::StaticSystemView;

/// One runtime and one simulator for every case; each case gets a fresh mount.
struct Env {
    rt: tokio::runtime::Runtime,
    sim: SimHandle,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sim = rt.block_on(async {
            let cfg = SimConfig {
                listen: "127.0.0.1:0".parse().expect("addr"),
                ..SimConfig::default()
            };
            Simulator::start(cfg).await.expect("simulator starts")
        });
        Env { rt, sim }
    })
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    env().rt.block_on(f)
}

struct Mount {
    backend: Backend,
    storage: Arc<InMemStorage>,
    system: Arc<StaticSystemView>,
}

type Outcome = Result<Option<Response>, BackendError>;

impl Mount {
    /// A fresh mount configured with the simulator's credentials.
    async fn new() -> Self {
        let InMemoryMount {
            backend,
            storage,
            system,
        } = InMemoryMount::new(&MongoDbAtlas::default()).expect("backend");
        let mount = Self {
            backend,
            storage,
            system,
        };
        let sim = &env().sim;
        let configured = mount
            .call(
                Operation::Update,
                "config",
                json!({"public_key": sim.public_key, "private_key": sim.private_key, "base_url": sim.base_url}),
            )
            .await;
        assert!(matches!(configured, Ok(None)), "{configured:?}");
        mount
    }

    fn request(&self, op: Operation, path: &str, data: Value, secret: Option<Secret>) -> Request {
        Request {
            operation: op,
            path: path.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            secret,
            mount_point: "mongodbatlas/".into(),
            entity_id: String::new(),
            id: "bad-input".into(),
            storage: self.storage.clone(),
            system: self.system.clone(),
        }
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Outcome {
        self.backend
            .handle_request(self.request(op, path, data, None))
            .await
    }

    /// Revokes what a creds read issued, so the simulator's inventory stays small.
    async fn revoke_issued(&self, outcome: &Outcome) {
        if let Ok(Some(Response {
            secret: Some(secret),
            ..
        })) = outcome
        {
            let revoked = self
                .backend
                .handle_request(self.request(
                    Operation::Revoke,
                    "creds/x",
                    json!({}),
                    Some(secret.clone()),
                ))
                .await;
            assert!(revoked.is_ok(), "revoke: {revoked:?}");
        }
    }
}

/// `field` appears in `msg` as a whole word (so `ttl` is not found in `max_ttl`).
fn names_field(msg: &str, field: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    msg.match_indices(field).any(|(at, _)| {
        let before = msg[..at].chars().next_back();
        let after = msg[at + field.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The outcome is a user error naming one of `fields`.
fn user_error_naming(outcome: &Outcome, fields: &[&str]) -> Result<(), TestCaseError> {
    match outcome {
        Err(e) if e.is_user() => {
            let msg = &e.to_string();
            prop_assert!(
                fields.iter().any(|f| names_field(msg, f)),
                "message {msg:?} names none of {fields:?}"
            );
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "want a user error naming one of {fields:?}, got {other:?}"
        ))),
    }
}

/// Unique role names, so writes (which merge) never see an earlier case's role.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn extra_fields() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map("x_[a-z]{1,8}", arb_json(), 0..3)
        .prop_map(|m| m.into_iter().collect())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values no string field accepts: Vault's framework refuses lists and maps.
fn not_a_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(arb_json(), 0..3).prop_map(Value::Array),
        proptest::collection::btree_map(".{0,4}", arb_json(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

/// A list of strings as Vault accepts one: a JSON array or a comma string.
fn as_list(items: Vec<String>, comma: bool) -> Value {
    if comma {
        Value::String(items.join(","))
    } else {
        Value::from(items)
    }
}

/// Values no comma-string-slice field accepts.
fn not_a_list() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::btree_map(".{0,4}", arb_json(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        Just(json!([["nested"]])),
        Just(json!([{"a": 1}])),
        Just(json!(["ok", []])),
    ]
}

// ---------------------------------------------------------------- config

/// A config field: well-formed, or malformed.
#[derive(Debug, Clone)]
enum Input {
    Good(Option<Value>),
    Bad(Option<Value>),
}

/// Atlas public keys are 8 lowercase letters; the engine takes 1 to 64 of `[A-Za-z0-9_-]`.
fn public_key_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => "[ \t]{0,2}[A-Za-z0-9_-]{1,20}[ \t]{0,2}"
            .prop_map(|s| Input::Good(Some(Value::String(s)))),
        1 => any::<u32>().prop_map(|n| Input::Good(Some(Value::from(n)))),
        1 => prop_oneof![Just(None), Just(Some(Value::Null)), "[ \t]{0,3}".prop_map(|s| Some(Value::String(s)))]
            .prop_map(Input::Bad),
        1 => "[a-z]{1,4}[\"' /\n\r.:@][a-z]{1,4}".prop_map(|s| Input::Bad(Some(Value::String(s)))),
        1 => "[a-z]{65,70}".prop_map(|s| Input::Bad(Some(Value::String(s)))),
        1 => not_a_scalar().prop_map(|v| Input::Bad(Some(v))),
    ]
}

fn private_key_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => "\\PC{0,20}"
            .prop_filter("not blank", |s| !s.trim().is_empty())
            .prop_map(|s| Input::Good(Some(Value::String(s)))),
        1 => any::<u32>().prop_map(|n| Input::Good(Some(Value::from(n)))),
        1 => prop_oneof![Just(None), Just(Some(Value::Null)), "[ \t]{0,3}".prop_map(|s| Some(Value::String(s)))]
            .prop_map(Input::Bad),
        // A line break or other control character inside: a bad paste.
        1 => "[a-z0-9-]{1,8}[\n\r\x00\x07][a-z0-9-]{1,8}".prop_map(|s| Input::Bad(Some(Value::String(s)))),
        1 => not_a_scalar().prop_map(|v| Input::Bad(Some(v))),
    ]
}

fn base_url_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        2 => prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!(""))),
            Just(Some(json!("https://cloud.mongodb.com/"))),
            Just(Some(json!("https://cloud.mongodbgov.com"))),
            Just(Some(json!("http://127.0.0.1:1"))),
            "[a-z]{1,10}".prop_map(|h| Some(Value::String(format!("https://{h}.example:8443/api")))),
        ].prop_map(Input::Good),
        2 => prop_oneof![
            // No scheme: never an absolute URL.
            "[^:]{1,20}".prop_filter("not blank", |s| !s.trim().is_empty()).prop_map(Value::String),
            Just(json!("ftp://cloud.mongodb.com")),
            Just(json!("mailto:owner@example.com")),
            Just(json!("http://")),
            Just(json!("http://[::1")),
            Just(json!("https://h:99999")),
            Just(json!("file:///etc/passwd")),
            Just(json!("https://user:pw@cloud.mongodb.com")),
            Just(json!("https://cloud.mongodb.com/?a=b")),
            Just(json!("https://cloud.mongodb.com/#f")),
            // Plain HTTP to a host that is not a loopback address, without the opt-in.
            Just(json!("http://192.0.2.10:8080")),
            not_a_scalar(),
        ].prop_map(|v| Input::Bad(Some(v))),
    ]
}

fn insert(body: &mut Map<String, Value>, field: &str, input: &Input) {
    if let Input::Good(Some(v)) | Input::Bad(Some(v)) = input {
        body.insert(field.into(), v.clone());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn config_writes(
        public_key in public_key_input(),
        private_key in private_key_input(),
        base_url in base_url_input(),
        extra in extra_fields(),
    ) {
        let mut body = extra;
        let fields = [("public_key", &public_key), ("private_key", &private_key), ("base_url", &base_url)];
        for (name, input) in fields {
            insert(&mut body, name, input);
        }
        let bad: Vec<&str> = fields.iter().filter(|(_, i)| matches!(i, Input::Bad(_))).map(|(n, _)| *n).collect();
        block_on(async {
            let m = Mount::new().await;
            let outcome = m.call(Operation::Update, "config", Value::Object(body)).await;
            if !bad.is_empty() {
                return user_error_naming(&outcome, &bad);
            }
            prop_assert!(matches!(outcome, Ok(None)), "well-formed config refused: {outcome:?}");
            let read = m.call(Operation::Read, "config", json!({})).await;
            let data = match read {
                Ok(Some(Response { data: Some(d), .. })) => d,
                other => return Err(TestCaseError::fail(format!("config read: {other:?}"))),
            };
            prop_assert!(!data.contains_key("private_key"), "config read returned private_key");
            if let Input::Good(Some(Value::String(k))) = &public_key {
                prop_assert_eq!(data["public_key"].as_str(), Some(k.trim()));
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------- roles

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Org,
    Project,
    Both,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Org), Just(Mode::Project), Just(Mode::Both)]
}

/// Real Atlas roles of a scope (Atlas, and so the simulator, refuses others).
fn atlas_role_names(prefix: &'static str) -> impl Strategy<Value = Vec<String>> {
    const ORG: &[&str] = &[
        "ORG_OWNER",
        "ORG_MEMBER",
        "ORG_GROUP_CREATOR",
        "ORG_BILLING_ADMIN",
        "ORG_READ_ONLY",
    ];
    const GROUP: &[&str] = &[
        "GROUP_OWNER",
        "GROUP_CLUSTER_MANAGER",
        "GROUP_DATA_ACCESS_ADMIN",
        "GROUP_DATA_ACCESS_READ_ONLY",
        "GROUP_READ_ONLY",
    ];
    let names = if prefix == "ORG_" { ORG } else { GROUP };
    proptest::sample::subsequence(names, 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_string).collect())
}

fn ips() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(any::<IpAddr>().prop_map(|ip| ip.to_string()), 0..3)
}

fn cidrs() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        any::<IpAddr>().prop_flat_map(|ip| {
            let max = if ip.is_ipv4() { 32u8 } else { 128 };
            (0..=max).prop_map(move |len| format!("{ip}/{len}"))
        }),
        0..3,
    )
}

/// The access list without repeats (an IP counts as its /32 or /128 block):
/// Atlas refuses an address twice.
fn distinct_addresses(ips: Vec<String>, cidrs: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let cidrs = cidrs
        .into_iter()
        .filter(|c| seen.insert(c.parse::<IpNet>().expect("generated CIDR")))
        .collect();
    let ips = ips
        .into_iter()
        .filter(|ip| seen.insert(IpNet::from(ip.parse::<IpAddr>().expect("generated IP"))))
        .collect();
    (ips, cidrs)
}

/// A duration in one of the forms Vault accepts, with its length in seconds.
fn duration_text(secs: u64) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(secs)),
        Just(Value::String(secs.to_string())),
        Just(Value::String(format!("{secs}s"))),
        Just(Value::String(format!("{}m{}s", secs / 60, secs % 60))),
        Just(Value::String(format!(
            "{}h{}m{}s",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ))),
    ]
}

/// A valid role body for `mode`, with its expected TTLs.
#[derive(Debug, Clone)]
struct GoodRole {
    body: Map<String, Value>,
    ttl: u64,
    max_ttl: u64,
}

fn good_role(mode: Mode) -> impl Strategy<Value = GoodRole> {
    let sim = &env().sim;
    let (org, project) = (sim.org_id.clone(), sim.project_id.clone());
    let roles = if mode == Mode::Project {
        atlas_role_names("GROUP_").boxed()
    } else {
        atlas_role_names("ORG_").boxed()
    };
    (
        roles,
        atlas_role_names("GROUP_"),
        ips(),
        cidrs(),
        any::<[bool; 4]>(),
        (0u64..100_000, 0u64..100_000),
    )
        .prop_flat_map(move |(roles, project_roles, ips, cidrs, comma, (a, b))| {
            let (ips, cidrs) = distinct_addresses(ips, cidrs);
            let (ttl, max_ttl) = if b == 0 || a <= b { (a, b) } else { (b, a) };
            let mut body = Map::new();
            if mode != Mode::Project {
                body.insert("organization_id".into(), json!(org));
            }
            if mode != Mode::Org {
                body.insert("project_id".into(), json!(project));
            }
            body.insert("roles".into(), as_list(roles, comma[0]));
            if mode == Mode::Both {
                body.insert("project_roles".into(), as_list(project_roles, comma[1]));
            }
            if !ips.is_empty() {
                body.insert("ip_addresses".into(), as_list(ips, comma[2]));
            }
            if !cidrs.is_empty() {
                body.insert("cidr_blocks".into(), as_list(cidrs, comma[3]));
            }
            (duration_text(ttl), duration_text(max_ttl)).prop_map(move |(t, mt)| {
                let mut body = body.clone();
                body.insert("ttl".into(), t);
                body.insert("max_ttl".into(), mt);
                GoodRole { body, ttl, max_ttl }
            })
        })
}

fn not_an_atlas_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{1,30}"
            .prop_filter("not blank, not an id", |s| {
                let t = s.trim();
                let is_id = t.len() == 24 && t.bytes().all(|b| b.is_ascii_hexdigit());
                !t.is_empty() && !is_id
            })
            .prop_map(Value::String),
        "[0-9a-f]{23}".prop_map(Value::String),
        "[0-9a-f]{25}".prop_map(Value::String),
        not_a_scalar(),
    ]
}

fn bad_role_names(prefix: &'static str, good: &'static str) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!([])),
        Just(json!("")),
        Just(json!(" , ,")),
        Just(Value::Null),
        // Valid names of the other scope, or no scope at all, next to a good one.
        (
            prop_oneof![
                "[a-z0-9 ]{1,10}".prop_filter("not blank", |s| !s.trim().is_empty()),
                Just(format!("{prefix}READ_ONLY")),
                Just("READ_ONLY".to_string()),
            ],
            any::<bool>()
        )
            .prop_map(move |(bad, comma)| as_list(vec![good.to_string(), bad], comma)),
        not_a_list(),
    ]
}

fn not_ips() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9a-z:./ ]{1,20}"
            .prop_filter("not an IP", |s| {
                let t = s.trim();
                !t.is_empty() && t.parse::<IpAddr>().is_err()
            })
            .prop_map(|s| json!([s])),
        Just(json!("300.1.1.1")),
        Just(json!(["192.0.2.1/32"])),
        Just(json!("::g")),
        Just(json!(true)),
        not_a_list(),
    ]
}

fn not_cidrs() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9a-z:./ ]{1,20}"
            .prop_filter("not a CIDR", |s| {
                let t = s.trim();
                !t.is_empty() && t.parse::<IpNet>().is_err()
            })
            .prop_map(|s| json!([s])),
        Just(json!("10.0.0.0/33")),
        Just(json!(["::/129"])),
        Just(json!("192.0.2.1")),
        Just(json!(1)),
        not_a_list(),
    ]
}

fn not_durations() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1i64..i64::MAX).prop_map(|n| Value::from(-n)),
        (1u32..u32::MAX, "(s|m|h|ms|d)").prop_map(|(n, u)| Value::String(format!("-{n}{u}"))),
        ".{1,12}"
            .prop_filter("not a duration", |s| parse_duration(&Value::String(
                s.clone()
            ))
            .is_err())
            .prop_map(Value::String),
        Just(json!("1.d")),
        Just(json!("1e400")),
        Just(json!("99999999999999999999999h")),
        Just(json!(true)),
        Just(json!(-0.5)),
        not_a_scalar(),
    ]
}

/// One field of a good role replaced by a malformed value.
#[derive(Debug, Clone)]
struct Corruption {
    field: &'static str,
    value: Option<Value>,
}

fn corruption(mode: Mode) -> impl Strategy<Value = Corruption> {
    let role_prefix = if mode == Mode::Project {
        "ORG_"
    } else {
        "GROUP_"
    };
    let good_role = if mode == Mode::Project {
        "GROUP_READ_ONLY"
    } else {
        "ORG_MEMBER"
    };
    let mut options: Vec<BoxedStrategy<Corruption>> = vec![
        not_an_atlas_id()
            .prop_map(|v| Corruption {
                field: "organization_id",
                value: Some(v),
            })
            .boxed(),
        not_an_atlas_id()
            .prop_map(|v| Corruption {
                field: "project_id",
                value: Some(v),
            })
            .boxed(),
        bad_role_names(role_prefix, good_role)
            .prop_map(|v| Corruption {
                field: "roles",
                value: Some(v),
            })
            .boxed(),
        not_a_list()
            .prop_map(|v| Corruption {
                field: "project_roles",
                value: Some(v),
            })
            .boxed(),
        not_ips()
            .prop_map(|v| Corruption {
                field: "ip_addresses",
                value: Some(v),
            })
            .boxed(),
        (any::<IpAddr>(), any::<bool>())
            .prop_map(|(ip, comma)| Corruption {
                field: "ip_addresses",
                value: Some(as_list(vec![ip.to_string(), ip.to_string()], comma)),
            })
            .boxed(),
        cidrs()
            .prop_filter("one at least", |c| !c.is_empty())
            .prop_map(|c| Corruption {
                field: "cidr_blocks",
                value: Some(json!([c[0], c[0]])),
            })
            .boxed(),
        not_cidrs()
            .prop_map(|v| Corruption {
                field: "cidr_blocks",
                value: Some(v),
            })
            .boxed(),
        not_durations()
            .prop_map(|v| Corruption {
                field: "ttl",
                value: Some(v),
            })
            .boxed(),
        not_durations()
            .prop_map(|v| Corruption {
                field: "max_ttl",
                value: Some(v),
            })
            .boxed(),
    ];
    match mode {
        // Removing the only id leaves a role that says nothing of where its keys live.
        Mode::Org => options.push(
            prop_oneof![Just(None), Just(Some(json!(""))), Just(Some(json!("  ")))]
                .prop_map(|v| Corruption {
                    field: "organization_id",
                    value: v,
                })
                .boxed(),
        ),
        Mode::Project => options.push(
            prop_oneof![Just(None), Just(Some(json!("")))]
                .prop_map(|v| Corruption {
                    field: "project_id",
                    value: v,
                })
                .boxed(),
        ),
        Mode::Both => options.push(
            bad_role_names("ORG_", "GROUP_READ_ONLY")
                .prop_map(|v| Corruption {
                    field: "project_roles",
                    value: Some(v),
                })
                .boxed(),
        ),
    }
    proptest::strategy::Union::new(options)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Well-formed roles of every mode are stored and read back as written.
    #[test]
    fn well_formed_roles_are_accepted(
        (mode, role) in mode().prop_flat_map(|m| (Just(m), good_role(m))),
        extra in extra_fields(),
    ) {
        let mut body = role.body.clone();
        body.extend(extra);
        let name = unique("good-");
        block_on(async {
            let m = Mount::new().await;
            let path = format!("roles/{name}");
            let outcome = m.call(Operation::Update, &path, Value::Object(body)).await;
            prop_assert!(matches!(outcome, Ok(None)), "{mode:?} role refused: {outcome:?}\n{:?}", role.body);
            let read = m.call(Operation::Read, &path, json!({})).await;
            let data = match read {
                Ok(Some(Response { data: Some(d), .. })) => d,
                other => return Err(TestCaseError::fail(format!("role read: {other:?}"))),
            };
            prop_assert_eq!(data["ttl"].as_u64(), Some(role.ttl));
            prop_assert_eq!(data["max_ttl"].as_u64(), Some(role.max_ttl));
            Ok(())
        })?;
    }

    /// One malformed field in an otherwise good role: a 400 naming that field,
    /// and nothing stored.
    #[test]
    fn malformed_role_fields_are_named(
        (_mode, role, bad) in mode().prop_flat_map(|m| (Just(m), good_role(m), corruption(m))),
        extra in extra_fields(),
    ) {
        let mut body = role.body.clone();
        body.extend(extra);
        match &bad.value {
            Some(v) => body.insert(bad.field.into(), v.clone()),
            None => body.remove(bad.field),
        };
        let name = unique("bad-");
        block_on(async {
            let m = Mount::new().await;
            let path = format!("roles/{name}");
            let outcome = m.call(Operation::Update, &path, Value::Object(body)).await;
            user_error_naming(&outcome, &[bad.field])?;
            let read = m.call(Operation::Read, &path, json!({})).await;
            prop_assert!(matches!(read, Ok(None)), "a refused role was stored: {read:?}");
            Ok(())
        })?;
    }

    /// ttl above max_ttl names ttl.
    #[test]
    fn ttl_above_max_ttl_is_named(max in 1u64..1_000_000, over in 1u64..1_000_000) {
        let sim = &env().sim;
        let body = json!({"organization_id": sim.org_id, "roles": "ORG_MEMBER", "ttl": max + over, "max_ttl": format!("{max}s")});
        block_on(async {
            let m = Mount::new().await;
            let outcome = m.call(Operation::Update, &format!("roles/{}", unique("ttl-")), body).await;
            user_error_naming(&outcome, &["ttl"])
        })?;
    }

    /// Any role name: routed when it is a Vault name (`\w(([\w.-]+)?\w)?`, with
    /// Go RE2's ASCII `\w`),
    /// stored lower-cased; anything else is an unsupported path (404 at
    /// Vault), as in Vault's Go framework. A routed name with `..` (which
    /// Vault's storage refuses) is a 400 naming the rule. A creds read for a
    /// role that does not exist is a 400 that says so.
    #[test]
    fn any_role_name(raw in prop_oneof!["\\PC{0,12}", "[A-Za-z0-9_.-]{0,12}", "[a-z]{1,4}/[a-z]{1,4}"]) {
        let valid = regex::Regex::new(r"^(?-u:\w)(((?-u:\w)|[.-])*(?-u:\w))?$").expect("regex").is_match(&raw);
        let sim = &env().sim;
        block_on(async {
            let m = Mount::new().await;
            let path = format!("roles/{raw}");
            let outcome = m.call(Operation::Update, &path, json!({"organization_id": sim.org_id, "roles": "ORG_MEMBER"})).await;
            if !valid {
                // `roles/` itself is the list path, which has no update.
                let unsupported = |o: &Outcome| matches!(o, Err(BackendError::UnsupportedPath | BackendError::UnsupportedOperation));
                prop_assert!(unsupported(&outcome), "{raw:?}: {outcome:?}");
                let creds = m.call(Operation::Read, &format!("creds/{raw}"), json!({})).await;
                prop_assert!(unsupported(&creds), "creds/{raw:?}: {creds:?}");
                return Ok(());
            }
            if raw.contains("..") {
                user_error_naming(&outcome, &["role name"])?;
                let creds = m.call(Operation::Read, &format!("creds/{raw}"), json!({})).await;
                return user_error_naming(&creds, &["role name"]);
            }
            prop_assert!(matches!(outcome, Ok(None)), "{raw:?}: {outcome:?}");
            let listed = m.call(Operation::List, "roles/", json!({})).await;
            let keys = match listed {
                Ok(Some(Response { data: Some(d), .. })) => d["keys"].clone(),
                other => return Err(TestCaseError::fail(format!("list: {other:?}"))),
            };
            prop_assert_eq!(keys, json!([raw.to_lowercase()]));
            let missing = m.call(Operation::Read, &format!("creds/{raw}x"), json!({})).await;
            match missing {
                Err(e) if e.is_user() => prop_assert!(e.to_string().contains("does not exist"), "{e}"),
                other => return Err(TestCaseError::fail(format!("creds for a missing role: {other:?}"))),
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------- creds

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A good role issues through read and update whatever else the request
    /// carries; the key is revoked again.
    #[test]
    fn creds_ignore_unknown_fields(
        (mode, role) in mode().prop_flat_map(|m| (Just(m), good_role(m))),
        extra in extra_fields(),
        update in any::<bool>(),
    ) {
        let name = unique("issue-");
        block_on(async {
            let m = Mount::new().await;
            let written = m.call(Operation::Update, &format!("roles/{name}"), Value::Object(role.body.clone())).await;
            prop_assert!(matches!(written, Ok(None)), "{written:?}");
            let op = if update { Operation::Update } else { Operation::Read };
            let outcome = m.call(op, &format!("creds/{}", name.to_uppercase()), Value::Object(extra.clone())).await;
            m.revoke_issued(&outcome).await;
            let resp = match outcome {
                Ok(Some(resp)) => resp,
                other => return Err(TestCaseError::fail(format!("{mode:?} creds: {other:?}"))),
            };
            prop_assert!(resp.secret.is_some());
            if !extra.is_empty() {
                prop_assert!(resp.warnings.iter().any(|w| w.contains("unrecognized parameters")), "{:?}", resp.warnings);
            }
            Ok(())
        })?;
    }
}

/// Roles stored by another writer (the official plugin, an older version, a
/// hand edit) that cannot issue: a 400 naming the field, no key created.
#[test]
fn stored_roles_that_cannot_issue_name_the_field() {
    let sim = &env().sim;
    let org = sim.org_id.clone();
    let cases = [
        (
            json!({"organization_id": org, "roles": ["ORG_MEMBER"], "cidr_blocks": ["10.0.0.0/99"]}),
            "cidr_blocks",
        ),
        (
            json!({"organization_id": org, "roles": ["ORG_MEMBER"], "ip_addresses": ["nope"]}),
            "ip_addresses",
        ),
        (
            json!({"organization_id": org, "roles": ["ORG_MEMBER"], "cidr_blocks": ["192.0.2.7/32"], "ip_addresses": ["192.0.2.7"]}),
            "ip_addresses",
        ),
        (json!({"organization_id": org, "roles": []}), "roles"),
        (json!({"organization_id": org, "roles": null}), "roles"),
        (
            json!({"organization_id": "zz", "roles": ["ORG_MEMBER"]}),
            "organization_id",
        ),
        (json!({"roles": ["ORG_MEMBER"]}), "organization_id"),
        (
            json!({"organization_id": org, "project_id": sim.project_id, "roles": ["ORG_MEMBER"]}),
            "project_roles",
        ),
        (
            json!({"organization_id": org, "roles": ["ORG_MEMBER"], "ttl": 20_000_000_000i64, "max_ttl": 10_000_000_000i64}),
            "ttl",
        ),
    ];
    block_on(async {
        let m = Mount::new().await;
        // Other tests share the simulator, so count this test's creates (their
        // descriptions carry the role name), not the inventory.
        let since = sim.journal(0).last().map_or(0, |e| e.seq);
        for (i, (stored, field)) in cases.into_iter().enumerate() {
            m.storage
                .put(StorageEntry {
                    key: format!("roles/stored{i}"),
                    value: serde_json::to_vec(&stored).expect("json"),
                    seal_wrap: false,
                })
                .await
                .expect("put");
            let outcome = m
                .call(Operation::Read, &format!("creds/stored{i}"), json!({}))
                .await;
            if let Err(e) = user_error_naming(&outcome, &[field]) {
                panic!("{stored}: {e}");
            }
        }
        let creates: Vec<_> = sim
            .journal(since)
            .into_iter()
            .filter(|e| e.method == "POST" && e.route.ends_with("/apiKeys"))
            .filter(|e| e.request_body.contains("vault-stored"))
            .map(|e| e.request_body)
            .collect();
        assert!(creates.is_empty(), "keys created: {creates:?}");
    });
}

/// Any operation on any path with any data: never a panic, never an internal
/// error; only success, a user error, or an unsupported path/operation.
#[test]
fn any_request_is_answered_without_internal_errors() {
    let ops = [
        Operation::Create,
        Operation::Read,
        Operation::Update,
        Operation::Patch,
        Operation::Delete,
        Operation::List,
        Operation::Help,
        Operation::AliasLookahead,
        Operation::ResolveRole,
        Operation::Header,
    ];
    let paths = prop_oneof![
        Just("config".to_string()),
        Just("roles/".to_string()),
        Just("roles".to_string()),
        Just("roles/r".to_string()),
        Just("creds/r".to_string()),
        Just("creds/missing".to_string()),
        Just(String::new()),
        "\\PC{0,16}",
        "(roles|creds)/\\PC{0,8}",
    ];
    let data = proptest::collection::btree_map(
        prop_oneof![
            Just("name".to_string()),
            Just("public_key".to_string()),
            Just("private_key".to_string()),
            Just("base_url".to_string()),
            Just("organization_id".to_string()),
            Just("project_id".to_string()),
            Just("roles".to_string()),
            Just("project_roles".to_string()),
            Just("ip_addresses".to_string()),
            Just("cidr_blocks".to_string()),
            Just("ttl".to_string()),
            Just("max_ttl".to_string()),
            ".{0,8}",
        ],
        arb_json(),
        0..5,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    let sim = &env().sim;
    let result = runner.run(&(0..ops.len(), paths, data), |(op, path, data)| {
        let op = ops[op];
        block_on(async {
            let m = Mount::new().await;
            let role = json!({"organization_id": sim.org_id, "roles": "ORG_MEMBER"});
            let written = m.call(Operation::Update, "roles/r", role).await;
            prop_assert!(matches!(written, Ok(None)), "{written:?}");
            let data: Map<String, Value> = data.into_iter().collect();
            let outcome = m.call(op, &path, Value::Object(data.clone())).await;
            m.revoke_issued(&outcome).await;
            prop_assert!(
                matches!(
                    outcome,
                    Ok(_)
                        | Err(BackendError::User(_)
                            | BackendError::Upstream {
                                caller_input: true,
                                ..
                            })
                        | Err(BackendError::UnsupportedPath)
                        | Err(BackendError::UnsupportedOperation)
                ),
                "{} {path:?} {data:?}: {outcome:?}",
                op.as_str()
            );
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
