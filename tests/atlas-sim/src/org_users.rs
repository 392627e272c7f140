//! MongoDB Cloud users (people) in the simulator's state: one identity per username (its
//! 24-hex id is the same in every organization), a membership per organization with a status
//! (`ACTIVE`, or `PENDING` for an invitation), organization roles, and roles per project of that
//! organization.
//!
//! Invariants the methods keep, as Atlas states them: an organization member has at least one
//! organization role; a project member has at least one role in that project ("a user must
//! have at least one role at all times"); project roles only name projects of the membership's
//! organization.
//!
//! Error codes where the spec names none (the simulator's documented choices): an unknown user
//! or one without a membership in the organization is 404 `USER_NOT_FOUND`; an organization
//! member without roles in the project is 404 `USER_NOT_IN_GROUP`; adding a user who is
//! already in the project (active or invited) is 409 `USER_ALREADY_IN_GROUP` (the code real
//! Atlas sends); adding a role the user holds is 409 `USER_ALREADY_HAS_ROLE`; removing a project
//! role the user lacks is 409 `USER_DOES_NOT_HAVE_ROLE` (the spec lists 409 for
//! `removeGroupUserRole`), an organization role 400 of the same code (it lists no 409 for
//! `removeOrgUserRole`); removing the last role is 400 `CANNOT_REMOVE_LAST_ROLE`.

use std::collections::{BTreeMap, HashMap};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ApiError;
use super::ids;
use super::store::{format_time, Store};

/// How long an invitation stays valid (Atlas: 30 days).
pub const INVITATION_LIFETIME: time::Duration = time::Duration::days(30);

/// A user's status in one organization (`orgMembershipStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MembershipStatus {
    Pending,
    Active,
    InvitationExpired,
    InvitationRejected,
}

impl MembershipStatus {
    pub const ALL: [MembershipStatus; 4] = [
        MembershipStatus::Pending,
        MembershipStatus::Active,
        MembershipStatus::InvitationExpired,
        MembershipStatus::InvitationRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Pending => "PENDING",
            MembershipStatus::Active => "ACTIVE",
            MembershipStatus::InvitationExpired => "INVITATION_EXPIRED",
            MembershipStatus::InvitationRejected => "INVITATION_REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Active members and open invitations belong to the organization; an expired or
    /// rejected invitation does not (Atlas: "treated as not belonging to the organization").
    pub fn belongs(self) -> bool {
        matches!(self, MembershipStatus::Active | MembershipStatus::Pending)
    }
}

/// A user's membership of one organization.
#[derive(Debug, Clone)]
pub struct OrgMembership {
    pub status: MembershipStatus,
    pub org_roles: Vec<String>,
    /// Project id -> roles in that project (never an empty list).
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// Set for invitations (`PENDING` and the invitation statuses).
    pub invitation_created_at: Option<OffsetDateTime>,
    pub invitation_expires_at: Option<OffsetDateTime>,
    pub inviter_username: Option<String>,
    /// Added through the admin API or at startup (test setup).
    pub seeded: bool,
}

/// A MongoDB Cloud user: a person, known by username (an email address).
#[derive(Debug, Clone)]
pub struct CloudUser {
    pub id: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub created_at: OffsetDateTime,
    /// Organization id -> membership.
    pub memberships: BTreeMap<String, OrgMembership>,
}

impl CloudUser {
    /// The membership of `org_id` if the user belongs to it (active or invited).
    pub fn member_of(&self, org_id: &str) -> Option<&OrgMembership> {
        self.memberships.get(org_id).filter(|m| m.status.belongs())
    }
}

/// Usernames compare without regard to ASCII case (they are email addresses).
pub fn same_username(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// What the admin API adds: an organization member, as an accepted invitation leaves it.
#[derive(Debug, Clone, Default)]
pub struct NewOrgUser {
    pub id: Option<String>,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub org_roles: Vec<String>,
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// `ACTIVE` unless told otherwise (e.g. `PENDING` for an open invitation).
    pub status: Option<MembershipStatus>,
}

/// One organization membership as the admin inventory reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InventoryOrgUser {
    pub id: String,
    pub username: String,
    pub org_id: String,
    pub status: MembershipStatus,
    pub org_roles: Vec<String>,
    /// Project id -> roles in that project.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// Added through the admin API (test setup), not through the Atlas API.
    #[serde(default)]
    pub seeded: bool,
}

pub fn user_not_found(user_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
        format!("No user with ID {user_id} exists."),
    )
    .with_params([user_id])
}

fn user_not_in_group(user_id: &str, group_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "USER_NOT_IN_GROUP",
        format!("User {user_id} is not a member of group {group_id}."),
    )
    .with_params([user_id, group_id])
}

fn already_has_role(user_id: &str, role: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "USER_ALREADY_HAS_ROLE",
        format!("User {user_id} already has role {role}."),
    )
    .with_params([user_id, role])
}

fn lacks_role(status: StatusCode, user_id: &str, role: &str) -> ApiError {
    ApiError::new(
        status,
        "USER_DOES_NOT_HAVE_ROLE",
        format!("User {user_id} does not have role {role}."),
    )
    .with_params([user_id, role])
}

fn last_role(user_id: &str, role: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "CANNOT_REMOVE_LAST_ROLE",
        format!(
            "Cannot remove role {role} from user {user_id}: a user must have at least one role. Add the new role first."
        ),
    )
    .with_params([user_id, role])
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Whether adding or removing a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Add,
    Remove,
}

impl Store {
    /// The user with this username (any case), if Atlas knows them.
    pub fn user_by_username(&self, username: &str) -> Option<&CloudUser> {
        self.users
            .values()
            .find(|u| same_username(&u.username, username))
    }

    /// A user with a membership (active or invited) in the organization; 404 otherwise.
    pub fn org_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> Result<(&CloudUser, &OrgMembership), ApiError> {
        self.org(org_id)?;
        let user = self
            .users
            .get(user_id)
            .ok_or_else(|| user_not_found(user_id))?;
        let membership = user
            .memberships
            .get(org_id)
            .ok_or_else(|| user_not_found(user_id))?;
        Ok((user, membership))
    }

    /// Every membership of the organization, by username.
    pub fn org_users(&self, org_id: &str) -> Vec<(&CloudUser, &OrgMembership)> {
        let mut list: Vec<(&CloudUser, &OrgMembership)> = self
            .users
            .values()
            .filter_map(|u| u.memberships.get(org_id).map(|m| (u, m)))
            .collect();
        list.sort_unstable_by(|a, b| {
            a.0.username
                .to_ascii_lowercase()
                .cmp(&b.0.username.to_ascii_lowercase())
                .then_with(|| a.0.id.cmp(&b.0.id))
        });
        list
    }

    /// Members (active or invited) with roles in the project, by username.
    pub fn group_users(
        &self,
        group_id: &str,
    ) -> Result<Vec<(&CloudUser, &OrgMembership)>, ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        Ok(self
            .org_users(&org_id)
            .into_iter()
            .filter(|(_, m)| m.status.belongs() && m.project_roles.contains_key(group_id))
            .collect())
    }

    /// A user with roles in the project: 404 `GROUP_NOT_FOUND`, `USER_NOT_FOUND` (not in the
    /// organization) or `USER_NOT_IN_GROUP`.
    pub fn group_user(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<(&CloudUser, &OrgMembership), ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        let user = self
            .users
            .get(user_id)
            .ok_or_else(|| user_not_found(user_id))?;
        let membership = user
            .member_of(&org_id)
            .ok_or_else(|| user_not_found(user_id))?;
        if !membership.project_roles.contains_key(group_id) {
            return Err(user_not_in_group(user_id, group_id));
        }
        Ok((user, membership))
    }

    fn membership_mut(
        &mut self,
        org_id: &str,
        user_id: &str,
    ) -> Result<&mut OrgMembership, ApiError> {
        self.users
            .get_mut(user_id)
            .and_then(|u| u.memberships.get_mut(org_id))
            .filter(|m| m.status.belongs())
            .ok_or_else(|| user_not_found(user_id))
    }

    /// `addGroupUsers`: an organization member (active or invited) gets the roles in the
    /// project; anyone else is invited to the organization with `ORG_MEMBER` and these
    /// project roles (a `PENDING` membership, replacing an expired or rejected invitation),
    /// which is what Atlas does. 409 `USER_ALREADY_IN_GROUP` if they already have roles there.
    /// Returns the user's id.
    pub fn add_group_user(
        &mut self,
        group_id: &str,
        username: &str,
        roles: Vec<String>,
        inviter: &str,
    ) -> Result<String, ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        let existing = self.user_by_username(username).map(|u| u.id.clone());
        if let Some(id) = &existing {
            let membership = self.membership_mut(&org_id, id).ok();
            if let Some(m) = membership {
                if m.project_roles.contains_key(group_id) {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "USER_ALREADY_IN_GROUP",
                        format!("User {username} is already in group {group_id}."),
                    )
                    .with_params([username, group_id]));
                }
                m.project_roles.insert(group_id.to_owned(), roles);
                return Ok(id.clone());
            }
        }
        let created = now();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.fresh_user_id();
                self.users.insert(
                    id.clone(),
                    CloudUser {
                        id: id.clone(),
                        username: username.to_owned(),
                        first_name: String::new(),
                        last_name: String::new(),
                        created_at: created,
                        memberships: BTreeMap::new(),
                    },
                );
                id
            }
        };
        if let Some(user) = self.users.get_mut(&id) {
            user.memberships.insert(
                org_id,
                OrgMembership {
                    status: MembershipStatus::Pending,
                    org_roles: vec!["ORG_MEMBER".to_owned()],
                    project_roles: BTreeMap::from([(group_id.to_owned(), roles)]),
                    invitation_created_at: Some(created),
                    invitation_expires_at: Some(created + INVITATION_LIFETIME),
                    inviter_username: Some(inviter.to_owned()),
                    seeded: false,
                },
            );
        }
        Ok(id)
    }

    /// `removeGroupUser`: takes every role in the project from the user.
    pub fn remove_group_user(&mut self, group_id: &str, user_id: &str) -> Result<(), ApiError> {
        self.group_user(group_id, user_id)?;
        let org_id = self.project(group_id)?.org_id.clone();
        self.membership_mut(&org_id, user_id)?
            .project_roles
            .remove(group_id);
        Ok(())
    }

    /// `addGroupUserRole` / `removeGroupUserRole` on a user with roles in the project.
    pub fn change_group_role(
        &mut self,
        group_id: &str,
        user_id: &str,
        change: RoleChange,
        role: &str,
    ) -> Result<(), ApiError> {
        self.group_user(group_id, user_id)?;
        let org_id = self.project(group_id)?.org_id.clone();
        let membership = self.membership_mut(&org_id, user_id)?;
        let roles = membership
            .project_roles
            .get_mut(group_id)
            .ok_or_else(|| user_not_in_group(user_id, group_id))?;
        apply_role(roles, user_id, change, role, StatusCode::CONFLICT)
    }

    /// `addOrgUserRole` / `removeOrgUserRole` on an organization member (active or invited).
    pub fn change_org_role(
        &mut self,
        org_id: &str,
        user_id: &str,
        change: RoleChange,
        role: &str,
    ) -> Result<(), ApiError> {
        self.org(org_id)?;
        let membership = self.membership_mut(org_id, user_id)?;
        apply_role(
            &mut membership.org_roles,
            user_id,
            change,
            role,
            StatusCode::BAD_REQUEST,
        )
    }

    /// Gives a project owner (`createGroup`): the user gets `GROUP_OWNER` in the new project.
    pub fn make_group_owner(&mut self, org_id: &str, group_id: &str, user_id: &str) {
        if let Ok(m) = self.membership_mut(org_id, user_id) {
            m.project_roles
                .insert(group_id.to_owned(), vec!["GROUP_OWNER".to_owned()]);
        }
    }

    /// The organization's oldest active `ORG_OWNER` user: Atlas's default owner of a new project.
    pub fn oldest_org_owner(&self, org_id: &str) -> Option<String> {
        self.users
            .values()
            .filter(|u| {
                u.memberships.get(org_id).is_some_and(|m| {
                    m.status == MembershipStatus::Active
                        && m.org_roles.iter().any(|r| r == "ORG_OWNER")
                })
            })
            .min_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.id.cmp(&b.id))
            })
            .map(|u| u.id.clone())
    }

    fn fresh_user_id(&self) -> String {
        loop {
            let id = ids::object_id();
            if !self.users.contains_key(&id) {
                break id;
            }
        }
    }

    /// Admin: adds an organization member directly, as an accepted invitation leaves them
    /// (an open invitation of the same username in the organization is accepted: it takes
    /// the given status and roles, and keeps its project roles). The username's identity is
    /// shared across organizations.
    pub fn add_org_member(
        &mut self,
        org_id: &str,
        new: NewOrgUser,
    ) -> Result<InventoryOrgUser, String> {
        self.org(org_id).map_err(|e| e.detail)?;
        if !is_email(&new.username) {
            return Err(format!(
                "username {:?} is not an email address",
                new.username
            ));
        }
        for group in new.project_roles.keys() {
            let project = self.project(group).map_err(|e| e.detail)?;
            if project.org_id != org_id {
                return Err(format!("project {group} is not in org {org_id}"));
            }
        }
        if new.project_roles.values().any(Vec::is_empty) {
            return Err("project roles must name at least one role per project".into());
        }
        let existing = self.user_by_username(&new.username).map(|u| u.id.clone());
        if let (Some(wanted), Some(found)) = (&new.id, &existing) {
            if wanted != found {
                return Err(format!("username {} already has id {found}", new.username));
            }
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = match new.id {
                    Some(id) if ids::is_object_id(&id) && !self.users.contains_key(&id) => id,
                    Some(id) => return Err(format!("user id {id:?} is not a free 24-hex id")),
                    None => self.fresh_user_id(),
                };
                self.users.insert(
                    id.clone(),
                    CloudUser {
                        id: id.clone(),
                        username: new.username.clone(),
                        first_name: String::new(),
                        last_name: String::new(),
                        created_at: now(),
                        memberships: BTreeMap::new(),
                    },
                );
                id
            }
        };
        let status = new.status.unwrap_or(MembershipStatus::Active);
        let mut org_roles: Vec<String> = Vec::with_capacity(new.org_roles.len().max(1));
        for role in new.org_roles {
            if !org_roles.contains(&role) {
                org_roles.push(role);
            }
        }
        if org_roles.is_empty() {
            org_roles.push("ORG_MEMBER".to_owned());
        }
        let user = self
            .users
            .get_mut(&id)
            .ok_or_else(|| format!("user {id} vanished"))?;
        if let Some(first) = new.first_name {
            user.first_name = first;
        }
        if let Some(last) = new.last_name {
            user.last_name = last;
        }
        let created = now();
        let membership = match user.memberships.remove(org_id) {
            Some(m) if m.status == MembershipStatus::Active => {
                user.memberships.insert(org_id.to_owned(), m);
                return Err(format!(
                    "{} is already a member of org {org_id}",
                    user.username
                ));
            }
            Some(mut invited) if invited.status == MembershipStatus::Pending => {
                invited.status = status;
                for role in org_roles {
                    if !invited.org_roles.contains(&role) {
                        invited.org_roles.push(role);
                    }
                }
                invited.project_roles.extend(new.project_roles);
                invited.seeded = true;
                invited
            }
            _ => OrgMembership {
                status,
                org_roles,
                project_roles: new.project_roles,
                invitation_created_at: (status != MembershipStatus::Active).then_some(created),
                invitation_expires_at: (status != MembershipStatus::Active)
                    .then_some(created + INVITATION_LIFETIME),
                inviter_username: (status != MembershipStatus::Active)
                    .then(|| "admin@atlas-sim.example.com".to_owned()),
                seeded: true,
            },
        };
        if membership.status == MembershipStatus::Active {
            if user.first_name.is_empty() {
                user.first_name = "Atlas".to_owned();
            }
            if user.last_name.is_empty() {
                user.last_name = "User".to_owned();
            }
        }
        let view = inventory_entry(user, org_id, &membership);
        user.memberships.insert(org_id.to_owned(), membership);
        Ok(view)
    }

    /// Admin: deletes the user's account (every membership), as if they left MongoDB Cloud.
    pub fn remove_user(&mut self, user_id: &str) -> bool {
        self.users.remove(user_id).is_some()
    }

    /// Every membership, by organization then username.
    pub fn inventory_org_users(&self) -> Vec<InventoryOrgUser> {
        let mut out: Vec<InventoryOrgUser> = self
            .users
            .values()
            .flat_map(|u| {
                u.memberships
                    .iter()
                    .map(move |(org, m)| inventory_entry(u, org, m))
            })
            .collect();
        out.sort_by(|a, b| {
            a.org_id.cmp(&b.org_id).then_with(|| {
                a.username
                    .to_ascii_lowercase()
                    .cmp(&b.username.to_ascii_lowercase())
            })
        });
        out
    }
}

fn inventory_entry(user: &CloudUser, org_id: &str, m: &OrgMembership) -> InventoryOrgUser {
    InventoryOrgUser {
        id: user.id.clone(),
        username: user.username.clone(),
        org_id: org_id.to_owned(),
        status: m.status,
        org_roles: m.org_roles.clone(),
        project_roles: m.project_roles.clone(),
        seeded: m.seeded,
    }
}

/// Adds or removes one role; the list never becomes empty.
fn apply_role(
    roles: &mut Vec<String>,
    user_id: &str,
    change: RoleChange,
    role: &str,
    lacking: StatusCode,
) -> Result<(), ApiError> {
    let held = roles.iter().any(|r| r == role);
    match change {
        RoleChange::Add if held => Err(already_has_role(user_id, role)),
        RoleChange::Add => {
            roles.push(role.to_owned());
            Ok(())
        }
        RoleChange::Remove if !held => Err(lacks_role(lacking, user_id, role)),
        RoleChange::Remove if roles.len() == 1 => Err(last_role(user_id, role)),
        RoleChange::Remove => {
            roles.retain(|r| r != role);
            Ok(())
        }
    }
}

/// A plausible email address: `local@domain.tld`, printable ASCII, no spaces, at most 254
/// characters (what the simulator takes for the spec's `format: email`).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 3339 as Atlas renders it, for optional times.
pub fn format_opt(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(format_time)
}

/// Users by id: the store's table.
pub type Users = HashMap<String, CloudUser>;

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, String, String) {
        let mut store = Store::new(10);
        let org = store.create_org(None, "org".into()).unwrap();
        let project = store.create_project(None, &org.id, "p".into()).unwrap();
        (store, org.id, project.id)
    }

    fn member(store: &mut Store, org: &str, username: &str, roles: &[&str]) -> String {
        store
            .add_org_member(
                org,
                NewOrgUser {
                    username: username.into(),
                    org_roles: roles.iter().map(|r| r.to_string()).collect(),
                    ..NewOrgUser::default()
                },
            )
            .unwrap()
            .id
    }

    #[test]
    fn members_are_added_to_projects_and_non_members_invited() {
        let (mut store, org, group) = store();
        let alice = member(&mut store, &org, "alice@example.com", &["ORG_MEMBER"]);
        let id = store
            .add_group_user(
                &group,
                "ALICE@example.com",
                vec!["GROUP_READ_ONLY".into()],
                "k@x.io",
            )
            .unwrap();
        assert_eq!(id, alice, "usernames match without regard to case");
        assert_eq!(
            store
                .add_group_user(
                    &group,
                    "alice@example.com",
                    vec!["GROUP_OWNER".into()],
                    "k@x.io"
                )
                .unwrap_err()
                .code,
            "USER_ALREADY_IN_GROUP"
        );
        let bob = store
            .add_group_user(
                &group,
                "bob@example.com",
                vec!["GROUP_READ_ONLY".into()],
                "k@x.io",
            )
            .unwrap();
        let (_, m) = store.org_user(&org, &bob).unwrap();
        assert_eq!(m.status, MembershipStatus::Pending);
        assert_eq!(m.org_roles, ["ORG_MEMBER"]);
        assert_eq!(store.group_users(&group).unwrap().len(), 2);
        // Accepting the invitation (admin) keeps the project roles.
        let accepted = store
            .add_org_member(
                &org,
                NewOrgUser {
                    username: "bob@example.com".into(),
                    ..NewOrgUser::default()
                },
            )
            .unwrap();
        assert_eq!(accepted.status, MembershipStatus::Active);
        assert_eq!(accepted.project_roles[&group], ["GROUP_READ_ONLY"]);
    }

    #[test]
    fn roles_change_one_at_a_time_and_never_run_out() {
        let (mut store, org, group) = store();
        let alice = member(&mut store, &org, "alice@example.com", &["ORG_MEMBER"]);
        assert_eq!(
            store
                .change_group_role(&group, &alice, RoleChange::Add, "GROUP_OWNER")
                .unwrap_err()
                .code,
            "USER_NOT_IN_GROUP"
        );
        store
            .add_group_user(
                &group,
                "alice@example.com",
                vec!["GROUP_READ_ONLY".into()],
                "k@x.io",
            )
            .unwrap();
        store
            .change_group_role(&group, &alice, RoleChange::Add, "GROUP_OWNER")
            .unwrap();
        let err = store
            .change_group_role(&group, &alice, RoleChange::Add, "GROUP_OWNER")
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::CONFLICT, "USER_ALREADY_HAS_ROLE")
        );
        store
            .change_group_role(&group, &alice, RoleChange::Remove, "GROUP_READ_ONLY")
            .unwrap();
        let err = store
            .change_group_role(&group, &alice, RoleChange::Remove, "GROUP_READ_ONLY")
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::CONFLICT, "USER_DOES_NOT_HAVE_ROLE")
        );
        assert_eq!(
            store
                .change_group_role(&group, &alice, RoleChange::Remove, "GROUP_OWNER")
                .unwrap_err()
                .code,
            "CANNOT_REMOVE_LAST_ROLE"
        );
        let err = store
            .change_org_role(&org, &alice, RoleChange::Remove, "ORG_OWNER")
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        store
            .change_org_role(&org, &alice, RoleChange::Add, "ORG_GROUP_CREATOR")
            .unwrap();
        store
            .change_org_role(&org, &alice, RoleChange::Remove, "ORG_MEMBER")
            .unwrap();
        store.remove_group_user(&group, &alice).unwrap();
        assert_eq!(
            store.remove_group_user(&group, &alice).unwrap_err().code,
            "USER_NOT_IN_GROUP"
        );
        assert_eq!(
            store
                .org_user(&org, "0123456789abcdef01234567")
                .unwrap_err()
                .code,
            "USER_NOT_FOUND"
        );
    }

    #[test]
    fn identities_are_shared_across_orgs_and_owners_found() {
        let (mut store, org, _) = store();
        let other = store.create_org(None, "other".into()).unwrap();
        let a = member(
            &mut store,
            &org,
            "owner@example.com",
            &["ORG_OWNER", "ORG_MEMBER", "ORG_OWNER"],
        );
        assert_eq!(
            store.org_user(&org, &a).unwrap().1.org_roles,
            ["ORG_OWNER", "ORG_MEMBER"]
        );
        let b = member(&mut store, &other.id, "owner@example.com", &["ORG_MEMBER"]);
        assert_eq!(a, b);
        assert_eq!(store.oldest_org_owner(&org), Some(a));
        assert_eq!(store.oldest_org_owner(&other.id), None);
        assert!(store
            .add_org_member(
                &org,
                NewOrgUser {
                    username: "owner@example.com".into(),
                    ..NewOrgUser::default()
                }
            )
            .is_err());
        assert!(store
            .add_org_member(
                &org,
                NewOrgUser {
                    username: "not-an-email".into(),
                    ..NewOrgUser::default()
                }
            )
            .is_err());
        assert_eq!(store.inventory_org_users().len(), 2);
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.co", "a@b", "a@.b", "a b@c.de", "a@b.c.", "a@b@c.de",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
