//! Service-account login: OAuth 2.0 client credentials (`POST /api/oauth/token`
//! with HTTP Basic), then `Authorization: Bearer` on every Admin API call.
//!
//! One token per client (a mount's), cached and replaced before it expires.
//! Callers that find it stale queue behind one refresh (single flight): Atlas
//! allows 50 token requests a minute per client, and a burst of issuances must
//! not each ask for a token. The token and the client secret are held as
//! sensitive header values and [`PrivateKey`]s, never shown by `Debug`.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use serde::Deserialize;
use tokio::time::{timeout_at, Instant};

use super::error::AtlasError;
use super::secret::PrivateKey;

/// Atlas' token lifetime when an answer does not say (it says 3,600 s).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is replaced this long before it expires, at most: requests under
/// way when it is replaced still have time to finish with it.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    /// `Bearer <token>`, marked sensitive (never logged by the HTTP stack).
    pub(crate) header: HeaderValue,
    /// The raw token, for revocation.
    pub(crate) value: PrivateKey,
    refresh_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

impl TokenAnswer {
    pub(crate) fn into_token(self, received: Instant) -> Result<Token, AtlasError> {
        if let Some(kind) = &self.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(AtlasError::Unexpected {
                    message: format!(
                        "the token endpoint issued a {kind:?} token, not a bearer token"
                    ),
                    problem: None,
                });
            }
        }
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", self.access_token)).map_err(|_| {
                AtlasError::Unexpected {
                    message: "the token endpoint issued a token that is not a valid header value"
                        .to_owned(),
                    problem: None,
                }
            })?;
        header.set_sensitive(true);
        let lifetime = self
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        let margin = (lifetime / 5).min(MAX_REFRESH_MARGIN);
        Ok(Token {
            header,
            value: PrivateKey::new(self.access_token),
            refresh_at: received + lifetime.saturating_sub(margin),
        })
    }
}

/// The service account's credentials and its current token.
pub(crate) struct TokenSource {
    pub(crate) client_id: String,
    /// `Basic base64(client_id:client_secret)`, marked sensitive.
    pub(crate) basic: HeaderValue,
    current: Mutex<Option<Token>>,
    /// Held by the one caller fetching a token; the others wait for its result.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(client_id: &str, client_secret: &PrivateKey) -> Result<Self, AtlasError> {
        let client_id = client_id.trim();
        if client_id.is_empty() || client_secret.expose().is_empty() {
            return Err(AtlasError::Config(
                "the service account's client id and secret are required".to_owned(),
            ));
        }
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{client_id}:{}", client_secret.expose()));
        let mut basic = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
            AtlasError::Config("the service account's client id is not usable".to_owned())
        })?;
        basic.set_sensitive(true);
        Ok(Self {
            client_id: client_id.to_owned(),
            basic,
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The current token if it is not due for replacement.
    fn fresh(&self) -> Option<Token> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|t| t.is_fresh(Instant::now()))
            .cloned()
    }

    /// A usable token: the cached one, or one fetched by `fetch`, which runs
    /// for at most one caller at a time; callers that waited for it take its token.
    pub(crate) async fn token<F, Fut>(
        &self,
        deadline: Instant,
        fetch: F,
    ) -> Result<Token, AtlasError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, AtlasError>>,
    {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _turn = timeout_at(deadline, self.refresh.lock())
            .await
            .map_err(|_| AtlasError::Transient {
                message: "the overall deadline passed while waiting for a service-account token"
                    .to_owned(),
                problem: None,
            })?;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let token = fetch().await?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (Atlas answered 401 to it), unless another caller
    /// already replaced it.
    pub(crate) fn forget(&self, rejected: &Token) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|t| t.header == rejected.header)
        {
            *current = None;
        }
    }

    /// Takes the current token out (for revocation when the client is retired).
    pub(crate) fn take(&self) -> Option<Token> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn answer(token: &str, expires_in: u64) -> TokenAnswer {
        TokenAnswer {
            access_token: token.to_owned(),
            expires_in: Some(expires_in),
            token_type: Some("Bearer".to_owned()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_four_callers_share_one_fetch() {
        let source =
            Arc::new(TokenSource::new("mdb_sa_id_x", &PrivateKey::new("s")).expect("source"));
        let fetches = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for _ in 0..64 {
            let source = source.clone();
            let fetches = fetches.clone();
            let entered = entered.clone();
            let mut released = released.clone();
            callers.push(tokio::spawn(async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(30);
                source
                    .token(deadline, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        // Hold the fetch open until every caller has queued behind it.
                        let _ = released.wait_for(|r| *r).await;
                        answer("t1", 3600).into_token(Instant::now())
                    })
                    .await
            }));
        }
        // Every caller has asked for a token while the first fetch is held open
        // (without single flight, each of them would be fetching by now).
        while entered.load(Ordering::SeqCst) < 64 || fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        release.send(true).expect("release");
        for caller in callers {
            let token = caller.await.expect("join").expect("token");
            assert_eq!(token.value.expose(), "t1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_is_replaced_before_it_expires_and_after_a_401() {
        let source = TokenSource::new("id", &PrivateKey::new("s")).expect("source");
        let deadline = Instant::now() + Duration::from_secs(5);
        // Lifetime 0: due for replacement at once.
        let first = source
            .token(deadline, || async {
                answer("short", 0).into_token(Instant::now())
            })
            .await
            .expect("first");
        let second = source
            .token(deadline, || async {
                answer("long", 3600).into_token(Instant::now())
            })
            .await
            .expect("second");
        assert_eq!(
            (first.value.expose(), second.value.expose()),
            ("short", "long")
        );
        let cached = source
            .token(deadline, || async {
                Err(AtlasError::InvalidArgument("no fetch".into()))
            })
            .await
            .expect("cached");
        assert_eq!(cached.value.expose(), "long");
        source.forget(&cached);
        let third = source
            .token(deadline, || async {
                answer("new", 3600).into_token(Instant::now())
            })
            .await
            .expect("third");
        assert_eq!(third.value.expose(), "new");
    }

    #[test]
    fn nothing_secret_in_debug_output() {
        let source = TokenSource::new("mdb_sa_id_abc", &PrivateKey::new("mdb_sa_sk_secret"))
            .expect("source");
        let token = answer("eyJtoken", 3600)
            .into_token(Instant::now())
            .expect("token");
        let shown = format!("{source:?} {token:?} {:?}", source.basic);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("eyJtoken"), "{shown}");
        assert!(shown.contains("mdb_sa_id_abc"), "{shown}");
    }

    #[test]
    fn a_non_bearer_token_is_refused() {
        let odd = TokenAnswer {
            access_token: "x".into(),
            expires_in: None,
            token_type: Some("mac".into()),
        };
        assert!(odd.into_token(Instant::now()).is_err());
    }
}
