//! Typed errors that keep what Atlas said (HTTP status, `errorCode`, `detail`).

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

/// Longest non-JSON body excerpt kept in an error (proxies answer 502s with HTML pages).
const MAX_TEXT_EXCERPT: usize = 200;

/// Atlas' error document: `{"error": 404, "errorCode": "GROUP_NOT_FOUND", "detail": "...", "reason": "Not Found"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiProblem {
    /// HTTP status of the response.
    pub status: u16,
    /// Atlas `errorCode` (or the `X-Error-Code` header when the body has none).
    pub error_code: Option<String>,
    /// Atlas `detail`: the human-readable explanation.
    pub detail: Option<String>,
    /// Atlas `reason`: the HTTP reason phrase.
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<String>,
    detail: Option<String>,
    reason: Option<String>,
    /// The OAuth endpoints' shape: `{"error": "invalid_client", "error_description": "..."}`
    /// (where Atlas' own documents have the status as a number).
    error: Option<serde_json::Value>,
    #[serde(rename = "error_description")]
    error_description: Option<String>,
}

impl ApiProblem {
    /// Reads an error response. Never fails: an unreadable body still yields the status.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let header_code = headers
            .get("x-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut problem = ApiProblem {
            status: status.as_u16(),
            error_code: None,
            detail: None,
            reason: None,
        };
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => {
                let oauth_code = match parsed.error {
                    Some(serde_json::Value::String(code)) => Some(code),
                    _ => None,
                };
                problem.error_code = parsed.error_code.or(oauth_code);
                problem.detail = parsed.detail.or(parsed.error_description);
                problem.reason = parsed.reason;
            }
            Err(_) => problem.detail = text_excerpt(body),
        }
        if problem.error_code.is_none() {
            problem.error_code = header_code;
        }
        if problem.reason.is_none() {
            problem.reason = status.canonical_reason().map(str::to_owned);
        }
        problem
    }

    pub fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }
}

/// True when the answer is a 4xx that Atlas itself sent: its error document, with `error`
/// equal to the status and a string `errorCode`. Atlas refuses such requests before acting on
/// them; a proxy's 4xx (HTML, plain text, its own JSON) proves nothing about what reached Atlas.
pub(crate) fn is_atlas_refusal(status: StatusCode, body: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        error: Option<u16>,
        error_code: Option<String>,
    }
    status.is_client_error()
        && serde_json::from_slice::<Shape>(body)
            .is_ok_and(|b| b.error == Some(status.as_u16()) && b.error_code.is_some())
}

fn text_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    Some(collapsed.chars().take(MAX_TEXT_EXCERPT).collect())
}

impl fmt::Display for ApiProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.error_code {
            write!(f, " {code}")?;
        }
        match (&self.detail, &self.reason) {
            (Some(detail), _) => write!(f, ": {detail}"),
            (None, Some(reason)) => write!(f, ": {reason}"),
            (None, None) => Ok(()),
        }
    }
}

/// Everything that can go wrong talking to Atlas.
#[derive(Debug, thiserror::Error)]
pub enum AtlasError {
    /// 404: the organization, project, key or entry does not exist.
    #[error("Atlas: not found ({0})")]
    NotFound(ApiProblem),
    /// 401: wrong or revoked credentials (after one fresh Digest challenge).
    #[error("Atlas rejected the API key credentials ({0})")]
    Unauthorized(ApiProblem),
    /// 403: authenticated, but not allowed (missing role, caller IP not on the key's access list).
    #[error("Atlas denied access ({0})")]
    Forbidden(ApiProblem),
    /// 429 that could not be retried within the deadline.
    #[error("Atlas rate limit exceeded{} ({problem})", RetryAfter(*retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        problem: ApiProblem,
    },
    /// 400 / 409 / 422: Atlas refused the request's content.
    #[error("Atlas rejected the request ({0})")]
    InvalidInput(ApiProblem),
    /// Network failure, timeout, 502/503/504, after the retries the deadline allowed.
    #[error("Atlas is unreachable or temporarily unavailable: {message}")]
    Transient {
        message: String,
        problem: Option<ApiProblem>,
    },
    /// Anything else: 5xx, unexpected status, undecodable response.
    #[error("unexpected response from Atlas: {message}")]
    Unexpected {
        message: String,
        problem: Option<ApiProblem>,
    },
    /// A create may have reached Atlas, and no answer proved otherwise: a lost or unreadable
    /// answer that could not be checked or cleaned up within the deadline, or an answer Atlas
    /// did not send (a proxy's 3xx or 4xx, an unexpected status). Whoever holds `desc` must
    /// look it up later (`find_org_key_by_desc`) and delete it.
    #[error(
        "Atlas may have created {desc:?}{}, and that could not be ruled out: {source}",
        OrphanId(orphan_key_id.as_deref())
    )]
    CreateUncertain {
        desc: String,
        /// Set when a key with this description was seen but could not be deleted.
        orphan_key_id: Option<String>,
        #[source]
        source: Box<AtlasError>,
    },
    /// A caller-supplied argument is unusable (checked before anything is sent).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client configuration is unusable (base URL, TLS roots, credentials).
    #[error("invalid Atlas client configuration: {0}")]
    Config(String),
}

struct RetryAfter(Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(wait) => write!(f, "; retry after {}s", wait.as_secs()),
            None => Ok(()),
        }
    }
}

struct OrphanId<'a>(Option<&'a str>);

impl fmt::Display for OrphanId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (key id {id})"),
            None => Ok(()),
        }
    }
}

impl AtlasError {
    /// Maps a non-success Atlas response to its error kind.
    pub(crate) fn from_problem(problem: ApiProblem, retry_after: Option<Duration>) -> Self {
        match problem.status {
            404 => AtlasError::NotFound(problem),
            401 => AtlasError::Unauthorized(problem),
            403 => AtlasError::Forbidden(problem),
            429 => AtlasError::RateLimited {
                retry_after,
                problem,
            },
            400 | 409 | 422 => AtlasError::InvalidInput(problem),
            502..=504 => AtlasError::Transient {
                message: problem.to_string(),
                problem: Some(problem),
            },
            _ => AtlasError::Unexpected {
                message: problem.to_string(),
                problem: Some(problem),
            },
        }
    }

    /// What Atlas answered, when the error came from an Atlas response.
    pub fn problem(&self) -> Option<&ApiProblem> {
        match self {
            AtlasError::NotFound(p)
            | AtlasError::Unauthorized(p)
            | AtlasError::Forbidden(p)
            | AtlasError::InvalidInput(p)
            | AtlasError::RateLimited { problem: p, .. } => Some(p),
            AtlasError::Transient { problem, .. } | AtlasError::Unexpected { problem, .. } => {
                problem.as_ref()
            }
            AtlasError::CreateUncertain { source, .. } => source.problem(),
            AtlasError::InvalidArgument(_) | AtlasError::Config(_) => None,
        }
    }

    /// Atlas `errorCode`, e.g. `INVALID_ROLE_FOR_ORG`.
    pub fn error_code(&self) -> Option<&str> {
        self.problem().and_then(ApiProblem::error_code)
    }

    /// Atlas `detail` text.
    pub fn detail(&self) -> Option<&str> {
        self.problem().and_then(|p| p.detail.as_deref())
    }

    /// HTTP status Atlas answered with.
    pub fn status(&self) -> Option<u16> {
        self.problem().map(|p| p.status)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, AtlasError::NotFound(_))
    }

    /// Atlas refused the request's input, or does not know an id in it: the
    /// fault of whoever chose that input (a role naming a missing project),
    /// not of the service.
    pub fn is_caller_input(&self) -> bool {
        matches!(self, AtlasError::InvalidInput(_) | AtlasError::NotFound(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn maps_group_not_found_like_atlas_sends_it() {
        let body = br#"{"detail":"No group with ID 111111111111111111111111 exists.","error":404,"errorCode":"GROUP_NOT_FOUND","parameters":["111111111111111111111111"],"reason":"Not Found"}"#;
        let problem = ApiProblem::from_response(
            StatusCode::NOT_FOUND,
            &headers(&[("x-error-code", "GROUP_NOT_FOUND")]),
            body,
        );
        let err = AtlasError::from_problem(problem, None);
        assert!(err.is_not_found());
        assert_eq!(err.error_code(), Some("GROUP_NOT_FOUND"));
        assert_eq!(
            err.detail(),
            Some("No group with ID 111111111111111111111111 exists.")
        );
        assert_eq!(err.status(), Some(404));
        assert_eq!(
            err.to_string(),
            "Atlas: not found (HTTP 404 GROUP_NOT_FOUND: No group with ID 111111111111111111111111 exists.)"
        );
    }

    #[test]
    fn maps_pretty_printed_unauthorized_body() {
        let body = b"{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}";
        let problem = ApiProblem::from_response(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body);
        let err = AtlasError::from_problem(problem, None);
        assert!(matches!(err, AtlasError::Unauthorized(_)));
        assert_eq!(err.error_code(), Some("UNEXPECTED_ERROR"));
        assert!(err.to_string().contains("You are not authorized"));
    }

    #[test]
    fn maps_status_families() {
        let cases = [
            (400, "INVALID_ROLE_FOR_ORG", "InvalidInput"),
            (409, "DUPLICATE_ADDRESSES_IN_INPUT", "InvalidInput"),
            (403, "IP_ADDRESS_NOT_ON_ACCESS_LIST", "Forbidden"),
            (429, "RATE_LIMITED_TOKEN_BUCKET", "RateLimited"),
            (503, "SERVICE_UNAVAILABLE", "Transient"),
            (502, "", "Transient"),
            (500, "UNEXPECTED_ERROR", "Unexpected"),
            (406, "", "Unexpected"),
        ];
        for (status, code, kind) in cases {
            let body = format!(r#"{{"error":{status},"errorCode":"{code}","detail":"d"}}"#);
            let status = StatusCode::from_u16(status).expect("status");
            let problem = ApiProblem::from_response(status, &HeaderMap::new(), body.as_bytes());
            let err = AtlasError::from_problem(problem, Some(Duration::from_secs(3)));
            let actual = match &err {
                AtlasError::InvalidInput(_) => "InvalidInput",
                AtlasError::Forbidden(_) => "Forbidden",
                AtlasError::RateLimited { retry_after, .. } => {
                    assert_eq!(*retry_after, Some(Duration::from_secs(3)));
                    assert!(err.to_string().contains("retry after 3s"), "{err}");
                    "RateLimited"
                }
                AtlasError::Transient { .. } => "Transient",
                AtlasError::Unexpected { .. } => "Unexpected",
                other => panic!("unexpected mapping {other:?}"),
            };
            assert_eq!(actual, kind, "status {status}");
            assert_eq!(err.status(), Some(status.as_u16()));
        }
    }

    #[test]
    fn only_atlas_error_documents_count_as_refusals() {
        let atlas =
            br#"{"detail":"d","error":400,"errorCode":"INVALID_ATTRIBUTE","reason":"Bad Request"}"#;
        assert!(is_atlas_refusal(StatusCode::BAD_REQUEST, atlas));
        for (status, body) in [
            (
                StatusCode::BAD_REQUEST,
                &b"<html>400 Bad Request</html>"[..],
            ),
            (StatusCode::BAD_REQUEST, b""),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"Bad Request","status":400}"#,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"detail":"problem+json from a gateway"}"#,
            ),
            (StatusCode::NOT_FOUND, atlas),
            (StatusCode::IM_A_TEAPOT, b""),
            (StatusCode::FOUND, br#"{"error":302,"errorCode":"X"}"#),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"error":500,"errorCode":"X"}"#,
            ),
        ] {
            assert!(!is_atlas_refusal(status, body), "{status} {body:?}");
        }
    }

    #[test]
    fn non_json_body_becomes_short_detail_and_header_code_is_used() {
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(1000));
        let problem = ApiProblem::from_response(
            StatusCode::BAD_GATEWAY,
            &headers(&[("x-error-code", "SOME_CODE")]),
            html.as_bytes(),
        );
        assert_eq!(problem.error_code(), Some("SOME_CODE"));
        let detail = problem.detail.as_deref().expect("detail");
        assert!(detail.starts_with("<html> <body>"));
        assert_eq!(detail.chars().count(), MAX_TEXT_EXCERPT);
        assert_eq!(problem.reason.as_deref(), Some("Bad Gateway"));
    }
}
