//! `creds/<name>`: issue a fresh credential of the role's credential type.

use super::roles::{self, CredentialType};
use super::{api_key, Engine};
use crate::vault::framework::{
    handler_with, BackendError, FieldData, FieldSchema, FieldType, Operation, Path, Request,
    Response,
};

const CREDS_PATTERN: &str = r"creds/(?P<name>\w(([\w.-]+)?\w)?)";

const SYNOPSIS: &str = "Issue an Atlas programmatic API key for a role.";
const DESCRIPTION: &str = "Creates a new Atlas programmatic API key as the role describes and \
returns its public_key, private_key and description with a renewable lease. The key is deleted \
from Atlas when the lease is revoked or expires. Read and update both issue a key.";

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
    let role = roles::load(req.storage.as_ref(), &name).await?.ok_or_else(|| {
        BackendError::user(format!("role {name:?} does not exist: create it first with `vault write <mount>/roles/{name} ...`"))
    })?;
    role.validate()
        .map_err(|e| BackendError::user(format!("role {name:?} cannot issue keys: {e}")))?;
    let client = engine.client(&req).await?.ok_or_else(|| {
        BackendError::user("no Atlas credentials configured: write them first with `vault write <mount>/config public_key=... private_key=...`")
    })?;
    let response = match role.credential_type {
        CredentialType::ApiKey => api_key::issue(&engine, req, &name, role, client).await?,
    };
    Ok(Some(response))
}
