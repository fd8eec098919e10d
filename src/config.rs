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

// No `deny_unknown_fields` on the `Raw*` structs: it would stop at the first
// unknown key and hide every other problem; `unknown_keys` reports them all.
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    defaults: Option<RawSettings>,
    exporter: Option<RawExporter>,
    targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawExporter {
    max_concurrent_requests: Option<i64>,
    log_level: Option<String>,
}

/// Keys that may stand in `[defaults]` and in a target.
#[derive(Debug, Default, Clone, Deserialize)]
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
    // `flatten` would lose the `config` crate's lenient conversions.
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

/// The keys of [`RawSettings`] checked and converted, `None` where unset or
/// invalid. `[defaults]` is checked once on its own, so that a bad value there
/// is reported once, under `defaults.`, not again for every target using it.
#[derive(Debug, Default, Clone)]
struct Settings {
    poll_interval: Option<Duration>,
    timeout: Option<Duration>,
    stall_after: Option<Duration>,
    stale_after: Option<Duration>,
    at_risk_horizon: Option<Duration>,
    burst_limit_share: Option<f64>,
    burst_limit_reserve: Option<f64>,
    ca_pem: Option<Vec<u8>>,
    tls_insecure_skip_verify: Option<bool>,
    max_response_bytes: Option<u64>,
    api_version: Option<String>,
    client_id: Option<String>,
}

impl Settings {
    /// `self` where set, otherwise `fallback`.
    fn or(self, fallback: &Settings) -> Settings {
        Settings {
            poll_interval: self.poll_interval.or(fallback.poll_interval),
            timeout: self.timeout.or(fallback.timeout),
            stall_after: self.stall_after.or(fallback.stall_after),
            stale_after: self.stale_after.or(fallback.stale_after),
            at_risk_horizon: self.at_risk_horizon.or(fallback.at_risk_horizon),
            burst_limit_share: self.burst_limit_share.or(fallback.burst_limit_share),
            burst_limit_reserve: self.burst_limit_reserve.or(fallback.burst_limit_reserve),
            ca_pem: self.ca_pem.or_else(|| fallback.ca_pem.clone()),
            tls_insecure_skip_verify: self
                .tls_insecure_skip_verify
                .or(fallback.tls_insecure_skip_verify),
            max_response_bytes: self.max_response_bytes.or(fallback.max_response_bytes),
            api_version: self.api_version.or_else(|| fallback.api_version.clone()),
            client_id: self.client_id.or_else(|| fallback.client_id.clone()),
        }
    }
}

/// Largest secret file read (a password or key is far smaller).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// Largest configuration file read: the configuration, the web
/// configuration, certificates and CA bundles.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a whole file of at most `limit` bytes (blocking). Anything but a
/// regular file is refused: a FIFO blocks until someone writes to it and
/// `/dev/zero` never ends. `what` names the file in errors.
pub fn read_file_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let cannot = |e: std::io::Error| {
        format!("cannot read {what} {shown}: {e}; check the path and that the exporter's user may read it")
    };
    let not_regular = || {
        format!("{what} {shown} is not a regular file (a FIFO, device or directory?); give the path of a plain file")
    };
    let too_large = || {
        format!(
            "{what} {shown} is larger than {} KiB, more than such a file ever needs; check the path",
            limit / 1024
        )
    };
    // Looked at before opening: opening a FIFO blocks.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    // The path may have been replaced in between.
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(cannot)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Loads and validates a configuration file, resolving secrets from the
/// process environment and the file system (blocking IO: call it off the
/// async runtime).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &ProcessEnv)
}

/// [`load`] with an explicit environment (for tests).
pub fn load_with_env(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    if !path.exists() {
        return Err(ConfigError::Parse {
            file,
            message: "cannot read the configuration file: it does not exist or is not a file \
                      (give the right path with --config.file, or try --demo)"
                .into(),
        });
    }
    let text = read_file_capped(path, MAX_CONFIG_FILE_BYTES, "configuration file")
        .and_then(|b| {
            String::from_utf8(b).map_err(|_| "the configuration file is not UTF-8 text".into())
        })
        .map_err(|message| ConfigError::Parse {
            file: file.clone(),
            message,
        })?;
    let (raw, unknown) = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .map_err(|e| parse_error(&file, &e))
        .and_then(|c| read_raw(c, &file))?;
    validate(raw, unknown, &file, path.parent(), env).map(|mut c| {
        c.source = Some(path.to_path_buf());
        c
    })
}

/// Parses configuration TOML given as a string (for tests and `--demo`);
/// `name` stands for the file in messages.
pub fn parse_str(toml: &str, name: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
    let (raw, unknown) = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .map_err(|e| parse_error(name, &e))
        .and_then(|c| read_raw(c, name))?;
    validate(raw, unknown, name, None, env)
}

fn parse_error(file: &str, e: &config::ConfigError) -> ConfigError {
    ConfigError::Parse {
        file: file.to_string(),
        message: e.to_string(),
    }
}

/// Reads the file's tables into the `Raw*` structs and lists its unknown
/// keys as problems, so that they are reported together with every other
/// problem rather than alone.
fn read_raw(c: config::Config, file: &str) -> Result<(RawFile, Vec<Problem>), ConfigError> {
    let root = c
        .try_deserialize::<config::Value>()
        .map_err(|e| parse_error(file, &e))?;
    let unknown = unknown_keys(&root);
    match RawFile::deserialize(root) {
        Ok(raw) => Ok((raw, unknown)),
        // A value of the wrong type (e.g. `vault_id = "x"`) leaves no raw
        // values to check, but the unknown keys found so far still count.
        Err(e) if unknown.is_empty() => Err(parse_error(file, &e)),
        Err(e) => {
            let mut problems = unknown;
            problems.push(type_problem(&e.to_string()));
            Err(ConfigError::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }
}

/// Splits the `config` crate's "invalid type: ... for key `targets[0]vault_id`"
/// into the dotted key and what is wrong.
fn type_problem(message: &str) -> Problem {
    match message.rsplit_once(" for key `") {
        Some((what, key)) => Problem {
            key: key
                .trim_end_matches('`')
                .replace("]", "].")
                .replace("]..", "].")
                .trim_end_matches('.')
                .to_string(),
            message: format!("{what}; correct the value"),
        },
        None => Problem {
            key: "file".into(),
            message: message.to_string(),
        },
    }
}

/// Every key the `Raw*` structs do not know, as a problem naming it.
fn unknown_keys(root: &config::Value) -> Vec<Problem> {
    let top = struct_fields::<RawFile>();
    let settings = struct_fields::<RawSettings>();
    let exporter = struct_fields::<RawExporter>();
    let target = struct_fields::<RawTarget>();
    let mut problems = Vec::new();
    let mut check = |table: &config::Map<String, config::Value>,
                     prefix: &str,
                     known: &[&str],
                     elsewhere: Option<(&[&str], &str)>| {
        for k in table.keys().filter(|k| !known.contains(&k.as_str())) {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let message = match (elsewhere, closest(k, known)) {
                (Some((other, place)), _) if other.contains(&k.as_str()) => {
                    format!("may not stand here; set it in {place}")
                }
                (_, Some(near)) => {
                    format!("unknown key; did you mean `{near}`? Remove or correct it")
                }
                (_, None) => "unknown key; remove or correct it (the accepted keys are listed \
                              in docs/configuration.md)"
                    .to_string(),
            };
            problems.push(Problem { key, message });
        }
    };
    let config::ValueKind::Table(root) = &root.kind else {
        return problems;
    };
    check(root, "", top, None);
    if let Some(config::ValueKind::Table(t)) = root.get("defaults").map(|v| &v.kind) {
        check(
            t,
            "defaults",
            settings,
            Some((target, "each [[targets]] table")),
        );
    }
    if let Some(config::ValueKind::Table(t)) = root.get("exporter").map(|v| &v.kind) {
        check(t, "exporter", exporter, None);
    }
    if let Some(config::ValueKind::Array(ts)) = root.get("targets").map(|v| &v.kind) {
        for (i, t) in ts.iter().enumerate() {
            if let config::ValueKind::Table(t) = &t.kind {
                check(
                    t,
                    &format!("targets[{i}]"),
                    target,
                    Some((exporter, "[exporter]")),
                );
            }
        }
    }
    problems
}

/// A known key within two edits of a misspelt one.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance (keys are short, so the quadratic table is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The field names serde knows for a struct, read from its derived
/// `Deserialize` so the list of accepted keys cannot drift from the structs.
fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Capture<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

fn validate(
    raw: RawFile,
    unknown: Vec<Problem>,
    file: &str,
    base_dir: Option<&Path>,
    env: &dyn Environment,
) -> Result<Config, ConfigError> {
    let mut problems = unknown;
    let defaults = check_settings(
        &raw.defaults.unwrap_or_default(),
        base_dir,
        &mut |k: &str, message: String| {
            problems.push(Problem {
                key: format!("defaults.{k}"),
                message,
            })
        },
    );
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
    defaults: &Settings,
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
    // Only the target's own values are checked here; `defaults` were
    // checked once and are already converted.
    let settings = check_settings(&t.settings(), base_dir, &mut problem).or(defaults);

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
            Ok(url) => {
                if t.kind.as_deref() == Some("vault") && vault_url_has_api_path(&url) {
                    let mut base = url.clone();
                    base.set_path("");
                    problem(
                        "url",
                        format!(
                            "{:?} already holds /api/...; give the base URL of the Vault, e.g. \
                             {:?}: the exporter adds /api/{{api_version}}/ itself",
                            url.as_str(),
                            base.as_str().trim_end_matches('/')
                        ),
                    );
                    None
                } else {
                    warn_plain_http_once(&name, &url);
                    Some(url)
                }
            }
            Err(m) => {
                problem("url", m);
                None
            }
        },
    };
    let poll_interval = settings.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
    let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let stall_after = settings.stall_after.unwrap_or(DEFAULT_STALL_AFTER);
    // Follows the target's own interval unless set.
    let stale_after = settings
        .stale_after
        .unwrap_or(poll_interval * STALE_AFTER_POLLS);
    let at_risk_horizon = settings.at_risk_horizon.unwrap_or(DEFAULT_AT_RISK_HORIZON);
    let burst_limit_share = settings.burst_limit_share.unwrap_or(DEFAULT_BURST_SHARE);
    let burst_limit_reserve = settings
        .burst_limit_reserve
        .unwrap_or(DEFAULT_BURST_RESERVE);
    let max_response_bytes = settings
        .max_response_bytes
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
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
            let client_id = settings
                .client_id
                .clone()
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
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
                (t.api_version.is_some(), "api_version"),
                (t.client_id.is_some(), "client_id"),
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
                Duration::ZERO,
                "expired_window",
                &mut problem,
            )
            .unwrap_or(DEFAULT_EXPIRED_WINDOW);
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
        ca_pem: settings.ca_pem,
        tls_insecure_skip_verify: settings.tls_insecure_skip_verify.unwrap_or(false),
        max_response_bytes,
        kind: kind?,
    })
}

/// Checks the values of the keys that may stand in `[defaults]` and in a
/// target; `problem` gets each bad one under its bare key name.
fn check_settings(
    raw: &RawSettings,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(&str, String),
) -> Settings {
    let poll_interval = duration_setting(
        &raw.poll_interval,
        Duration::from_secs(1),
        "poll_interval",
        problem,
    );
    let timeout = duration_setting(&raw.timeout, Duration::from_millis(100), "timeout", problem);
    let stall_after = duration_setting(
        &raw.stall_after,
        Duration::from_secs(1),
        "stall_after",
        problem,
    );
    let stale_after = duration_setting(
        &raw.stale_after,
        Duration::from_secs(1),
        "stale_after",
        problem,
    );
    let at_risk_horizon = duration_setting(
        &raw.at_risk_horizon,
        Duration::ZERO,
        "at_risk_horizon",
        problem,
    );
    let burst_limit_share = match raw.burst_limit_share {
        Some(v) if !(v > 0.0 && v <= 1.0) => {
            problem(
                "burst_limit_share",
                format!("{v} is not a share; use a number above 0 and at most 1, e.g. 0.05 for 5%"),
            );
            None
        }
        v => v,
    };
    let burst_limit_reserve = match raw.burst_limit_reserve {
        Some(v) if !(0.0..1.0).contains(&v) => {
            problem(
                "burst_limit_reserve",
                format!("{v} is not a share; use a number from 0 to below 1, e.g. 0.1 for 10%"),
            );
            None
        }
        v => v,
    };
    let ca_pem = match raw.ca_file.as_deref() {
        None => None,
        Some(f) => {
            let path = resolve_path(f, base_dir);
            match read_file_capped(&path, MAX_CONFIG_FILE_BYTES, "CA file") {
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
                    problem("ca_file", e);
                    None
                }
            }
        }
    };
    let max_response_bytes = match raw.max_response_size.as_deref() {
        None => None,
        Some(s) => {
            match parse_size(s) {
                Some(n) if n >= 1024 => Some(n),
                _ => {
                    problem(
                    "max_response_size",
                    format!("{s:?} is not a size of at least 1KiB; write e.g. \"16MiB\" or \"500KB\""),
                );
                    None
                }
            }
        }
    };
    let api_version = match &raw.api_version {
        Some(v) if !valid_api_version(v) => {
            problem(
                "api_version",
                format!("{v:?} is not a Vault API version; write it like \"v25.2\""),
            );
            None
        }
        v => v.clone(),
    };
    let client_id = match &raw.client_id {
        Some(id) if !valid_client_id(id) => {
            problem(
                "client_id",
                format!(
                    "{id:?} is not a valid X-VaultAPI-ClientID; use at most 100 \
                     letters, digits, '.', '_' or '-'"
                ),
            );
            None
        }
        v => v.clone(),
    };
    Settings {
        poll_interval,
        timeout,
        stall_after,
        stale_after,
        at_risk_horizon,
        burst_limit_share,
        burst_limit_reserve,
        ca_pem,
        tls_insecure_skip_verify: raw.tls_insecure_skip_verify,
        max_response_bytes,
        api_version,
        client_id,
    }
}

fn duration_setting(
    value: &Option<String>,
    min: Duration,
    key: &str,
    problem: &mut dyn FnMut(&str, String),
) -> Option<Duration> {
    let s = value.as_ref()?;
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d >= min => Some(d),
        Ok(_) => {
            problem(
                key,
                format!(
                    "{s:?} is too short; use at least {}",
                    humantime::format_duration(min)
                ),
            );
            None
        }
        Err(e) => {
            problem(
                key,
                format!(
                    "{s:?} is not a duration ({e}); write it like \"60s\", \"5m\" or \"1h 30m\""
                ),
            );
            None
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
        SecretSource::File(path) => {
            let bytes = read_file_capped(path, MAX_SECRET_FILE_BYTES, "secret file")?;
            let Ok(s) = String::from_utf8(bytes) else {
                return Err(format!("secret file {} is not UTF-8 text", path.display()));
            };
            warn_if_world_readable(path);
            // One trailing newline is what `echo secret > file` leaves.
            Secret::new(s.strip_suffix('\n').unwrap_or(&s).trim_end_matches('\r'))
        }
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

/// Checks a target's `url`. Messages show the URL without its userinfo
/// (`user:password@`) and without query or fragment, whether or not it
/// parses: they go to `--check-config`, the logs and `/-/reload` answers.
fn check_url(s: &str) -> Result<Url, String> {
    let shown = url_for_messages(s);
    let creds = "contains credentials (user:password@); never put credentials in the URL, use the \
                 *_env or *_file keys";
    let url = match Url::parse(s.trim()) {
        Ok(u) => u,
        // Say first what matters most; the parser's own message does not
        // quote the input.
        Err(_) if has_userinfo(s) => return Err(format!("{shown:?} {creds}")),
        Err(e) => {
            return Err(format!(
            "{shown:?} is not a valid URL ({e}); write it like \"https://myvault.veevavault.com\""
        ))
        }
    };
    // `u:pw@h` parses, as scheme `u`: still credentials.
    let odd_scheme = url.scheme() != "https" && url.scheme() != "http";
    if !url.username().is_empty() || url.password().is_some() || (odd_scheme && has_userinfo(s)) {
        return Err(format!("{shown:?} {creds}"));
    }
    if odd_scheme {
        return Err(format!(
            "{shown:?} has scheme {:?}; use an https:// URL",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host name"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{shown:?} has a query or fragment; give only the base URL"
        ));
    }
    Ok(url)
}

/// True when `s` has an `@` before its query: userinfo, or what would be
/// userinfo had it parsed.
fn has_userinfo(s: &str) -> bool {
    s.split(['?', '#']).next().unwrap_or("").contains('@')
}

/// `s` for error messages, even when it does not parse as a URL:
/// everything after `://` up to the last `@` (userinfo; a password with a
/// raw `/` in it too) becomes `***`, and query and fragment are dropped.
pub fn url_for_messages(s: &str) -> String {
    let s = s.trim();
    let s = s.split(['?', '#']).next().unwrap_or("");
    let (prefix, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), s),
    };
    match rest.rsplit_once('@') {
        Some((_, after)) => format!("{prefix}***@{after}"),
        None => format!("{prefix}{rest}"),
    }
}

/// Plain `http://` to a host that is not this machine: the password or key
/// would travel in clear.
fn plain_http_elsewhere(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d != "localhost" && !d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => false,
    }
}

/// Warns about a plain-http target once per process (not again on every
/// reload of an unchanged configuration); true when it warned.
fn warn_plain_http_once(target: &str, url: &Url) -> bool {
    static WARNED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    if !plain_http_elsewhere(url) {
        return false;
    }
    let key = format!("{target} {url}");
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: a process sees few distinct targets; past that, keep quiet.
    if warned.len() >= 10_000 || !warned.insert(key) {
        return false;
    }
    tracing::warn!(
        target = %target,
        url = %url,
        "target url is plain http:// to a host that is not this machine: the password or API key \
         travels in clear; use https://"
    );
    true
}

/// A Vault `url` must be the base URL: the client adds `/api/{version}/...`
/// itself, so a url already holding `/api` or `/api/v25.2` would call
/// `/api/v25.2/api/v25.2/...` and fail with a puzzling 404.
fn vault_url_has_api_path(url: &Url) -> bool {
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
    fn a_bad_default_is_reported_once_under_defaults() {
        let two = format!("{VAULT}{}", VAULT.replace("name = \"v\"", "name = \"w\""));
        let p = problems(&format!("[defaults]\npoll_interval = \"60\"\n{two}"));
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("test.toml: defaults.poll_interval: \"60\" is not a duration"),
            "{p:?}"
        );
        // A target's own bad value is still its own; a bad default that a
        // target overrides is still reported (the file is wrong either way).
        let p = problems(&format!(
            "[defaults]\napi_version = \"25\"\n{two}timeout = \"x\"\n"
        ));
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("test.toml: defaults.api_version: \"25\" is not a Vault API version")
        );
        assert!(p[1].starts_with("test.toml: targets[1].timeout: \"x\" is not a duration"));
    }

    #[test]
    fn unknown_keys_are_reported_with_every_other_problem() {
        let toml = format!(
            "[defaults]\ncolour = \"blue\"\nname = \"x\"\n{}pol_interval = \"1m\"\ntimeout = \"soon\"\n",
            VAULT.replace("https://myvault.veevavault.com", "ftp://x")
        );
        let p = problems(&toml);
        let expect = [
            "test.toml: defaults.colour: unknown key; remove or correct it",
            "test.toml: defaults.name: may not stand here; set it in each [[targets]] table",
            "test.toml: targets[0].pol_interval: unknown key; did you mean `poll_interval`?",
            "test.toml: targets[0].url: \"ftp://x\" has scheme \"ftp\"",
            "test.toml: targets[0].timeout: \"soon\" is not a duration",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
        // A value of the wrong type stops the typed read, but the unknown
        // keys found before are still listed with it.
        let p = problems(&format!("{VAULT}colour = 1\nvault_id = \"x\"\n"));
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("test.toml: targets[0].colour: unknown key"),
            "{p:?}"
        );
        assert_eq!(
            p[1],
            "test.toml: targets[0].vault_id: invalid type: string \"x\", expected an integer; \
             correct the value"
        );
    }

    #[test]
    fn accepted_keys_come_from_the_structs() {
        assert_eq!(
            struct_fields::<RawExporter>(),
            ["max_concurrent_requests", "log_level"]
        );
        assert_eq!(struct_fields::<RawSettings>().len(), 12);
        assert!(struct_fields::<RawTarget>().contains(&"expired_window"));
        assert_eq!(
            closest("pasword_env", struct_fields::<RawTarget>()),
            Some("password_env")
        );
        assert_eq!(closest("colour", struct_fields::<RawTarget>()), None);
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
            "test.toml: targets[1].url: \"https://***@host\" contains credentials",
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
    fn userinfo_of_a_url_is_never_shown() {
        for (url, shown) in [
            (
                "http://u:pw@h:99999",
                "\"http://***@h:99999\" contains credentials",
            ),
            ("http://u:pw@", "\"http://***@\" contains credentials"),
            ("ftp://u:pw@h/", "\"ftp://***@h/\" contains credentials"),
            (
                "https://u:pw@h/x?token=t0k",
                "\"https://***@h/x\" contains credentials",
            ),
            ("http://u:p/w@h", "\"http://***@h\" contains credentials"),
            ("u:pw@h", "\"***@h\" contains credentials"),
            (
                "https://h/x?token=t0k",
                "\"https://h/x\" has a query or fragment",
            ),
            (
                "http://h:99999",
                "\"http://h:99999\" is not a valid URL (invalid port number)",
            ),
        ] {
            let toml = VAULT.replace("https://myvault.veevavault.com", url);
            let p = problems(&toml);
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(
                p[0].starts_with(&format!("test.toml: targets[0].url: {shown}")),
                "{url}: {p:?}"
            );
            for secret in ["pw", "p/w", "t0k"] {
                assert!(!p[0].contains(secret), "{url}: {p:?}");
            }
        }
    }

    #[test]
    fn a_vault_url_with_the_api_path_is_refused() {
        for url in [
            "https://myvault.veevavault.com/api",
            "https://myvault.veevavault.com/api/",
            "https://myvault.veevavault.com/api/v25.2",
            "https://gw.example.com/vault1/API/v24.1/services/file_staging/upload",
        ] {
            let p = problems(&VAULT.replace("https://myvault.veevavault.com", url));
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(
                p[0].contains("already holds /api/...; give the base URL of the Vault"),
                "{url}: {p:?}"
            );
        }
        assert!(problems(&VAULT.replace(
            "https://myvault.veevavault.com",
            "https://gw.example.com/api-gateway/vault/"
        ))
        .is_empty());
        assert!(problems(&VAULT.replace(
            "https://myvault.veevavault.com",
            "https://gw.example.com/api/vault/"
        ))
        .is_empty());
    }

    #[test]
    fn plain_http_to_another_host_is_warned_about_once() {
        let u = |s: &str| Url::parse(s).unwrap();
        for far in [
            "http://10.0.0.1",
            "http://vault.example.com",
            "http://[2001:db8::1]:8080",
        ] {
            assert!(plain_http_elsewhere(&u(far)), "{far}");
        }
        for near in [
            "https://vault.example.com",
            "http://127.0.0.1:9",
            "http://127.8.0.1",
            "http://localhost:1",
            "http://LOCALHOST./",
            "http://a.localhost",
            "http://[::1]:5",
        ] {
            assert!(!plain_http_elsewhere(&u(near)), "{near}");
        }
        let url = u("http://10.9.8.7:1234");
        assert!(warn_plain_http_once("warn-once-test", &url));
        assert!(!warn_plain_http_once("warn-once-test", &url));
        assert!(!warn_plain_http_once(
            "warn-once-test-2",
            &u("http://127.0.0.1")
        ));
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
