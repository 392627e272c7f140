//! A path: a regex pattern relative to the mount, its fields, and a handler
//! per operation.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use regex_lite::Regex;
use serde_json::{Map, Value};

use super::error::BackendError;
use super::field::{FieldData, FieldSchema};
use super::request::{Operation, Request, Response};

pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Option<Response>, BackendError>> + Send>>;
/// An operation's handler. `Ok(None)` is an empty success (404 for reads at Vault).
pub type Handler = Arc<dyn Fn(Request, FieldData) -> HandlerFuture + Send + Sync>;

pub(crate) type ExistenceFuture = Pin<Box<dyn Future<Output = Result<bool, BackendError>> + Send>>;
/// Tells Vault whether a write creates or updates (for ACL `create` vs `update`).
pub type ExistenceCheck = Arc<dyn Fn(Request, FieldData) -> ExistenceFuture + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request, FieldData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Response>, BackendError>> + Send + 'static,
{
    Arc::new(move |req, fields| Box::pin(f(req, fields)))
}

/// Wraps an async fn taking shared state (a mount's engine) as a [`Handler`],
/// so handlers can be named functions rather than closures in builder chains.
pub fn handler_with<S, F, Fut>(state: &S, f: F) -> Handler
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, Request, FieldData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Response>, BackendError>> + Send + 'static,
{
    let state = state.clone();
    handler(move |req, fields| f(state.clone(), req, fields))
}

/// Wraps an async closure as an [`ExistenceCheck`].
pub fn existence_check<F, Fut>(f: F) -> ExistenceCheck
where
    F: Fn(Request, FieldData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, BackendError>> + Send + 'static,
{
    Arc::new(move |req, fields| Box::pin(f(req, fields)))
}

/// Compiles a path pattern once per process: every mount builds the same paths.
/// Mounts share the `Regex` itself, not clones of it: a clone shares the compiled
/// program but gets its own pool of match caches (~8 KB per mount once it has routed a
/// request, 8 MB across 1,000 mounts).
///
/// regex-lite, not regex: Vault's patterns are Go RE2, whose `\w`, `\d` and `\s`
/// are ASCII, as they are in regex-lite (so `roles/rôle` is an unsupported path, as
/// in Vault), and the plugin's few fixed patterns do not need regex's Unicode tables
/// and automata (~0.4 MB of binary, ~0.8 MB of heap for the compiled `\w` patterns).
fn compiled(pattern: &'static str) -> Arc<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(pattern)
        .or_insert_with(|| {
            // Cannot fail at run time: every pattern is a `&'static str` written in
            // this crate (never user input), compiled by every test that builds the backend.
            #[allow(clippy::expect_used)]
            Arc::new(Regex::new(&format!("^{pattern}$")).expect("path patterns are valid regexes"))
        })
        .clone()
}

#[derive(Clone)]
pub struct Path {
    /// Regex relative to the mount, without anchors; named groups become fields.
    pub pattern: &'static str,
    regex: Arc<Regex>,
    pub fields: Vec<FieldSchema>,
    pub(crate) operations: Vec<(Operation, Handler)>,
    pub(crate) existence: Option<ExistenceCheck>,
    pub synopsis: &'static str,
    pub description: &'static str,
}

impl Path {
    /// # Panics
    /// If `pattern` is not a valid regex: patterns are compile-time constants.
    pub fn new(pattern: &'static str) -> Self {
        Self {
            pattern,
            regex: compiled(pattern),
            fields: Vec::new(),
            operations: Vec::new(),
            existence: None,
            synopsis: "",
            description: "",
        }
    }

    pub fn field(mut self, field: FieldSchema) -> Self {
        self.fields.push(field);
        self
    }

    pub fn operation(mut self, op: Operation, handler: Handler) -> Self {
        self.operations.push((op, handler));
        self
    }

    pub fn existence(mut self, check: ExistenceCheck) -> Self {
        self.existence = Some(check);
        self
    }

    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> Self {
        self.synopsis = synopsis;
        self.description = description;
        self
    }

    pub(crate) fn handler(&self, op: Operation) -> Option<&Handler> {
        self.operations
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, h)| h)
    }

    /// Captured named groups if `path` matches.
    pub(crate) fn matches(&self, path: &str) -> Option<Map<String, Value>> {
        let caps = self.regex.captures(path)?;
        Some(
            self.regex
                .capture_names()
                .flatten()
                .filter_map(|name| {
                    caps.name(name)
                        .map(|m| (name.to_string(), Value::String(m.as_str().into())))
                })
                .collect(),
        )
    }

    pub(crate) fn help_text(&self) -> String {
        let mut text = format!(
            "Request:        {}\nMatching Route: ^{}$\n\n{}",
            self.pattern, self.pattern, self.synopsis
        );
        if !self.fields.is_empty() {
            text.push_str("\n\n## PARAMETERS\n");
            for f in &self.fields {
                let (ty, _) = f.ty.openapi();
                text.push_str(&format!("\n{} ({})\n\n    {}\n", f.name, ty, f.description));
            }
        }
        if !self.description.is_empty() {
            // A blank line before the heading, whether or not parameters precede it.
            text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
            text.push_str("## DESCRIPTION\n\n");
            text.push_str(self.description);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::framework::field::FieldType;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let role = Path::new(r"roles/(?P<name>\w(([\w.-]+)?\w)?)");
        for ok in ["roles/a", "roles/my-role.v2", "roles/A_1"] {
            assert!(role.regex.is_match(ok), "{ok}");
        }
        for bad in ["roles/rôle", "roles/名前", "roles/-a", "roles/a."] {
            assert!(!role.regex.is_match(bad), "{bad}");
        }
        let digits = Path::new(r"n/(?P<n>\d+)");
        assert!(digits.regex.is_match("n/123") && !digits.regex.is_match("n/١٢٣"));
        assert!(Path::new(r"x/(?P<n>\S+)").regex.is_match("x/é"));
    }

    #[test]
    fn help_text_separates_sections_with_a_blank_line() {
        let bare = Path::new("roles/?").help("List the roles.", "Lists them.");
        assert!(
            bare.help_text()
                .ends_with("List the roles.\n\n## DESCRIPTION\n\nLists them."),
            "{}",
            bare.help_text()
        );
        let with_field = Path::new("config")
            .field(FieldSchema::new("k", FieldType::String, "A key."))
            .help("Configure.", "Details.");
        assert!(
            with_field
                .help_text()
                .ends_with("    A key.\n\n## DESCRIPTION\n\nDetails."),
            "{}",
            with_field.help_text()
        );
    }
}
