//! The HTTP side: listeners (plain or TLS), the per-request pipeline, and shutdown.
//!
//! Pipeline for an Atlas request: global latency → read body → faults (`before_auth`) →
//! digest auth (401 challenge) → route (404) → version negotiation (v2: 406) → faults →
//! token bucket (429) → handler → stats and journal. Requests under `/admin` skip all of it,
//! the global latency included.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::atlas_api::{self, ApiCall};
use super::digest::{self, AuthOutcome, ChallengeReason, NonceStore};
use super::error::ApiError;
use super::faults::{Failure, Faults};
use super::journal::{Journal, JournalEntry};
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
    /// Default org for admin-created keys and projects.
    pub seeded_org: String,
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
        (ApiVersion::V2, _) => "application/vnd.atlas.2023-01-01+json;charset=utf-8",
    }
}

fn rate_scope<'a>(resource: &Resource<'a>) -> Option<(Scope, &'a str)> {
    match *resource {
        Resource::OrgKeys { org }
        | Resource::OrgKey { org, .. }
        | Resource::AccessList { org, .. }
        | Resource::AccessEntry { org, .. }
        | Resource::ServiceAccounts { org }
        | Resource::ServiceAccount { org, .. } => Some((Scope::Org, org)),
        Resource::GroupKeys { group } | Resource::GroupKey { group, .. } => {
            Some((Scope::Project, group))
        }
        Resource::Org { .. } | Resource::Group { .. } => None,
    }
}

fn rate_limited(version: ApiVersion, scope: Scope, decision: &Decision) -> ApiError {
    let area = match scope {
        Scope::Org => "orgs",
        Scope::Project => "groups",
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
    public_key: Option<String>,
}

impl Pipeline<'_> {
    async fn run(self) -> Result<Response<Body>, ConnectionReset> {
        let path = self.parts.uri.path();
        let method = &self.parts.method;
        let routed = router::route(path);
        let key = match &routed {
            Some((version, resource)) => RouteKey {
                method: method_name(method),
                prefix: version.prefix(),
                template: resource.template(),
            },
            None => RouteKey {
                method: method_name(method),
                prefix: "",
                template: "<unmatched>",
            },
        };
        let outcome = self.outcome(routed.as_ref()).await;
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
            public_key: outcome.public_key.clone(),
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

    async fn outcome(&self, routed: Option<&(ApiVersion, Resource<'_>)>) -> Outcome {
        let path = self.parts.uri.path();
        let method = self.parts.method.as_str();
        let plain = |response| Outcome {
            response,
            challenge: Challenge::None,
            public_key: None,
        };

        let early = self.shared.faults.evaluate(method, path, true);
        sleep_if(early.latency).await;
        if early.fired && early.failure.is_none() {
            self.shared.stats.fault_fired();
        }
        if let Some(failure) = early.failure {
            return plain(self.apply_failure(failure));
        }

        // Digest authentication.
        let authorization = self
            .parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let uri = self
            .parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(path);
        let outcome = digest::verify(
            &self.shared.nonces,
            method,
            uri,
            authorization,
            |public_key| {
                let store = self
                    .shared
                    .store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                store
                    .credentials(public_key)
                    .map(|(_, private)| private.to_owned())
            },
        );
        let public_key = match outcome {
            AuthOutcome::Authenticated { public_key } => public_key,
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
                return Outcome {
                    response: Ok(resp),
                    challenge,
                    public_key: None,
                };
            }
        };
        let authed = |response| Outcome {
            response,
            challenge: Challenge::None,
            public_key: Some(public_key.clone()),
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
            if let Err(err) = router::negotiate_v2(accept, resource.v2_version(), path) {
                return authed(Ok(error_response(&err)));
            }
        }

        let late = self.shared.faults.evaluate(method, path, false);
        sleep_if(late.latency).await;
        if late.fired && late.failure.is_none() {
            self.shared.stats.fault_fired();
        }
        if let Some(failure) = late.failure {
            return authed(self.apply_failure(failure));
        }

        let decision = rate_scope(resource)
            .and_then(|(scope, id)| self.shared.limits.take(scope, id).map(|d| (scope, d)));
        let mut resp = match decision {
            Some((scope, d)) if d.retry_after.is_some() => {
                error_response(&rate_limited(*version, scope, &d))
            }
            _ => self.handle(*version, resource, &public_key),
        };
        if late.reset_after {
            return authed(Err(ConnectionReset));
        }
        if let Some((_, d)) = decision {
            resp.headers_mut()
                .insert("ratelimit-limit", HeaderValue::from(d.limit));
            resp.headers_mut()
                .insert("ratelimit-remaining", HeaderValue::from(d.remaining));
        }
        authed(Ok(resp))
    }

    fn handle(
        &self,
        version: ApiVersion,
        resource: &Resource<'_>,
        public_key: &str,
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
            caller_public_key: public_key,
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
