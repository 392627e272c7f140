//! A private API key that never shows up in logs or debug output.

use std::fmt;

/// The private half of an Atlas programmatic API key (a UUID-shaped string).
///
/// `Debug` prints a placeholder and there is deliberately no `Display`: the only way to the value
/// is [`PrivateKey::expose`], so every use of the plain text is visible at the call site.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(String);

impl PrivateKey {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain-text key. Only for authenticating or handing the key to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl From<String> for PrivateKey {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for PrivateKey {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = PrivateKey::new("40395d07-a353-4881-853b-43efa41339a1");
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("40395d07"), "{shown}");
        assert!(!shown.contains("43efa41339a1"), "{shown}");
        assert_eq!(key.expose(), "40395d07-a353-4881-853b-43efa41339a1");
    }
}
