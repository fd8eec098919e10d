//! The configuration file: `[defaults]`, `[exporter]` and `[[targets]]` in TOML.
//!
//! Loading happens in two steps. The `config` crate reads the file into a
//! tree of values; `validate` checks the keys every target has (`name`,
//! `kind`, `url`, the intervals, TLS, ...) here and hands the rest of each
//! target table to its kind (see [`crate::kinds`]) through a [`KindInput`]
//! (the types are in [`crate::settings`]).
//! The result is a [`Config`] whose values are all checked, with every
//! problem reported at once as "file: key: what is wrong; what to do".
//! Secrets are resolved here too (from the environment or a file), so a bad
//! secret is a start-up error rather than a failed login upstream.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::kinds;
use crate::settings::{
    duration_setting, read_table, resolve_path, struct_fields, DEFAULT_AT_RISK_HORIZON,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_POLL_INTERVAL, DEFAULT_STALL_AFTER, DEFAULT_TIMEOUT,
    STALE_AFTER_POLLS,
};
pub use crate::settings::{
    read_file_capped, resolve_secret, Environment, KindConfig, KindInput, Problem, ProcessEnv,
    SecretKeys, SecretSource, TargetConfig, MAX_CONFIG_FILE_BYTES, MAX_SECRET_FILE_BYTES,
};

pub use crate::upstream::DEFAULT_MAX_CONCURRENT_REQUESTS;
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

// No `deny_unknown_fields` on the `Raw*` structs: it would stop at the first
// unknown key and hide every other problem; unknown keys are reported with
// all the others.
#[derive(Debug, Default, Deserialize)]
struct RawExporter {
    max_concurrent_requests: Option<i64>,
    log_level: Option<String>,
}

/// The tables a configuration file may hold.
const TOP_KEYS: &[&str] = &["defaults", "exporter", "targets"];

/// The keys every target may hold whatever its kind, and that may stand in
/// `[defaults]` (except `name`, `kind` and `url`).
#[derive(Debug, Default, Clone, Deserialize)]
struct RawSettings {
    poll_interval: Option<String>,
    timeout: Option<String>,
    stall_after: Option<String>,
    stale_after: Option<String>,
    at_risk_horizon: Option<String>,
    ca_file: Option<String>,
    tls_insecure_skip_verify: Option<bool>,
    max_response_size: Option<String>,
}

/// The keys only a target holds.
#[derive(Debug, Default, Deserialize)]
struct RawIdentity {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
}

/// The keys every target may hold, whatever its kind; the rest of a target
/// table belongs to its kind.
pub fn common_keys() -> Vec<&'static str> {
    let mut keys = struct_fields::<RawIdentity>().to_vec();
    keys.extend_from_slice(struct_fields::<RawSettings>());
    keys
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
    ca_pem: Option<Vec<u8>>,
    tls_insecure_skip_verify: Option<bool>,
    max_response_bytes: Option<u64>,
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
            ca_pem: self.ca_pem.or_else(|| fallback.ca_pem.clone()),
            tls_insecure_skip_verify: self
                .tls_insecure_skip_verify
                .or(fallback.tls_insecure_skip_verify),
            max_response_bytes: self.max_response_bytes.or(fallback.max_response_bytes),
        }
    }
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
    let root = read_tree(&text, &file)?;
    validate(root, &file, path.parent(), env).map(|mut c| {
        c.source = Some(path.to_path_buf());
        c
    })
}

/// Parses configuration TOML given as a string (for tests and `--demo`);
/// `name` stands for the file in messages.
pub fn parse_str(toml: &str, name: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
    let root = read_tree(toml, name)?;
    validate(root, name, None, env)
}

fn parse_error(file: &str, e: &config::ConfigError) -> ConfigError {
    ConfigError::Parse {
        file: file.to_string(),
        message: e.to_string(),
    }
}

/// Reads TOML into the `config` crate's tree of values (whose lenient
/// conversions, e.g. a number where a string is expected, every key keeps).
fn read_tree(toml: &str, file: &str) -> Result<config::Value, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<config::Value>())
        .map_err(|e| parse_error(file, &e))
}

/// Reports every key of `table` not in `known`: as belonging elsewhere
/// when `elsewhere` says where it belongs, else as unknown (with the
/// closest known key, if one is near).
fn unknown_keys(
    table: &config::Map<String, config::Value>,
    prefix: &str,
    known: &[&str],
    elsewhere: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    let mut keys: Vec<&String> = table.keys().collect();
    // The tree is a hash map: sorted, the report is the same every time.
    keys.sort();
    for k in keys.into_iter().filter(|k| !known.contains(&k.as_str())) {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let message = match (elsewhere(k), closest(k, known)) {
            (Some(m), _) => m,
            (None, Some(near)) => {
                format!("unknown key; did you mean `{near}`? Remove or correct it")
            }
            (None, None) => "unknown key; remove or correct it (the accepted keys are listed \
                             in docs/configuration.md)"
                .to_string(),
        };
        problems.push(Problem { key, message });
    }
}

/// Every key a target of some kind may hold.
fn every_target_key() -> Vec<&'static str> {
    let mut keys = common_keys();
    for k in kinds::KINDS {
        keys.extend_from_slice(k.keys());
    }
    keys
}

/// `"vault" or "deepset"`: the kinds, for messages.
fn kind_list(prefix: &str) -> String {
    let names: Vec<String> = kinds::KINDS
        .iter()
        .map(|k| format!("{prefix}{:?}", k.name()))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
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

fn validate(
    root: config::Value,
    file: &str,
    base_dir: Option<&Path>,
    env: &dyn Environment,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let empty = || config::Value::new(None, config::ValueKind::Table(config::Map::new()));
    let config::ValueKind::Table(root) = root.kind else {
        return Err(ConfigError::Parse {
            file: file.to_string(),
            message: "not a TOML document of tables".into(),
        });
    };
    unknown_keys(&root, "", TOP_KEYS, &|_| None, &mut problems);
    let table = |name: &str, problems: &mut Vec<Problem>| match root.get(name) {
        None => empty(),
        Some(v) if matches!(v.kind, config::ValueKind::Table(_)) => v.clone(),
        Some(_) => {
            problems.push(Problem {
                key: name.into(),
                message: format!("must be a table ([{name}]); correct it"),
            });
            empty()
        }
    };
    let defaults_table = table("defaults", &mut problems);
    let exporter_table = table("exporter", &mut problems);

    // [defaults]: the common settings and the keys kinds allow there.
    if let config::ValueKind::Table(t) = &defaults_table.kind {
        let mut known = struct_fields::<RawSettings>().to_vec();
        for k in kinds::KINDS {
            known.extend_from_slice(k.default_keys());
        }
        let targets_only = every_target_key();
        let elsewhere = |k: &str| {
            targets_only
                .contains(&k)
                .then(|| "may not stand here; set it in each [[targets]] table".to_string())
        };
        unknown_keys(t, "defaults", &known, &elsewhere, &mut problems);
    }
    let raw_defaults: RawSettings =
        read_table(&defaults_table, "defaults", &mut problems).unwrap_or_default();
    let defaults = check_settings(&raw_defaults, base_dir, &mut |k: &str, message: String| {
        problems.push(Problem {
            key: format!("defaults.{k}"),
            message,
        })
    });

    if let config::ValueKind::Table(t) = &exporter_table.kind {
        unknown_keys(
            t,
            "exporter",
            struct_fields::<RawExporter>(),
            &|_| None,
            &mut problems,
        );
    }
    let raw_exporter: RawExporter =
        read_table(&exporter_table, "exporter", &mut problems).unwrap_or_default();
    let exporter = validate_exporter(raw_exporter, &mut problems);

    let raw_targets = match root.get("targets").map(|v| &v.kind) {
        None => Vec::new(),
        Some(config::ValueKind::Array(ts)) => ts.clone(),
        Some(_) => {
            problems.push(Problem {
                key: "targets".into(),
                message: "must be a list of [[targets]] tables; correct it".into(),
            });
            Vec::new()
        }
    };
    if raw_targets.is_empty() && !problems.iter().any(|p| p.key == "targets") {
        problems.push(Problem {
            key: "targets".into(),
            message: "no targets are configured; add at least one [[targets]] table \
                      (see config/example.toml)"
                .into(),
        });
    }
    let mut names = BTreeSet::new();
    let mut published = BTreeSet::new();
    let mut targets = Vec::new();
    for (i, t) in raw_targets.iter().enumerate() {
        let key = format!("targets[{i}]");
        if !matches!(t.kind, config::ValueKind::Table(_)) {
            problems.push(Problem {
                key,
                message: "is not a table; write each target as a [[targets]] table".into(),
            });
            continue;
        }
        let input = TargetInput {
            table: t,
            defaults_table: &defaults_table,
            defaults: &defaults,
            key: &key,
            base_dir,
            env,
        };
        for target in validate_target(input, &mut names, &mut problems) {
            // A published name (`<name>:<bucket>`) may meet a configured one.
            if !published.insert(target.name.clone()) {
                problems.push(Problem {
                    key: format!("{key}.name"),
                    message: format!(
                        "target {:?} is published twice; rename one of the targets",
                        target.name
                    ),
                });
            }
            targets.push(target);
        }
    }
    // A bad value in [defaults] of a kind's key is found once per target of
    // that kind: report it once.
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert((p.key.clone(), p.message.clone())));
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

/// One `[[targets]]` table and what it is checked against.
struct TargetInput<'a> {
    table: &'a config::Value,
    defaults_table: &'a config::Value,
    /// `[defaults]`, checked once.
    defaults: &'a Settings,
    /// `targets[i]`.
    key: &'a str,
    base_dir: Option<&'a Path>,
    env: &'a dyn Environment,
}

/// Checks the common keys of a target here and hands the table to its
/// kind; the targets it publishes (see [`kinds::Kind::expand`]), none when
/// anything was wrong (every problem is reported).
fn validate_target(
    t: TargetInput<'_>,
    names: &mut BTreeSet<String>,
    problems: &mut Vec<Problem>,
) -> Vec<TargetConfig> {
    let before = problems.len();
    let key = t.key;
    let problem = |problems: &mut Vec<Problem>, k: &str, message: String| {
        problems.push(Problem {
            key: format!("{key}.{k}"),
            message,
        })
    };
    let ident: RawIdentity = read_table(t.table, key, problems).unwrap_or_default();
    let kind = match ident.kind.as_deref() {
        Some(k) => match kinds::find(k) {
            Some(kind) => Some(kind),
            None => {
                problem(
                    problems,
                    "kind",
                    format!("{k:?} is not a known kind; use {}", kind_list("")),
                );
                None
            }
        },
        None => {
            problem(
                problems,
                "kind",
                format!("missing; set {}", kind_list("kind = ")),
            );
            None
        }
    };
    if let config::ValueKind::Table(table) = &t.table.kind {
        let mut known = common_keys();
        match kind {
            Some(k) => known.extend_from_slice(k.keys()),
            None => known = every_target_key(),
        }
        let elsewhere = |k: &str| {
            if let Some(kind) = kind {
                if let Some(owner) = kinds::KINDS.iter().find(|o| o.keys().contains(&k)) {
                    return Some(format!(
                        "is a {} key; a kind = {:?} target does not use it",
                        owner.title(),
                        kind.name()
                    ));
                }
            }
            struct_fields::<RawExporter>()
                .contains(&k)
                .then(|| "may not stand here; set it in [exporter]".to_string())
        };
        unknown_keys(table, key, &known, &elsewhere, problems);
    }
    let raw: RawSettings = read_table(t.table, key, problems).unwrap_or_default();
    // Only the target's own values are checked here; `defaults` were
    // checked once and are already converted.
    let settings = check_settings(&raw, t.base_dir, &mut |k: &str, m: String| {
        problem(problems, k, m)
    })
    .or(t.defaults);

    let name = match ident.name.as_deref() {
        None => {
            problem(
                problems,
                "name",
                "missing; every target needs a unique `name`".into(),
            );
            String::new()
        }
        Some(n) if !valid_name(n) => {
            problem(
                problems,
                "name",
                format!(
                    "{n:?} is not a valid target name; use 1 to 64 letters, digits, \
                     '.', '_', ':' or '-'"
                ),
            );
            String::new()
        }
        Some(n) => {
            if !names.insert(n.to_string()) {
                problem(
                    problems,
                    "name",
                    format!(
                        "duplicate target name {n:?}; every target needs a unique name \
                         (it becomes the `target` label)"
                    ),
                );
            }
            n.to_string()
        }
    };
    let url = match ident.url.as_deref() {
        None if kind.is_some_and(|k| k.url_optional()) => None,
        None => {
            let example = kind
                .or_else(|| kinds::KINDS.first().copied())
                .map_or("https://upstream.example.com", |k| k.example_url());
            problem(
                problems,
                "url",
                format!("missing; set the base URL of the upstream, e.g. {example:?}"),
            );
            None
        }
        Some(u) => match check_url(u) {
            Ok(url) => Some(url),
            Err(m) => {
                problem(problems, "url", m);
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
    let max_response_bytes = settings
        .max_response_bytes
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    let mut default_url = None;
    let kind_config = kind.and_then(|kind| {
        let mut input = KindInput {
            table: t.table,
            defaults: t.defaults_table,
            key,
            kind_name: kind.name(),
            url: url.as_ref(),
            base_dir: t.base_dir,
            env: t.env,
            problems,
            default_url: None,
        };
        let parsed = kind.parse(&mut input);
        default_url = input.default_url;
        parsed
    });
    if problems.len() > before {
        return Vec::new();
    }
    let (Some(kind), Some(kind_config), Some(url)) = (kind, kind_config, url.or(default_url))
    else {
        return Vec::new();
    };
    warn_plain_http_once(&name, &url);
    kind.expand(TargetConfig {
        name,
        url,
        poll_interval,
        timeout,
        stall_after,
        stale_after,
        at_risk_horizon,
        ca_pem: settings.ca_pem,
        tls_insecure_skip_verify: settings.tls_insecure_skip_verify.unwrap_or(false),
        max_response_bytes,
        kind: kind_config,
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
    Settings {
        poll_interval,
        timeout,
        stall_after,
        stale_after,
        at_risk_horizon,
        ca_pem,
        tls_insecure_skip_verify: raw.tls_insecure_skip_verify,
        max_response_bytes,
    }
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

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
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
    use crate::kinds::deepset::{DeepsetConfig, Pagination, DEFAULT_EXPIRED_WINDOW};
    use crate::kinds::vault::{VaultConfig, DEFAULT_CLIENT_ID};
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
        let v = t.settings::<VaultConfig>().expect("a Vault target");
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
        let v = t.settings::<VaultConfig>().expect("a Vault target");
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
        assert_eq!(struct_fields::<RawSettings>().len(), 8);
        assert_eq!(common_keys().len(), 11);
        let every = every_target_key();
        assert!(every.contains(&"expired_window") && every.contains(&"password_env"));
        assert_eq!(closest("pasword_env", &every), Some("password_env"));
        assert_eq!(closest("colour", &every), None);
        assert_eq!(kind_list(""), "\"vault\", \"deepset\" or \"s3\"");
        // A kind's key is never a common one; its default keys are its keys.
        for k in kinds::KINDS {
            for key in k.keys() {
                assert!(!common_keys().contains(key), "{}: {key}", k.name());
            }
            for key in k.default_keys() {
                assert!(k.keys().contains(key), "{}: {key}", k.name());
            }
        }
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
        let v = c.targets[0]
            .settings::<VaultConfig>()
            .expect("a Vault target");
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
        let d = c.targets[0]
            .settings::<DeepsetConfig>()
            .expect("a deepset target");
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
        let d = c.targets[0]
            .settings::<DeepsetConfig>()
            .expect("a deepset target");
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

    // --- Issue 17: mutation testing of the validation (docs/testing.md) ---

    /// One target table checked on its own, with empty `[defaults]`.
    fn one_target(toml: &str) -> (Vec<TargetConfig>, Vec<Problem>) {
        let root = read_tree(toml, "t").unwrap();
        let config::ValueKind::Table(root) = root.kind else {
            panic!("not a table")
        };
        let config::ValueKind::Array(ts) = &root["targets"].kind else {
            panic!("no [[targets]]")
        };
        let empty = config::Value::new(None, config::ValueKind::Table(config::Map::new()));
        let mut problems = Vec::new();
        let input = TargetInput {
            table: &ts[0],
            defaults_table: &empty,
            defaults: &Settings::default(),
            key: "targets[0]",
            base_dir: None,
            env: &env(),
        };
        let t = validate_target(input, &mut BTreeSet::new(), &mut problems);
        (t, problems)
    }

    #[test]
    fn problems_are_one_per_line_after_the_file_name() {
        let p = |k: &str| Problem {
            key: k.into(),
            message: "m".into(),
        };
        let e = ConfigError::Invalid {
            file: "f.toml".into(),
            problems: vec![p("a"), p("b"), p("c")],
        };
        assert_eq!(e.to_string(), "f.toml: a: m\nf.toml: b: m\nf.toml: c: m");
    }

    #[test]
    fn a_target_with_any_problem_is_not_built() {
        let (t, p) = one_target(&format!("{VAULT}poll_interval = \"1ms\"\n"));
        assert!(t.is_empty());
        assert_eq!(p.len(), 1, "{p:?}");
        let (t, p) = one_target(VAULT);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "v");
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn duration_minimums_are_inclusive() {
        let c = parse_str(
            &format!(
                "{VAULT}poll_interval = \"1s\"\ntimeout = \"100ms\"\nat_risk_horizon = \"0s\"\n\
                 stall_after = \"1s\"\n"
            ),
            "t",
            &env(),
        )
        .unwrap();
        let t = &c.targets[0];
        assert_eq!(t.poll_interval, Duration::from_secs(1));
        assert_eq!(t.timeout, Duration::from_millis(100));
        assert_eq!(t.at_risk_horizon, Duration::ZERO);
        assert_eq!(t.stall_after, Duration::from_secs(1));
        // stale_after defaults to five polls of the target's own interval.
        assert_eq!(t.stale_after, Duration::from_secs(5));
        let p = problems(&format!(
            "{VAULT}poll_interval = \"999ms\"\ntimeout = \"99ms\"\nstale_after = \"500ms\"\n"
        ));
        assert_eq!(
            p,
            [
                "test.toml: targets[0].poll_interval: \"999ms\" is too short; use at least 1s",
                "test.toml: targets[0].timeout: \"99ms\" is too short; use at least 100ms",
                "test.toml: targets[0].stale_after: \"500ms\" is too short; use at least 1s",
            ]
        );
    }

    #[test]
    fn unset_settings_get_their_documented_defaults() {
        let c = parse_str(VAULT, "t", &env()).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.at_risk_horizon, Duration::from_secs(12 * 3600));
        assert_eq!(t.stall_after, Duration::from_secs(30 * 60));
        assert_eq!(t.max_response_bytes, 16 << 20);
        assert!(!t.tls_insecure_skip_verify);
        assert_eq!(t.ca_pem, None);
        // Every common setting from [defaults] when the target has none.
        let c = parse_str(
            &format!(
                "[defaults]\npoll_interval = \"10s\"\ntimeout = \"3s\"\nstall_after = \"5m\"\n\
                 stale_after = \"7m\"\nat_risk_horizon = \"1h\"\nmax_response_size = \"2MiB\"\n\
                 tls_insecure_skip_verify = true\n{VAULT}"
            ),
            "t",
            &env(),
        )
        .unwrap();
        let t = &c.targets[0];
        assert_eq!(t.poll_interval, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(3));
        assert_eq!(t.stall_after, Duration::from_secs(300));
        assert_eq!(t.stale_after, Duration::from_secs(420));
        assert_eq!(t.at_risk_horizon, Duration::from_secs(3600));
        assert_eq!(t.max_response_bytes, 2 << 20);
        assert!(t.tls_insecure_skip_verify);
        // The target's own values win over [defaults].
        let c = parse_str(
            &format!(
                "[defaults]\ntimeout = \"3s\"\nmax_response_size = \"2MiB\"\n\
                 tls_insecure_skip_verify = true\n{VAULT}timeout = \"4s\"\n\
                 max_response_size = \"1KiB\"\ntls_insecure_skip_verify = false\n"
            ),
            "t",
            &env(),
        )
        .unwrap();
        let t = &c.targets[0];
        assert_eq!(t.timeout, Duration::from_secs(4));
        assert_eq!(t.max_response_bytes, 1024);
        assert!(!t.tls_insecure_skip_verify);
    }

    #[test]
    fn max_response_size_is_at_least_one_kib() {
        for (size, bytes) in [
            ("1KiB", 1024),
            ("1024", 1024),
            ("2kB", 2000),
            ("1MB", 1_000_000),
        ] {
            let c = parse_str(
                &format!("{VAULT}max_response_size = \"{size}\"\n"),
                "t",
                &env(),
            )
            .unwrap();
            assert_eq!(c.targets[0].max_response_bytes, bytes, "{size}");
        }
        for size in ["1023", "1KB", "0", "big"] {
            let p = problems(&format!("{VAULT}max_response_size = \"{size}\"\n"));
            assert_eq!(
                p,
                [format!(
                    "test.toml: targets[0].max_response_size: \"{size}\" is not a size of at \
                     least 1KiB; write e.g. \"16MiB\" or \"500KB\""
                )]
            );
        }
    }

    #[test]
    fn every_size_unit_parses() {
        assert_eq!(parse_size("7"), Some(7));
        assert_eq!(parse_size("7B"), Some(7));
        assert_eq!(parse_size("3KB"), Some(3000));
        assert_eq!(parse_size("3kB"), Some(3000));
        assert_eq!(parse_size("3KiB"), Some(3072));
        assert_eq!(parse_size("3MB"), Some(3_000_000));
        assert_eq!(parse_size("3MiB"), Some(3 << 20));
        assert_eq!(parse_size("3GB"), Some(3_000_000_000));
        assert_eq!(parse_size("3GiB"), Some(3 << 30));
        assert_eq!(parse_size(" 5 MiB "), Some(5 << 20));
        for bad in ["", "KiB", "3kib", "3 TB", "-1", "1.5MiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ca_file_must_hold_a_pem_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["ca.example".to_string()]).unwrap();
        let pem = cert.cert.pem();
        std::fs::write(dir.path().join("ca.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("not.pem"), "hello\n").unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, format!("{VAULT}ca_file = \"ca.pem\"\n")).unwrap();
        let c = load_with_env(&cfg, &env()).unwrap();
        assert_eq!(c.targets[0].ca_pem.as_deref(), Some(pem.as_bytes()));

        std::fs::write(&cfg, format!("{VAULT}ca_file = \"not.pem\"\n")).unwrap();
        let err = load_with_env(&cfg, &env()).unwrap_err().to_string();
        let shown = dir.path().join("not.pem");
        assert_eq!(
            err,
            format!(
                "{}: targets[0].ca_file: {} holds no PEM certificate; give a PEM bundle of the \
                 CA(s) that sign the upstream's certificate",
                cfg.display(),
                shown.display()
            )
        );

        std::fs::write(&cfg, format!("{VAULT}ca_file = \"gone.pem\"\n")).unwrap();
        let err = load_with_env(&cfg, &env()).unwrap_err().to_string();
        assert!(
            err.contains("targets[0].ca_file: cannot read CA file"),
            "{err}"
        );
    }

    #[test]
    fn target_names_are_1_to_64_allowed_characters() {
        let long = "n".repeat(64);
        for ok in ["a", "A.b_c:d-9", long.as_str()] {
            assert!(valid_name(ok), "{ok}");
        }
        let too_long = "n".repeat(65);
        for bad in ["", too_long.as_str(), "a b", "a/b", "é", "a,b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let p = problems(&VAULT.replace("name = \"v\"", "name = \"a b\""));
        assert_eq!(
            p,
            [
                "test.toml: targets[0].name: \"a b\" is not a valid target name; use 1 to 64 \
              letters, digits, '.', '_', ':' or '-'"
            ]
        );
        let p = problems(&VAULT.replace("name = \"v\"\n", ""));
        assert_eq!(
            p,
            ["test.toml: targets[0].name: missing; every target needs a unique `name`"]
        );
    }

    #[test]
    fn max_concurrent_requests_is_1_to_1024() {
        for n in [1, 1024] {
            let c = parse_str(
                &format!("[exporter]\nmax_concurrent_requests = {n}\n{VAULT}"),
                "t",
                &env(),
            )
            .unwrap();
            assert_eq!(c.exporter.max_concurrent_requests, n as usize);
        }
        let p = problems(&format!(
            "[exporter]\nmax_concurrent_requests = 1025\n{VAULT}"
        ));
        assert_eq!(
            p,
            ["test.toml: exporter.max_concurrent_requests: 1025 is out of range; use a number from 1 to 1024"]
        );
        let p = problems(&format!("[exporter]\nlog_level = \"loud\"\n{VAULT}"));
        assert_eq!(
            p,
            ["test.toml: exporter.log_level: \"loud\" is not a log level; use debug, info, warn or error"]
        );
        let c = parse_str(
            &format!("[exporter]\nlog_level = \"warn\"\n{VAULT}"),
            "t",
            &env(),
        );
        assert!(c.unwrap().exporter.log_level.is_some());
    }

    #[test]
    fn the_top_level_shape_is_checked() {
        let p = problems(&format!("defaults = 1\nexporter = \"x\"\n{VAULT}"));
        assert_eq!(
            p,
            [
                "test.toml: defaults: must be a table ([defaults]); correct it",
                "test.toml: exporter: must be a table ([exporter]); correct it",
            ]
        );
        // A list that is not of tables, or no list: one problem, not also
        // "no targets".
        let p = problems("targets = 1\n");
        assert_eq!(
            p,
            ["test.toml: targets: must be a list of [[targets]] tables; correct it"]
        );
        let p = problems("targets = [1]\n");
        assert_eq!(
            p,
            ["test.toml: targets[0]: is not a table; write each target as a [[targets]] table"]
        );
        let p = problems(&format!("colour = 1\n{VAULT}"));
        assert_eq!(
            p,
            ["test.toml: colour: unknown key; remove or correct it (the accepted keys are listed in docs/configuration.md)"]
        );
    }

    #[test]
    fn a_bad_kind_default_is_reported_once_under_defaults() {
        let two = format!("{VAULT}{}", VAULT.replace("name = \"v\"", "name = \"w\""));
        let p = problems(&format!("[defaults]\nburst_limit_share = 0\n{two}"));
        assert_eq!(
            p,
            ["test.toml: defaults.burst_limit_share: 0 is not a share; use a number above 0 and \
              at most 1, e.g. 0.05 for 5%"]
        );
    }

    #[test]
    fn keys_of_another_kind_or_of_the_exporter_are_named_as_such() {
        let deepset = "[[targets]]\nname = \"ds\"\nkind = \"deepset\"\n\
                       url = \"https://api.cloud.deepset.ai\"\nworkspace = \"w\"\n\
                       api_key_env = \"DS_KEY\"\n";
        assert_eq!(
            problems(&format!("{VAULT}pagination = \"page\"\n")),
            ["test.toml: targets[0].pagination: is a deepset key; a kind = \"vault\" target does not use it"]
        );
        assert_eq!(
            problems(&format!("{deepset}client_id = \"x\"\n")),
            ["test.toml: targets[0].client_id: is a Vault key; a kind = \"deepset\" target does not use it"]
        );
        assert_eq!(
            problems(&format!("{VAULT}max_concurrent_requests = 3\n")),
            ["test.toml: targets[0].max_concurrent_requests: may not stand here; set it in [exporter]"]
        );
        // Without a known kind every kind's keys are accepted: only the
        // kind is reported.
        assert_eq!(
            problems(&VAULT.replace("kind = \"vault\"", "kind = \"gcs\"")),
            ["test.toml: targets[0].kind: \"gcs\" is not a known kind; use \"vault\", \"deepset\" or \"s3\""]
        );
        assert_eq!(
            problems(&VAULT.replace("kind = \"vault\"\n", "")),
            ["test.toml: targets[0].kind: missing; set kind = \"vault\", kind = \"deepset\" or kind = \"s3\""]
        );
        // A missing url is shown with the kind's example.
        assert_eq!(
            problems(&deepset.replace("url = \"https://api.cloud.deepset.ai\"\n", "")),
            ["test.toml: targets[0].url: missing; set the base URL of the upstream, e.g. \"https://api.cloud.deepset.ai\""]
        );
        assert_eq!(
            problems(&VAULT.replace("url = \"https://myvault.veevavault.com\"\n", "")),
            ["test.toml: targets[0].url: missing; set the base URL of the upstream, e.g. \"https://myvault.veevavault.com\""]
        );
    }

    #[test]
    fn closest_accepts_two_edits_not_three() {
        let known = ["poll_interval", "timeout"];
        assert_eq!(closest("pol_interval", &known), Some("poll_interval"));
        assert_eq!(closest("pol_intervl", &known), Some("poll_interval"));
        assert_eq!(closest("pl_intervl", &known), None);
        assert_eq!(closest("timeout", &known), Some("timeout"));
        // The nearest wins, wherever it is in the list.
        assert_eq!(closest("tmeout", &["timeouts", "timeout"]), Some("timeout"));
        let every = every_target_key();
        for k in common_keys() {
            assert!(every.contains(&k), "{k}");
        }
        assert!(every.contains(&"api_key_env") && every.contains(&"vault_id"));
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        for (a, b, d) in [
            ("", "", 0),
            ("", "abc", 3),
            ("abc", "", 3),
            ("same", "same", 0),
            ("kitten", "sitting", 3),
            ("ab", "ba", 2),
            ("timeout", "tmeout", 1),
            ("abc", "abd", 1),
            ("abc", "xabc", 1),
            ("flaw", "lawn", 2),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a:?} {b:?}");
        }
    }

    #[test]
    fn urls_are_shown_without_userinfo_query_or_fragment() {
        for (url, shown) in [
            ("https://u:p@h/x?q=1#f", "https://***@h/x"),
            ("  http://h:8/a  ", "http://h:8/a"),
            ("u:p@h", "***@h"),
            ("h/x", "h/x"),
            ("https://h#frag", "https://h"),
            ("https://a@b@h", "https://***@h"),
        ] {
            assert_eq!(url_for_messages(url), shown, "{url}");
        }
        assert!(has_userinfo("https://u@h"));
        assert!(has_userinfo("u:p@h"));
        assert!(!has_userinfo("https://h/x?mail=a@b"));
        assert!(!has_userinfo("https://h/#a@b"));
        assert!(!has_userinfo("https://h"));
    }

    #[test]
    fn any_userinfo_query_or_fragment_in_a_url_is_refused() {
        for (url, shown) in [
            (
                "https://user@host",
                "\"https://***@host\" contains credentials",
            ),
            (
                "https://:pw@host",
                "\"https://***@host\" contains credentials",
            ),
            ("https://h/x#top", "\"https://h/x\" has a query or fragment"),
            ("https://h/x?a=1", "\"https://h/x\" has a query or fragment"),
            (
                "ftp://h",
                "\"ftp://h\" has scheme \"ftp\"; use an https:// URL",
            ),
            ("not a url", "\"not a url\" is not a valid URL"),
        ] {
            let p = problems(&VAULT.replace("https://myvault.veevavault.com", url));
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(
                p[0].starts_with(&format!("test.toml: targets[0].url: {shown}")),
                "{url}: {p:?}"
            );
        }
        for ok in ["http://127.0.0.1:8080", "https://h:443/prefix/"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
    }

    /// The keys of a Vault target, through the loader (issue 17: the
    /// mutation testing of the validation, docs/testing.md). Here rather
    /// than in the kind's folder: the loader sits above the kinds.
    mod vault_keys {
        use crate::kinds::vault::*;

        /// The problems of a Vault target with `extra` keys, as "key: message".
        fn problems(extra: &str) -> Vec<String> {
            struct Env;
            impl crate::settings::Environment for Env {
                fn var(&self, name: &str) -> Option<String> {
                    (name == "PW").then(|| "pw".to_string())
                }
            }
            let toml = format!(
                "[[targets]]\nname = \"v\"\nkind = \"vault\"\nurl = \"https://v.example.com\"\n\
                 username = \"u\"\npassword_env = \"PW\"\n{extra}\n"
            );
            match crate::config::parse_str(&toml, "t", &Env) {
                Ok(_) => vec![],
                Err(crate::config::ConfigError::Invalid { problems, .. }) => {
                    problems.iter().map(ToString::to_string).collect()
                }
                Err(e) => panic!("{e}"),
            }
        }

        fn parsed(extra: &str) -> VaultConfig {
            struct Env;
            impl crate::settings::Environment for Env {
                fn var(&self, _: &str) -> Option<String> {
                    Some("pw".into())
                }
            }
            let toml = format!(
                "[[targets]]\nname = \"v\"\nkind = \"vault\"\nurl = \"https://v.example.com\"\n\
                 username = \"u\"\npassword_env = \"PW\"\n{extra}\n"
            );
            let c = crate::config::parse_str(&toml, "t", &Env).unwrap();
            c.targets[0].settings::<VaultConfig>().unwrap().clone()
        }

        #[test]
        fn burst_limit_share_is_above_0_and_at_most_1() {
            for v in [1.0, 0.5, 0.001] {
                assert_eq!(
                    parsed(&format!("burst_limit_share = {v:?}")).burst_limit_share,
                    v
                );
            }
            for v in ["0", "0.0", "-0.1", "1.0001", "2"] {
                let p = problems(&format!("burst_limit_share = {v}"));
                assert_eq!(p.len(), 1, "{v}: {p:?}");
                assert!(
                    p[0].starts_with("targets[0].burst_limit_share: ")
                        && p[0].ends_with(
                            " is not a share; use a number above 0 and at most 1, e.g. 0.05 for 5%"
                        ),
                    "{v}: {p:?}"
                );
            }
            assert_eq!(parsed("").burst_limit_share, DEFAULT_BURST_SHARE);
        }

        #[test]
        fn burst_limit_reserve_is_0_to_below_1() {
            for v in [0.0, 0.5, 0.999] {
                assert_eq!(
                    parsed(&format!("burst_limit_reserve = {v:?}")).burst_limit_reserve,
                    v
                );
            }
            for v in ["1", "1.0", "-0.01"] {
                let p = problems(&format!("burst_limit_reserve = {v}"));
                assert_eq!(p.len(), 1, "{v}: {p:?}");
                assert!(
                    p[0].ends_with(
                        " is not a share; use a number from 0 to below 1, e.g. 0.1 for 10%"
                    ),
                    "{v}: {p:?}"
                );
            }
            assert_eq!(parsed("").burst_limit_reserve, DEFAULT_BURST_RESERVE);
        }

        #[test]
        fn vault_id_is_positive() {
            assert_eq!(parsed("vault_id = 1").vault_id, Some(1));
            assert_eq!(parsed("vault_id = 4242").vault_id, Some(4242));
            assert_eq!(parsed("").vault_id, None);
            for id in [0, -3] {
                assert_eq!(
                    problems(&format!("vault_id = {id}")),
                    [format!(
                        "targets[0].vault_id: {id} is not a Vault id; use the positive number \
                         shown as vaultId at login, or leave it out"
                    )]
                );
            }
        }

        #[test]
        fn client_id_and_api_version_keep_their_values() {
            let v = parsed(
                "client_id = \"my.tool-1_x\"\napi_version = \"v24.1\"\nresolve_owner_names = true",
            );
            assert_eq!(
                (
                    v.client_id.as_str(),
                    v.api_version.as_str(),
                    v.resolve_owner_names
                ),
                ("my.tool-1_x", "v24.1", true)
            );
            assert!(!parsed("").resolve_owner_names);
            assert_eq!(
                problems("client_id = \"a b\""),
                [
                    "targets[0].client_id: \"a b\" is not a valid X-VaultAPI-ClientID; use at most \
                  100 letters, digits, '.', '_' or '-'"
                ]
            );
        }
    }

    mod deepset_keys {
        //! The keys of a deepset target (issue 17: the mutation testing of the
        //! validation, docs/testing.md).
        use crate::kinds::deepset::*;
        use std::time::Duration;

        struct Env;
        impl crate::settings::Environment for Env {
            fn var(&self, name: &str) -> Option<String> {
                (name == "KEY").then(|| "k".to_string())
            }
        }

        const BASE: &str = "[[targets]]\nname = \"d\"\nkind = \"deepset\"\n\
                            url = \"https://api.cloud.deepset.ai\"\nworkspace = \"w\"\n\
                            api_key_env = \"KEY\"\n";

        fn parse(extra: &str) -> Result<DeepsetConfig, Vec<String>> {
            parse_toml(&format!("{BASE}{extra}\n"))
        }

        fn parse_toml(toml: &str) -> Result<DeepsetConfig, Vec<String>> {
            match crate::config::parse_str(toml, "t", &Env) {
                Ok(c) => Ok(c.targets[0].settings::<DeepsetConfig>().unwrap().clone()),
                Err(crate::config::ConfigError::Invalid { problems, .. }) => {
                    Err(problems.iter().map(ToString::to_string).collect())
                }
                Err(e) => panic!("{e}"),
            }
        }

        #[test]
        fn expired_window_defaults_to_a_day_and_may_be_zero() {
            assert_eq!(
                parse("").unwrap().expired_window,
                Duration::from_secs(24 * 3600)
            );
            assert_eq!(
                parse("expired_window = \"0s\"").unwrap().expired_window,
                Duration::ZERO
            );
            let p = parse("expired_window = \"a while\"").unwrap_err();
            assert_eq!(p.len(), 1);
            assert!(
                p[0].starts_with("targets[0].expired_window: \"a while\" is not a duration"),
                "{p:?}"
            );
        }

        #[test]
        fn pagination_is_cursor_unless_page() {
            assert_eq!(parse("").unwrap().pagination, Pagination::Cursor);
            assert_eq!(
                parse("pagination = \"cursor\"").unwrap().pagination,
                Pagination::Cursor
            );
            assert_eq!(
                parse("pagination = \"page\"").unwrap().pagination,
                Pagination::Page
            );
            assert_eq!(
                parse("pagination = \"Page\"").unwrap_err(),
                [
                    "targets[0].pagination: \"Page\" is not a pagination style; use \"cursor\" \
                  (default) or \"page\""
                ]
            );
        }

        #[test]
        fn workspace_and_api_key_are_required() {
            let d = parse("").unwrap();
            assert_eq!((d.workspace.as_str(), d.api_key.expose()), ("w", "k"));
            assert_eq!(
                parse_toml(&BASE.replace("workspace = \"w\"", "workspace = \"\"")).unwrap_err(),
                ["targets[0].workspace: missing; set the deepset workspace name"]
            );
            assert_eq!(
                parse("api_key = \"k\"").unwrap_err(),
                [
                    "targets[0].api_key: secrets may not be written in the configuration file; put it \
                  in an environment variable (api_key_env) or a file (api_key_file)"
                ]
            );
        }
    }
}
