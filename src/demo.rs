//! `--demo`: the simulator in-process on a loopback port, and
//! `config/demo.toml` pointed at it.

use crate::config::{self, Config, Environment};
use crate::sim::{SimConfig, SimError, Simulator};

/// The demo configuration, as shipped in `config/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");
/// Where `config/demo.toml` expects a separately started simulator.
pub const DEMO_SIM_URL: &str = "http://127.0.0.1:10158";
/// The simulator's demo password (documented in the README; not a secret).
pub const DEMO_PASSWORD: &str = "demo";
/// The simulator's demo deepset API key (documented; not a secret).
pub const DEMO_API_KEY: &str = crate::sim::deepset::DEMO_API_KEY;

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator did not start.
    #[error("{0}")]
    Sim(#[from] SimError),
    /// The bundled demo configuration is invalid (a bug).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
}

struct DemoEnv;

impl Environment for DemoEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "DEMO_VAULT_PASSWORD" => Some(DEMO_PASSWORD.to_string()),
            "DEMO_DEEPSET_API_KEY" => Some(DEMO_API_KEY.to_string()),
            _ => None,
        }
    }
}

/// Starts the demo simulator on a free loopback port and returns it with a
/// configuration that points at it.
pub async fn start() -> Result<(Simulator, Config), DemoError> {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimConfig::demo()).await?;
    let config = config_for(&sim.base_url())?;
    Ok((sim, config))
}

/// The demo configuration for a simulator at `base_url`.
pub fn config_for(base_url: &str) -> Result<Config, config::ConfigError> {
    let toml = DEMO_TOML.replace(DEMO_SIM_URL, base_url);
    config::parse_str(&toml, "config/demo.toml (built in)", &DemoEnv)
}
