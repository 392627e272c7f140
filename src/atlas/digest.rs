//! HTTP Digest authentication as Atlas does it (RFC 7616: MD5, `qop="auth"`), with the server
//! nonce cached and reused with an increasing `nc`, so a warm call costs one round trip.
//!
//! Atlas does not document how long a nonce stays valid or whether `nc > 1` is accepted; the
//! transport therefore answers any 401 that carries a challenge by retrying once with that fresh
//! challenge. The digest arithmetic itself is the `digest_auth` crate's.

use std::sync::Mutex;

use digest_auth::{AlgorithmType, AuthContext, HttpMethod, WwwAuthenticateHeader};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, Method};

use super::error::AtlasError;
use super::secret::PrivateKey;

/// Past this many uses a cached nonce is dropped, keeping `nc` far from overflowing.
const MAX_NONCE_USES: u32 = 1 << 30;

/// A parsed server challenge.
#[derive(Clone, Debug)]
pub(crate) struct Challenge(WwwAuthenticateHeader);

impl Challenge {
    pub(crate) fn stale(&self) -> bool {
        self.0.stale
    }

    #[cfg(test)]
    pub(crate) fn nonce(&self) -> &str {
        &self.0.nonce
    }
}

/// Picks the strongest usable Digest challenge among the response's `WWW-Authenticate` headers
/// (SHA-256 over SHA-512-256 over MD5; `-sess` variants last). `None` if there is none.
pub(crate) fn select_challenge(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        // to_str() only accepts visible ASCII, which the parser needs (it indexes bytes by chars).
        .filter_map(|value| value.to_str().ok())
        .filter_map(parse_digest_challenge)
        .max_by_key(strength)
        .map(Challenge)
}

fn parse_digest_challenge(value: &str) -> Option<WwwAuthenticateHeader> {
    let value = value.trim_start();
    let (scheme, params) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    digest_auth::parse(params).ok()
}

fn strength(challenge: &WwwAuthenticateHeader) -> u8 {
    let base = match challenge.algorithm.algo {
        AlgorithmType::SHA2_256 => 6,
        AlgorithmType::SHA2_512_256 => 4,
        AlgorithmType::MD5 => 2,
    };
    if challenge.algorithm.sess {
        base - 1
    } else {
        base
    }
}

/// Digest credentials plus the shared nonce state. Safe to share between concurrent requests:
/// the lock is held only to bump `nc` and copy the challenge, never across an await.
pub(crate) struct DigestAuth {
    username: String,
    password: PrivateKey,
    cached: Mutex<Option<WwwAuthenticateHeader>>,
}

impl std::fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuth")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// A ready `Authorization` header (marked sensitive so `http`'s Debug hides it).
pub(crate) struct Authorization {
    pub(crate) header: HeaderValue,
    /// Whether the nonce came from the cache (it may have expired) or from this very exchange.
    pub(crate) from_cache: bool,
}

impl DigestAuth {
    pub(crate) fn new(username: String, password: PrivateKey) -> Self {
        Self {
            username,
            password,
            cached: Mutex::new(None),
        }
    }

    /// Signs a request with the cached nonce and its next `nc`; `None` until a challenge is known.
    pub(crate) fn sign_with_cached(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Option<Authorization>, AtlasError> {
        let Some(mut prompt) = self.reserve_nonce_use() else {
            return Ok(None);
        };
        let header = self.respond(&mut prompt, method, uri, body)?;
        Ok(Some(Authorization {
            header,
            from_cache: true,
        }))
    }

    /// Remembers `challenge` for later requests and signs this request with its first `nc`.
    pub(crate) fn sign_with_fresh(
        &self,
        challenge: Challenge,
        method: &Method,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Authorization, AtlasError> {
        let mut prompt = challenge.0;
        prompt.nc = 0;
        let header = self.respond(&mut prompt, method, uri, body)?;
        // Later requests continue after this one's nc. If another request installed a newer
        // challenge meanwhile, either nonce is fine: a stale one is answered with a new challenge.
        *self.lock() = Some(prompt);
        Ok(Authorization {
            header,
            from_cache: false,
        })
    }

    /// Takes the next `nc` of the cached nonce: a copy of the challenge whose `respond` will
    /// produce exactly that `nc`, so concurrent requests never share one.
    fn reserve_nonce_use(&self) -> Option<WwwAuthenticateHeader> {
        let mut guard = self.lock();
        let cached = guard.as_mut()?;
        if cached.nc >= MAX_NONCE_USES {
            *guard = None;
            return None;
        }
        let copy = cached.clone();
        cached.nc += 1;
        Some(copy)
    }

    fn respond(
        &self,
        prompt: &mut WwwAuthenticateHeader,
        method: &Method,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<HeaderValue, AtlasError> {
        let context = AuthContext::new_with_method(
            self.username.as_str(),
            self.password.expose(),
            uri,
            body,
            HttpMethod::from(method.as_str()),
        );
        let answer = prompt
            .respond(&context)
            .map_err(|e| AtlasError::Unexpected {
                message: format!("cannot answer Atlas' Digest challenge: {e}"),
                problem: None,
            })?;
        let mut header = HeaderValue::from_str(&answer.to_header_string()).map_err(|_| {
            AtlasError::Config("the public key cannot be sent in an HTTP header".to_owned())
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<WwwAuthenticateHeader>> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the cached nonce (tests; also useful after credential rotation).
    #[cfg(test)]
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Atlas' real challenge, as recorded.
    pub(crate) const ATLAS_CHALLENGE: &str = r#"Digest realm="MMS Public API", domain="", nonce="669gyxpgL6MGDuSZvQ80Spv3k+Jc99ed", algorithm=MD5, qop="auth", stale=false"#;

    const PASSWORD: &str = "40395d07-a353-4881-853b-43efa41339a1";

    /// Splits an `Authorization: Digest k=v, k="v"` header into its parameters.
    pub(crate) fn parse_authorization(header: &str) -> HashMap<String, String> {
        atlas_sim::digest::parse_authorization(header).expect("a Digest header")
    }

    /// Whether the simulator's verifier (independent of `digest_auth`) accepts the signature.
    fn signed_right(header: &str, method: &str, uri: &str) -> bool {
        atlas_sim::digest::verify_signature(method, uri, Some(header), |user| {
            (user == "mcpvrzod").then(|| PASSWORD.to_owned())
        })
        .is_ok()
    }

    fn challenge_headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, value.parse().expect("header"));
        }
        headers
    }

    fn auth() -> DigestAuth {
        DigestAuth::new("mcpvrzod".to_owned(), PrivateKey::new(PASSWORD))
    }

    #[test]
    fn answers_the_atlas_challenge_per_rfc() {
        let challenge =
            select_challenge(&challenge_headers(&[ATLAS_CHALLENGE])).expect("challenge");
        assert!(!challenge.stale());
        let uri = "/api/atlas/v2/orgs/a0123456789abcdef012345a/apiKeys?itemsPerPage=500&pageNum=1";
        let auth = auth();
        let signed = auth
            .sign_with_fresh(challenge, &Method::GET, uri, None)
            .expect("sign");
        assert!(!signed.from_cache);
        assert!(signed.header.is_sensitive());
        let text = signed.header.to_str().expect("ascii");
        let params = parse_authorization(text);
        assert_eq!(params["username"], "mcpvrzod");
        assert_eq!(params["realm"], "MMS Public API");
        assert_eq!(params["nonce"], "669gyxpgL6MGDuSZvQ80Spv3k+Jc99ed");
        assert_eq!(params["uri"], uri);
        assert_eq!(params["qop"], "auth");
        assert_eq!(params["nc"], "00000001");
        assert_eq!(params["algorithm"], "MD5");
        assert!(params["cnonce"].len() >= 16);
        assert!(signed_right(text, "GET", uri));
        assert!(!text.contains("40395d07"), "password must not appear");
    }

    #[test]
    fn reuses_the_nonce_with_increasing_nc() {
        let auth = auth();
        assert!(auth
            .sign_with_cached(&Method::GET, "/x", None)
            .expect("sign")
            .is_none());
        let challenge =
            select_challenge(&challenge_headers(&[ATLAS_CHALLENGE])).expect("challenge");
        auth.sign_with_fresh(challenge, &Method::POST, "/x", Some(b"{}"))
            .expect("sign");
        for expected_nc in ["00000002", "00000003", "00000004"] {
            let signed = auth
                .sign_with_cached(&Method::DELETE, "/y", None)
                .expect("sign")
                .expect("cached");
            assert!(signed.from_cache);
            let text = signed.header.to_str().expect("ascii");
            assert_eq!(parse_authorization(text)["nc"], expected_nc);
            assert!(signed_right(text, "DELETE", "/y"));
        }
        auth.forget();
        assert!(auth
            .sign_with_cached(&Method::GET, "/x", None)
            .expect("sign")
            .is_none());
    }

    #[test]
    fn concurrent_signers_never_share_an_nc() {
        let auth = std::sync::Arc::new(auth());
        let challenge =
            select_challenge(&challenge_headers(&[ATLAS_CHALLENGE])).expect("challenge");
        auth.sign_with_fresh(challenge, &Method::GET, "/x", None)
            .expect("sign");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let auth = auth.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| {
                            let signed = auth
                                .sign_with_cached(&Method::GET, "/x", None)
                                .expect("sign")
                                .expect("cached");
                            parse_authorization(signed.header.to_str().expect("ascii"))["nc"]
                                .clone()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 400);
        assert_eq!(all.first().map(String::as_str), Some("00000002"));
        assert_eq!(all.last().map(String::as_str), Some("00000191"));
    }

    #[test]
    fn prefers_sha256_and_ignores_other_schemes() {
        let sha = r#"Digest realm="MMS Public API", nonce="abc", algorithm=SHA-256, qop="auth""#;
        let headers = challenge_headers(&[
            r#"Bearer realm="x""#,
            ATLAS_CHALLENGE,
            sha,
            r#"Digest realm="r", nonce="n", algorithm=SHA-999"#,
        ]);
        let chosen = select_challenge(&headers).expect("challenge");
        assert_eq!(chosen.nonce(), "abc");

        let auth = auth();
        let signed = auth
            .sign_with_fresh(chosen, &Method::GET, "/p", None)
            .expect("sign");
        let text = signed.header.to_str().expect("ascii");
        assert_eq!(parse_authorization(text)["algorithm"], "SHA-256");
        assert!(signed_right(text, "GET", "/p"));

        assert!(select_challenge(&challenge_headers(&[r#"Basic realm="x""#])).is_none());
        assert!(select_challenge(&HeaderMap::new()).is_none());
    }

    #[test]
    fn reads_stale_flag() {
        let stale =
            r#"Digest realm="MMS Public API", nonce="new", algorithm=MD5, qop="auth", stale=true"#;
        let chosen = select_challenge(&challenge_headers(&[stale])).expect("challenge");
        assert!(chosen.stale());
    }

    proptest::proptest! {
        #[test]
        fn challenge_parsing_never_panics(value in "[ -~]{0,200}") {
            if let Ok(header) = HeaderValue::from_str(&format!("Digest {value}")) {
                let mut headers = HeaderMap::new();
                headers.insert(WWW_AUTHENTICATE, header);
                let _ = select_challenge(&headers);
            }
        }
    }
}
