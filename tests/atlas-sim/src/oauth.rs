//! The OAuth 2.0 endpoints of service accounts (client-credentials grant), outside
//! `/api/atlas/v2`: `POST /api/oauth/token` and `POST /api/oauth/revoke` (RFC 7009).
//!
//! Clients authenticate with `Authorization: Basic base64(clientId:clientSecret)` (each part
//! may be form-URL-encoded, RFC 6749 §2.3.1) and send `application/x-www-form-urlencoded`
//! bodies. Protocol errors are OAuth-shaped, `{"error","error_description"}`; conditions that
//! are Atlas's own (access list, rate limit, injected faults) keep the Atlas error body, as the
//! real token endpoint answers its 429 (`RATE_LIMITED`).
//! This module parses and renders; [`super::server`] runs the pipeline and the store issues,
//! looks up and revokes tokens.

use std::collections::HashMap;

use base64::Engine as _;
use http::StatusCode;
use serde::Serialize;

use super::store::IssuedToken;

pub const TOKEN_PATH: &str = "/api/oauth/token";
pub const REVOKE_PATH: &str = "/api/oauth/revoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revoke,
}

impl Endpoint {
    pub fn from_path(path: &str) -> Option<Self> {
        match path {
            TOKEN_PATH => Some(Self::Token),
            REVOKE_PATH => Some(Self::Revoke),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Token => TOKEN_PATH,
            Self::Revoke => REVOKE_PATH,
        }
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    /// Unknown client, wrong or expired secret, or no Basic credentials (401).
    pub fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid credentials provided.",
        )
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only the client_credentials grant type is supported.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "Use POST.",
        )
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        })
        .unwrap_or_default()
    }
}

/// Decodes one form-URL-encoded component (`%XX`, `+` as space).
fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client id and secret from `Authorization: Basic ...`; None when absent or malformed.
pub fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let (scheme, rest) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// The token of `Authorization: Bearer <token>`: None for another scheme, Some("") for an
/// empty token.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim_start();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = &value[6..];
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with(' ').then(|| rest.trim())
}

/// Parses an `application/x-www-form-urlencoded` body; a parameter may appear only once.
pub fn form(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "The request body must be application/x-www-form-urlencoded.",
        ));
    }
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "The parameter {k} appears more than once."
            )));
        }
    }
    Ok(params)
}

/// Checks `grant_type=client_credentials`.
pub fn check_grant(params: &HashMap<String, String>) -> Result<(), OAuthError> {
    match params.get("grant_type").map(String::as_str) {
        None | Some("") => Err(OAuthError::invalid_request(
            "The grant_type parameter is missing.",
        )),
        Some("client_credentials") => Ok(()),
        Some(_) => Err(OAuthError::unsupported_grant_type()),
    }
}

/// The `token` parameter of a revocation.
pub fn revoked_token(params: &HashMap<String, String>) -> Result<&str, OAuthError> {
    params
        .get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("The token parameter is missing."))
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    expires_in: u64,
    token_type: &'static str,
}

pub fn token_body(token: &IssuedToken) -> Vec<u8> {
    serde_json::to_vec(&TokenBody {
        access_token: &token.access_token,
        expires_in: token.expires_in,
        token_type: "Bearer",
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            basic_credentials(Some(&basic("mdb_sa_id_1:mdb_sa_sk_x:y"))),
            Some(("mdb_sa_id_1".into(), "mdb_sa_sk_x:y".into()))
        );
        assert_eq!(
            basic_credentials(Some(&basic("a%3Ab:c%2Bd"))),
            Some(("a:b".into(), "c+d".into()))
        );
        assert_eq!(basic_credentials(Some(&basic("nocolon"))), None);
        assert_eq!(basic_credentials(Some(&basic(":secret"))), None);
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(basic_credentials(Some("Bearer abc")), None);
        assert_eq!(basic_credentials(None), None);
        assert!(basic_credentials(Some(&basic("a:b").replace("Basic", "basic"))).is_some());
    }

    #[test]
    fn bearer_tokens_are_recognised() {
        assert_eq!(bearer_token(Some("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Bearer")), Some(""));
        assert_eq!(bearer_token(Some("Bearerabc")), None);
        assert_eq!(bearer_token(Some("Digest username=\"x\"")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn forms_and_grants() {
        let ct = Some("application/x-www-form-urlencoded; charset=utf-8");
        let p = form(ct, b"grant_type=client_credentials&scope=x").unwrap();
        assert!(check_grant(&p).is_ok());
        let p = form(ct, b"grant_type=password").unwrap();
        assert_eq!(check_grant(&p).unwrap_err().error, "unsupported_grant_type");
        let p = form(ct, b"").unwrap();
        assert_eq!(check_grant(&p).unwrap_err().error, "invalid_request");
        assert_eq!(
            form(ct, b"grant_type=a&grant_type=b").unwrap_err().error,
            "invalid_request"
        );
        assert_eq!(
            form(Some("application/json"), b"{}").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(form(None, b"").unwrap_err().error, "invalid_request");
        let p = form(ct, b"token=t1&token_type_hint=access_token").unwrap();
        assert_eq!(revoked_token(&p).unwrap(), "t1");
        assert!(revoked_token(&form(ct, b"token=").unwrap()).is_err());
    }

    #[test]
    fn bodies_are_oauth_shaped() {
        assert_eq!(
            String::from_utf8(OAuthError::invalid_client().body()).unwrap(),
            r#"{"error":"invalid_client","error_description":"Invalid credentials provided."}"#
        );
        let body = token_body(&IssuedToken {
            access_token: "t".into(),
            expires_in: 3600,
        });
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"access_token":"t","expires_in":3600,"token_type":"Bearer"}"#
        );
        assert_eq!(Endpoint::from_path(TOKEN_PATH), Some(Endpoint::Token));
        assert_eq!(Endpoint::from_path("/api/oauth/other"), None);
    }
}
