//! Atlas error responses and the simulator's own startup errors.

use std::borrow::Cow;

use http::StatusCode;
use serde::Serialize;

/// An Atlas API error: rendered as `{"detail","error","errorCode","parameters","reason"}`
/// with `Content-Type: application/json` and an `X-Error-Code` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub detail: String,
    pub parameters: Vec<String>,
    /// Seconds for a `Retry-After` header (429 and 503 only).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    detail: &'a str,
    error: u16,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    parameters: &'a [String],
    reason: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            parameters: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_params<I, S>(mut self, params: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.parameters = params.into_iter().map(Into::into).collect();
        self
    }

    pub fn body(&self) -> Vec<u8> {
        let body = ApiErrorBody {
            detail: &self.detail,
            error: self.status.as_u16(),
            error_code: &self.code,
            parameters: &self.parameters,
            reason: self.status.canonical_reason().unwrap_or("Error"),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    pub fn org_not_found(org_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ORG_NOT_FOUND",
            format!("No organization with ID {org_id} exists."),
        )
        .with_params([org_id])
    }

    pub fn group_not_found(group_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "GROUP_NOT_FOUND",
            format!("No group with ID {group_id} exists."),
        )
        .with_params([group_id])
    }

    pub fn api_key_not_found(key_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "API_KEY_NOT_FOUND",
            format!("No API key with ID {key_id} exists."),
        )
        .with_params([key_id])
    }

    pub fn service_account_not_found(client_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SERVICE_ACCOUNT_NOT_FOUND",
            format!("Service Account with client ID {client_id} not found."),
        )
        .with_params([client_id])
    }

    pub fn access_list_entry_not_found(key_id: &str, entry: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            format!("Cannot find resource access list entry {entry} for API key {key_id}."),
        )
        .with_params([entry])
    }

    pub fn resource_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            format!("Cannot find resource {path}."),
        )
        .with_params([path])
    }

    pub fn unauthorized_action() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
            "Current user is not authorized to perform this action.",
        )
    }

    pub fn path_param(name: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PATH_PARAM_PARSE_ERROR",
            format!(
                "One or more path parameter could not be parsed: {name} has invalid value {value}."
            ),
        )
        .with_params([name, value])
    }

    pub fn invalid_attribute(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            format!("Invalid attribute {name} specified."),
        )
        .with_params([name])
    }

    pub fn malformed_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Received JSON is malformed.",
        )
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("Method {method} is not allowed for this resource."),
        )
        .with_params([method])
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_recorded_field_order_and_values() {
        let body = ApiError::group_not_found("111111111111111111111111").body();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"detail":"No group with ID 111111111111111111111111 exists.","error":404,"errorCode":"GROUP_NOT_FOUND","parameters":["111111111111111111111111"],"reason":"Not Found"}"#
        );
    }
}
