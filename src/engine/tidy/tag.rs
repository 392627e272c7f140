//! The mount tag: a short mark, derived from the mount's backend UUID, that
//! every credential name this mount issues ends with, so `tidy` can tell this
//! mount's credentials from anyone else's (another mount, another Vault, a
//! person). The UUID is part of the mount table, so the tag survives restarts,
//! a restored snapshot and a plugin upgrade.

use sha2::{Digest, Sha256};

use crate::engine::issuance::RANDOM_SUFFIX;

/// Hex digits of the tag: 32 bits, so two mounts sharing an organization
/// collide with a chance of one in four billion.
const TAG_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountTag(String);

impl MountTag {
    /// The tag of the mount with this backend UUID; none without one (a host
    /// that sends no UUID: credentials are then untagged and `tidy` refuses).
    pub(crate) fn of(backend_uuid: &str) -> Option<Self> {
        let uuid = backend_uuid.trim();
        if uuid.is_empty() {
            return None;
        }
        let digest = Sha256::digest(uuid.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(Self(hex[..TAG_LEN].to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// What a credential name ends with: `-<tag>`.
    pub(crate) fn suffix(&self) -> String {
        format!("-{}", self.0)
    }

    /// Whether `name` is one this mount issues: `vault-<role>-<random>-<tag>`.
    /// A name made by hand to look alike but with another tag, or none, is not.
    pub(crate) fn marks(&self, name: &str) -> bool {
        let Some(rest) = name.strip_suffix(&self.suffix()) else {
            return false;
        };
        let Some(role_and_random) = rest.strip_prefix("vault-") else {
            return false;
        };
        let Some(split) = role_and_random.len().checked_sub(RANDOM_SUFFIX + 1) else {
            return false;
        };
        let (role, random) = role_and_random.split_at(split);
        !role.is_empty()
            && random.starts_with('-')
            && random[1..].chars().all(|c| c.is_ascii_alphanumeric())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_stable_short_hex_and_per_mount() {
        let a = MountTag::of("0f2d6f1e-3b1c-4c8e-9d6a-2b7e5f0a1c3d").expect("tag");
        assert_eq!(
            a,
            MountTag::of(" 0f2d6f1e-3b1c-4c8e-9d6a-2b7e5f0a1c3d").expect("tag")
        );
        assert_eq!(a.as_str().len(), TAG_LEN);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, MountTag::of("another-mount").expect("tag"));
        assert!(MountTag::of("").is_none());
    }

    #[test]
    fn only_names_this_mount_issues_are_marked() {
        let tag = MountTag::of("mount-a").expect("tag");
        let other = MountTag::of("mount-b").expect("tag");
        let random = "A".repeat(RANDOM_SUFFIX);
        let ours = format!("vault-my-role-{random}{}", tag.suffix());
        assert!(tag.marks(&ours));
        assert!(!other.marks(&ours), "another mount's tag");
        for lookalike in [
            format!("vault-my-role-{random}"),
            format!("vault-my-role-{random}{}", other.suffix()),
            format!("my-role-{random}{}", tag.suffix()),
            format!("vault--{random}{}", tag.suffix()),
            format!(
                "vault-my-role-{}{}",
                "A".repeat(RANDOM_SUFFIX - 1),
                tag.suffix()
            ),
            format!(
                "vault-my-role-{}!{}",
                "A".repeat(RANDOM_SUFFIX - 1),
                tag.suffix()
            ),
            format!("vault-x{}", tag.suffix()),
            "a key made by hand".to_owned(),
        ] {
            assert!(!tag.marks(&lookalike), "{lookalike}");
        }
    }
}
