//! `vault-plugin-secrets-mongodbatlas`: the binary Vault launches.

use std::process::ExitCode;

use vault_mongodbatlas::engine::MongoDbAtlas;
use vault_mongodbatlas::goplugin::server;
use vault_mongodbatlas::vault::plugin_server;

fn main() -> ExitCode {
    vault_mongodbatlas::logging::init();
    let factory = match MongoDbAtlas::from_env() {
        Ok(factory) => factory,
        Err(e) => {
            tracing::error!("invalid plugin environment: {e}");
            return ExitCode::from(1);
        }
    };
    server::run(|ctx| plugin_server::routes(factory, ctx))
}
