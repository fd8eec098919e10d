//! `--demo`: the simulator in-process on a loopback port, and
//! `config/demo.toml` pointed at it.
//!
//! The simulator is its own crate (`upload_session_sim`), compiled in only with
//! the default-on `demo` feature; a build without it answers `--demo` with
//! [`DemoError::NotBuiltIn`].

use crate::config::{self, Config, Environment};

/// The demo configuration, as shipped in `config/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");
/// Where `config/demo.toml` expects a separately started simulator.
pub const DEMO_SIM_URL: &str = "http://127.0.0.1:10158";
/// The simulator's demo password (documented in docs/simulator.md; not a secret).
pub const DEMO_PASSWORD: &str = "demo";
/// The simulator's demo deepset API key (documented; not a secret).
pub const DEMO_API_KEY: &str = "demo-api-key";
/// Where `config/demo.toml` expects a separately started simulator's S3
/// side (the port after its own).
pub const DEMO_S3_URL: &str = "http://127.0.0.1:10159";
/// The simulator's demo S3 key pair (documented; not a secret).
pub const DEMO_S3_ACCESS_KEY_ID: &str = "AKIASIMULATORDEMO001";
/// See [`DEMO_S3_ACCESS_KEY_ID`].
pub const DEMO_S3_SECRET_ACCESS_KEY: &str = "simDemoSecretKey/0000/DoNotUseAnywhere00";

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator did not start.
    #[error("{0}")]
    Sim(String),
    /// The bundled demo configuration is invalid (a bug).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// This binary was built without the `demo` feature.
    #[error(
        "this build has no built-in simulator (built with --no-default-features); \
         rebuild with the default features for --demo, or run upload_session_sim and \
         point --config.file at config/demo.toml"
    )]
    NotBuiltIn,
}

/// The running demo simulator; it stops when dropped.
pub struct Demo {
    #[cfg(feature = "demo")]
    sim: upload_session_sim::Simulator,
    base_url: String,
    s3_url: String,
}

impl Demo {
    /// The simulator's base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The simulator's S3 endpoint (`http://127.0.0.1:PORT`, a port of its own).
    pub fn s3_url(&self) -> &str {
        &self.s3_url
    }

    /// Stops the simulator and waits for its connections to close.
    pub async fn shutdown(self) {
        #[cfg(feature = "demo")]
        self.sim.shutdown().await;
    }
}

struct DemoEnv;

impl Environment for DemoEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "DEMO_VAULT_PASSWORD" => Some(DEMO_PASSWORD.to_string()),
            "DEMO_DEEPSET_API_KEY" => Some(DEMO_API_KEY.to_string()),
            "DEMO_S3_ACCESS_KEY_ID" => Some(DEMO_S3_ACCESS_KEY_ID.to_string()),
            "DEMO_S3_SECRET_ACCESS_KEY" => Some(DEMO_S3_SECRET_ACCESS_KEY.to_string()),
            _ => None,
        }
    }
}

/// Starts the demo simulator on a free loopback port and returns it with a
/// configuration that points at it.
#[cfg(feature = "demo")]
pub async fn start() -> Result<(Demo, Config), DemoError> {
    use upload_session_sim::{SimConfig, Simulator};
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimConfig::demo())
        .await
        .map_err(|e| DemoError::Sim(e.to_string()))?;
    let base_url = sim.base_url();
    let s3_url = sim.s3_url().unwrap_or_default();
    let config = config_for(&base_url, &s3_url)?;
    Ok((
        Demo {
            sim,
            base_url,
            s3_url,
        },
        config,
    ))
}

/// Without the `demo` feature there is no simulator to start.
#[cfg(not(feature = "demo"))]
pub async fn start() -> Result<(Demo, Config), DemoError> {
    Err(DemoError::NotBuiltIn)
}

/// The demo configuration for a simulator at `base_url` with its S3 side at
/// `s3_url`.
pub fn config_for(base_url: &str, s3_url: &str) -> Result<Config, config::ConfigError> {
    let toml = DEMO_TOML
        .replace(DEMO_SIM_URL, base_url)
        .replace(DEMO_S3_URL, s3_url);
    config::parse_str(&toml, "config/demo.toml (built in)", &DemoEnv)
}

#[cfg(all(test, feature = "demo"))]
mod tests {
    /// The constants the docs and config/demo.toml use are the simulator's own.
    #[test]
    fn demo_credentials_are_the_simulators() {
        assert_eq!(
            super::DEMO_API_KEY,
            upload_session_sim::deepset::DEMO_API_KEY
        );
        assert_eq!(super::DEMO_PASSWORD, upload_session_sim::DEMO_PASSWORD);
        assert_eq!(
            super::DEMO_S3_ACCESS_KEY_ID,
            upload_session_sim::S3_DEMO_ACCESS_KEY_ID
        );
        assert_eq!(
            super::DEMO_S3_SECRET_ACCESS_KEY,
            upload_session_sim::S3_DEMO_SECRET_ACCESS_KEY
        );
    }
}
