//! Launch checks and the handshake line go-plugin expects on stdout.

use base64::Engine as _;

/// Environment variable and value Vault sets for backend plugins.
pub const MAGIC_COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
pub const MAGIC_COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// Vault's plugin protocol version 5: gRPC, AutoMTLS, no metadata mode.
pub const APP_PROTOCOL_VERSION: u32 = 5;

/// go-plugin's message for a binary started by hand (or probed with the wrong cookie).
pub const NOT_A_PROGRAM_MESSAGE: &str =
    "This binary is a plugin. These are not meant to be executed directly.\n\
Please execute the program that consumes these plugins, which will\n\
load any plugins automatically\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error("{NOT_A_PROGRAM_MESSAGE}")]
    NotLaunchedByHost,
    #[error(
        "this plugin speaks Vault plugin protocol version {APP_PROTOCOL_VERSION} only, \
         but the host offered [{offered}]; upgrade Vault (1.12 or later) to use it"
    )]
    UnsupportedProtocol { offered: String },
}

/// Checks that Vault launched us and agrees on protocol version 5.
/// `env` looks up an environment variable (injected for tests).
pub fn negotiate(env: impl Fn(&str) -> Option<String>) -> Result<u32, LaunchError> {
    if env(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(LaunchError::NotLaunchedByHost);
    }
    let offered = env("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
    let speaks_ours = offered
        .split(',')
        .any(|v| v.trim().parse::<u32>() == Ok(APP_PROTOCOL_VERSION));
    if speaks_ours {
        Ok(APP_PROTOCOL_VERSION)
    } else {
        Err(LaunchError::UnsupportedProtocol { offered })
    }
}

/// Formats `CORE|APP|NETWORK|ADDRESS|grpc|CERT`, the certificate as base64
/// (standard alphabet, no padding) of its DER, as go-plugin's host parses it.
pub fn handshake_line(network: &str, address: &str, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{network}|{address}|grpc|{cert}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn refuses_without_cookie_or_with_the_database_cookie() {
        assert_eq!(negotiate(env_of(&[])), Err(LaunchError::NotLaunchedByHost));
        let db = env_of(&[("VAULT_DATABASE_PLUGIN", MAGIC_COOKIE_VALUE)]);
        assert_eq!(negotiate(db), Err(LaunchError::NotLaunchedByHost));
    }

    #[test]
    fn negotiates_version_5_only() {
        let ok = env_of(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "3,4,5"),
        ]);
        assert_eq!(negotiate(ok), Ok(5));
        let legacy = env_of(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "3,4"),
        ]);
        let err = negotiate(legacy).unwrap_err();
        assert!(err.to_string().contains("[3,4]"), "{err}");
    }

    #[test]
    fn handshake_line_uses_raw_std_base64() {
        let line = handshake_line("unix", "/tmp/p", Some(&[0xfb, 0xff]));
        assert_eq!(line, "1|5|unix|/tmp/p|grpc|+/8");
    }
}
