//! `kind = "vault"`: Veeva Vault and SiteVault File Staging upload sessions.
//!
//! - [`client`]: the HTTP client (session-id login, re-login, limit headers);
//! - [`wire`]: the JSON it reads;
//! - [`budget`]: sparing the Vault's API budget (`X-VaultAPI-BurstLimit`);
//! - [`owners`]: owner names for `upload_session_owner_info`;
//! - this module: the target keys and the [`Source`] the poller drives.

pub mod budget;
pub mod client;
pub mod owners;
pub mod wire;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use crate::kinds::{Kind, Source};
use crate::model::{Measure, Session, UnixMillis};
use crate::secret::Secret;
use crate::settings::{struct_fields, KindConfig, KindInput, SecretKeys, TargetConfig};
use crate::upstream::{BurstInfo, FetchError, RequestLimiter};

pub use client::{endpoint, to_model, SessionList, VaultClient};

/// Vault API version used when a target does not name one.
pub const DEFAULT_API_VERSION: &str = "v25.2";
/// Default `X-VaultAPI-ClientID`.
pub const DEFAULT_CLIENT_ID: &str = "upload-session-exporter";
/// Default `burst_limit_share`.
pub const DEFAULT_BURST_SHARE: f64 = 0.05;
/// Default `burst_limit_reserve`.
pub const DEFAULT_BURST_RESERVE: f64 = 0.1;

/// The Vault kind (registered in [`crate::kinds::KINDS`]).
pub struct Vault;

/// Vault-specific target settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultConfig {
    /// API version path segment, e.g. `v25.2`.
    pub api_version: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// `X-VaultAPI-ClientID` header value.
    pub client_id: String,
    /// The Vault id the login must land in; when unset it is learnt from the
    /// first login's `vaultIds` list.
    pub vault_id: Option<u64>,
    /// Look up owners' names (Retrieve User) for `upload_session_owner_info`.
    pub resolve_owner_names: bool,
    /// Share of the Vault's burst limit the exporter may spend (0–1].
    pub burst_limit_share: f64,
    /// Pause for a window when less than this share of the limit is left.
    pub burst_limit_reserve: f64,
}

impl VaultConfig {
    /// Settings with the defaults, for a user and password.
    pub fn new(username: &str, password: Secret) -> Self {
        VaultConfig {
            api_version: DEFAULT_API_VERSION.into(),
            username: username.into(),
            password,
            client_id: DEFAULT_CLIENT_ID.into(),
            vault_id: None,
            resolve_owner_names: false,
            burst_limit_share: DEFAULT_BURST_SHARE,
            burst_limit_reserve: DEFAULT_BURST_RESERVE,
        }
    }
}

/// The keys of a Vault target.
#[derive(Debug, Default, Deserialize)]
struct RawVault {
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    // Accepted only to refuse it with a precise message.
    password: Option<IgnoredAny>,
    vault_id: Option<i64>,
    resolve_owner_names: Option<bool>,
    api_version: Option<String>,
    client_id: Option<String>,
    burst_limit_share: Option<f64>,
    burst_limit_reserve: Option<f64>,
}

/// The keys of a Vault target that may also stand in `[defaults]`.
#[derive(Debug, Default, Deserialize)]
struct RawVaultDefaults {
    api_version: Option<String>,
    client_id: Option<String>,
    burst_limit_share: Option<f64>,
    burst_limit_reserve: Option<f64>,
}

impl Kind for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn title(&self) -> &'static str {
        "Vault"
    }

    fn measure(&self) -> Measure {
        Measure::SizedBytes
    }

    fn example_url(&self) -> &'static str {
        "https://myvault.veevavault.com"
    }

    fn keys(&self) -> &'static [&'static str] {
        struct_fields::<RawVault>()
    }

    fn default_keys(&self) -> &'static [&'static str] {
        struct_fields::<RawVaultDefaults>()
    }

    fn parse(&self, input: &mut KindInput<'_>) -> Option<Box<dyn KindConfig>> {
        let defaults: RawVaultDefaults = input.defaults();
        let t: RawVault = input.keys()?;
        if let Some(url) = input.url() {
            if url_has_api_path(url) {
                let mut base = url.clone();
                base.set_path("");
                input.problem(
                    "url",
                    format!(
                        "{:?} already holds /api/...; give the base URL of the Vault, e.g. \
                         {:?}: the exporter adds /api/{{api_version}}/ itself",
                        url.as_str(),
                        base.as_str().trim_end_matches('/')
                    ),
                );
            }
        }
        let username = input.required(
            t.username.as_deref(),
            "username",
            "the Vault user the exporter logs in as",
        );
        let password = input.secret(SecretKeys {
            inline: t.password.is_some(),
            env: t.password_env.as_deref(),
            file: t.password_file.as_deref(),
            names: ("password", "password_env", "password_file"),
        });
        let api_version = input.setting(
            "api_version",
            t.api_version,
            defaults.api_version,
            |v: String| {
                if valid_api_version(&v) {
                    Ok(v)
                } else {
                    Err(format!(
                        "{v:?} is not a Vault API version; write it like \"v25.2\""
                    ))
                }
            },
        );
        let client_id = input.setting(
            "client_id",
            t.client_id,
            defaults.client_id,
            |id: String| {
                if valid_client_id(&id) {
                    Ok(id)
                } else {
                    Err(format!(
                        "{id:?} is not a valid X-VaultAPI-ClientID; use at most 100 letters, \
                         digits, '.', '_' or '-'"
                    ))
                }
            },
        );
        let burst_limit_share = input.setting(
            "burst_limit_share",
            t.burst_limit_share,
            defaults.burst_limit_share,
            |v: f64| {
                if v > 0.0 && v <= 1.0 {
                    Ok(v)
                } else {
                    Err(format!(
                        "{v} is not a share; use a number above 0 and at most 1, e.g. 0.05 for 5%"
                    ))
                }
            },
        );
        let burst_limit_reserve = input.setting(
            "burst_limit_reserve",
            t.burst_limit_reserve,
            defaults.burst_limit_reserve,
            |v: f64| {
                if (0.0..1.0).contains(&v) {
                    Ok(v)
                } else {
                    Err(format!(
                        "{v} is not a share; use a number from 0 to below 1, e.g. 0.1 for 10%"
                    ))
                }
            },
        );
        let vault_id = match t.vault_id {
            None => None,
            Some(id) if id > 0 => Some(id as u64),
            Some(id) => {
                input.problem(
                    "vault_id",
                    format!(
                        "{id} is not a Vault id; use the positive number shown as vaultId at \
                         login, or leave it out"
                    ),
                );
                None
            }
        };
        Some(Box::new(VaultConfig {
            api_version: api_version.unwrap_or_else(|| DEFAULT_API_VERSION.into()),
            username,
            password: password?,
            client_id: client_id.unwrap_or_else(|| DEFAULT_CLIENT_ID.into()),
            vault_id,
            resolve_owner_names: t.resolve_owner_names.unwrap_or(false),
            burst_limit_share: burst_limit_share.unwrap_or(DEFAULT_BURST_SHARE),
            burst_limit_reserve: burst_limit_reserve.unwrap_or(DEFAULT_BURST_RESERVE),
        }))
    }

    fn source(
        &self,
        target: &TargetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Box<dyn Source>, FetchError> {
        let cfg = settings(target)?;
        Ok(Box::new(VaultSource {
            client: VaultClient::new(target, cfg, limiter)?,
            names: cfg.resolve_owner_names.then(owners::OwnerNames::default),
            budget: budget::Budget {
                share: cfg.burst_limit_share,
                reserve: cfg.burst_limit_reserve,
            },
        }))
    }
}

/// The target's Vault settings; an error if it is not a Vault target.
fn settings(target: &TargetConfig) -> Result<&VaultConfig, FetchError> {
    target
        .settings::<VaultConfig>()
        .ok_or_else(|| FetchError::Connect {
            endpoint: "poll",
            detail: format!("target {:?} is not a Vault target", target.name),
        })
}

impl KindConfig for VaultConfig {
    fn kind_name(&self) -> &'static str {
        Vault.name()
    }

    fn measure(&self) -> Measure {
        Vault.measure()
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.password]
    }
}

/// A Vault target's client, with its owner-name cache when names are
/// resolved and its API-budget settings.
pub struct VaultSource {
    client: VaultClient,
    names: Option<owners::OwnerNames>,
    budget: budget::Budget,
}

impl Source for VaultSource {
    fn fetch(&mut self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<Session>, FetchError>> {
        Box::pin(async move {
            let list = self.client.list_sessions().await?;
            let total = list.sessions.len() + list.skipped;
            let mut sessions: Vec<Session> = list
                .sessions
                .into_iter()
                .filter_map(|s| to_model(s, now))
                .collect();
            if sessions.len() < total {
                tracing::warn!(
                    skipped = total - sessions.len(),
                    "some listed upload sessions had no id or an unreadable shape and were skipped"
                );
            }
            if let Some(names) = &mut self.names {
                names.resolve(&mut self.client, &mut sessions).await;
            }
            Ok(sessions)
        })
    }

    fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.client.take_calls()
    }

    fn budget(&self) -> Option<BurstInfo> {
        Some(self.client.burst())
    }

    fn pace(&self, wait: Duration, last_poll_calls: u64) -> (Duration, Option<&'static str>) {
        let (wait, why) = budget::stretch(wait, self.client.burst(), last_poll_calls, self.budget);
        (wait, why.map(budget::Throttle::describe))
    }

    fn refused_login(&self, error: &FetchError) -> bool {
        matches!(error, FetchError::Auth { endpoint, .. } if *endpoint == endpoint::AUTH)
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        // Be a good guest: end the Vault session instead of leaving it open.
        Box::pin(self.client.logout())
    }
}

/// A Vault `url` must be the base URL: the client adds `/api/{version}/...`
/// itself, so a url already holding `/api` or `/api/v25.2` would call
/// `/api/v25.2/api/v25.2/...` and fail with a puzzling 404.
fn url_has_api_path(url: &Url) -> bool {
    let segs: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    segs.iter().enumerate().any(|(i, s)| {
        s.eq_ignore_ascii_case("api")
            && segs.get(i + 1).is_none_or(|next| {
                next.strip_prefix(['v', 'V'])
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            })
    })
}

fn valid_api_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(a), Some(b), None)
            if !a.is_empty() && !b.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
    )
}

/// Letters, digits, `.`, `_`, `-`; at most 100 characters (Vault's rule).
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_logins_are_told_from_other_auth_errors() {
        let cfg = VaultConfig::new("u", Secret::new("p"));
        let target = TargetConfig::with_defaults(
            "t",
            "https://v.example.com".parse().unwrap(),
            Box::new(cfg.clone()),
        );
        let source = Vault.source(&target, &RequestLimiter::default()).unwrap();
        let refused = FetchError::Auth {
            endpoint: endpoint::AUTH,
            detail: "x".into(),
        };
        let forbidden = FetchError::Auth {
            endpoint: endpoint::LIST_SESSIONS,
            detail: "x".into(),
        };
        assert!(source.refused_login(&refused));
        assert!(!source.refused_login(&forbidden));
    }

    #[test]
    fn client_ids_are_1_to_100_allowed_characters() {
        let max = "c".repeat(100);
        for ok in ["a", "A.b_c-9", max.as_str()] {
            assert!(valid_client_id(ok), "{ok}");
        }
        let over = "c".repeat(101);
        for bad in ["", over.as_str(), "a b", "a:b", "a/b", "é"] {
            assert!(!valid_client_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn api_versions_are_v_digits_dot_digits() {
        for ok in ["v25.2", "v1.0", "v100.10"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for bad in [
            "25.2", "V25.2", "v25", "v25.2.1", "v.2", "v25.", "vx.2", "v25.x", "v 25.2", "",
        ] {
            assert!(!valid_api_version(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_api_path_is_found_in_any_segment() {
        let has = |s: &str| url_has_api_path(&s.parse().unwrap());
        for yes in [
            "https://h/api",
            "https://h//api//",
            "https://h/API/V25.2",
            "https://h/p/api/v1/x",
        ] {
            assert!(has(yes), "{yes}");
        }
        for no in [
            "https://h",
            "https://h/apis",
            "https://h/api/vault",
            "https://h/api/v",
            "https://h/x/y",
        ] {
            assert!(!has(no), "{no}");
        }
    }
}
