//! Command-line parsing for the `atlas-sim` binary (kept here so it is unit-tested).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{FileConfig, SimConfig};
use super::ratelimit::BucketConfig;

pub const HELP: &str = r#"atlas-sim: a local, stateful MongoDB Atlas Administration API simulator.

On start it prints exactly one JSON line on stdout:
  {"base_url","admin_url","org_id","project_id","public_key","private_key","key_id",
   "sa_client_id","sa_client_secret","tls","proxy_url","ca_path"}
(private_key belongs to the seeded ORG_OWNER key, sa_client_id/sa_client_secret to the seeded
ORG_OWNER service account), then serves until SIGTERM/SIGINT.
Logs go to stderr (RUST_LOG, default "warn").

USAGE: atlas-sim [FLAGS]

Flags (flags override --config values):
  --listen ADDR               main listener, Atlas API + /admin [127.0.0.1:0 = free port]
  --config FILE               JSON config: any of listen, org_id, org_name, project_id,
                              project_name, key_id, public_key, private_key, key_desc,
                              extra_keys [{id?, public_key?, private_key?, desc, org_roles,
                              project_roles}], sa_client_id, sa_client_secret, sa_name,
                              nonce_lifetime_secs, token_lifetime_ms, latency_ms, rate_limit
                              {enabled, org{capacity,refill,period_ms}, project{...},
                              token_enabled, token{...}}, max_keys_per_org,
                              max_service_accounts_per_org, journal_capacity, tls, ca_path,
                              proxy, proxy_listen
  --org-id ID                 seeded organization id (24 hex) [random]
  --org-name NAME             [atlas-sim-org]
  --project-id ID             seeded project id (24 hex) [random]
  --project-name NAME         [atlas-sim-project]
  --key-id ID                 seeded ORG_OWNER key id (24 hex) [random]
  --public-key KEY            its public key (8 lowercase letters) [random]
  --private-key UUID          its private key [random]
  --sa-client-id ID           seeded ORG_OWNER service account (mdb_sa_id_<24 hex>) [random]
  --sa-client-secret SECRET   its secret (mdb_sa_sk_<letters and digits>) [random]
  --nonce-lifetime-secs N     digest nonce lifetime; older nonces get stale=true [300]
  --token-lifetime-secs N     OAuth access token lifetime (expires_in) [3600]
  --latency-ms N              added to every HTTP request, 401 challenges included [0]
  --no-rate-limit             disable the token buckets
  --org-rate-limit C,R,S      org bucket: capacity, refill per period, period seconds [500,250,60]
  --project-rate-limit C,R,S  project bucket [1200,500,60]
  --token-rate-limit C,R,S    turn on the /api/oauth/token bucket per IP and client
                              (Atlas: 50,50,60) [off, so load tests can take many tokens]
  --max-keys-per-org N        [500]
  --max-service-accounts-per-org N  [200]
  --journal-capacity N        request journal entries kept; 0 disables [10000]
  --tls                       serve HTTPS with a generated CA (certificate for localhost,
                              127.0.0.1, ::1, cloud.mongodb.com, cloud.mongodbgov.com)
  --ca-out PATH               write the CA certificate (PEM) there (for SSL_CERT_FILE)
  --proxy                     also run an HTTP CONNECT proxy: CONNECT cloud.mongodb.com:443
                              (or localhost/127.0.0.1) is terminated by the simulator's TLS
                              endpoint; other hosts get 403. Use HTTPS_PROXY=<proxy_url>.
  --proxy-listen ADDR         proxy listener [127.0.0.1:0]
  -h, --help                  this text

Atlas API (under /api/atlas/v2 with Accept: application/vnd.atlas.2023-01-01+json, service
accounts 2024-08-05; and under /api/atlas/v1.0 with plain JSON), HTTP Digest auth (API keys)
or Authorization: Bearer <access token> (service accounts):
  GET|POST         /orgs/{orgId}/apiKeys
  GET|PATCH|DELETE /orgs/{orgId}/apiKeys/{apiUserId}
  GET|POST         /orgs/{orgId}/apiKeys/{apiUserId}/accessList
  GET|DELETE       /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ip | cidr with %2F}
  GET|POST         /groups/{groupId}/apiKeys
  POST|PATCH|DELETE /groups/{groupId}/apiKeys/{apiUserId}   (assign / assign-or-update roles / unassign)
  GET              /orgs/{orgId}, /groups/{groupId}
  v2 only, under /orgs/{orgId} and /groups/{groupId} alike:
  GET|POST         .../serviceAccounts                      (project: creates an ORG_MEMBER SA)
  GET|PATCH|DELETE .../serviceAccounts/{clientId}           (project DELETE: that project only)
  POST             .../serviceAccounts/{clientId}/secrets   {"secretExpiresAfterHours": 8..8760}
  DELETE           .../serviceAccounts/{clientId}/secrets/{secretId}
  GET|POST         .../serviceAccounts/{clientId}/accessList
  DELETE           .../serviceAccounts/{clientId}/accessList/{ip | cidr with %2F}
  GET              /orgs/{orgId}/serviceAccounts/{clientId}/groups
  POST             /groups/{groupId}/serviceAccounts/{clientId}:invite  {"roles":[..]}
  v2 only, MongoDB Cloud users (people), Accept: application/vnd.atlas.2025-02-19+json:
  GET              /orgs/{orgId}/users[?username=EMAIL&orgMembershipStatuses=..]  (ACTIVE, PENDING)
  GET              /orgs/{orgId}/users/{userId}
  POST             /orgs/{orgId}/users/{userId}:addRole|:removeRole      {"orgRole":".."}
  GET|POST         /groups/{groupId}/users            {"username","roles":[..]} -> 201 (a user who is
                                                      not an org member is invited: PENDING)
  GET|DELETE       /groups/{groupId}/users/{userId}
  POST             /groups/{groupId}/users/{userId}:addRole|:removeRole  {"groupRole":".."}
  GET|POST         /groups  (2023-01-01; create: {"name","orgId"} -> 201, owner: ?projectOwnerId=
                            or the oldest active ORG_OWNER user)
  410 VERSION_GONE (past their 2027-07-01 sunset): PUT /groups/{groupId}/users/{userId}/roles,
  PUT /orgs/{orgId}/users/{userId}/roles, POST /groups/{groupId}/access, /users..., .../invites...,
  and version 2023-01-01 of the user lists and removals

OAuth 2.0 (client credentials; Authorization: Basic base64(clientId:clientSecret), form body):
  POST /api/oauth/token   grant_type=client_credentials -> {"access_token","expires_in","token_type":"Bearer"}
  POST /api/oauth/revoke  token=...&token_type_hint=access_token -> 200

Admin API (same listener, no auth, JSON; admin_url = base_url + "/admin"):
  GET    /admin/health
  GET    /admin/inventory          orgs, projects, live api_keys (seeded key marked), service_accounts
                                   (roles, project_roles, secrets without values, access_list,
                                   active_tokens, seeded), org_users (one per org membership: id,
                                   username, org_id, status, org_roles, project_roles, seeded)
  GET    /admin/stats              requests_total, challenges, stale_challenges, auth_failures,
                                   rate_limited, faults_fired, routes{"METHOD /api/...":{total,challenges,by_status}}
  POST   /admin/stats/reset
  GET    /admin/journal[?since=SEQ]  [{seq,method,path,route,public_key,request_content_type,
                                   request_body,status,response_content_type,response_body}] (secrets redacted)
  DELETE /admin/journal            clear;  PUT /admin/journal {"capacity":N}
  GET    /admin/faults             [{id, rule, matched, fired}]
  POST   /admin/faults             {"method"?, "path": REGEX, "action": "status"|"reset"|"reset_after"|"latency"|"count",
                                    "status"?, "error_code"?, "detail"?, "retry_after"?, "latency_ms"?,
                                    "nth"? (only the nth match), "times"? (first N matches),
                                    "skip"? (the first N matches pass; nth/times count after them),
                                    "before_auth"? (default: only authenticated requests)} -> {"id":N}
  DELETE /admin/faults[/{id}]
  GET|PUT /admin/latency           {"ms":N}  global added latency per HTTP request
  GET|PUT /admin/ratelimit         {"enabled"?, "org"?:{capacity,refill,period_ms}, "project"?:{...},
                                    "token_enabled"?, "token"?:{...}}
  POST   /admin/ratelimit/reset    refill all buckets
  GET|PUT /admin/auth              {"nonce_lifetime_ms":N}
  GET|PUT /admin/oauth             {"token_lifetime_ms":N}  lifetime of tokens issued from now on
  POST   /admin/orgs               {"id"?, "name"?}
  POST   /admin/projects           {"id"?, "org_id"?, "name"?}
  POST   /admin/keys               {"org_id"?, "desc"?, "org_roles":[..], "project_roles":{"<groupId>":[..]},
                                    "id"?, "public_key"?, "private_key"?} -> key incl. private_key
  DELETE /admin/keys/{id}          delete a key out of band
  POST   /admin/service_accounts   {"org_id"?, "name"?, "description"?, "org_roles":[..],
                                    "project_roles":{"<groupId>":[..]}, "secret_expires_after_hours"?,
                                    "client_id"?, "client_secret"?} -> SA incl. client_secret
  DELETE /admin/service_accounts/{clientId}  delete a service account out of band
  POST   /admin/org_users          {"username", "org_id"?, "org_roles"? [ORG_MEMBER], "project_roles"?:
                                    {"<groupId>":[..]}, "status"? [ACTIVE], "id"?, "first_name"?,
                                    "last_name"?} -> the membership: an organization member as an
                                    accepted invitation leaves them (an open invitation is accepted)
  DELETE /admin/org_users/{userId}  delete a user's account (every membership) out of band
"#;

#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    Run(Box<SimConfig>),
}

fn value<'a>(
    args: &mut impl Iterator<Item = &'a String>,
    flag: &str,
) -> Result<&'a String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not a valid number"))
}

fn addr(s: &str, flag: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not HOST:PORT"))
}

fn bucket(s: &str, flag: &str) -> Result<BucketConfig, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [cap, refill, secs] = parts.as_slice() else {
        return Err(format!("{flag}: expected CAPACITY,REFILL,PERIOD_SECS"));
    };
    let period_secs: u64 = number(secs, flag)?;
    Ok(BucketConfig {
        capacity: number(cap, flag)?,
        refill: number(refill, flag)?,
        period_ms: period_secs.saturating_mul(1000),
    })
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    // The config file goes first so that flags override it.
    let mut cfg = SimConfig::default();
    if let Some(pos) = args.iter().position(|a| a == "--config") {
        let path = args.get(pos + 1).ok_or("--config needs a value")?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let file: FileConfig = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        file.apply(&mut cfg);
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--config" => {
                value(&mut it, flag)?;
            }
            "--listen" => cfg.listen = addr(value(&mut it, flag)?, flag)?,
            "--org-id" => cfg.org_id = Some(value(&mut it, flag)?.clone()),
            "--org-name" => cfg.org_name = value(&mut it, flag)?.clone(),
            "--project-id" => cfg.project_id = Some(value(&mut it, flag)?.clone()),
            "--project-name" => cfg.project_name = value(&mut it, flag)?.clone(),
            "--key-id" => cfg.key_id = Some(value(&mut it, flag)?.clone()),
            "--public-key" => cfg.public_key = Some(value(&mut it, flag)?.clone()),
            "--private-key" => cfg.private_key = Some(value(&mut it, flag)?.clone()),
            "--sa-client-id" => cfg.sa_client_id = Some(value(&mut it, flag)?.clone()),
            "--sa-client-secret" => cfg.sa_client_secret = Some(value(&mut it, flag)?.clone()),
            "--token-lifetime-secs" => {
                cfg.token_lifetime = Duration::from_secs(number(value(&mut it, flag)?, flag)?)
            }
            "--nonce-lifetime-secs" => {
                cfg.nonce_lifetime = Duration::from_secs(number(value(&mut it, flag)?, flag)?)
            }
            "--latency-ms" => {
                cfg.latency = Duration::from_millis(number(value(&mut it, flag)?, flag)?)
            }
            "--no-rate-limit" => cfg.rate_limit.enabled = false,
            "--org-rate-limit" => cfg.rate_limit.org = bucket(value(&mut it, flag)?, flag)?,
            "--project-rate-limit" => cfg.rate_limit.project = bucket(value(&mut it, flag)?, flag)?,
            "--token-rate-limit" => {
                cfg.rate_limit.token = bucket(value(&mut it, flag)?, flag)?;
                cfg.rate_limit.token_enabled = true;
            }
            "--max-keys-per-org" => cfg.max_keys_per_org = number(value(&mut it, flag)?, flag)?,
            "--max-service-accounts-per-org" => {
                cfg.max_service_accounts_per_org = number(value(&mut it, flag)?, flag)?
            }
            "--journal-capacity" => cfg.journal_capacity = number(value(&mut it, flag)?, flag)?,
            "--tls" => cfg.tls = true,
            "--ca-out" => cfg.ca_path = Some(PathBuf::from(value(&mut it, flag)?)),
            "--proxy" => cfg.proxy = true,
            "--proxy-listen" => cfg.proxy_listen = addr(value(&mut it, flag)?, flag)?,
            other => return Err(format!("unknown flag {other:?} (see --help)")),
        }
    }
    Ok(Command::Run(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_flags() {
        let Command::Run(cfg) = parse(&args(&[
            "--listen",
            "127.0.0.1:0",
            "--public-key",
            "abcdefgh",
            "--org-rate-limit",
            "10,5,1",
            "--no-rate-limit",
            "--tls",
            "--proxy",
            "--latency-ms",
            "50",
            "--token-rate-limit",
            "50,50,60",
            "--token-lifetime-secs",
            "5",
            "--sa-client-id",
            "mdb_sa_id_0123456789abcdef01234567",
        ]))
        .unwrap() else {
            panic!("expected run")
        };
        assert_eq!(cfg.public_key.as_deref(), Some("abcdefgh"));
        assert_eq!(
            cfg.rate_limit.org,
            BucketConfig {
                capacity: 10,
                refill: 5,
                period_ms: 1000
            }
        );
        assert!(!cfg.rate_limit.enabled && cfg.tls && cfg.proxy);
        assert_eq!(cfg.latency, Duration::from_millis(50));
        assert!(cfg.rate_limit.token_enabled);
        assert_eq!(cfg.rate_limit.token.period_ms, 60_000);
        assert_eq!(cfg.token_lifetime, Duration::from_secs(5));
        assert_eq!(
            cfg.sa_client_id.as_deref(),
            Some("mdb_sa_id_0123456789abcdef01234567")
        );
        assert_eq!(parse(&args(&["-h"])).unwrap(), Command::Help);
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--listen"])).is_err());
        assert!(parse(&args(&["--org-rate-limit", "1,2"])).is_err());
    }

    #[test]
    fn config_file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(
            &path,
            r#"{"org_name":"from file","public_key":"filekeyy","latency_ms":7,"token_lifetime_ms":1500,
                "extra_keys":[{"desc":"member","org_roles":["ORG_MEMBER"]}]}"#,
        )
        .unwrap();
        let p = path.to_string_lossy().into_owned();
        let Command::Run(cfg) =
            parse(&args(&["--config", &p, "--public-key", "flagkeyy"])).unwrap()
        else {
            panic!("expected run")
        };
        assert_eq!(cfg.org_name, "from file");
        assert_eq!(cfg.public_key.as_deref(), Some("flagkeyy"));
        assert_eq!(cfg.latency, Duration::from_millis(7));
        assert_eq!(cfg.extra_keys.len(), 1);
        assert_eq!(cfg.token_lifetime, Duration::from_millis(1500));
        std::fs::write(&path, r#"{"unknown":1}"#).unwrap();
        assert!(parse(&args(&["--config", &p])).is_err());
    }
}
