//! The configuration file: `[defaults]`, `[exporter]` and `[[targets]]` in TOML.
//!
//! Loading happens in two steps. The `config` crate reads the file into the
//! `Raw*` structs (every field optional, unknown keys rejected), then
//! `validate` turns them into a [`Config`] whose values are all checked, with
//! every problem reported at once as "file: key: what is wrong; what to do".
//! Secrets are resolved here too (from the environment or a file), so a bad
//! secret is a start-up error rather than a failed login against the Vault.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use crate::secret::Secret;

/// Vault API version used when a target does not name one.
pub const DEFAULT_API_VERSION: &str = "v25.2";
/// `X-VaultAPI-ClientID` sent when a target does not set `client_id`.
pub const DEFAULT_CLIENT_ID: &str = "upload-session-exporter";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30 * 60);
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Default of `[exporter] max_concurrent_requests`: room for 32 Vault
/// targets polling at the same moment (a Vault poll makes one call at a
/// time; the former default allowed 16 polls, so 16 calls), or 8 deepset
/// workspaces fetching counts at full width, which at 50 ms per call makes
/// 640 calls per second, the first cycle of 200 Vaults in well under a
/// second. It mainly bounds the exporter's own sockets and response
/// buffers: each target's own calls stay few at a time anyway.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 32;
const STALE_AFTER_POLLS: u32 = 5;
const DEFAULT_AT_RISK_HORIZON: Duration = Duration::from_secs(12 * 3600);
const DEFAULT_BURST_SHARE: f64 = 0.05;
const DEFAULT_BURST_RESERVE: f64 = 0.1;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File the configuration came from (`None` for `--demo`).
    pub source: Option<PathBuf>,
    /// Settings of the exporter process itself.
    pub exporter: ExporterSettings,
    /// Targets to poll, in file order.
    pub targets: Vec<TargetConfig>,
}

/// The `[exporter]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterSettings {
    /// Upstream requests in flight at once, across all targets.
    pub max_concurrent_requests: usize,
    /// Overrides `--log.level`; applied again at every reload.
    pub log_level: Option<crate::logging::LogLevel>,
}

impl Default for ExporterSettings {
    fn default() -> Self {
        ExporterSettings {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            log_level: None,
        }
    }
}

/// One `[[targets]]` entry with the `[defaults]` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Unique name; the `target` label.
    pub name: String,
    /// Base URL of the upstream (may carry a path prefix).
    pub url: Url,
    /// Time between the starts of two polls.
    pub poll_interval: Duration,
    /// Timeout of one upstream request.
    pub timeout: Duration,
    /// No progress for this long makes a session stalled.
    pub stall_after: Duration,
    /// How long a failing target keeps its last per-owner series.
    pub stale_after: Duration,
    /// A session with no progress is at risk once its expiry is this close.
    pub at_risk_horizon: Duration,
    /// Share of a Vault's burst limit the exporter may spend (0–1].
    pub burst_limit_share: f64,
    /// Pause for a window when less than this share of the limit is left.
    pub burst_limit_reserve: f64,
    /// Extra CA certificates (PEM) trusted for this upstream, from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip TLS certificate verification (labs only; logged loudly).
    pub tls_insecure_skip_verify: bool,
    /// Largest upstream response body accepted.
    pub max_response_bytes: u64,
    /// Kind-specific settings.
    pub kind: KindConfig,
}

/// Settings that depend on the kind of upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum KindConfig {
    /// Veeva Vault or SiteVault File Staging.
    Vault(VaultConfig),
    /// deepset Cloud upload sessions of one workspace.
    Deepset(DeepsetConfig),
}

impl KindConfig {
    /// The `kind` label value.
    pub fn label(&self) -> &'static str {
        match self {
            KindConfig::Vault(_) => "vault",
            KindConfig::Deepset(_) => "deepset",
        }
    }
}

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
}

/// deepset-specific target settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepsetConfig {
    /// Workspace name.
    pub workspace: String,
    /// API key sent as a bearer token.
    pub api_key: Secret,
    /// How to page through the session list.
    pub pagination: Pagination,
    /// Sessions that expired this recently are still listed (state `expired`).
    pub expired_window: Duration,
}

/// How the deepset session list is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// `after` = the last session id seen (robust to changes between pages).
    Cursor,
    /// `page_number` = 1, 2, ...
    Page,
}

/// Default of `expired_window`.
pub const DEFAULT_EXPIRED_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not valid TOML / has the wrong shape.
    #[error("{file}: {message}")]
    Parse {
        /// The configuration file.
        file: String,
        /// What the parser said, with the key where it knows it.
        message: String,
    },
    /// One or more values are invalid.
    #[error("{}", format_problems(.file, .problems))]
    Invalid {
        /// The configuration file.
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// One invalid value: where it is, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `targets[1].poll_interval`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn format_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{file}: {p}"));
    }
    out
}

/// Where a secret comes from; resolved at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file whose content (without trailing newline) is the secret.
    File(PathBuf),
}

/// Reads the environment. Behind a trait so tests need not touch the process
/// environment (which is shared by every test thread).
pub trait Environment {
    /// The value of the variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawSettings>,
    exporter: Option<RawExporter>,
    targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExporter {
    max_concurrent_requests: Option<i64>,
    log_level: Option<String>,
}

/// Keys that may stand in `[defaults]` and in a target.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    poll_interval: Option<String>,
    timeout: Option<String>,
    stall_after: Option<String>,
    stale_after: Option<String>,
    at_risk_horizon: Option<String>,
    burst_limit_share: Option<f64>,
    burst_limit_reserve: Option<f64>,
    ca_file: Option<String>,
    tls_insecure_skip_verify: Option<bool>,
    max_response_size: Option<String>,
    api_version: Option<String>,
    client_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    vault_id: Option<i64>,
    resolve_owner_names: Option<bool>,
    workspace: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<String>,
    pagination: Option<String>,
    expired_window: Option<String>,
    // Accepted only to reject them with a precise message.
    password: Option<IgnoredAny>,
    api_key: Option<IgnoredAny>,
    // Per-target overrides of [defaults]; listed again because serde's
    // `flatten` does not work together with `deny_unknown_fields`.
    poll_interval: Option<String>,
    timeout: Option<String>,
    stall_after: Option<String>,
    stale_after: Option<String>,
    at_risk_horizon: Option<String>,
    burst_limit_share: Option<f64>,
    burst_limit_reserve: Option<f64>,
    ca_file: Option<String>,
    tls_insecure_skip_verify: Option<bool>,
    max_response_size: Option<String>,
    api_version: Option<String>,
    client_id: Option<String>,
}

impl RawTarget {
    fn settings(&self) -> RawSettings {
        RawSettings {
            poll_interval: self.poll_interval.clone(),
            timeout: self.timeout.clone(),
            stall_after: self.stall_after.clone(),
            stale_after: self.stale_after.clone(),
            at_risk_horizon: self.at_risk_horizon.clone(),
            burst_limit_share: self.burst_limit_share,
            burst_limit_reserve: self.burst_limit_reserve,
            ca_file: self.ca_file.clone(),
            tls_insecure_skip_verify: self.tls_insecure_skip_verify,
            max_response_size: self.max_response_size.clone(),
            api_version: self.api_version.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

impl RawSettings {
    /// `self` where set, otherwise `fallback`.
    fn or(self, fallback: &RawSettings) -> RawSettings {
        RawSettings {
            poll_interval: self
                .poll_interval
                .or_else(|| fallback.poll_interval.clone()),
            timeout: self.timeout.or_else(|| fallback.timeout.clone()),
            stall_after: self.stall_after.or_else(|| fallback.stall_after.clone()),
            stale_after: self.stale_after.or_else(|| fallback.stale_after.clone()),
            at_risk_horizon: self
                .at_risk_horizon
                .or_else(|| fallback.at_risk_horizon.clone()),
            burst_limit_share: self.burst_limit_share.or(fallback.burst_limit_share),
            burst_limit_reserve: self.burst_limit_reserve.or(fallback.burst_limit_reserve),
            ca_file: self.ca_file.or_else(|| fallback.ca_file.clone()),
            tls_insecure_skip_verify: self
                .tls_insecure_skip_verify
                .or(fallback.tls_insecure_skip_verify),
            max_response_size: self
                .max_response_size
                .or_else(|| fallback.max_response_size.clone()),
            api_version: self.api_version.or_else(|| fallback.api_version.clone()),
            client_id: self.client_id.or_else(|| fallback.client_id.clone()),
        }
    }
}

/// Loads and validates a configuration file, resolving secrets from the
/// process environment and the file system.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &ProcessEnv)
}

/// [`load`] with an explicit environment (for tests).
pub fn load_with_env(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    if !path.is_file() {
        return Err(ConfigError::Parse {
            file,
            message: "cannot read the configuration file: it does not exist or is not a file \
                      (give the right path with --config.file, or try --demo)"
                .into(),
        });
    }
    let raw = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<RawFile>())
        .map_err(|e| ConfigError::Parse {
            file: file.clone(),
            message: explain_parse_error(&e.to_string()),
        })?;
    validate(raw, &file, path.parent(), env).map(|mut c| {
        c.source = Some(path.to_path_buf());
        c
    })
}

/// Parses configuration TOML given as a string (for tests and `--demo`);
/// `name` stands for the file in messages.
pub fn parse_str(toml: &str, name: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
    let raw = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<RawFile>())
        .map_err(|e| ConfigError::Parse {
            file: name.to_string(),
            message: explain_parse_error(&e.to_string()),
        })?;
    validate(raw, name, None, env)
}

/// Adds the fix to the `config` crate's message for the common cases.
fn explain_parse_error(message: &str) -> String {
    if message.contains("unknown field") {
        format!(
            "{message}. Remove or correct the key; the accepted keys are listed in README.md \
             (Configuration)"
        )
    } else {
        message.to_string()
    }
}

fn validate(
    raw: RawFile,
    file: &str,
    base_dir: Option<&Path>,
    env: &dyn Environment,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let defaults = raw.defaults.unwrap_or_default();
    let exporter = validate_exporter(raw.exporter.unwrap_or_default(), &mut problems);
    let raw_targets = raw.targets.unwrap_or_default();
    if raw_targets.is_empty() {
        problems.push(Problem {
            key: "targets".into(),
            message: "no targets are configured; add at least one [[targets]] table \
                      (see config/example.toml)"
                .into(),
        });
    }
    let mut names = BTreeSet::new();
    let mut targets = Vec::new();
    for (i, t) in raw_targets.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        if let Some(name) = &t.name {
            if !names.insert(name.clone()) {
                problems.push(Problem {
                    key: format!("{key}.name"),
                    message: format!(
                        "duplicate target name {name:?}; every target needs a unique name \
                         (it becomes the `target` label)"
                    ),
                });
            }
        }
        if let Some(target) = validate_target(t, &defaults, &key, base_dir, env, &mut problems) {
            targets.push(target);
        }
    }
    if problems.is_empty() {
        Ok(Config {
            source: None,
            exporter,
            targets,
        })
    } else {
        Err(ConfigError::Invalid {
            file: file.to_string(),
            problems,
        })
    }
}

fn validate_exporter(raw: RawExporter, problems: &mut Vec<Problem>) -> ExporterSettings {
    let mut s = ExporterSettings::default();
    if let Some(n) = raw.max_concurrent_requests {
        if (1..=1024).contains(&n) {
            s.max_concurrent_requests = n as usize;
        } else {
            problems.push(Problem {
                key: "exporter.max_concurrent_requests".into(),
                message: format!("{n} is out of range; use a number from 1 to 1024"),
            });
        }
    }
    if let Some(l) = raw.log_level {
        match crate::logging::LogLevel::parse(&l) {
            Some(level) => s.log_level = Some(level),
            None => problems.push(Problem {
                key: "exporter.log_level".into(),
                message: format!("{l:?} is not a log level; use debug, info, warn or error"),
            }),
        }
    }
    s
}

fn validate_target(
    t: RawTarget,
    defaults: &RawSettings,
    key: &str,
    base_dir: Option<&Path>,
    env: &dyn Environment,
    problems: &mut Vec<Problem>,
) -> Option<TargetConfig> {
    let before = problems.len();
    let mut problem = |k: &str, message: String| {
        problems.push(Problem {
            key: format!("{key}.{k}"),
            message,
        })
    };
    let settings = t.settings().or(defaults);

    let name = match t.name.as_deref() {
        None => {
            problem("name", "missing; every target needs a unique `name`".into());
            String::new()
        }
        Some(n) if !valid_name(n) => {
            problem(
                "name",
                format!(
                    "{n:?} is not a valid target name; use 1 to 64 letters, digits, \
                     '.', '_', ':' or '-'"
                ),
            );
            String::new()
        }
        Some(n) => n.to_string(),
    };
    let url = match t.url.as_deref() {
        None => {
            problem("url", "missing; set the base URL of the upstream, e.g. \"https://myvault.veevavault.com\"".into());
            None
        }
        Some(u) => match check_url(u) {
            Ok(url) => Some(url),
            Err(m) => {
                problem("url", m);
                None
            }
        },
    };
    let poll_interval = duration_setting(
        &settings.poll_interval,
        DEFAULT_POLL_INTERVAL,
        Duration::from_secs(1),
        "poll_interval",
        &mut problem,
    );
    let timeout = duration_setting(
        &settings.timeout,
        DEFAULT_TIMEOUT,
        Duration::from_millis(100),
        "timeout",
        &mut problem,
    );
    let stall_after = duration_setting(
        &settings.stall_after,
        DEFAULT_STALL_AFTER,
        Duration::from_secs(1),
        "stall_after",
        &mut problem,
    );
    let stale_after = duration_setting(
        &settings.stale_after,
        poll_interval * STALE_AFTER_POLLS,
        Duration::from_secs(1),
        "stale_after",
        &mut problem,
    );
    let at_risk_horizon = duration_setting(
        &settings.at_risk_horizon,
        DEFAULT_AT_RISK_HORIZON,
        Duration::ZERO,
        "at_risk_horizon",
        &mut problem,
    );
    let burst_limit_share = match settings.burst_limit_share {
        None => DEFAULT_BURST_SHARE,
        Some(v) if v > 0.0 && v <= 1.0 => v,
        Some(v) => {
            problem(
                "burst_limit_share",
                format!("{v} is not a share; use a number above 0 and at most 1, e.g. 0.05 for 5%"),
            );
            DEFAULT_BURST_SHARE
        }
    };
    let burst_limit_reserve = match settings.burst_limit_reserve {
        None => DEFAULT_BURST_RESERVE,
        Some(v) if (0.0..1.0).contains(&v) => v,
        Some(v) => {
            problem(
                "burst_limit_reserve",
                format!("{v} is not a share; use a number from 0 to below 1, e.g. 0.1 for 10%"),
            );
            DEFAULT_BURST_RESERVE
        }
    };
    let ca_pem = match settings.ca_file.as_deref() {
        None => None,
        Some(f) => {
            let path = resolve_path(f, base_dir);
            match std::fs::read(&path) {
                Ok(pem)
                    if reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|c| !c.is_empty()) =>
                {
                    Some(pem)
                }
                Ok(_) => {
                    problem(
                        "ca_file",
                        format!("{} holds no PEM certificate; give a PEM bundle of the CA(s) that sign the upstream's certificate", path.display()),
                    );
                    None
                }
                Err(e) => {
                    problem("ca_file", format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
    };
    let max_response_bytes = match settings.max_response_size.as_deref() {
        None => DEFAULT_MAX_RESPONSE_BYTES,
        Some(s) => {
            match parse_size(s) {
                Some(n) if n >= 1024 => n,
                _ => {
                    problem(
                    "max_response_size",
                    format!("{s:?} is not a size of at least 1KiB; write e.g. \"16MiB\" or \"500KB\""),
                );
                    DEFAULT_MAX_RESPONSE_BYTES
                }
            }
        }
    };

    let kind = match t.kind.as_deref() {
        Some("vault") => {
            for (present, k) in [
                (t.workspace.is_some(), "workspace"),
                (t.api_key_env.is_some(), "api_key_env"),
                (t.api_key_file.is_some(), "api_key_file"),
                (t.api_key.is_some(), "api_key"),
                (t.pagination.is_some(), "pagination"),
                (t.expired_window.is_some(), "expired_window"),
            ] {
                if present {
                    problem(
                        k,
                        "is a deepset key; a kind = \"vault\" target does not use it".into(),
                    );
                }
            }
            let username = required(
                t.username.as_deref(),
                "username",
                "the Vault user the exporter logs in as",
                &mut problem,
            );
            let password = secret_setting(
                SecretKeys {
                    inline: t.password.is_some(),
                    env: t.password_env.as_deref(),
                    file: t.password_file.as_deref(),
                    names: ("password", "password_env", "password_file"),
                },
                base_dir,
                env,
                &mut problem,
            );
            let api_version = settings
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
            if !valid_api_version(&api_version) {
                problem(
                    "api_version",
                    format!("{api_version:?} is not a Vault API version; write it like \"v25.2\""),
                );
            }
            let client_id = settings
                .client_id
                .clone()
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
            if !valid_client_id(&client_id) {
                problem(
                    "client_id",
                    format!(
                        "{client_id:?} is not a valid X-VaultAPI-ClientID; use at most 100 \
                         letters, digits, '.', '_' or '-'"
                    ),
                );
            }
            let vault_id = match t.vault_id {
                None => None,
                Some(id) if id > 0 => Some(id as u64),
                Some(id) => {
                    problem("vault_id", format!("{id} is not a Vault id; use the positive number shown as vaultId at login, or leave it out"));
                    None
                }
            };
            password.map(|password| {
                KindConfig::Vault(VaultConfig {
                    api_version,
                    username,
                    password,
                    client_id,
                    vault_id,
                    resolve_owner_names: t.resolve_owner_names.unwrap_or(false),
                })
            })
        }
        Some("deepset") => {
            for (present, k) in [
                (t.username.is_some(), "username"),
                (t.password_env.is_some(), "password_env"),
                (t.password_file.is_some(), "password_file"),
                (t.password.is_some(), "password"),
                (t.vault_id.is_some(), "vault_id"),
                (t.resolve_owner_names.is_some(), "resolve_owner_names"),
                (
                    settings.api_version.is_some() && t.api_version.is_some(),
                    "api_version",
                ),
                (
                    settings.client_id.is_some() && t.client_id.is_some(),
                    "client_id",
                ),
            ] {
                if present {
                    problem(
                        k,
                        "is a Vault key; a kind = \"deepset\" target does not use it".into(),
                    );
                }
            }
            let workspace = required(
                t.workspace.as_deref(),
                "workspace",
                "the deepset workspace name",
                &mut problem,
            );
            let api_key = secret_setting(
                SecretKeys {
                    inline: t.api_key.is_some(),
                    env: t.api_key_env.as_deref(),
                    file: t.api_key_file.as_deref(),
                    names: ("api_key", "api_key_env", "api_key_file"),
                },
                base_dir,
                env,
                &mut problem,
            );
            let pagination = match t.pagination.as_deref() {
                None | Some("cursor") => Pagination::Cursor,
                Some("page") => Pagination::Page,
                Some(other) => {
                    problem(
                        "pagination",
                        format!("{other:?} is not a pagination style; use \"cursor\" (default) or \"page\""),
                    );
                    Pagination::Cursor
                }
            };
            let expired_window = duration_setting(
                &t.expired_window,
                DEFAULT_EXPIRED_WINDOW,
                Duration::ZERO,
                "expired_window",
                &mut problem,
            );
            api_key.map(|api_key| {
                KindConfig::Deepset(DeepsetConfig {
                    workspace,
                    api_key,
                    pagination,
                    expired_window,
                })
            })
        }
        Some(other) => {
            problem(
                "kind",
                format!("{other:?} is not a known kind; use \"vault\" or \"deepset\""),
            );
            None
        }
        None => {
            problem(
                "kind",
                "missing; set kind = \"vault\" or kind = \"deepset\"".into(),
            );
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(TargetConfig {
        name,
        url: url?,
        poll_interval,
        timeout,
        stall_after,
        stale_after,
        at_risk_horizon,
        burst_limit_share,
        burst_limit_reserve,
        ca_pem,
        tls_insecure_skip_verify: settings.tls_insecure_skip_verify.unwrap_or(false),
        max_response_bytes,
        kind: kind?,
    })
}

fn duration_setting(
    value: &Option<String>,
    default: Duration,
    min: Duration,
    key: &str,
    problem: &mut impl FnMut(&str, String),
) -> Duration {
    let Some(s) = value else { return default };
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d >= min => d,
        Ok(_) => {
            problem(
                key,
                format!(
                    "{s:?} is too short; use at least {}",
                    humantime::format_duration(min)
                ),
            );
            default
        }
        Err(e) => {
            problem(
                key,
                format!(
                    "{s:?} is not a duration ({e}); write it like \"60s\", \"5m\" or \"1h 30m\""
                ),
            );
            default
        }
    }
}

/// The keys of one secret in a target.
struct SecretKeys<'a> {
    /// The secret was written in the file itself (refused).
    inline: bool,
    env: Option<&'a str>,
    file: Option<&'a str>,
    /// (inline key, env key, file key)
    names: (&'static str, &'static str, &'static str),
}

/// A non-empty string value, or a "missing" problem.
fn required(
    value: Option<&str>,
    key: &str,
    what: &str,
    problem: &mut impl FnMut(&str, String),
) -> String {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            problem(key, format!("missing; set {what}"));
            String::new()
        }
    }
}

fn secret_setting(
    keys: SecretKeys<'_>,
    base_dir: Option<&Path>,
    env: &dyn Environment,
    problem: &mut impl FnMut(&str, String),
) -> Option<Secret> {
    let (inline_name, env_name, file_name) = keys.names;
    if keys.inline {
        problem(
            inline_name,
            format!(
                "secrets may not be written in the configuration file; put it in an environment \
                 variable ({env_name}) or a file ({file_name})"
            ),
        );
        return None;
    }
    let source = match (keys.env, keys.file) {
        (Some(_), Some(_)) => {
            problem(
                env_name,
                format!("set either {env_name} or {file_name}, not both"),
            );
            return None;
        }
        (Some(var), None) => SecretSource::Env(var.to_string()),
        (None, Some(path)) => SecretSource::File(resolve_path(path, base_dir)),
        (None, None) => {
            problem(
                env_name,
                format!(
                    "no secret configured; set {env_name} (name of an environment variable) or \
                     {file_name} (path of a file holding it)"
                ),
            );
            return None;
        }
    };
    match resolve_secret(&source, env) {
        Ok(s) => Some(s),
        Err(m) => {
            let key = match source {
                SecretSource::Env(_) => env_name,
                SecretSource::File(_) => file_name,
            };
            problem(key, m);
            None
        }
    }
}

/// Relative paths are relative to the configuration file, like other
/// exporters' file references.
fn resolve_path(path: &str, base_dir: Option<&Path>) -> PathBuf {
    let p = Path::new(path);
    match base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Reads a secret from its source; the error never contains the secret.
pub fn resolve_secret(source: &SecretSource, env: &dyn Environment) -> Result<Secret, String> {
    let secret = match source {
        SecretSource::Env(var) => {
            if var.trim().is_empty() {
                return Err("is empty; give the name of an environment variable".into());
            }
            match env.var(var) {
                Some(v) => Secret::new(v),
                None => {
                    return Err(format!(
                        "environment variable {var} is not set; export it before starting the \
                         exporter (or use the _file variant)"
                    ))
                }
            }
        }
        SecretSource::File(path) => match std::fs::read_to_string(path) {
            // One trailing newline is what `echo secret > file` leaves.
            Ok(s) => {
                warn_if_world_readable(path);
                Secret::new(s.strip_suffix('\n').unwrap_or(&s).trim_end_matches('\r'))
            }
            Err(e) => {
                return Err(format!(
                    "cannot read secret file {}: {e}; check the path and that the exporter's \
                     user may read it",
                    path.display()
                ))
            }
        },
    };
    if secret.is_blank() {
        return Err(match source {
            SecretSource::Env(var) => format!("environment variable {var} is empty"),
            SecretSource::File(p) => format!("secret file {} is empty", p.display()),
        });
    }
    Ok(secret)
}

/// Secrets should be readable by the exporter's user alone.
fn warn_if_world_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o004 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", m.permissions().mode() & 0o777),
                    "secret file is readable by every user on this machine; restrict it, e.g. chmod 600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn check_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| {
        format!("{s:?} is not a valid URL ({e}); write it like \"https://myvault.veevavault.com\"")
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!(
            "{s:?} has scheme {:?}; use an https:// URL",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host name"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "contains credentials; never put credentials in the URL, use the *_env or *_file keys"
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{s:?} has a query or fragment; give only the base URL"
        ));
    }
    Ok(url)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
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

/// Parses "16MiB", "500KB", "1048576" into bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }
    fn env() -> FakeEnv {
        FakeEnv(HashMap::from([
            ("VAULT_PW", "s3cret"),
            ("EMPTY", ""),
            ("DS_KEY", "key"),
        ]))
    }
    fn problems(toml: &str) -> Vec<String> {
        match parse_str(toml, "test.toml", &env()) {
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
            Ok(_) => vec![],
        }
    }
    const VAULT: &str = r#"
[[targets]]
name = "v"
kind = "vault"
url = "https://myvault.veevavault.com"
username = "mon@example.com"
password_env = "VAULT_PW"
"#;

    #[test]
    fn minimal_vault_target_gets_defaults() {
        let c = parse_str(VAULT, "t", &env()).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.poll_interval, Duration::from_secs(60));
        assert_eq!(t.timeout, Duration::from_secs(15));
        assert_eq!(t.stall_after, Duration::from_secs(1800));
        assert_eq!(t.stale_after, Duration::from_secs(300));
        assert_eq!(t.max_response_bytes, 16 * 1024 * 1024);
        let KindConfig::Vault(v) = &t.kind else {
            panic!("kind")
        };
        assert_eq!(v.api_version, "v25.2");
        assert_eq!(v.password.expose(), "s3cret");
        assert_eq!(v.client_id, DEFAULT_CLIENT_ID);
        assert_eq!(c.exporter.max_concurrent_requests, 32);
    }

    #[test]
    fn defaults_apply_and_targets_override() {
        let toml = format!(
            "[defaults]\npoll_interval = \"2m\"\nstall_after = \"1h\"\napi_version = \"v24.3\"\n{VAULT}poll_interval = \"30s\"\n"
        );
        let c = parse_str(&toml, "t", &env()).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.poll_interval, Duration::from_secs(30));
        assert_eq!(t.stall_after, Duration::from_secs(3600));
        // stale_after follows the target's own interval.
        assert_eq!(t.stale_after, Duration::from_secs(150));
        let KindConfig::Vault(v) = &t.kind else {
            panic!("kind")
        };
        assert_eq!(v.api_version, "v24.3");
    }

    #[test]
    fn unknown_key_is_named() {
        let p = problems(&format!("{VAULT}pasword_env = \"X\"\n"));
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("pasword_env"), "{p:?}");
        assert!(p[0].starts_with("test.toml"), "{p:?}");
    }

    #[test]
    fn max_concurrent_requests_is_checked_and_replaces_max_concurrent_polls() {
        let c = parse_str(
            &format!("[exporter]\nmax_concurrent_requests = 4\n{VAULT}"),
            "t",
            &env(),
        )
        .unwrap();
        assert_eq!(c.exporter.max_concurrent_requests, 4);
        let p = problems(&format!("[exporter]\nmax_concurrent_requests = 0\n{VAULT}"));
        assert_eq!(
            p,
            ["test.toml: exporter.max_concurrent_requests: 0 is out of range; use a number from 1 to 1024"]
        );
        // The key before the rename is refused, not silently ignored.
        let p = problems(&format!("[exporter]\nmax_concurrent_polls = 4\n{VAULT}"));
        assert!(p[0].contains("max_concurrent_polls"), "{p:?}");
    }

    #[test]
    fn each_bad_value_is_reported_with_key() {
        let toml = r#"
[[targets]]
name = "a"
kind = "vault"
url = "ftp://x"
username = "u"
password_env = "MISSING"
poll_interval = "5x"
api_version = "25.2"

[[targets]]
name = "a"
kind = "vault"
url = "https://user:pw@host"
username = "u"
password_env = "EMPTY"
"#;
        let p = problems(toml);
        let expect = [
            "test.toml: targets[0].url: \"ftp://x\" has scheme \"ftp\"",
            "test.toml: targets[0].poll_interval: \"5x\" is not a duration",
            "test.toml: targets[0].password_env: environment variable MISSING is not set",
            "test.toml: targets[0].api_version: \"25.2\" is not a Vault API version",
            "test.toml: targets[1].name: duplicate target name \"a\"",
            "test.toml: targets[1].url: contains credentials",
            "test.toml: targets[1].password_env: environment variable EMPTY is empty",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn inline_secret_is_refused() {
        let p = problems(&format!("{VAULT}password = \"hunter2\"\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("targets[0].password: secrets may not be written"));
        assert!(!p[0].contains("hunter2"));
    }

    #[test]
    fn secret_file_is_read_relative_to_config_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            VAULT.replace("password_env = \"VAULT_PW\"", "password_file = \"pw\""),
        )
        .unwrap();
        let c = load_with_env(&cfg, &env()).unwrap();
        let KindConfig::Vault(v) = &c.targets[0].kind else {
            panic!()
        };
        assert_eq!(v.password.expose(), "from-file");
        assert_eq!(c.source.as_deref(), Some(cfg.as_path()));

        std::fs::write(dir.path().join("pw"), "\n").unwrap();
        let err = load_with_env(&cfg, &env()).unwrap_err().to_string();
        assert!(
            err.contains("targets[0].password_file: secret file"),
            "{err}"
        );
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = load_with_env(Path::new("/nonexistent/x.toml"), &env())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/x.toml: cannot read"), "{err}");
        assert!(err.contains("--config.file"), "{err}");
    }

    #[test]
    fn deepset_target() {
        let toml = r#"
[[targets]]
name = "ds"
kind = "deepset"
url = "https://api.cloud.deepset.ai"
workspace = "default"
api_key_env = "DS_KEY"
"#;
        let c = parse_str(toml, "t", &env()).unwrap();
        let KindConfig::Deepset(d) = &c.targets[0].kind else {
            panic!()
        };
        assert_eq!(d.workspace, "default");
        assert_eq!(d.api_key.expose(), "key");
        assert_eq!(d.pagination, Pagination::Cursor);
        assert_eq!(d.expired_window, DEFAULT_EXPIRED_WINDOW);
        let p = problems(&toml.replace("workspace = \"default\"", "username = \"x\""));
        assert_eq!(p.len(), 2, "{p:?}");
        let c = parse_str(
            &format!("{toml}pagination = \"page\"\nexpired_window = \"2h\"\n"),
            "t",
            &env(),
        )
        .unwrap();
        let KindConfig::Deepset(d) = &c.targets[0].kind else {
            panic!()
        };
        assert_eq!(
            (d.pagination, d.expired_window),
            (Pagination::Page, Duration::from_secs(7200))
        );
        let p = problems(&format!("{toml}pagination = \"offset\"\n"));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("targets[0].pagination: \"offset\" is not a pagination style"),
            "{p:?}"
        );
        let p = problems(&format!("{VAULT}pagination = \"page\"\n"));
        assert!(
            p[0].contains("targets[0].pagination: is a deepset key"),
            "{p:?}"
        );
    }

    #[test]
    fn no_targets_is_an_error() {
        let p = problems("[defaults]\npoll_interval = \"1m\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("no targets are configured"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999999GiB"), None);
    }
}
