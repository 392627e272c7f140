//! Identifier formats Atlas uses, generated and validated.

use rand::Rng;

/// A 24-hex-digit object id (orgs, projects, API keys, secrets), laid out as
/// MongoDB's ObjectId that Atlas uses: 4 bytes of creation time (Unix seconds,
/// big-endian), then 8 random bytes. Clients read a key's age from it (an API
/// key has no creation date field).
pub fn object_id() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&u32::try_from(seconds).unwrap_or(u32::MAX).to_be_bytes());
    rand::rng().fill(&mut bytes[4..]);
    hex::encode(bytes)
}

/// A public key: 8 lowercase ASCII letters.
pub fn public_key() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// A private key: a random UUID in canonical lowercase form.
pub fn private_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A service-account client id: `mdb_sa_id_<24 hex>`.
pub fn service_account_client_id() -> String {
    format!("mdb_sa_id_{}", object_id())
}

/// A service-account secret: `mdb_sa_sk_<40 random alphanumerics>`.
pub fn service_account_secret() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..40)
        .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
        .collect();
    format!("mdb_sa_sk_{tail}")
}

/// An OAuth access token shaped like a JWT (`header.payload.signature`, base64url): the
/// payload names the client and the validity window, the "signature" is random. The
/// simulator never parses it back: tokens are looked up as opaque strings.
pub fn access_token(client_id: &str, issued_at: i64, expires_at: i64) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "iss": "atlas-sim",
        "sub": client_id,
        "iat": issued_at,
        "exp": expires_at,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let payload = b64(payload.to_string().as_bytes());
    let signature: [u8; 32] = rand::rng().random();
    format!("{header}.{payload}.{}", b64(&signature))
}

pub fn is_object_id(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn is_public_key(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_lowercase())
}

pub fn is_private_key(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

pub fn is_service_account_client_id(s: &str) -> bool {
    s.strip_prefix("mdb_sa_id_")
        .is_some_and(|rest| rest.len() == 24 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A service-account secret as the simulator accepts it in configuration: `mdb_sa_sk_`
/// followed by at least one ASCII letter or digit.
pub fn is_service_account_secret(s: &str) -> bool {
    s.strip_prefix("mdb_sa_sk_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Atlas shows a private key after creation only as `********-****-****-<last 12>`.
pub fn redact_private_key(private_key: &str) -> String {
    let tail_start = private_key.len().saturating_sub(12);
    let tail = private_key.get(tail_start..).unwrap_or("");
    format!("********-****-****-{tail}")
}

/// Masked form of a service-account secret, as Atlas lists it.
pub fn mask_secret(secret: &str) -> String {
    let tail_start = secret.len().saturating_sub(4);
    format!("mdb_sa_sk_...{}", secret.get(tail_start..).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_atlas_shapes() {
        for _ in 0..50 {
            assert!(is_object_id(&object_id()));
            assert!(is_public_key(&public_key()));
            assert!(is_private_key(&private_key()));
            assert!(is_service_account_client_id(&service_account_client_id()));
            assert!(is_service_account_secret(&service_account_secret()));
        }
    }

    #[test]
    fn validators_reject_near_misses() {
        assert!(!is_object_id("6a793f752c88faeba59bba4"));
        assert!(!is_object_id("6a793f752c88faeba59bba4G"));
        assert!(!is_object_id("6A793F752C88FAEBA59BBA49"));
        assert!(!is_public_key("gswvkoc"));
        assert!(!is_public_key("gswvkoc1"));
        assert!(!is_private_key("not-a-uuid"));
        assert!(!is_service_account_secret("mdb_sa_sk_"));
        assert!(!is_service_account_secret("mdb_sa_sk_a:b"));
        assert!(!is_service_account_client_id("mdb_sa_id_0123"));
    }

    #[test]
    fn access_tokens_look_like_jwts() {
        let t = access_token("mdb_sa_id_0123456789abcdef01234567", 1, 2);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(t.starts_with("eyJ"));
        assert_ne!(t, access_token("mdb_sa_id_0123456789abcdef01234567", 1, 2));
    }

    #[test]
    fn redaction_matches_recorded_shape() {
        assert_eq!(
            redact_private_key("c8150efd-c7a0-4afd-8c4f-01bdd56c8977"),
            "********-****-****-01bdd56c8977"
        );
    }
}
