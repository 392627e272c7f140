//! One HTTP client per distinct connection setting, shared by every mount of the process.
//!
//! Vault multiplexes all mounts of a plugin into one process. A client per mount meant a TLS
//! configuration, a connection pool and an idle Atlas connection per mount (about 180 KB each
//! at 1,000 mounts). Mounts with the same settings now share one client, so the process keeps
//! a handful of connections to Atlas whatever the number of mounts; authentication stays per
//! request and per mount (Digest nonces and bearer tokens live in each mount's transport).
//! An entry lives as long as a transport uses it, so a changed setting never pins the old one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::HeaderValue;

use super::error::AtlasError;
use super::tls;

/// Everything a client is built from. Two mounts with equal settings get the same client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientSettings {
    pub(crate) extra_root_certs_pem: Option<String>,
    /// False for a plain-HTTP base URL (a local simulator): no trusted roots are required.
    pub(crate) https: bool,
    pub(crate) user_agent: String,
    pub(crate) connect_timeout: Duration,
}

/// A client, held by each transport using it.
#[derive(Debug)]
pub(crate) struct SharedClient {
    pub(crate) client: reqwest::Client,
}

static CLIENTS: LazyLock<Mutex<HashMap<ClientSettings, Weak<SharedClient>>>> =
    LazyLock::new(Default::default);

/// The live client for `settings`, or a new one.
pub(crate) fn shared(settings: &ClientSettings) -> Result<Arc<SharedClient>, AtlasError> {
    // The map holds no invariant a panicking holder could break: recover from poisoning.
    let mut clients = CLIENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = clients.get(settings).and_then(Weak::upgrade) {
        return Ok(client);
    }
    // Built under the lock so concurrent first uses (Vault sets mounts up in parallel) build
    // one client, not one each; building takes about a millisecond.
    let client = Arc::new(SharedClient {
        client: build(settings)?,
    });
    clients.retain(|_, entry| entry.strong_count() > 0);
    clients.insert(settings.clone(), Arc::downgrade(&client));
    Ok(client)
}

fn build(settings: &ClientSettings) -> Result<reqwest::Client, AtlasError> {
    let tls = tls::client_config(settings.extra_root_certs_pem.as_deref(), settings.https)?;
    let user_agent = HeaderValue::from_str(&settings.user_agent).map_err(|_| {
        AtlasError::Config("the Vault version is not a valid header value".to_owned())
    })?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(user_agent)
        .connect_timeout(settings.connect_timeout)
        // Never follow redirects: Atlas does not send them for these calls, and a redirected
        // Digest exchange would be signed for the wrong URI anyway.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AtlasError::Config(format!("cannot build the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(agent: &str) -> ClientSettings {
        ClientSettings {
            extra_root_certs_pem: None,
            https: false,
            user_agent: agent.to_owned(),
            connect_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn equal_settings_share_a_client_until_the_last_user_drops_it() {
        // A user agent no other test uses, so parallel tests cannot hold these entries.
        let a = settings("http-client-test/share");
        let first = shared(&a).expect("client");
        let second = shared(&a).expect("client");
        assert!(Arc::ptr_eq(&first, &second), "same settings, same client");

        let other = shared(&ClientSettings {
            connect_timeout: Duration::from_secs(6),
            ..a.clone()
        })
        .expect("client");
        assert!(
            !Arc::ptr_eq(&first, &other),
            "a different setting gets its own client"
        );

        let weak = Arc::downgrade(&first);
        drop((first, second));
        assert!(
            weak.upgrade().is_none(),
            "the map does not keep a client alive"
        );
        let again = shared(&a).expect("client");
        assert_eq!(
            Arc::strong_count(&again),
            1,
            "a fresh client after the last user left"
        );
    }

    #[test]
    fn refuses_a_user_agent_that_is_not_a_header_value() {
        let err = shared(&settings("bad\nagent")).expect_err("newline in a header");
        assert!(matches!(err, AtlasError::Config(_)), "{err}");
    }
}
