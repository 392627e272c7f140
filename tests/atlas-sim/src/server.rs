//! The HTTP side: listeners (plain or TLS), the per-request pipeline, and shutdown.
//!
//! Pipeline for an Atlas request: global latency → read body → faults (`before_auth`) →
//! authentication: `Authorization: Bearer <token>` (401 Atlas body, no challenge) or else
//! Digest (401 challenge) → route (404) → version negotiation (v2: 406) → faults → token
//! bucket (429) → handler → stats and journal.
//!
//! Pipeline for the OAuth endpoints (`POST /api/oauth/token`, `POST /api/oauth/revoke`):
//! global latency → read body → faults (`before_auth`) → method (405) → Basic client
//! credentials (401 `invalid_client`) → service-account access list (403) → faults → token
//! bucket per IP and client (`/token` only, 429) → form body and grant (400) → handler →
//! stats and journal. Requests under `/admin` skip all of it, the global latency included.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::atlas_api::{self, ApiCall, CallerId};
use super::digest::{self, AuthOutcome, ChallengeReason, NonceStore};
use super::error::ApiError;
use super::faults::{Failure, Faults};
use super::journal::{Journal, JournalEntry};
use super::oauth::{self, Endpoint, OAuthError};
use super::ratelimit::{Decision, RateLimiter, Scope};
use super::router::{self, ApiVersion, Resource};
use super::stats::{Challenge, RouteKey, Stats};
use super::store::Store;

const MAX_BODY: usize = 1 << 20;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub type Body = Full<Bytes>;

/// State shared by every connection. No lock is held across an await.
pub struct Shared {
    pub store: Mutex<Store>,
    pub nonces: NonceStore,
    pub limits: RateLimiter,
    pub faults: Faults,
    pub stats: Stats,
    pub journal: Journal,
    pub latency_ms: AtomicU64,
    /// Lifetime of newly issued OAuth access tokens.
    pub token_lifetime_ms: AtomicU64,
    /// Default org for admin-created keys and projects.
    pub seeded_org: String,
}

impl Shared {
    pub fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn token_lifetime(&self) -> Duration {
        Duration::from_millis(self.token_lifetime_ms.load(Ordering::Relaxed))
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.token_lifetime_ms.store(
            u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ConnectionReset {}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub fn response(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Vec<u8>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = response(err.status, Some("application/json"), err.body());
    if let Ok(code) = HeaderValue::from_str(&err.code) {
        resp.headers_mut().insert("x-error-code", code);
    }
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn versioned_content_type(version: ApiVersion, resource: &Resource<'_>) -> &'static str {
    match (version, resource.v2_version()) {
        (ApiVersion::V1, _) => "application/json",
        (ApiVersion::V2, "2024-08-05") => "application/vnd.atlas.2024-08-05+json;charset=utf-8",
        (ApiVersion::V2, "2025-02-19") => "application/vnd.atlas.2025-02-19+json;charset=utf-8",
        (ApiVersion::V2, _) => "application/vnd.atlas.2023-01-01+json;charset=utf-8",
    }
}

fn rate_scope<'a>(resource: &Resource<'a>) -> Option<(Scope, &'a str)> {
    use super::router::SaScope;
    match *resource {
        Resource::OrgKeys { org }
        | Resource::OrgKey { org, .. }
        | Resource::AccessList { org, .. }
        | Resource::AccessEntry { org, .. }
        | Resource::SaGroups { org, .. }
        | Resource::OrgUsers { org }
        | Resource::OrgUser { org, .. }
        | Resource::OrgUserRole { org, .. } => Some((Scope::Org, org)),
        Resource::GroupKeys { group }
        | Resource::GroupKey { group, .. }
        | Resource::SaInvite { group, .. }
        | Resource::GroupUsers { group }
        | Resource::GroupUser { group, .. }
        | Resource::GroupUserRole { group, .. } => Some((Scope::Project, group)),
        Resource::ServiceAccounts { scope }
        | Resource::ServiceAccount { scope, .. }
        | Resource::SaAccessList { scope, .. }
        | Resource::SaAccessEntry { scope, .. }
        | Resource::SaSecrets { scope, .. }
        | Resource::SaSecret { scope, .. } => match scope {
            SaScope::Org(org) => Some((Scope::Org, org)),
            SaScope::Group(group) => Some((Scope::Project, group)),
        },
        Resource::Orgs
        | Resource::Org { .. }
        | Resource::Group { .. }
        | Resource::Groups
        | Resource::Retired { .. } => None,
    }
}

fn rate_limited(version: ApiVersion, scope: Scope, decision: &Decision) -> ApiError {
    let area = match scope {
        Scope::Org => "orgs",
        Scope::Project | Scope::Token => "groups",
    };
    let prefix = version.prefix().trim_start_matches('/');
    let secs = decision.retry_after.unwrap_or(1);
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED_TOKEN_BUCKET",
        format!("Rate limit exceeded for {prefix}/{area}. Please retry after {secs} seconds."),
    )
    .with_params([format!("{prefix}/{area}"), secs.to_string()]);
    err.retry_after = Some(secs);
    err
}

/// The token endpoint's 429, shaped like Atlas's (`RATE_LIMITED`, "Resource /api/oauth/token
/// is limited to N requests every M minutes.").
fn token_rate_limited(period_ms: u64, decision: &Decision) -> ApiError {
    let path = oauth::TOKEN_PATH;
    let limit = decision.limit;
    let (every, unit) = if period_ms % 60_000 == 0 {
        (period_ms / 60_000, "minutes")
    } else {
        (period_ms.div_ceil(1000), "seconds")
    };
    let secs = decision.retry_after.unwrap_or(1);
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!("Resource {path} is limited to {limit} requests every {every} {unit}."),
    )
    .with_params([path.to_owned(), limit.to_string(), every.to_string()]);
    err.retry_after = Some(secs);
    err
}

fn oauth_error_response(err: &OAuthError) -> Response<Body> {
    let mut resp = response(err.status, Some("application/json"), err.body());
    no_store(&mut resp);
    if err.status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    resp
}

/// OAuth answers carrying tokens must not be cached (RFC 6749 §5.1).
fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// What a request with an unknown, expired or revoked bearer token gets: 401 with the body
/// Atlas sends to unauthenticated requests, but no Digest challenge.
fn bad_bearer_response() -> Response<Body> {
    response(
        StatusCode::UNAUTHORIZED,
        Some("application/json"),
        digest::CHALLENGE_BODY.as_bytes().to_vec(),
    )
}

fn set_rate_headers(resp: &mut Response<Body>, d: &Decision) {
    resp.headers_mut()
        .insert("ratelimit-limit", HeaderValue::from(d.limit));
    resp.headers_mut()
        .insert("ratelimit-remaining", HeaderValue::from(d.remaining));
}

/// Per-connection facts the pipeline needs.
#[derive(Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub https: bool,
}

async fn sleep_if(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Serves one request.
pub async fn serve(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, ConnectionReset> {
    let is_admin = {
        let path = req.uri().path();
        path == "/admin" || path.starts_with("/admin/")
    };
    if !is_admin {
        let latency = Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed));
        sleep_if(latency).await;
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let err = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "Request body too large or unreadable.",
            );
            return Ok(error_response(&err));
        }
    };
    if is_admin {
        let path = parts.uri.path();
        return Ok(super::admin::handle(
            &shared,
            &parts.method,
            path,
            parts.uri.query(),
            &body,
        ));
    }
    let started = Pipeline {
        shared: &shared,
        conn,
        parts: &parts,
        body: &body,
    };
    started.run().await
}

struct Pipeline<'a> {
    shared: &'a Shared,
    conn: ConnInfo,
    parts: &'a http::request::Parts,
    body: &'a Bytes,
}

struct Outcome {
    response: Result<Response<Body>, ConnectionReset>,
    challenge: Challenge,
    caller: Option<CallerId>,
}

/// One phase of fault rules: either a finished answer, or go on (maybe resetting after).
enum FaultPhase {
    Answer(Result<Response<Body>, ConnectionReset>),
    Continue { reset_after: bool },
}

impl Pipeline<'_> {
    async fn run(self) -> Result<Response<Body>, ConnectionReset> {
        let path = self.parts.uri.path();
        let method = &self.parts.method;
        let endpoint = Endpoint::from_path(path);
        let routed = if endpoint.is_some() {
            None
        } else {
            router::route(path)
        };
        let key = match (endpoint, &routed) {
            (Some(endpoint), _) => RouteKey {
                method: method_name(method),
                prefix: "",
                template: endpoint.path(),
            },
            (None, Some((version, resource))) => RouteKey {
                method: method_name(method),
                prefix: version.prefix(),
                template: resource.template(),
            },
            (None, None) => RouteKey {
                method: method_name(method),
                prefix: "",
                template: "<unmatched>",
            },
        };
        let outcome = match endpoint {
            Some(endpoint) => self.oauth_outcome(endpoint).await,
            None => self.outcome(routed.as_ref()).await,
        };
        let status = outcome
            .response
            .as_ref()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        self.shared.stats.record(key, status, outcome.challenge);
        if self.shared.journal.enabled() {
            self.journal(key, &outcome, status);
        }
        outcome.response
    }

    fn journal(&self, key: RouteKey, outcome: &Outcome, status: u16) {
        let header = |h: &http::HeaderMap| {
            h.get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (response_content_type, response_body) = match &outcome.response {
            Ok(resp) => {
                let body = full_body_bytes(resp.body());
                (
                    header(resp.headers()),
                    String::from_utf8_lossy(&body).into_owned(),
                )
            }
            Err(_) => (None, String::new()),
        };
        self.shared.journal.push(JournalEntry {
            seq: 0,
            method: self.parts.method.as_str().to_owned(),
            path: self
                .parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            route: key.to_string(),
            public_key: match &outcome.caller {
                Some(CallerId::Key(pk)) => Some(pk.clone()),
                _ => None,
            },
            client_id: match &outcome.caller {
                Some(CallerId::ServiceAccount(id)) => Some(id.clone()),
                _ => None,
            },
            request_content_type: header(&self.parts.headers),
            request_body: String::from_utf8_lossy(self.body).into_owned(),
            status,
            response_content_type,
            response_body,
        });
    }

    fn apply_failure(&self, failure: Failure) -> Result<Response<Body>, ConnectionReset> {
        self.shared.stats.fault_fired();
        match failure {
            Failure::Reset => Err(ConnectionReset),
            Failure::Status {
                status,
                code,
                detail,
                retry_after,
            } => {
                let mut err = ApiError::new(status, code, detail);
                err.retry_after = retry_after;
                Ok(error_response(&err))
            }
        }
    }

    /// Evaluates one phase of fault rules (latency is slept here).
    async fn faults(&self, before_auth: bool) -> FaultPhase {
        let path = self.parts.uri.path();
        let method = self.parts.method.as_str();
        let effect = self.shared.faults.evaluate(method, path, before_auth);
        sleep_if(effect.latency).await;
        if effect.fired && effect.failure.is_none() {
            self.shared.stats.fault_fired();
        }
        match effect.failure {
            Some(failure) => FaultPhase::Answer(self.apply_failure(failure)),
            None => FaultPhase::Continue {
                reset_after: effect.reset_after,
            },
        }
    }

    fn authorization(&self) -> Option<&str> {
        self.parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }

    /// Authenticates an Admin API request: a bearer token, or else Digest. Err is the
    /// finished 401 answer.
    fn authenticate(&self) -> Result<CallerId, Box<Outcome>> {
        let authorization = self.authorization();
        if let Some(token) = oauth::bearer_token(authorization) {
            let client = self
                .shared
                .lock_store()
                .bearer(token, peer_ip(self.conn.peer));
            return client.map(CallerId::ServiceAccount).ok_or_else(|| {
                Box::new(Outcome {
                    response: Ok(bad_bearer_response()),
                    challenge: Challenge::BadBearer,
                    caller: None,
                })
            });
        }
        let path = self.parts.uri.path();
        let uri = self
            .parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(path);
        let outcome = digest::verify(
            &self.shared.nonces,
            self.parts.method.as_str(),
            uri,
            authorization,
            |public_key| {
                self.shared
                    .lock_store()
                    .credentials(public_key)
                    .map(|(_, private)| private.to_owned())
            },
        );
        match outcome {
            AuthOutcome::Authenticated { public_key } => Ok(CallerId::Key(public_key)),
            AuthOutcome::Challenge(reason) => {
                let nonce = self.shared.nonces.issue();
                let mut resp = response(
                    StatusCode::UNAUTHORIZED,
                    Some("application/json"),
                    digest::CHALLENGE_BODY.as_bytes().to_vec(),
                );
                if let Ok(v) =
                    HeaderValue::from_str(&digest::challenge_header(&nonce, reason.stale()))
                {
                    resp.headers_mut().insert(WWW_AUTHENTICATE, v);
                }
                let challenge = match reason {
                    ChallengeReason::NoCredentials => Challenge::Fresh,
                    ChallengeReason::BadCredentials => Challenge::BadCredentials,
                    ChallengeReason::StaleNonce | ChallengeReason::Replay => Challenge::Stale,
                };
                Err(Box::new(Outcome {
                    response: Ok(resp),
                    challenge,
                    caller: None,
                }))
            }
        }
    }

    async fn outcome(&self, routed: Option<&(ApiVersion, Resource<'_>)>) -> Outcome {
        let path = self.parts.uri.path();
        let plain = |response| Outcome {
            response,
            challenge: Challenge::None,
            caller: None,
        };

        if let FaultPhase::Answer(response) = self.faults(true).await {
            return plain(response);
        }

        let caller = match self.authenticate() {
            Ok(caller) => caller,
            Err(outcome) => return *outcome,
        };
        let authed = |response| Outcome {
            response,
            challenge: Challenge::None,
            caller: Some(caller.clone()),
        };

        let Some((version, resource)) = routed else {
            return authed(Ok(error_response(&ApiError::resource_not_found(path))));
        };
        if *version == ApiVersion::V2 {
            let accept = self
                .parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            if let Err(err) = router::negotiate_v2(
                accept,
                resource.v2_version(),
                resource.sunset_versions(),
                resource.is_retired(),
                path,
            ) {
                return authed(Ok(error_response(&err)));
            }
        }

        let reset_after = match self.faults(false).await {
            FaultPhase::Answer(response) => return authed(response),
            FaultPhase::Continue { reset_after } => reset_after,
        };

        let decision = rate_scope(resource)
            .and_then(|(scope, id)| self.shared.limits.take(scope, id).map(|d| (scope, d)));
        let mut resp = match decision {
            Some((scope, d)) if d.retry_after.is_some() => {
                error_response(&rate_limited(*version, scope, &d))
            }
            _ => self.handle(*version, resource, &caller),
        };
        if reset_after {
            return authed(Err(ConnectionReset));
        }
        if let Some((_, d)) = decision {
            set_rate_headers(&mut resp, &d);
        }
        authed(Ok(resp))
    }

    /// `POST /api/oauth/token` and `POST /api/oauth/revoke`.
    async fn oauth_outcome(&self, endpoint: Endpoint) -> Outcome {
        let plain = |response, challenge| Outcome {
            response,
            challenge,
            caller: None,
        };
        if let FaultPhase::Answer(response) = self.faults(true).await {
            return plain(response, Challenge::None);
        }
        if self.parts.method != Method::POST {
            let err = OAuthError::method_not_allowed();
            return plain(Ok(oauth_error_response(&err)), Challenge::None);
        }
        let invalid_client = || {
            plain(
                Ok(oauth_error_response(&OAuthError::invalid_client())),
                Challenge::BadClient,
            )
        };
        let Some((client_id, secret)) = oauth::basic_credentials(self.authorization()) else {
            return invalid_client();
        };
        let peer = peer_ip(self.conn.peer);
        let checked = {
            let store = self.shared.lock_store();
            match store.authenticate_client(&client_id, &secret) {
                Err(_) => None,
                Ok(_) => Some(
                    store
                        .service_account_by_id(&client_id)
                        .map_or(Ok(()), |sa| {
                            atlas_api::check_access_list(&sa.access_list, peer)
                        }),
                ),
            }
        };
        let caller = CallerId::ServiceAccount(client_id.clone());
        let authed = |response| Outcome {
            response,
            challenge: Challenge::None,
            caller: Some(caller.clone()),
        };
        match checked {
            None => return invalid_client(),
            Some(Err(err)) => return authed(Ok(error_response(&err))),
            Some(Ok(())) => {}
        }

        let reset_after = match self.faults(false).await {
            FaultPhase::Answer(response) => return authed(response),
            FaultPhase::Continue { reset_after } => reset_after,
        };

        let decision = match endpoint {
            Endpoint::Token => self
                .shared
                .limits
                .take(Scope::Token, &format!("{peer}|{client_id}")),
            Endpoint::Revoke => None,
        };
        let mut resp = match decision {
            Some(d) if d.retry_after.is_some() => {
                let period = self.shared.limits.config().token.period_ms;
                error_response(&token_rate_limited(period, &d))
            }
            _ => match self.oauth_handle(endpoint, &client_id, &secret) {
                Ok(resp) => resp,
                Err(err) if err.error == "invalid_client" => return invalid_client(),
                Err(err) => oauth_error_response(&err),
            },
        };
        if reset_after {
            return authed(Err(ConnectionReset));
        }
        if let Some(d) = decision {
            set_rate_headers(&mut resp, &d);
        }
        authed(Ok(resp))
    }

    fn oauth_handle(
        &self,
        endpoint: Endpoint,
        client_id: &str,
        secret: &str,
    ) -> Result<Response<Body>, OAuthError> {
        let content_type = self
            .parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let params = oauth::form(content_type, self.body)?;
        match endpoint {
            Endpoint::Token => {
                oauth::check_grant(&params)?;
                let lifetime = self.shared.token_lifetime();
                let issued = self
                    .shared
                    .lock_store()
                    .issue_token(client_id, secret, lifetime)
                    .map_err(|_| OAuthError::invalid_client())?;
                let mut resp = response(
                    StatusCode::OK,
                    Some("application/json"),
                    oauth::token_body(&issued),
                );
                no_store(&mut resp);
                Ok(resp)
            }
            Endpoint::Revoke => {
                let token = oauth::revoked_token(&params)?;
                self.shared
                    .lock_store()
                    .revoke_token(client_id, token)
                    .map_err(|_| {
                        OAuthError::invalid_request("The token was not issued to this client.")
                    })?;
                Ok(response(StatusCode::OK, None, Vec::new()))
            }
        }
    }

    fn handle(
        &self,
        version: ApiVersion,
        resource: &Resource<'_>,
        caller: &CallerId,
    ) -> Response<Body> {
        let host = self
            .parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| self.parts.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_else(|| "localhost".to_owned());
        let base = format!(
            "{}://{}",
            if self.conn.https { "https" } else { "http" },
            host
        );
        let call = ApiCall {
            version,
            resource,
            method: &self.parts.method,
            path: self.parts.uri.path(),
            query: self.parts.uri.query(),
            body: self.body,
            caller,
            peer_ip: peer_ip(self.conn.peer),
            base: &base,
        };
        match atlas_api::handle(&self.shared.store, &call) {
            Ok(reply) => {
                let ct = versioned_content_type(version, resource);
                let mut resp = response(reply.status, Some(ct), reply.body.unwrap_or_default());
                if reply.status == StatusCode::NO_CONTENT {
                    // Atlas sends the versioned type on 204 too (recorded).
                    resp.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
                }
                resp
            }
            Err(err) => error_response(&err),
        }
    }
}

/// IPv4-mapped IPv6 peers count as their IPv4 address for access lists.
fn peer_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        ip => ip,
    }
}

/// The bytes of a `Full` body (a cheap handle clone; `Full` yields its one frame at once).
fn full_body_bytes(body: &Body) -> Bytes {
    let mut clone = body.clone();
    let mut out = Bytes::new();
    if let Some(Ok(frame)) = futures::FutureExt::now_or_never(clone.frame()).flatten() {
        if let Ok(data) = frame.into_data() {
            out = data;
        }
    }
    out
}

/// Serves HTTP/1.1 and HTTP/2 on one accepted stream until it closes or shutdown is asked.
pub async fn serve_connection<I>(
    io: I,
    shared: Arc<Shared>,
    conn: ConnInfo,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| serve(shared.clone(), conn, req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        res = connection.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with error");
            }
        }
        _ = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
        }
    }
}

/// Accepts connections (optionally wrapping them in TLS) until shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let stop = shutdown.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve_connection(stream, shared, ConnInfo { peer, https: false }, stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls_stream)) => {
                                    serve_connection(tls_stream, shared, ConnInfo { peer, https: true }, stop).await;
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drain(connections).await;
}

/// Resolves once shutdown was asked (or the sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub async fn drain(mut connections: JoinSet<()>) {
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_millis(500), all_done)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}
