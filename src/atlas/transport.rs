//! One Atlas HTTP request, end to end: URL building, versioned media types, Digest auth with a
//! single re-challenge, time limits, classification of failures, and retries within a deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::Rng;
use tokio::time::Instant;
use url::{Position, Url};

use super::config::Login;
use super::config::{
    is_insecure_http, parse_base_url, redact_base_url, ClientConfig, RetryPolicy, Timeouts,
};
use super::digest::{select_challenge, DigestAuth};
use super::error::{is_atlas_refusal, ApiProblem, AtlasError};
use super::http_client::{self, ClientSettings, SharedClient};
use super::oauth::{Token, TokenAnswer, TokenSource};

/// Version 2023-01-01: every `/apiKeys` operation, access lists included.
pub const API_KEYS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";
/// Version 2024-08-05: every `/serviceAccounts` operation.
pub const SERVICE_ACCOUNTS_MEDIA_TYPE: &str = "application/vnd.atlas.2024-08-05+json";
/// Version 2025-02-19: the MongoDB Cloud user operations (`/orgs/{orgId}/users...`,
/// `/groups/{groupId}/users...`); their 2023-01-01 versions are sunset on 2027-07-01.
pub const USERS_MEDIA_TYPE: &str = "application/vnd.atlas.2025-02-19+json";
/// Version 2023-01-01: creating a project (`createGroup`, its only version).
pub const PROJECTS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";

/// Atlas answers are small; anything bigger is a misbehaving server or proxy.
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// `Retry-After` values beyond this are treated as this (the deadline usually cuts in first).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The versioned API lives under this path, after the base URL's own path.
const API_ROOT: [&str; 3] = ["api", "atlas", "v2"];

/// Whether sending the same request again could repeat its effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotency {
    Idempotent,
    /// Creates: never resent after Atlas may have acted on them.
    NonIdempotent,
}

pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The `Accept` type (Atlas' versioned media type), also the body's type
    /// unless `content_type` says otherwise.
    pub(crate) media_type: &'static str,
    content_type: Option<&'static str>,
    pub(crate) body: Option<Bytes>,
    pub(crate) idempotency: Idempotency,
    /// Token endpoint calls authenticate with the client's Basic credentials,
    /// not with the login's Digest or bearer token.
    basic_auth: bool,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, url: Url, idempotency: Idempotency) -> Self {
        Self {
            method,
            url,
            media_type: API_KEYS_MEDIA_TYPE,
            content_type: None,
            body: None,
            idempotency,
            basic_auth: false,
        }
    }

    pub(crate) fn with_json_body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(Bytes::from(body));
        self
    }

    pub(crate) fn with_media_type(mut self, media_type: &'static str) -> Self {
        self.media_type = media_type;
        self
    }

    /// A form-encoded OAuth call (token, revoke), with the client's Basic credentials.
    fn oauth(url: Url, form: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        Self {
            media_type: "application/json",
            content_type: Some("application/x-www-form-urlencoded"),
            body: Some(Bytes::from(body)),
            basic_auth: true,
            // Another token, or revoking one twice, changes nothing that matters.
            ..Self::new(Method::POST, url, Idempotency::Idempotent)
        }
    }
}

pub(crate) struct ApiResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// How safe it is to send a failed request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Atlas did not act on it (never connected, rate limited, nonce went stale).
    Always,
    /// Atlas may have acted on it (timeout or reset after sending, 5xx).
    IfIdempotent,
    /// Retrying will not help.
    Never,
}

#[derive(Debug)]
pub(crate) struct Failure {
    /// Boxed: failures travel through every retry layer and should stay small.
    pub(crate) error: Box<AtlasError>,
    pub(crate) resend: Resend,
    pub(crate) retry_after: Option<Duration>,
    /// The request provably had no effect: it was never sent, or Atlas itself refused it (a
    /// 4xx with its error document). Only then may a create be reported as "nothing created".
    pub(crate) not_acted_on: bool,
}

impl Failure {
    fn new(error: AtlasError, resend: Resend, retry_after: Option<Duration>) -> Self {
        Self {
            error: Box::new(error),
            resend,
            retry_after,
            not_acted_on: false,
        }
    }

    /// Failed before anything was sent.
    fn unsent(error: AtlasError) -> Self {
        Self {
            not_acted_on: true,
            ..Self::new(error, Resend::Never, None)
        }
    }

    /// True when a non-idempotent request may have taken effect although it failed.
    pub(crate) fn may_have_taken_effect(&self) -> bool {
        self.resend == Resend::IfIdempotent
    }

    fn retryable(&self, idempotency: Idempotency) -> bool {
        match self.resend {
            Resend::Always => true,
            Resend::IfIdempotent => idempotency == Idempotency::Idempotent,
            Resend::Never => false,
        }
    }
}

/// How the client proves who it is.
#[derive(Debug)]
enum Auth {
    Digest(DigestAuth),
    Bearer(TokenSource),
}

/// Shared by every clone of the client.
pub(crate) struct Transport {
    /// Shared with every other mount using the same connection settings.
    http: Arc<SharedClient>,
    api_root: Url,
    /// `<base>/api/oauth/`: the token endpoints live outside the versioned API.
    oauth_root: Url,
    auth: Auth,
    pub(crate) timeouts: Timeouts,
    retry: RetryPolicy,
    deprecation_warned: AtomicBool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api_root", &self.api_root.as_str())
            .field("auth", &self.auth)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, AtlasError> {
        let api_root = api_root(&config.base_url, config.allow_insecure_http)?;
        let oauth_root = oauth_root(&api_root);
        let auth = match &config.login {
            Login::ApiKey {
                public_key,
                private_key,
            } => {
                if public_key.trim().is_empty() || private_key.expose().is_empty() {
                    return Err(AtlasError::Config(
                        "the API key's public and private halves are required".to_owned(),
                    ));
                }
                Auth::Digest(DigestAuth::new(
                    public_key.trim().to_owned(),
                    private_key.clone(),
                ))
            }
            Login::ServiceAccount {
                client_id,
                client_secret,
            } => Auth::Bearer(TokenSource::new(client_id, client_secret)?),
        };
        if is_insecure_http(&api_root) {
            // Only reached with allow_insecure_http; the URL has no userinfo by now.
            tracing::warn!(
                base_url = %redact_base_url(&config.base_url),
                "Atlas base URL is plain HTTP: requests and responses (including new private keys) travel unencrypted"
            );
        }
        let http = http_client::shared(&ClientSettings {
            extra_root_certs_pem: config.extra_root_certs_pem.clone(),
            https: api_root.scheme() == "https",
            user_agent: config.user_agent(),
            connect_timeout: config.timeouts.connect,
        })?;
        Ok(Self {
            http,
            api_root,
            oauth_root,
            auth,
            timeouts: config.timeouts,
            retry: config.retry,
            deprecation_warned: AtomicBool::new(false),
        })
    }

    /// `<base>/api/atlas/v2/<segments...>`, each segment percent-encoded (so `10.0.0.0/8` becomes
    /// `10.0.0.0%2F8`). Callers validate ids first: the URL builder drops `.` and `..` segments.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api_root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    /// Resolves a pagination link against our own base URL: only the part from `/api/atlas/v2/`
    /// on is taken from the link, so a link naming another host (or omitting a proxy's path
    /// prefix) never sends our credentials anywhere else.
    pub(crate) fn resolve_link(&self, href: &str) -> Result<Url, AtlasError> {
        let unusable = || AtlasError::Unexpected {
            message: format!("Atlas returned an unusable pagination link {href:?}"),
            problem: None,
        };
        let link = self.api_root.join(href).map_err(|_| unusable())?;
        let marker = "/api/atlas/v2/";
        let start = link.path().find(marker).ok_or_else(unusable)?;
        let rest = &link.path()[start + marker.len()..];
        let mut url = self.api_root.clone();
        let root_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{root_path}/{rest}"));
        url.set_query(link.query());
        Ok(url)
    }

    /// A fresh backoff sequence for one logical operation.
    pub(crate) fn backoff(&self) -> ExponentialBackoff {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1));
        if self.retry.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }

    /// Sends `request`, retrying transient failures the request's idempotency allows, with
    /// backoff, honouring `Retry-After`, never past `deadline`.
    pub(crate) async fn send(
        &self,
        request: &ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        self.with_retries(request, deadline, || self.attempt(request, deadline))
            .await
    }

    /// Retries `attempt` as [`Self::send`] describes.
    async fn with_retries<F, Fut>(
        &self,
        request: &ApiRequest,
        deadline: Instant,
        attempt: F,
    ) -> Result<ApiResponse, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<ApiResponse, Failure>>,
    {
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|failure: &Failure| failure.retryable(request.idempotency))
            .adjust(|failure, backoff| retry_delay(failure, backoff, deadline))
            .notify(|failure, wait| {
                tracing::debug!(
                    method = %request.method,
                    path = request.url.path(),
                    wait_ms = wait.as_millis() as u64,
                    error = %failure.error,
                    "retrying Atlas request"
                );
            })
            .await
    }

    /// One attempt with the login's credentials.
    async fn attempt(
        &self,
        request: &ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        match &self.auth {
            Auth::Digest(digest) => self.digest_attempt(digest, request, deadline).await,
            Auth::Bearer(tokens) => self.bearer_attempt(tokens, request, deadline).await,
        }
    }

    /// At most two exchanges: a 401 to a token means it was revoked or
    /// expired early, so it is replaced once and the request sent again (Atlas
    /// acts on no request it answers 401).
    async fn bearer_attempt(
        &self,
        tokens: &TokenSource,
        request: &ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        let mut token = self.token(tokens, deadline).await?;
        let mut replaced = false;
        loop {
            let (status, headers, bytes) = self
                .exchange(request, Some(token.header.clone()), deadline)
                .await?;
            if status == StatusCode::UNAUTHORIZED && !replaced {
                tokens.forget(&token);
                token = self.token(tokens, deadline).await?;
                replaced = true;
                continue;
            }
            return self.finish(request, status, &headers, bytes);
        }
    }

    /// The service account's token, fetched (with retries) if none is fresh.
    async fn token(&self, tokens: &TokenSource, deadline: Instant) -> Result<Token, Failure> {
        tokens
            .token(deadline, || async {
                let url = self.oauth_url("token");
                let request = ApiRequest::oauth(url, &[("grant_type", "client_credentials")]);
                let response = self
                    .with_retries(&request, deadline, || {
                        self.basic_attempt(tokens, &request, deadline)
                    })
                    .await
                    .map_err(|f| token_failure(*f.error))?;
                let received = Instant::now();
                serde_json::from_slice::<TokenAnswer>(&response.body)
                    // The position only: serde's message can quote a value, and
                    // this answer holds a token.
                    .map_err(|e| AtlasError::Unexpected {
                        message: format!(
                            "unreadable answer from the token endpoint ({:?} error at line {} column {})",
                            e.classify(),
                            e.line(),
                            e.column()
                        ),
                        problem: None,
                    })?
                    .into_token(received)
            })
            .await
            .map_err(|e| Failure {
                // A login failure: nothing was sent to the Admin API.
                not_acted_on: true,
                ..Failure::new(e, Resend::Never, None)
            })
    }

    /// Revokes the service account's current token, if it has one (the client
    /// is being retired: the config changed). Best effort, one attempt.
    pub(crate) async fn revoke_token(&self, deadline: Instant) -> Result<bool, AtlasError> {
        let Auth::Bearer(tokens) = &self.auth else {
            return Ok(false);
        };
        let Some(token) = tokens.take() else {
            return Ok(false);
        };
        let request = ApiRequest::oauth(
            self.oauth_url("revoke"),
            &[
                ("token", token.value.expose()),
                ("token_type_hint", "access_token"),
            ],
        );
        self.basic_attempt(tokens, &request, deadline)
            .await
            .map(|_| true)
            .map_err(|f| token_failure(*f.error))
    }

    /// One exchange with the client's Basic credentials (token endpoints).
    async fn basic_attempt(
        &self,
        tokens: &TokenSource,
        request: &ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        let (status, headers, bytes) = self
            .exchange(request, Some(tokens.basic.clone()), deadline)
            .await?;
        self.finish(request, status, &headers, bytes)
    }

    fn oauth_url(&self, endpoint: &str) -> Url {
        let mut url = self.oauth_root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(endpoint);
        }
        url
    }

    /// At most two HTTP exchanges (the second answers a fresh Digest challenge).
    async fn digest_attempt(
        &self,
        digest: &DigestAuth,
        request: &ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        debug_assert!(!request.basic_auth);
        let uri = digest_uri(&request.url);
        let body = request.body.as_deref();
        let mut authorization = digest
            .sign_with_cached(&request.method, uri, body)
            .map_err(Failure::unsent)?;
        loop {
            let answered_fresh_challenge = authorization.as_ref().is_some_and(|a| !a.from_cache);
            let header = authorization.as_ref().map(|a| a.header.clone());
            let (status, headers, bytes) = self.exchange(request, header, deadline).await?;
            if status == StatusCode::UNAUTHORIZED {
                if let Some(challenge) = select_challenge(&headers) {
                    if !answered_fresh_challenge {
                        // No nonce yet, or the cached one expired: answer this challenge once.
                        authorization = Some(
                            digest
                                .sign_with_fresh(challenge, &request.method, uri, body)
                                .map_err(Failure::unsent)?,
                        );
                        continue;
                    }
                    if challenge.stale() {
                        // Our credentials were right; the nonce expired in between. Not processed.
                        return Err(Failure {
                            not_acted_on: is_atlas_refusal(status, &bytes),
                            ..Failure::new(
                                AtlasError::Transient {
                                    message: "Atlas expired the Digest nonce twice in a row"
                                        .to_owned(),
                                    problem: None,
                                },
                                Resend::Always,
                                None,
                            )
                        });
                    }
                }
            }
            return self.finish(request, status, &headers, bytes);
        }
    }

    /// One HTTP exchange within the per-attempt timeout and the overall deadline.
    async fn exchange(
        &self,
        request: &ApiRequest,
        authorization: Option<HeaderValue>,
        deadline: Instant,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure::unsent(AtlasError::Transient {
                message: "the overall deadline for this Atlas call passed".to_owned(),
                problem: None,
            }));
        }
        let timeout = self.timeouts.attempt.min(remaining);
        let mut builder = self
            .http
            .client
            .request(request.method.clone(), request.url.clone())
            .timeout(timeout)
            .header(ACCEPT, request.media_type);
        if let Some(body) = &request.body {
            builder = builder
                .header(
                    CONTENT_TYPE,
                    request.content_type.unwrap_or(request.media_type),
                )
                .body(body.clone());
        }
        if let Some(authorization) = authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        let started = Instant::now();
        let mut response = builder
            .send()
            .await
            .map_err(|e| self.network_failure(request, &e, started))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        // The request was processed; only the answer is unusable.
                        return Err(Failure::new(
                            AtlasError::Unexpected {
                                message: format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
                                problem: None,
                            },
                            Resend::IfIdempotent,
                            None,
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.network_failure(request, &e, started)),
            }
        }
        tracing::debug!(
            method = %request.method,
            path = request.url.path(),
            status = status.as_u16(),
            error_code = headers.get("x-error-code").and_then(|v| v.to_str().ok()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Atlas exchange"
        );
        Ok((status, headers, body.freeze()))
    }

    fn network_failure(
        &self,
        request: &ApiRequest,
        error: &reqwest::Error,
        started: Instant,
    ) -> Failure {
        let message = describe_network_error(error, started.elapsed());
        tracing::debug!(
            method = %request.method,
            path = request.url.path(),
            error = %message,
            "Atlas exchange failed"
        );
        let resend = if rejected_by_tls(error) {
            // A certificate Atlas' name does not verify against will not verify next time.
            Resend::Never
        } else if error.is_connect() {
            // No connection, so nothing was sent.
            Resend::Always
        } else if error.is_builder() {
            Resend::Never
        } else {
            // Timeout, reset, truncated body: the request may have reached Atlas.
            Resend::IfIdempotent
        };
        let not_sent = error.is_connect() || error.is_builder();
        let error = if rejected_by_tls(error) {
            AtlasError::Config(format!(
                "TLS with {} failed ({message}); if a proxy or private CA is in use, trust its CA via the system store or SSL_CERT_FILE",
                request.url.host_str().unwrap_or("Atlas")
            ))
        } else if resend == Resend::Never {
            AtlasError::Unexpected {
                message,
                problem: None,
            }
        } else {
            AtlasError::Transient {
                message,
                problem: None,
            }
        };
        Failure {
            // Connect errors (TLS handshake included) and unbuildable requests sent nothing.
            not_acted_on: not_sent,
            ..Failure::new(error, resend, None)
        }
    }

    fn finish(
        &self,
        request: &ApiRequest,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<ApiResponse, Failure> {
        self.warn_if_deprecated(request, headers);
        if status.is_success() {
            return Ok(ApiResponse { status, body });
        }
        let refused = is_atlas_refusal(status, &body);
        let problem = ApiProblem::from_response(status, headers, &body);
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
            _ => None,
        };
        let resend = match status {
            // Atlas' rate limiter turns requests away before they do anything.
            StatusCode::TOO_MANY_REQUESTS if refused => Resend::Always,
            // Someone else's 429 (a proxy) proves nothing about what reached Atlas.
            StatusCode::TOO_MANY_REQUESTS => Resend::IfIdempotent,
            // A gateway may have passed the request on before failing (502/503/504), and a
            // 500 may come after Atlas did part of the work: a create may have happened.
            s if s.is_server_error() => Resend::IfIdempotent,
            _ => Resend::Never,
        };
        Err(Failure {
            not_acted_on: refused,
            ..Failure::new(
                AtlasError::from_problem(problem, retry_after),
                resend,
                retry_after,
            )
        })
    }

    fn warn_if_deprecated(&self, request: &ApiRequest, headers: &HeaderMap) {
        let deprecation = headers.get("deprecation").and_then(|v| v.to_str().ok());
        let sunset = headers.get("sunset").and_then(|v| v.to_str().ok());
        if (deprecation.is_some() || sunset.is_some())
            && !self.deprecation_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                media_type = request.media_type,
                deprecation,
                sunset,
                "Atlas reports that the API version this plugin uses is deprecated; upgrade the plugin"
            );
        }
    }
}

/// Next wait before a retry: the server's `Retry-After` (plus a little jitter so that many
/// waiting clients do not return together) or the backoff step; `None` to stop, which is also
/// the answer when the wait would end past the deadline.
pub(crate) fn retry_delay(
    failure: &Failure,
    backoff: Option<Duration>,
    deadline: Instant,
) -> Option<Duration> {
    let backoff = backoff?;
    let wait = match failure.retry_after {
        Some(asked) => asked + small_jitter(asked),
        None => backoff,
    };
    (Instant::now() + wait < deadline).then_some(wait)
}

fn small_jitter(base: Duration) -> Duration {
    let cap_ms = (base.as_millis() / 10).clamp(1, 1000) as u64;
    Duration::from_millis(rand::rng().random_range(0..=cap_ms))
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The request-target as sent on the request line: what Digest signs as `uri`.
fn digest_uri(url: &Url) -> &str {
    &url[Position::BeforePath..Position::AfterQuery]
}

/// `<base>/api/oauth/`, beside the versioned API root `<base>/api/atlas/v2/`.
fn oauth_root(api_root: &Url) -> Url {
    let mut url = api_root.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().pop().pop().push("oauth");
    }
    url
}

/// A token endpoint failure, said in OAuth's terms: a 400 or 401 there means
/// the client id or secret is wrong, expired or deleted.
fn token_failure(error: AtlasError) -> AtlasError {
    match error {
        AtlasError::Unauthorized(p) | AtlasError::InvalidInput(p) | AtlasError::Forbidden(p) => {
            AtlasError::Unauthorized(ApiProblem {
                detail: Some(format!(
                    "the service account could not get a token ({}); check client_id and client_secret, and that the secret has not expired",
                    p.detail.as_deref().unwrap_or("no detail")
                )),
                ..p
            })
        }
        other => other,
    }
}

fn api_root(base_url: &str, allow_insecure_http: bool) -> Result<Url, AtlasError> {
    let mut url = parse_base_url(base_url, allow_insecure_http)
        .map_err(|e| AtlasError::Config(e.to_string()))?;
    let shown = redact_base_url(base_url);
    url.path_segments_mut()
        .map_err(|_| AtlasError::Config(format!("base_url {shown} cannot have a path")))?
        .pop_if_empty()
        .extend(API_ROOT);
    Ok(url)
}

/// Whether the TLS handshake failed on our side's checks (certificate, protocol).
fn rejected_by_tls(error: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if cause.is::<rustls::Error>() {
            return true;
        }
        // io::Error::source() skips the error it wraps (often another io::Error), so unwrap it.
        current = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    false
}

/// reqwest's message plus its causes, which say what actually happened (reset, refused, ...).
fn describe_network_error(error: &reqwest::Error, elapsed: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "no complete answer within {:.1}s (timed out)",
            elapsed.as_secs_f64()
        );
    }
    let mut message = if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "connection failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_dates_and_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_786_330_000);
        assert_eq!(parse_retry_after("55", now), Some(Duration::from_secs(55)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn base_url_validation_and_api_root() {
        let root = api_root("https://cloud.mongodb.com", false).expect("default");
        assert_eq!(root.as_str(), "https://cloud.mongodb.com/api/atlas/v2");
        let root = api_root("https://proxy.example/atlas/", false).expect("prefix");
        assert_eq!(root.as_str(), "https://proxy.example/atlas/api/atlas/v2");
        for bad in [
            "cloud.mongodb.com",
            "ftp://cloud.mongodb.com",
            "https://user:pw@cloud.mongodb.com",
            "https://cloud.mongodb.com/?x=1",
            "http://10.1.2.3:8080",
            "",
        ] {
            assert!(
                matches!(api_root(bad, false), Err(AtlasError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn plain_http_to_a_remote_host_needs_the_opt_in() {
        let config = ClientConfig::new("abcdefgh", "secret").with_base_url("http://10.1.2.3:8080");
        match Transport::new(&config) {
            Err(AtlasError::Config(msg)) => assert!(msg.contains("allow_insecure_http"), "{msg}"),
            other => panic!("want a config error, got {other:?}"),
        }
        assert!(Transport::new(&config.with_allow_insecure_http(true)).is_ok());
    }

    #[test]
    fn a_bad_base_url_error_hides_the_password() {
        let config = ClientConfig::new("abcdefgh", "secret")
            .with_base_url("https://user:s3cretpw@cloud.mongodb.com");
        match Transport::new(&config) {
            Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
            Ok(_) => panic!("userinfo accepted"),
        }
    }

    fn transport(base: &str) -> Transport {
        Transport::new(&ClientConfig::new("abcdefgh", "secret").with_base_url(base))
            .expect("transport")
    }

    #[test]
    fn builds_encoded_urls_and_digest_uri() {
        let t = transport("http://127.0.0.1:1");
        let url = t.url(&["orgs", "o1", "apiKeys", "k1", "accessList", "10.0.0.0/8"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/api/atlas/v2/orgs/o1/apiKeys/k1/accessList/10.0.0.0%2F8"
        );
        let mut url = t.url(&["orgs", "o1", "apiKeys"]);
        url.query_pairs_mut().append_pair("itemsPerPage", "500");
        assert_eq!(
            digest_uri(&url),
            "/api/atlas/v2/orgs/o1/apiKeys?itemsPerPage=500"
        );
    }

    #[test]
    fn pagination_links_are_rebased_onto_our_base_url() {
        let t = transport("http://127.0.0.1:1/prefix");
        let next = t
            .resolve_link(
                "https://cloud.mongodb.com/api/atlas/v2/orgs/o/apiKeys?pageNum=2&itemsPerPage=500",
            )
            .expect("link");
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:1/prefix/api/atlas/v2/orgs/o/apiKeys?pageNum=2&itemsPerPage=500"
        );
        let relative = t
            .resolve_link("/api/atlas/v2/groups/g/apiKeys?pageNum=3")
            .expect("relative link");
        assert_eq!(
            relative.as_str(),
            "http://127.0.0.1:1/prefix/api/atlas/v2/groups/g/apiKeys?pageNum=3"
        );
        assert!(t.resolve_link("https://evil.example/steal").is_err());
    }

    #[test]
    fn retry_delay_prefers_retry_after_and_respects_deadline() {
        let failure = Failure::new(
            AtlasError::Transient {
                message: "x".into(),
                problem: None,
            },
            Resend::Always,
            Some(Duration::from_secs(2)),
        );
        let far = Instant::now() + Duration::from_secs(60);
        let wait = retry_delay(&failure, Some(Duration::from_millis(10)), far).expect("wait");
        assert!(
            wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2200),
            "{wait:?}"
        );
        let near = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            retry_delay(&failure, Some(Duration::from_millis(10)), near),
            None
        );
        assert_eq!(retry_delay(&failure, None, far), None, "attempts exhausted");
        let plain = Failure {
            retry_after: None,
            ..failure
        };
        assert_eq!(
            retry_delay(&plain, Some(Duration::from_millis(10)), far),
            Some(Duration::from_millis(10))
        );
    }
}
