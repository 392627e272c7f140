//! What the plugin granted one person in one place (their organization or a
//! project), so that ending a grant removes exactly what it added: never a
//! role the person held before the plugin's first live grant there, nor one
//! another live grant still needs.
//!
//! One ledger per person and place, in the plugin's storage. It is written
//! before Atlas is changed (a crash then leaves a ledger that names at least
//! what Atlas holds), and removed once its last grant ends (the next grant
//! reads the person's roles from Atlas afresh).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::vault::framework::BackendError;
use crate::vault::storage::{get_json, put_json, Storage};

/// Storage prefix of the ledgers: `user_access/<place>/<user id>`.
pub(crate) const PREFIX: &str = "user_access/";

/// Where roles are granted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub(crate) enum Place {
    Org(String),
    Project(String),
}

impl Place {
    fn key(&self, user_id: &str) -> String {
        match self {
            Self::Org(id) => format!("{PREFIX}org-{id}/{user_id}"),
            Self::Project(id) => format!("{PREFIX}project-{id}/{user_id}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ledger {
    /// The roles the person held here before the plugin's first live grant.
    pub held_before: BTreeSet<String>,
    /// The person was not in the project: the plugin added them, and removes
    /// them when the last grant ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub added_member: bool,
    /// Live (or half-done) grants: grant id -> the roles it needs.
    pub grants: BTreeMap<String, BTreeSet<String>>,
}

/// What ending a grant takes in Atlas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Release {
    /// Roles no other grant needs and the person did not hold before.
    pub remove_roles: Vec<String>,
    /// The last grant ended and the plugin had added the person to the project.
    pub remove_member: bool,
}

impl Ledger {
    /// A first grant's ledger: the person's roles here now (`None`: not a member).
    pub(crate) fn first(current: Option<&BTreeSet<String>>) -> Self {
        Self {
            held_before: current.cloned().unwrap_or_default(),
            added_member: current.is_none(),
            grants: BTreeMap::new(),
        }
    }

    /// Records a grant; returns the roles to add, given what the person holds now.
    pub(crate) fn grant(
        &mut self,
        grant_id: &str,
        roles: &BTreeSet<String>,
        current: &BTreeSet<String>,
    ) -> Vec<String> {
        self.grants.insert(grant_id.to_owned(), roles.clone());
        roles.difference(current).cloned().collect()
    }

    /// Forgets a grant; returns what to remove from Atlas.
    pub(crate) fn release(&mut self, grant_id: &str) -> Release {
        let Some(roles) = self.grants.remove(grant_id) else {
            return Release::default();
        };
        let still_needed: BTreeSet<&String> = self.grants.values().flatten().collect();
        let remove_roles = roles
            .into_iter()
            .filter(|r| !still_needed.contains(r) && !self.held_before.contains(r))
            .collect();
        Release {
            remove_roles,
            remove_member: self.grants.is_empty() && self.added_member,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

pub(crate) async fn load(
    storage: &dyn Storage,
    place: &Place,
    user_id: &str,
) -> Result<Option<Ledger>, BackendError> {
    Ok(get_json(storage, &place.key(user_id)).await?)
}

/// Stores the ledger, or deletes it once no grant is left.
pub(crate) async fn store(
    storage: &dyn Storage,
    place: &Place,
    user_id: &str,
    ledger: &Ledger,
) -> Result<(), BackendError> {
    let key = place.key(user_id);
    if ledger.is_empty() {
        storage.delete(&key).await?;
    } else {
        put_json(storage, &key, ledger).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(roles: &[&str]) -> BTreeSet<String> {
        roles.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn overlapping_grants_keep_what_the_other_needs() {
        let mut ledger = Ledger::first(Some(&set(&["GROUP_READ_ONLY"])));
        let held = set(&["GROUP_READ_ONLY"]);
        assert_eq!(
            ledger.grant("a", &set(&["GROUP_OWNER"]), &held),
            vec!["GROUP_OWNER"]
        );
        let held = set(&["GROUP_READ_ONLY", "GROUP_OWNER"]);
        assert_eq!(
            ledger.grant(
                "b",
                &set(&["GROUP_OWNER", "GROUP_DATA_ACCESS_ADMIN"]),
                &held
            ),
            vec!["GROUP_DATA_ACCESS_ADMIN"]
        );
        // a ends: GROUP_OWNER is still b's.
        assert_eq!(ledger.release("a"), Release::default());
        // b ends: both of its roles go; GROUP_READ_ONLY, held before, stays.
        let last = ledger.release("b");
        assert_eq!(
            last.remove_roles,
            vec!["GROUP_DATA_ACCESS_ADMIN", "GROUP_OWNER"]
        );
        assert!(!last.remove_member, "a member before stays a member");
        assert!(ledger.is_empty());
        // Releasing again (a retried revocation) removes nothing.
        assert_eq!(ledger.release("b"), Release::default());
    }

    #[test]
    fn a_role_held_before_is_never_removed() {
        let mut ledger = Ledger::first(Some(&set(&["GROUP_READ_ONLY"])));
        let needed = ledger.grant(
            "a",
            &set(&["GROUP_READ_ONLY", "GROUP_OWNER"]),
            &set(&["GROUP_READ_ONLY"]),
        );
        assert_eq!(needed, vec!["GROUP_OWNER"]);
        assert_eq!(ledger.release("a").remove_roles, vec!["GROUP_OWNER"]);
    }

    #[test]
    fn a_person_the_plugin_added_leaves_with_the_last_grant() {
        let mut ledger = Ledger::first(None);
        assert!(ledger.added_member);
        ledger.grant("a", &set(&["GROUP_OWNER"]), &BTreeSet::new());
        ledger.grant("b", &set(&["GROUP_READ_ONLY"]), &set(&["GROUP_OWNER"]));
        assert!(!ledger.release("b").remove_member);
        let last = ledger.release("a");
        assert!(last.remove_member);
        assert_eq!(last.remove_roles, vec!["GROUP_OWNER"]);
    }

    #[test]
    fn ledgers_are_stored_per_person_and_place() {
        assert_eq!(
            Place::Project("p1".into()).key("u1"),
            "user_access/project-p1/u1"
        );
        assert_eq!(Place::Org("o1".into()).key("u1"), "user_access/org-o1/u1");
        let ledger = Ledger::first(Some(&set(&["GROUP_READ_ONLY"])));
        let json = serde_json::to_string(&ledger).expect("json");
        assert_eq!(json, r#"{"held_before":["GROUP_READ_ONLY"],"grants":{}}"#);
    }
}
