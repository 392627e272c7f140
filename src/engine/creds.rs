//! `creds/<name>`: issue a fresh credential of the role's credential type.

use super::roles::CredentialType;
use super::{api_key, service_account, user_access, Engine};
use crate::vault::framework::{
    handler_with, BackendError, FieldData, FieldSchema, FieldType, Operation, Path, Request,
    Response,
};

const CREDS_PATTERN: &str = r"creds/(?P<name>\w(([\w.-]+)?\w)?)";

const SYNOPSIS: &str = "Issue an Atlas credential for a role.";
const DESCRIPTION: &str = "Creates a new Atlas credential as the role describes, with a \
renewable lease: a programmatic API key (public_key, private_key, description) or a service \
account (client_id, client_secret, name, description, secret_expires_at). The credential is \
deleted from Atlas when the lease is revoked or expires. Read and update both issue one. A \
user_access role instead grants an organization member (username) its roles for the lease, and \
takes away exactly what it added when the lease ends.";

pub(crate) fn path(engine: &Engine) -> Path {
    let issue = handler_with(engine, issue);
    Path::new(CREDS_PATTERN)
        .field(
            FieldSchema::new(
                "name",
                FieldType::LowerCaseString,
                "Name of the role to issue a key for.",
            )
            .required(),
        )
        .field(FieldSchema::new(
            "username",
            FieldType::String,
            "user_access roles: the MongoDB Cloud username (email address) of the organization member to grant the role's access to; with username_from_entity, the requester's own and optional.",
        ))
        .operation(Operation::Read, issue.clone())
        .operation(Operation::Update, issue)
        .help(SYNOPSIS, DESCRIPTION)
}

async fn issue(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let name = fields.required_string("name")?;
    let role = engine.role(&req, &name).await?.ok_or_else(|| {
        BackendError::user(format!("role {name:?} does not exist: create it first with `vault write <mount>/roles/{name} ...`"))
    })?;
    role.validate()
        .map_err(|e| BackendError::user(format!("role {name:?} cannot issue keys: {e}")))?;
    if fields.is_set("username") && role.credential_type != CredentialType::UserAccess {
        return Err(BackendError::user(
            "username is only for user_access roles (it names the person to grant); this role issues a credential: leave it out",
        ));
    }
    let client = engine.client(&req).await?.ok_or_else(|| {
        BackendError::user("no Atlas credentials configured: write them first with `vault write <mount>/config public_key=... private_key=...`")
    })?;
    let response = match role.credential_type {
        CredentialType::ApiKey => api_key::issue(&engine, req, &name, role, client).await?,
        CredentialType::ServiceAccount => {
            service_account::issue(&engine, req, &name, role, client).await?
        }
        CredentialType::UserAccess => {
            user_access::issue(&engine, req, &name, role, client, &fields).await?
        }
    };
    Ok(Some(response))
}
