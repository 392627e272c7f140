//! Service-account calls (version 2024-08-05): create an organization or
//! project service account, invite it to a project, give it an access list,
//! find it by name and delete it.
//!
//! Creates are never resent once Atlas may have acted on them (a resend would
//! make a second account whose secret nobody holds): the caller records the
//! name, which is unique per issuance, and a lost answer becomes
//! [`AtlasError::CreateUncertain`] for the caller's rollback to resolve.

use http::Method;

use super::client::{create_failure, decode, to_json, with_segment, AtlasClient};
use super::error::AtlasError;
use super::models::{
    AccessListEntry, AccountSecret, CreateSecretBody, CreateServiceAccountBody, ProjectRolesBody,
    ServiceAccount, WireAccessListRequest, WireServiceAccount, WireServiceAccountSecret,
};
use super::transport::{ApiRequest, Idempotency, SERVICE_ACCOUNTS_MEDIA_TYPE};

/// Atlas' limits on a service account's name and description.
const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 250;

/// Where a service account is created.
#[derive(Clone, Copy, Debug)]
pub enum AccountScope<'a> {
    /// An organization service account with organization roles.
    Org(&'a str),
    /// A project service account with project roles (Atlas makes it an
    /// organization member).
    Project(&'a str),
}

impl<'a> AccountScope<'a> {
    fn path(self) -> (&'static str, &'a str) {
        match self {
            AccountScope::Org(org) => ("orgs", org),
            AccountScope::Project(project) => ("groups", project),
        }
    }
}

impl AtlasClient {
    /// Creates a service account whose one secret expires after
    /// `secret_expires_after_hours`; the answer holds that secret, which Atlas
    /// never shows again. `name` must be unique to this call.
    pub async fn create_service_account(
        &self,
        scope: AccountScope<'_>,
        name: &str,
        description: &str,
        roles: &[String],
        secret_expires_after_hours: u32,
    ) -> Result<ServiceAccount, AtlasError> {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AtlasError::InvalidArgument(format!(
                "a service account name must have 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if description.trim().is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(AtlasError::InvalidArgument(format!(
                "a service account description must have 1 to {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        let (collection, id) = scope.path();
        let url = with_segment(self.url(&[(collection, id)])?, "serviceAccounts");
        let body = to_json(&CreateServiceAccountBody {
            name,
            description,
            roles,
            secret_expires_after_hours,
        })?;
        let request = ApiRequest::new(Method::POST, url, Idempotency::NonIdempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE)
            .with_json_body(body);
        let response = self
            .transport
            .send(&request, self.deadline())
            .await
            .map_err(|failure| create_failure(failure, name))?;
        let account: ServiceAccount =
            decode::<WireServiceAccount>(&response, "created service account")
                .map_err(|e| uncertain(name, e))?
                .into();
        if account.secret.is_none() {
            return Err(uncertain(
                name,
                AtlasError::Unexpected {
                    message: "Atlas created a service account but returned no secret".to_owned(),
                    problem: None,
                },
            ));
        }
        Ok(account)
    }

    /// Gives an organization service account project roles in a project.
    pub async fn invite_service_account(
        &self,
        project_id: &str,
        client_id: &str,
        roles: &[String],
    ) -> Result<(), AtlasError> {
        // The path segment is `{clientId}:invite`: check the id alone, then add the verb.
        self.url(&[("groups", project_id), ("serviceAccounts", client_id)])?;
        let url = with_segment(
            with_segment(self.url(&[("groups", project_id)])?, "serviceAccounts"),
            &format!("{client_id}:invite"),
        );
        let request = ApiRequest::new(Method::POST, url, Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE)
            .with_json_body(to_json(&ProjectRolesBody { roles })?);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Adds entries to a service account's access list.
    pub async fn add_service_account_access_list(
        &self,
        scope: AccountScope<'_>,
        client_id: &str,
        entries: &[AccessListEntry],
    ) -> Result<(), AtlasError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (collection, id) = scope.path();
        let url = self.url(&[(collection, id), ("serviceAccounts", client_id)])?;
        let body: Vec<WireAccessListRequest> = entries.iter().map(Into::into).collect();
        // Resent after a lost answer, the add meets the entries it added: a 409
        // DUPLICATE_ACCESS_LIST_ENTRY, which `add_entries` checks against the list.
        let list_url = with_segment(url, "accessList");
        let request = ApiRequest::new(Method::POST, list_url.clone(), Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE)
            .with_json_body(to_json(&body)?);
        self.add_entries(request, list_url, SERVICE_ACCOUNTS_MEDIA_TYPE, entries)
            .await
    }

    /// Deletes an organization service account, everywhere. An account that is
    /// already gone is [`AtlasError::NotFound`].
    pub async fn delete_service_account(
        &self,
        org_id: &str,
        client_id: &str,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("orgs", org_id), ("serviceAccounts", client_id)])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Removes a service account from a project (the account itself stays).
    pub async fn remove_service_account_from_project(
        &self,
        project_id: &str,
        client_id: &str,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("groups", project_id), ("serviceAccounts", client_id)])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Every service account of an organization or project (all pages).
    pub async fn list_service_accounts(
        &self,
        scope: AccountScope<'_>,
    ) -> Result<Vec<ServiceAccount>, AtlasError> {
        let (collection, id) = scope.path();
        let url = with_segment(self.url(&[(collection, id)])?, "serviceAccounts");
        let wire: Vec<WireServiceAccount> = self
            .list_all_as(url, SERVICE_ACCOUNTS_MEDIA_TYPE, self.deadline())
            .await?;
        Ok(wire.into_iter().map(ServiceAccount::from).collect())
    }

    /// The service account with exactly this name, if any: for cleaning up
    /// after a create whose answer was lost.
    pub async fn find_service_account_by_name(
        &self,
        scope: AccountScope<'_>,
        name: &str,
    ) -> Result<Option<ServiceAccount>, AtlasError> {
        Ok(self
            .list_service_accounts(scope)
            .await?
            .into_iter()
            .find(|account| account.name == name))
    }

    /// One organization service account, its secrets masked.
    pub async fn get_service_account(
        &self,
        org_id: &str,
        client_id: &str,
    ) -> Result<ServiceAccount, AtlasError> {
        let url = self.url(&[("orgs", org_id), ("serviceAccounts", client_id)])?;
        let request = ApiRequest::new(Method::GET, url, Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE);
        let response = self.send(request, self.deadline()).await?;
        Ok(decode::<WireServiceAccount>(&response, "service account")?.into())
    }

    /// Adds a secret to an organization service account; the answer holds its
    /// plain text, which Atlas never shows again. Never resent once Atlas may
    /// have acted: the caller compares the account's secrets afterwards.
    pub async fn create_service_account_secret(
        &self,
        org_id: &str,
        client_id: &str,
        secret_expires_after_hours: u32,
    ) -> Result<AccountSecret, AtlasError> {
        let url = self.url(&[("orgs", org_id), ("serviceAccounts", client_id)])?;
        let request = ApiRequest::new(
            Method::POST,
            with_segment(url, "secrets"),
            Idempotency::NonIdempotent,
        )
        .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE)
        .with_json_body(to_json(&CreateSecretBody {
            secret_expires_after_hours,
        })?);
        let response = self
            .transport
            .send(&request, self.deadline())
            .await
            .map_err(|failure| create_failure(failure, client_id))?;
        let secret: AccountSecret = decode::<WireServiceAccountSecret>(&response, "created secret")
            .map_err(|e| uncertain(client_id, e))?
            .into();
        if secret.secret.is_none() {
            return Err(uncertain(
                client_id,
                AtlasError::Unexpected {
                    message: "Atlas created a secret but did not return it".to_owned(),
                    problem: None,
                },
            ));
        }
        Ok(secret)
    }

    /// Deletes one secret of an organization service account (and its tokens).
    pub async fn delete_service_account_secret(
        &self,
        org_id: &str,
        client_id: &str,
        secret_id: &str,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[
            ("orgs", org_id),
            ("serviceAccounts", client_id),
            ("secrets", secret_id),
        ])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent)
            .with_media_type(SERVICE_ACCOUNTS_MEDIA_TYPE);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// The organizations the client's credential belongs to.
    pub async fn list_org_ids(&self) -> Result<Vec<String>, AtlasError> {
        #[derive(serde::Deserialize)]
        struct Org {
            id: String,
        }
        let mut url = self.url(&[])?;
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("orgs");
        }
        let orgs: Vec<Org> = self.list_all(url, self.deadline()).await?;
        Ok(orgs.into_iter().map(|o| o.id).collect())
    }

    /// The organization a project belongs to.
    pub async fn project_org_id(&self, project_id: &str) -> Result<String, AtlasError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Project {
            org_id: String,
        }
        let url = self.url(&[("groups", project_id)])?;
        let request = ApiRequest::new(Method::GET, url, Idempotency::Idempotent);
        let response = self.send(request, self.deadline()).await?;
        Ok(decode::<Project>(&response, "project")?.org_id)
    }
}

/// A create whose answer cannot be used: the account may exist.
fn uncertain(name: &str, error: AtlasError) -> AtlasError {
    AtlasError::CreateUncertain {
        desc: name.to_owned(),
        orphan_key_id: None,
        source: Box::new(error),
    }
}
