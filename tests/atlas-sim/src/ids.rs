//! Identifier formats Atlas uses, generated and validated.

use rand::Rng;

/// A 24-hex-digit object id (orgs, projects, API keys, secrets).
pub fn object_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
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
    }

    #[test]
    fn redaction_matches_recorded_shape() {
        assert_eq!(
            redact_private_key("c8150efd-c7a0-4afd-8c4f-01bdd56c8977"),
            "********-****-****-01bdd56c8977"
        );
    }
}
