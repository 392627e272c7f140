//! HTTP Digest authentication the way Atlas does it (RFC 7616, `qop=auth`).
//!
//! The challenge is byte-for-byte the recorded Atlas shape:
//! `Digest realm="MMS Public API", domain="", nonce="…", algorithm=MD5, qop="auth", stale=false`.
//! Nonces live for a configurable time. Within that time a client may reuse a nonce with a
//! higher `nc` (one round trip per call). A nonce that expired, is unknown, or whose `nc` was
//! already used gets a fresh challenge with `stale=true` when the digest itself was right;
//! wrong credentials get a fresh challenge with `stale=false`.
//! `algorithm=SHA-256` answers are accepted too, although only MD5 is advertised.
//!
//! This is the repository's one server-side Digest verifier: the plugin's client unit tests
//! check its signatures with [`verify_signature`] and gate their scripted server with [`verify`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::RngCore as _;
use sha2::Sha256;

pub const REALM: &str = "MMS Public API";

/// Replay window: how far below the highest `nc` seen an out-of-order `nc` is still accepted.
const NC_WINDOW: u64 = 64;
/// Expired nonces are swept after this many new ones.
const PRUNE_EVERY: usize = 4096;
/// Bound on live nonces (a client that never reuses nonces creates one per call). Beyond it
/// the oldest are forgotten; their holders get `stale=true` and simply re-authenticate.
const MAX_NONCES: usize = 200_000;

/// Why a request is answered with a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeReason {
    /// No `Authorization: Digest …` header.
    NoCredentials,
    /// Malformed header, wrong realm/uri/qop, unknown user, or wrong digest.
    BadCredentials,
    /// Correct digest, but the nonce expired or is unknown.
    StaleNonce,
    /// Correct digest, but this `nc` was already used with the nonce.
    Replay,
}

impl ChallengeReason {
    pub fn stale(self) -> bool {
        matches!(self, Self::StaleNonce | Self::Replay)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Authenticated { public_key: String },
    Challenge(ChallengeReason),
}

struct NonceState {
    issued: Instant,
    max_nc: u64,
    /// Bit i set: `max_nc - i` was used.
    seen: u64,
}

enum NonceCheck {
    Accepted,
    Stale,
    Replay,
}

struct NonceMap {
    map: HashMap<String, NonceState>,
    issued_since_prune: usize,
}

pub struct NonceStore {
    lifetime_ms: AtomicU64,
    inner: Mutex<NonceMap>,
}

impl NonceStore {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime_ms: AtomicU64::new(duration_ms(lifetime)),
            inner: Mutex::new(NonceMap {
                map: HashMap::new(),
                issued_since_prune: 0,
            }),
        }
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms.load(Ordering::Relaxed))
    }

    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms
            .store(duration_ms(lifetime), Ordering::Relaxed);
    }

    /// A fresh nonce: 24 random bytes, base64 (32 characters, like Atlas's).
    pub fn issue(&self) -> String {
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let nonce = base64::engine::general_purpose::STANDARD.encode(raw);
        let now = Instant::now();
        let lifetime = self.lifetime();
        let mut inner = lock(&self.inner);
        inner.issued_since_prune += 1;
        if inner.issued_since_prune >= PRUNE_EVERY {
            inner.issued_since_prune = 0;
            inner
                .map
                .retain(|_, st| now.duration_since(st.issued) <= lifetime);
            if inner.map.len() > MAX_NONCES {
                let mut ages: Vec<Instant> = inner.map.values().map(|st| st.issued).collect();
                let cut = ages.len() - MAX_NONCES / 2;
                let (_, oldest_kept, _) = ages.select_nth_unstable(cut);
                let oldest_kept = *oldest_kept;
                inner.map.retain(|_, st| st.issued >= oldest_kept);
            }
        }
        inner.map.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                max_nc: 0,
                seen: 0,
            },
        );
        nonce
    }

    fn check(&self, nonce: &str, nc: u64) -> NonceCheck {
        let lifetime = self.lifetime();
        let mut inner = lock(&self.inner);
        let Some(state) = inner.map.get_mut(nonce) else {
            return NonceCheck::Stale;
        };
        if state.issued.elapsed() > lifetime {
            inner.map.remove(nonce);
            return NonceCheck::Stale;
        }
        if nc > state.max_nc {
            let shift = nc - state.max_nc;
            state.seen = if shift >= NC_WINDOW {
                0
            } else {
                state.seen << shift
            };
            state.seen |= 1;
            state.max_nc = nc;
            return NonceCheck::Accepted;
        }
        let back = state.max_nc - nc;
        if back >= NC_WINDOW || state.seen & (1 << back) != 0 {
            return NonceCheck::Replay;
        }
        state.seen |= 1 << back;
        NonceCheck::Accepted
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `WWW-Authenticate` value, in the exact recorded Atlas shape.
pub fn challenge_header(nonce: &str, stale: bool) -> String {
    format!(
        "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    )
}

/// The 401 body Atlas sends with a challenge (recorded verbatim, pretty-printed by Atlas).
pub const CHALLENGE_BODY: &str = "{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}";

/// Splits `k=v, k="v, with comma"` into pairs. Returns None on malformed input.
fn parse_params(input: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut rest = input.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => val.push(c),
                }
            }
            let end = end?;
            value = val;
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.insert(key, value);
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The parameters of an `Authorization: Digest …` header, names lower-cased; `None` if the
/// header is not a Digest one or is malformed.
pub fn parse_authorization(header: &str) -> Option<HashMap<String, String>> {
    let header = header.trim_start();
    header
        .strip_prefix("Digest ")
        .or_else(|| header.strip_prefix("digest "))
        .and_then(parse_params)
}

/// A request whose digest is right for its credentials, before its nonce is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub public_key: String,
    pub nonce: String,
    pub nc: u64,
}

/// Checks the signature alone: header shape, realm, `uri`, `qop`, algorithm and the digest
/// itself; not whether the nonce is live (see [`verify`]). `lookup` maps a public key to its
/// private key.
pub fn verify_signature<F>(
    method: &str,
    request_uri: &str,
    authorization: Option<&str>,
    lookup: F,
) -> Result<Signed, ChallengeReason>
where
    F: FnOnce(&str) -> Option<String>,
{
    use ChallengeReason::*;
    let Some(header) = authorization else {
        return Err(NoCredentials);
    };
    let Some(params) = parse_authorization(header) else {
        return Err(
            if header.trim_start().len() >= 6
                && header.trim_start()[..6].eq_ignore_ascii_case("digest")
            {
                BadCredentials
            } else {
                NoCredentials
            },
        );
    };
    let get = |k: &str| params.get(k).map(String::as_str);
    let (
        Some(username),
        Some(realm),
        Some(nonce),
        Some(uri),
        Some(response),
        Some(qop),
        Some(nc),
        Some(cnonce),
    ) = (
        get("username"),
        get("realm"),
        get("nonce"),
        get("uri"),
        get("response"),
        get("qop"),
        get("nc"),
        get("cnonce"),
    )
    else {
        return Err(BadCredentials);
    };
    if realm != REALM || uri != request_uri || !qop.eq_ignore_ascii_case("auth") {
        return Err(BadCredentials);
    }
    let algorithm = match get("algorithm").unwrap_or("MD5") {
        a if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        a if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
        _ => return Err(BadCredentials),
    };
    let Ok(nc_value) = u64::from_str_radix(nc, 16) else {
        return Err(BadCredentials);
    };
    let Some(password) = lookup(username) else {
        return Err(BadCredentials);
    };
    let ha1 = algorithm.hash(&format!("{username}:{REALM}:{password}"));
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    let expected = algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    if !expected.eq_ignore_ascii_case(response) {
        return Err(BadCredentials);
    }
    Ok(Signed {
        public_key: username.to_owned(),
        nonce: nonce.to_owned(),
        nc: nc_value,
    })
}

/// Verifies one request: its signature ([`verify_signature`]), then its nonce and `nc`.
/// `lookup` maps a public key to its private key.
pub fn verify<F>(
    nonces: &NonceStore,
    method: &str,
    request_uri: &str,
    authorization: Option<&str>,
    lookup: F,
) -> AuthOutcome
where
    F: FnOnce(&str) -> Option<String>,
{
    let signed = match verify_signature(method, request_uri, authorization, lookup) {
        Ok(signed) => signed,
        Err(reason) => return AuthOutcome::Challenge(reason),
    };
    match nonces.check(&signed.nonce, signed.nc) {
        NonceCheck::Accepted => AuthOutcome::Authenticated {
            public_key: signed.public_key,
        },
        NonceCheck::Stale => AuthOutcome::Challenge(ChallengeReason::StaleNonce),
        NonceCheck::Replay => AuthOutcome::Challenge(ChallengeReason::Replay),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "abcdefgh";
    const PASS: &str = "c8150efd-c7a0-4afd-8c4f-01bdd56c8977";

    fn lookup(user: &str) -> Option<String> {
        (user == USER).then(|| PASS.to_owned())
    }

    fn prompt(nonces: &NonceStore) -> digest_auth::WwwAuthenticateHeader {
        digest_auth::parse(&challenge_header(&nonces.issue(), false)).unwrap()
    }

    fn answer(
        p: &mut digest_auth::WwwAuthenticateHeader,
        method: &str,
        uri: &str,
        pass: &str,
    ) -> String {
        let mut ctx = digest_auth::AuthContext::new(USER, pass, uri);
        ctx.method = digest_auth::HttpMethod::from(method.to_owned());
        p.respond(&ctx).unwrap().to_header_string()
    }

    #[test]
    fn challenge_has_exact_atlas_shape() {
        assert_eq!(
            challenge_header("669gyxpgL6MGDuSZvQ80Spv3k+Jc99ed", false),
            r#"Digest realm="MMS Public API", domain="", nonce="669gyxpgL6MGDuSZvQ80Spv3k+Jc99ed", algorithm=MD5, qop="auth", stale=false"#
        );
        let nonces = NonceStore::new(Duration::from_secs(60));
        assert_eq!(nonces.issue().len(), 32);
    }

    #[test]
    fn accepts_valid_digest_and_nonce_reuse_with_growing_nc() {
        let nonces = NonceStore::new(Duration::from_secs(60));
        let mut p = prompt(&nonces);
        for i in 0..5 {
            let uri = format!("/api/atlas/v2/orgs/x/apiKeys?pageNum={i}");
            let h = answer(&mut p, "GET", &uri, PASS);
            assert_eq!(
                verify(&nonces, "GET", &uri, Some(&h), lookup),
                AuthOutcome::Authenticated {
                    public_key: USER.into()
                }
            );
        }
    }

    #[test]
    fn replayed_nc_is_stale_and_out_of_order_nc_is_fine() {
        let nonces = NonceStore::new(Duration::from_secs(60));
        let mut p = prompt(&nonces);
        let first = answer(&mut p, "GET", "/a", PASS);
        let second = answer(&mut p, "GET", "/a", PASS);
        assert!(matches!(
            verify(&nonces, "GET", "/a", Some(&second), lookup),
            AuthOutcome::Authenticated { .. }
        ));
        assert!(matches!(
            verify(&nonces, "GET", "/a", Some(&first), lookup),
            AuthOutcome::Authenticated { .. }
        ));
        assert_eq!(
            verify(&nonces, "GET", "/a", Some(&first), lookup),
            AuthOutcome::Challenge(ChallengeReason::Replay)
        );
    }

    #[test]
    fn wrong_password_user_uri_or_method_is_rejected() {
        let nonces = NonceStore::new(Duration::from_secs(60));
        let mut p = prompt(&nonces);
        let bad = answer(&mut p, "GET", "/a", "00000000-0000-0000-0000-000000000000");
        assert_eq!(
            verify(&nonces, "GET", "/a", Some(&bad), lookup),
            AuthOutcome::Challenge(ChallengeReason::BadCredentials)
        );
        let good = answer(&mut p, "GET", "/a", PASS);
        assert_eq!(
            verify(&nonces, "GET", "/b", Some(&good), lookup),
            AuthOutcome::Challenge(ChallengeReason::BadCredentials)
        );
        assert_eq!(
            verify(&nonces, "POST", "/a", Some(&good), lookup),
            AuthOutcome::Challenge(ChallengeReason::BadCredentials)
        );
        assert_eq!(
            verify(&nonces, "GET", "/a", Some(&good), |_| None),
            AuthOutcome::Challenge(ChallengeReason::BadCredentials)
        );
        assert_eq!(
            verify(&nonces, "GET", "/a", None, lookup),
            AuthOutcome::Challenge(ChallengeReason::NoCredentials)
        );
        assert_eq!(
            verify(&nonces, "GET", "/a", Some("Basic Zm9vOmJhcg=="), lookup),
            AuthOutcome::Challenge(ChallengeReason::NoCredentials)
        );
    }

    #[test]
    fn expired_or_unknown_nonce_is_stale() {
        let nonces = NonceStore::new(Duration::from_millis(0));
        let mut p = prompt(&nonces);
        std::thread::sleep(Duration::from_millis(2));
        let h = answer(&mut p, "GET", "/a", PASS);
        assert_eq!(
            verify(&nonces, "GET", "/a", Some(&h), lookup),
            AuthOutcome::Challenge(ChallengeReason::StaleNonce)
        );
        let other = NonceStore::new(Duration::from_secs(60));
        let mut p =
            digest_auth::parse(&challenge_header("bm90LWlzc3VlZC1ieS11cw==", false)).unwrap();
        let h = answer(&mut p, "GET", "/a", PASS);
        assert_eq!(
            verify(&other, "GET", "/a", Some(&h), lookup),
            AuthOutcome::Challenge(ChallengeReason::StaleNonce)
        );
    }

    #[test]
    fn sha256_answers_are_accepted() {
        let nonces = NonceStore::new(Duration::from_secs(60));
        let nonce = nonces.issue();
        let header =
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\"");
        let mut p = digest_auth::parse(&header).unwrap();
        let h = answer(&mut p, "DELETE", "/x", PASS);
        assert!(matches!(
            verify(&nonces, "DELETE", "/x", Some(&h), lookup),
            AuthOutcome::Authenticated { .. }
        ));
    }

    #[test]
    fn parser_handles_quotes_and_commas() {
        let p = parse_params(r#"username="a,b", realm="MMS Public API", nc=00000001, qop=auth"#)
            .unwrap();
        assert_eq!(p["username"], "a,b");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["qop"], "auth");
        assert!(parse_params(r#"username="unterminated"#).is_none());
    }

    #[test]
    fn live_nonces_are_bounded() {
        let nonces = NonceStore::new(Duration::from_secs(300));
        let first = nonces.issue();
        for _ in 0..(MAX_NONCES + PRUNE_EVERY) {
            nonces.issue();
        }
        assert!(nonces.len() <= MAX_NONCES, "{}", nonces.len());
        assert!(
            !lock(&nonces.inner).map.contains_key(&first),
            "oldest nonce forgotten first"
        );
    }

    #[test]
    fn expired_nonces_are_pruned() {
        let nonces = NonceStore::new(Duration::from_millis(0));
        for _ in 0..(PRUNE_EVERY + 10) {
            nonces.issue();
        }
        assert!(nonces.len() < PRUNE_EVERY);
    }
}
