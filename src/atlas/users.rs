//! MongoDB Cloud user calls (version 2025-02-19): find an organization user, read a project
//! user, add an organization member to a project, add and remove one project or
//! organization role, remove a user from a project; and create a project (version
//! 2023-01-01) for tests and demos.
//!
//! The groundwork of just-in-time access for people: a lease grants an existing member
//! roles and its revocation removes exactly what the lease added. Two Atlas behaviours shape
//! the calls:
//!
//! - Adding someone who is not a member of the project's organization to a project makes
//!   Atlas *invite* them (the answer's status is [`MembershipStatus::Pending`]). Callers that
//!   must only grant access to existing members look the user up first
//!   ([`AtlasClient::find_org_user_by_username`]) and check [`OrgUser::is_active`].
//! - Role changes are one role at a time, and a user always keeps at least one role: to
//!   replace a user's only role, add the new one before removing the old one; to take the
//!   last one away, remove the user from the project.
//!
//! Adding a user to a project and creating a project are never resent once Atlas may have
//! acted on them (a lost answer is [`AtlasError::CreateUncertain`], naming the username or
//! project name, for the caller to resolve by reading). Role changes are resent; a resend
//! that meets Atlas' refusal because its first attempt already took effect is resolved by
//! reading the user back ([`RoleChange::AlreadyInPlace`]), like duplicate access-list entries.

use http::Method;
use tokio::time::Instant;
use url::Url;

use super::client::{create_failure, decode, to_json, with_segment, AtlasClient};
use super::error::AtlasError;
use super::models::{
    AddProjectUserBody, CreateProjectBody, GroupRoleBody, OrgRoleBody, OrgUser, Project,
    ProjectUser, RoleChange, WireOrgUser, WireProject, WireProjectUser,
};
use super::transport::{ApiRequest, Idempotency, PROJECTS_MEDIA_TYPE, USERS_MEDIA_TYPE};

/// The organization roles `addOrgUserRole` / `removeOrgUserRole` take (the spec's enum).
pub const ORG_ROLES: &[&str] = &[
    "ORG_OWNER",
    "ORG_GROUP_CREATOR",
    "ORG_BILLING_ADMIN",
    "ORG_BILLING_READ_ONLY",
    "ORG_STREAM_PROCESSING_ADMIN",
    "ORG_READ_ONLY",
    "ORG_MEMBER",
];

/// Longest email address (RFC 5321 path limit).
const MAX_USERNAME_CHARS: usize = 254;
/// Longest project name, and the characters one may hold besides letters and digits
/// (`Group.name`: `^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`).
const MAX_PROJECT_NAME_CHARS: usize = 64;
const PROJECT_NAME_PUNCTUATION: &str = "-_.(),:&@+'";
/// Role names are upper-case tokens (`GROUP_READ_ONLY`); the spec has no enum for project roles.
const MAX_ROLE_CHARS: usize = 100;

/// Atlas' `errorCode` for an unknown project: a 404 that is not "user not in project".
const GROUP_NOT_FOUND: &str = "GROUP_NOT_FOUND";

impl AtlasClient {
    /// Every user of the organization, active members and open invitations (all pages).
    pub async fn list_org_users(&self, org_id: &str) -> Result<Vec<OrgUser>, AtlasError> {
        let url = with_segment(self.url(&[("orgs", org_id)])?, "users");
        self.org_users(url, self.deadline()).await
    }

    /// The organization user with this username (an email address, compared without regard
    /// to case), active or invited; `None` if the organization has no such user.
    pub async fn find_org_user_by_username(
        &self,
        org_id: &str,
        username: &str,
    ) -> Result<Option<OrgUser>, AtlasError> {
        check_username(username)?;
        let mut url = with_segment(self.url(&[("orgs", org_id)])?, "users");
        url.query_pairs_mut().append_pair("username", username);
        Ok(self
            .org_users(url, self.deadline())
            .await?
            .into_iter()
            .find(|user| user.username.eq_ignore_ascii_case(username)))
    }

    /// One organization user by id ([`AtlasError::NotFound`] if not in the organization).
    pub async fn get_org_user(&self, org_id: &str, user_id: &str) -> Result<OrgUser, AtlasError> {
        self.org_user_by(org_id, user_id, self.deadline()).await
    }

    /// Every user with roles in the project (all pages).
    pub async fn list_project_users(
        &self,
        project_id: &str,
    ) -> Result<Vec<ProjectUser>, AtlasError> {
        let url = with_segment(self.url(&[("groups", project_id)])?, "users");
        let wire: Vec<WireProjectUser> = self
            .list_all_as(url, USERS_MEDIA_TYPE, self.deadline())
            .await?;
        Ok(wire.into_iter().map(ProjectUser::from).collect())
    }

    /// The user's roles in the project, or `None` when they have none there (not in the
    /// project, or not in its organization). An unknown project is [`AtlasError::NotFound`].
    pub async fn project_user(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<ProjectUser>, AtlasError> {
        self.project_user_by(project_id, user_id, self.deadline())
            .await
    }

    /// Adds an organization member to a project with these project roles (at least one).
    ///
    /// Atlas invites a username that is not a member of the project's organization (the
    /// answer's status is then [`MembershipStatus::Pending`](super::MembershipStatus)); a
    /// user who already has roles in the project is refused (409). Never resent once Atlas
    /// may have acted: a lost answer is [`AtlasError::CreateUncertain`] naming the username.
    pub async fn add_user_to_project(
        &self,
        project_id: &str,
        username: &str,
        roles: &[String],
    ) -> Result<ProjectUser, AtlasError> {
        check_username(username)?;
        if roles.is_empty() {
            return Err(AtlasError::InvalidArgument(
                "adding a user to a project needs at least one project role".to_owned(),
            ));
        }
        for role in roles {
            check_role(role)?;
        }
        if roles
            .iter()
            .enumerate()
            .any(|(i, r)| roles[..i].contains(r))
        {
            return Err(AtlasError::InvalidArgument(
                "project roles must not repeat".to_owned(),
            ));
        }
        let url = with_segment(self.url(&[("groups", project_id)])?, "users");
        let request = ApiRequest::new(Method::POST, url, Idempotency::NonIdempotent)
            .with_media_type(USERS_MEDIA_TYPE)
            .with_json_body(to_json(&AddProjectUserBody { username, roles })?);
        let response = self
            .transport
            .send(&request, self.deadline())
            .await
            .map_err(|failure| create_failure(failure, username))?;
        decode::<WireProjectUser>(&response, "added project user")
            .map(ProjectUser::from)
            .map_err(|e| AtlasError::CreateUncertain {
                desc: username.to_owned(),
                orphan_key_id: None,
                source: Box::new(e),
            })
    }

    /// Takes every role in the project from the user (they stay in the organization).
    /// A user without roles there is [`AtlasError::NotFound`].
    pub async fn remove_user_from_project(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("groups", project_id), ("users", user_id)])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent)
            .with_media_type(USERS_MEDIA_TYPE);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Adds one project role to a user who has roles in the project.
    pub async fn add_project_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, AtlasError> {
        self.change_project_role(project_id, user_id, role, Verb::Add)
            .await
    }

    /// Removes one project role; Atlas refuses to take a user's last role there (remove the
    /// user from the project instead).
    pub async fn remove_project_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, AtlasError> {
        self.change_project_role(project_id, user_id, role, Verb::Remove)
            .await
    }

    /// Adds one organization role ([`ORG_ROLES`]) to an organization user.
    pub async fn add_org_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, AtlasError> {
        self.change_org_role(org_id, user_id, role, Verb::Add).await
    }

    /// Removes one organization role; Atlas refuses to take a user's last one.
    pub async fn remove_org_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, AtlasError> {
        self.change_org_role(org_id, user_id, role, Verb::Remove)
            .await
    }

    /// Creates a project in the organization (for tests and demos). Atlas makes the
    /// organization's oldest Organization Owner its Project Owner. Names are unique per
    /// organization (409 otherwise). Never resent once Atlas may have acted: a lost answer is
    /// [`AtlasError::CreateUncertain`] naming the project.
    pub async fn create_project(&self, org_id: &str, name: &str) -> Result<Project, AtlasError> {
        let count = name.chars().count();
        if !(1..=MAX_PROJECT_NAME_CHARS).contains(&count)
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || PROJECT_NAME_PUNCTUATION.contains(c))
        {
            return Err(AtlasError::InvalidArgument(format!(
                "a project name must have 1 to {MAX_PROJECT_NAME_CHARS} letters, digits or {PROJECT_NAME_PUNCTUATION}"
            )));
        }
        self.url(&[("orgs", org_id)])?;
        let url = with_segment(self.url(&[])?, "groups");
        let request = ApiRequest::new(Method::POST, url, Idempotency::NonIdempotent)
            .with_media_type(PROJECTS_MEDIA_TYPE)
            .with_json_body(to_json(&CreateProjectBody { name, org_id })?);
        let response = self
            .transport
            .send(&request, self.deadline())
            .await
            .map_err(|failure| create_failure(failure, name))?;
        decode::<WireProject>(&response, "created project")
            .map(Project::from)
            .map_err(|e| AtlasError::CreateUncertain {
                desc: name.to_owned(),
                orphan_key_id: None,
                source: Box::new(e),
            })
    }

    // ---- internals ----

    async fn org_users(&self, url: Url, deadline: Instant) -> Result<Vec<OrgUser>, AtlasError> {
        let wire: Vec<WireOrgUser> = self.list_all_as(url, USERS_MEDIA_TYPE, deadline).await?;
        Ok(wire.into_iter().map(OrgUser::from).collect())
    }

    async fn org_user_by(
        &self,
        org_id: &str,
        user_id: &str,
        deadline: Instant,
    ) -> Result<OrgUser, AtlasError> {
        let url = self.url(&[("orgs", org_id), ("users", user_id)])?;
        let request = ApiRequest::new(Method::GET, url, Idempotency::Idempotent)
            .with_media_type(USERS_MEDIA_TYPE);
        let response = self.send(request, deadline).await?;
        Ok(decode::<WireOrgUser>(&response, "organization user")?.into())
    }

    async fn project_user_by(
        &self,
        project_id: &str,
        user_id: &str,
        deadline: Instant,
    ) -> Result<Option<ProjectUser>, AtlasError> {
        let url = self.url(&[("groups", project_id), ("users", user_id)])?;
        let request = ApiRequest::new(Method::GET, url, Idempotency::Idempotent)
            .with_media_type(USERS_MEDIA_TYPE);
        match self.send(request, deadline).await {
            Ok(response) => Ok(Some(
                decode::<WireProjectUser>(&response, "project user")?.into(),
            )),
            Err(AtlasError::NotFound(problem)) if problem.error_code() != Some(GROUP_NOT_FOUND) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `POST .../{collection}/{id}/users/{userId}:addRole|:removeRole`.
    fn role_url(
        &self,
        collection: &str,
        id: &str,
        user_id: &str,
        verb: Verb,
    ) -> Result<Url, AtlasError> {
        // The last segment is `{userId}:addRole`: check the id alone, then add the verb.
        self.url(&[(collection, id), ("users", user_id)])?;
        Ok(with_segment(
            with_segment(self.url(&[(collection, id)])?, "users"),
            &format!("{user_id}:{}", verb.as_str()),
        ))
    }

    async fn change_project_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
        verb: Verb,
    ) -> Result<RoleChange, AtlasError> {
        check_role(role)?;
        let url = self.role_url("groups", project_id, user_id, verb)?;
        let request = ApiRequest::new(Method::POST, url, Idempotency::Idempotent)
            .with_media_type(USERS_MEDIA_TYPE)
            .with_json_body(to_json(&GroupRoleBody { group_role: role })?);
        let deadline = self.deadline();
        match self.send(request, deadline).await {
            Ok(_) => Ok(RoleChange::Made),
            Err(AtlasError::InvalidInput(problem)) => {
                // A refusal may mean the role is already (or no longer) there: read it back.
                let held = match self.project_user_by(project_id, user_id, deadline).await {
                    Ok(user) => user.is_some_and(|u| u.has_role(role)),
                    Err(_) => return Err(AtlasError::InvalidInput(problem)),
                };
                verb.settled(held).ok_or(AtlasError::InvalidInput(problem))
            }
            Err(e) => Err(e),
        }
    }

    async fn change_org_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: &str,
        verb: Verb,
    ) -> Result<RoleChange, AtlasError> {
        if !ORG_ROLES.contains(&role) {
            return Err(AtlasError::InvalidArgument(format!(
                "{role:?} is not an organization role (one of {})",
                ORG_ROLES.join(", ")
            )));
        }
        let url = self.role_url("orgs", org_id, user_id, verb)?;
        let request = ApiRequest::new(Method::POST, url, Idempotency::Idempotent)
            .with_media_type(USERS_MEDIA_TYPE)
            .with_json_body(to_json(&OrgRoleBody { org_role: role })?);
        let deadline = self.deadline();
        match self.send(request, deadline).await {
            Ok(_) => Ok(RoleChange::Made),
            Err(AtlasError::InvalidInput(problem)) => {
                let held = match self.org_user_by(org_id, user_id, deadline).await {
                    Ok(user) => user.has_org_role(role),
                    Err(_) => return Err(AtlasError::InvalidInput(problem)),
                };
                verb.settled(held).ok_or(AtlasError::InvalidInput(problem))
            }
            Err(e) => Err(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Add,
    Remove,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "addRole",
            Verb::Remove => "removeRole",
        }
    }

    /// After a refusal: whether the state asked for holds anyway (`held`: the user has the
    /// role now).
    fn settled(self, held: bool) -> Option<RoleChange> {
        match (self, held) {
            (Verb::Add, true) | (Verb::Remove, false) => Some(RoleChange::AlreadyInPlace),
            _ => None,
        }
    }
}

/// A username is an email address. The error does not repeat it (it is personal data).
fn check_username(username: &str) -> Result<(), AtlasError> {
    let plausible = username.chars().count() <= MAX_USERNAME_CHARS
        && username.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && username.chars().all(|c| c.is_ascii_graphic());
    if plausible {
        Ok(())
    } else {
        Err(AtlasError::InvalidArgument(
            "a MongoDB Cloud username must be an email address".to_owned(),
        ))
    }
}

/// Role names are plain upper-case tokens (they go into JSON only, but a typo should fail here).
fn check_role(role: &str) -> Result<(), AtlasError> {
    let plain = !role.is_empty()
        && role.len() <= MAX_ROLE_CHARS
        && role
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(AtlasError::InvalidArgument(format!(
            "{role:?} is not a role name"
        )))
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
