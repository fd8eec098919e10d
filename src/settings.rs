//! The settings a target runs with ([`TargetConfig`]) and what a kind is
//! given to parse its part of a target table ([`KindInput`]): the types the
//! configuration loader (module `config`) produces and the kinds (module
//! `kinds`) read. Below both, so that neither reaches back up.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::model::Measure;
use crate::secret::Secret;

pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30 * 60);
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
pub(crate) const STALE_AFTER_POLLS: u32 = 5;
pub(crate) const DEFAULT_AT_RISK_HORIZON: Duration = Duration::from_secs(12 * 3600);

/// One `[[targets]]` entry with the `[defaults]` applied.
#[derive(Debug, Clone)]
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
    /// Extra CA certificates (PEM) trusted for this upstream, from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip TLS certificate verification (labs only; logged loudly).
    pub tls_insecure_skip_verify: bool,
    /// Largest upstream response body accepted.
    pub max_response_bytes: u64,
    /// Kind-specific settings, parsed by the kind.
    pub kind: Box<dyn KindConfig>,
}

// Written out: a derived `PartialEq` cannot compare `Box<dyn ..>` fields
// (rust-lang/rust#31740). A reload compares targets to find changed ones.
impl PartialEq for TargetConfig {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.url == o.url
            && self.poll_interval == o.poll_interval
            && self.timeout == o.timeout
            && self.stall_after == o.stall_after
            && self.stale_after == o.stale_after
            && self.at_risk_horizon == o.at_risk_horizon
            && self.ca_pem == o.ca_pem
            && self.tls_insecure_skip_verify == o.tls_insecure_skip_verify
            && self.max_response_bytes == o.max_response_bytes
            && self.kind.eq_dyn(o.kind.as_ref())
    }
}

impl TargetConfig {
    /// A target with every common setting at its default (for tests and
    /// tools that build targets without a file).
    pub fn with_defaults(name: &str, url: Url, kind: Box<dyn KindConfig>) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            url,
            poll_interval: DEFAULT_POLL_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            stall_after: DEFAULT_STALL_AFTER,
            stale_after: DEFAULT_POLL_INTERVAL * STALE_AFTER_POLLS,
            at_risk_horizon: DEFAULT_AT_RISK_HORIZON,
            ca_pem: None,
            tls_insecure_skip_verify: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            kind,
        }
    }

    /// The `kind` of the target.
    pub fn kind_name(&self) -> &'static str {
        self.kind.kind_name()
    }

    /// The kind-specific settings as the kind's own type, if the target is
    /// of that kind.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.kind.downcast_ref()
    }

    /// [`settings`](Self::settings), to change them (tests).
    pub fn settings_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.kind.downcast_mut()
    }
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

/// What a kind's `Kind::parse` gets of one target: its table (the keys
/// are the kind's to read: common keys are checked already), the
/// `[defaults]` table, the checked `url`, and where to report problems.
/// Problems are reported under the target's key (`targets[3].username`), or
/// under `defaults.` for a value that came from `[defaults]` (reported once
/// however many targets use it).
pub struct KindInput<'a> {
    pub(crate) table: &'a config::Value,
    pub(crate) defaults: &'a config::Value,
    pub(crate) key: &'a str,
    pub(crate) kind_name: &'static str,
    pub(crate) url: Option<&'a Url>,
    pub(crate) base_dir: Option<&'a Path>,
    pub(crate) env: &'a dyn Environment,
    pub(crate) problems: &'a mut Vec<Problem>,
    /// The `url` the kind chose for a target that has none.
    pub(crate) default_url: Option<Url>,
}

impl<'a> KindInput<'a> {
    /// The target's own values of the keys of `T`, `None` if one has the
    /// wrong type (reported).
    pub fn keys<T: DeserializeOwned>(&mut self) -> Option<T> {
        read_table(self.table, self.key, self.problems)
    }

    /// The `[defaults]` values of the keys of `T` (those of the kind's
    /// [`Kind::default_keys`]); all unset if one has the wrong type
    /// (reported).
    pub fn defaults<T: DeserializeOwned + Default>(&mut self) -> T {
        read_table(self.defaults, "defaults", self.problems).unwrap_or_default()
    }

    /// Reports a problem with the target's `key`.
    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: format!("{}.{key}", self.key),
            message: message.into(),
        });
    }

    /// Reports a problem with `key` of `[defaults]`.
    pub fn default_problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: format!("defaults.{key}"),
            message: message.into(),
        });
    }

    /// A setting that may stand in the target or in `[defaults]`: the
    /// target's value if set, else the default's, each checked by `check`
    /// (whose error is reported where the value stands).
    pub fn setting<R, T>(
        &mut self,
        key: &str,
        own: Option<R>,
        default: Option<R>,
        check: impl Fn(R) -> Result<T, String>,
    ) -> Option<T> {
        let default = default.and_then(|v| match check(v) {
            Ok(v) => Some(v),
            Err(m) => {
                self.default_problem(key, m);
                None
            }
        });
        match own.map(&check) {
            Some(Ok(v)) => Some(v),
            Some(Err(m)) => {
                self.problem(key, m);
                None
            }
            None => default,
        }
    }

    /// The target's `url`, if it is set and valid.
    pub fn url(&self) -> Option<&Url> {
        self.url
    }

    /// The `url` of a target that leaves it out (kinds whose
    /// `url_optional` is true).
    pub fn default_url(&mut self, url: Url) {
        self.default_url = Some(url);
    }

    /// A non-empty string value, or a "missing" problem naming `what` to
    /// set.
    pub fn required(&mut self, value: Option<&str>, key: &str, what: &str) -> String {
        match value.map(str::trim) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => {
                self.problem(key, format!("missing; set {what}"));
                String::new()
            }
        }
    }

    /// A duration value of at least `min`.
    pub fn duration(
        &mut self,
        value: &Option<String>,
        min: Duration,
        key: &str,
    ) -> Option<Duration> {
        let (problems, prefix) = (&mut *self.problems, self.key);
        duration_setting(value, min, key, &mut |k: &str, message: String| {
            problems.push(Problem {
                key: format!("{prefix}.{k}"),
                message,
            })
        })
    }

    /// A secret from its `*_env` or `*_file` key (resolved now); a secret
    /// written inline is refused without being shown.
    pub fn secret(&mut self, keys: SecretKeys<'_>) -> Option<Secret> {
        let (problems, prefix) = (&mut *self.problems, self.key);
        secret_setting(
            keys,
            self.base_dir,
            self.env,
            &mut |k: &str, message: String| {
                problems.push(Problem {
                    key: format!("{prefix}.{k}"),
                    message,
                })
            },
        )
    }

    /// `kind = "..."` as written, for messages.
    pub fn kind_name(&self) -> &'static str {
        self.kind_name
    }
}

/// Reads the keys of `T` from a table (unknown keys are left alone:
/// they are reported by name elsewhere); a wrong type is reported under
/// `prefix` and gives `None`.
pub(crate) fn read_table<T: DeserializeOwned>(
    table: &config::Value,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match T::deserialize(table.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut p = type_problem(&e.to_string());
            p.key = if p.key == "file" {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", p.key)
            };
            problems.push(p);
            None
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

/// Splits the `config` crate's "invalid type: ... for key `targets[0]vault_id`"
/// into the dotted key and what is wrong.
pub(crate) fn type_problem(message: &str) -> Problem {
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

/// The field names serde knows for a struct, read from its derived
/// `Deserialize` so the list of accepted keys cannot drift from the structs.
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
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

pub(crate) fn duration_setting(
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
pub struct SecretKeys<'a> {
    /// The secret was written in the file itself (refused).
    pub inline: bool,
    /// The `*_env` key's value.
    pub env: Option<&'a str>,
    /// The `*_file` key's value.
    pub file: Option<&'a str>,
    /// (inline key, env key, file key)
    pub names: (&'static str, &'static str, &'static str),
}

fn secret_setting(
    keys: SecretKeys<'_>,
    base_dir: Option<&Path>,
    env: &dyn Environment,
    problem: &mut dyn FnMut(&str, String),
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
pub(crate) fn resolve_path(path: &str, base_dir: Option<&Path>) -> PathBuf {
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

/// The kind-specific settings of one target, as parsed by its kind
/// (`Kind::parse`); the kind downcasts them back to its own
/// type.
pub trait KindConfig: fmt::Debug + Send + Sync + KindConfigBase {
    /// The `kind` these settings belong to.
    fn kind_name(&self) -> &'static str;
    /// What the kind counts progress in.
    fn measure(&self) -> Measure;
    /// Every secret of the target, masked in any upstream text shown.
    fn secrets(&self) -> Vec<&Secret>;
}

/// Cloning, comparing and downcasting of [`KindConfig`] objects; written
/// once here for every `Clone + PartialEq` settings type.
pub trait KindConfigBase {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn KindConfig>;
    /// True if `other` is the same kind with equal settings.
    fn eq_dyn(&self, other: &dyn KindConfig) -> bool;
    /// For downcasting to the kind's settings type.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to the kind's settings type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: KindConfig + Clone + PartialEq + 'static> KindConfigBase for T {
    fn clone_box(&self) -> Box<dyn KindConfig> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn KindConfig) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Clone for Box<dyn KindConfig> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl dyn KindConfig {
    /// The settings as the kind's own type, if they are of that kind.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }

    /// The settings as the kind's own type, if they are of that kind.
    pub fn downcast_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.as_any_mut().downcast_mut()
    }
}

#[cfg(test)]
mod tests {
    //! The `KindInput` helpers every kind's `parse` uses (issue 17: the
    //! mutation testing of the validation, docs/testing.md).
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn empty() -> config::Value {
        config::Value::new(None, config::ValueKind::Table(config::Map::new()))
    }

    fn tree(toml: &str) -> config::Value {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    /// Runs `f` on the input of `targets[2]` (a Vault target) and returns
    /// what it gave and the problems as "key: message".
    fn with_input<R>(
        base_dir: Option<&Path>,
        f: impl FnOnce(&mut KindInput<'_>) -> R,
    ) -> (R, Vec<String>) {
        let (table, defaults) = (empty(), empty());
        let env = FakeEnv(HashMap::from([
            ("PW", "s3cret"),
            ("EMPTY", ""),
            ("BLANK", " \t"),
        ]));
        let mut problems = Vec::new();
        let r = f(&mut KindInput {
            table: &table,
            defaults: &defaults,
            key: "targets[2]",
            kind_name: "vault",
            url: None,
            base_dir,
            env: &env,
            problems: &mut problems,
            default_url: None,
        });
        (r, problems.iter().map(Problem::to_string).collect())
    }

    #[test]
    fn a_setting_is_the_targets_own_else_the_default_each_reported_where_it_stands() {
        let check = |v: i32| {
            if v > 0 {
                Ok(v * 10)
            } else {
                Err(format!("{v} is bad"))
            }
        };
        let run = |own, default| with_input(None, |i| i.setting("k", own, default, check));
        assert_eq!(run(Some(1), Some(2)), (Some(10), vec![]));
        assert_eq!(run(None, Some(2)), (Some(20), vec![]));
        assert_eq!(run(None, None), (None, vec![]));
        // A bad own value does not fall back to the default.
        assert_eq!(
            run(Some(0), Some(2)),
            (None, vec!["targets[2].k: 0 is bad".to_string()])
        );
        // A bad default is reported under defaults., even when overridden.
        assert_eq!(
            run(Some(1), Some(-1)),
            (Some(10), vec!["defaults.k: -1 is bad".to_string()])
        );
        assert_eq!(
            run(None, Some(-1)),
            (None, vec!["defaults.k: -1 is bad".to_string()])
        );
    }

    #[test]
    fn required_values_are_trimmed_and_never_blank() {
        assert_eq!(
            with_input(None, |i| i.required(Some(" u "), "username", "the user")),
            ("u".to_string(), vec![])
        );
        for v in [None, Some(""), Some("  ")] {
            assert_eq!(
                with_input(None, |i| i.required(v, "username", "the user")),
                (
                    String::new(),
                    vec!["targets[2].username: missing; set the user".to_string()]
                ),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_duration_is_at_least_its_minimum() {
        let d = |s: &str, min: Duration| {
            with_input(None, |i| i.duration(&Some(s.to_string()), min, "w"))
        };
        let secs = Duration::from_secs;
        assert_eq!(d("1s", secs(1)), (Some(secs(1)), vec![]));
        assert_eq!(d(" 2m ", secs(1)), (Some(secs(120)), vec![]));
        assert_eq!(d("0s", Duration::ZERO), (Some(Duration::ZERO), vec![]));
        assert_eq!(
            d("999ms", secs(1)),
            (
                None,
                vec!["targets[2].w: \"999ms\" is too short; use at least 1s".to_string()]
            )
        );
        let (v, p) = d("5x", Duration::ZERO);
        assert_eq!(v, None);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("targets[2].w: \"5x\" is not a duration (")
                && p[0].ends_with("); write it like \"60s\", \"5m\" or \"1h 30m\""),
            "{p:?}"
        );
        assert_eq!(
            with_input(None, |i| i.duration(&None, secs(1), "w")),
            (None, vec![])
        );
    }

    fn secret(
        inline: bool,
        env: Option<&str>,
        file: Option<&str>,
        dir: Option<&Path>,
    ) -> (Option<String>, Vec<String>) {
        let (s, p) = with_input(dir, |i| {
            i.secret(SecretKeys {
                inline,
                env,
                file,
                names: ("password", "password_env", "password_file"),
            })
        });
        (s.map(|s| s.expose().to_string()), p)
    }

    fn one(p: &str) -> Vec<String> {
        vec![p.to_string()]
    }

    #[test]
    fn a_secret_comes_from_exactly_one_of_env_or_file() {
        assert_eq!(
            secret(false, Some("PW"), None, None),
            (Some("s3cret".into()), vec![])
        );
        assert_eq!(
            secret(true, Some("PW"), None, None),
            (
                None,
                one(
                    "targets[2].password: secrets may not be written in the configuration \
                     file; put it in an environment variable (password_env) or a file \
                     (password_file)"
                )
            )
        );
        assert_eq!(
            secret(false, Some("PW"), Some("pw"), None),
            (
                None,
                one("targets[2].password_env: set either password_env or password_file, not both")
            )
        );
        assert_eq!(
            secret(false, None, None, None),
            (
                None,
                one(
                    "targets[2].password_env: no secret configured; set password_env (name of \
                     an environment variable) or password_file (path of a file holding it)"
                )
            )
        );
        assert_eq!(
            secret(false, Some(" "), None, None),
            (
                None,
                one("targets[2].password_env: is empty; give the name of an environment variable")
            )
        );
        assert_eq!(
            secret(false, Some("NOPE"), None, None),
            (
                None,
                one(
                    "targets[2].password_env: environment variable NOPE is not set; export it \
                     before starting the exporter (or use the _file variant)"
                )
            )
        );
        for var in ["EMPTY", "BLANK"] {
            assert_eq!(
                secret(false, Some(var), None, None),
                (
                    None,
                    one(&format!(
                        "targets[2].password_env: environment variable {var} is empty"
                    ))
                )
            );
        }
    }

    #[test]
    fn a_secret_file_is_read_relative_to_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("pw"), "from-file\r\n").unwrap();
        assert_eq!(
            secret(false, None, Some("pw"), Some(d)),
            (Some("from-file".into()), vec![])
        );
        let abs = d.join("pw");
        assert_eq!(
            secret(false, None, abs.to_str(), Some(Path::new("/nonexistent"))),
            (Some("from-file".into()), vec![])
        );
        std::fs::write(d.join("blank"), "\n").unwrap();
        assert_eq!(
            secret(false, None, Some("blank"), Some(d)),
            (
                None,
                one(&format!(
                    "targets[2].password_file: secret file {} is empty",
                    d.join("blank").display()
                ))
            )
        );
        std::fs::write(d.join("bin"), [0xff, 0xfe]).unwrap();
        assert_eq!(
            secret(false, None, Some("bin"), Some(d)),
            (
                None,
                one(&format!(
                    "targets[2].password_file: secret file {} is not UTF-8 text",
                    d.join("bin").display()
                ))
            )
        );
        let (s, p) = secret(false, None, Some("gone"), Some(d));
        assert_eq!(s, None);
        assert!(
            p[0].starts_with(&format!(
                "targets[2].password_file: cannot read secret file {}: ",
                d.join("gone").display()
            )),
            "{p:?}"
        );
        // At most 64 KiB.
        std::fs::write(d.join("big"), "a".repeat(64 * 1024)).unwrap();
        let (s, _) = secret(false, None, Some("big"), Some(d));
        assert_eq!(s.map(|s| s.len()), Some(64 * 1024));
        std::fs::write(d.join("big"), "a".repeat(64 * 1024 + 1)).unwrap();
        let (_, p) = secret(false, None, Some("big"), Some(d));
        assert!(p[0].contains("is larger than 64 KiB"), "{p:?}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_base_dir() {
        let base = Some(Path::new("/etc/use"));
        assert_eq!(resolve_path("a/b", base), PathBuf::from("/etc/use/a/b"));
        assert_eq!(resolve_path("/x/y", base), PathBuf::from("/x/y"));
        assert_eq!(resolve_path("a", None), PathBuf::from("a"));
    }

    #[test]
    fn read_file_capped_takes_exactly_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![7u8; 2048]).unwrap();
        assert_eq!(read_file_capped(&f, 2048, "thing"), Ok(vec![7u8; 2048]));
        std::fs::write(&f, vec![7u8; 2049]).unwrap();
        assert_eq!(
            read_file_capped(&f, 2048, "thing"),
            Err(format!(
                "thing {} is larger than 2 KiB, more than such a file ever needs; check the path",
                f.display()
            ))
        );
        std::fs::write(&f, b"").unwrap();
        assert_eq!(read_file_capped(&f, 2048, "thing"), Ok(vec![]));
        assert_eq!(
            read_file_capped(dir.path(), 2048, "thing"),
            Err(format!(
                "thing {} is not a regular file (a FIFO, device or directory?); give the path \
                 of a plain file",
                dir.path().display()
            ))
        );
        let gone = dir.path().join("gone");
        let e = read_file_capped(&gone, 2048, "thing").unwrap_err();
        assert!(
            e.starts_with(&format!("cannot read thing {}: ", gone.display()))
                && e.ends_with("; check the path and that the exporter's user may read it"),
            "{e}"
        );
        // The documented limits.
        assert_eq!(MAX_SECRET_FILE_BYTES, 65536);
        assert_eq!(MAX_CONFIG_FILE_BYTES, 4 << 20);
    }

    #[test]
    fn type_errors_name_the_dotted_key() {
        for key in ["targets[0]vault_id", "targets[0].vault_id"] {
            assert_eq!(
                type_problem(&format!(
                    "invalid type: string \"x\", expected an integer for key `{key}`"
                )),
                Problem {
                    key: "targets[0].vault_id".into(),
                    message: "invalid type: string \"x\", expected an integer; correct the value"
                        .into(),
                }
            );
        }
        assert_eq!(
            type_problem("something else"),
            Problem {
                key: "file".into(),
                message: "something else".into(),
            }
        );

        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            n: Option<i64>,
        }
        let mut problems = Vec::new();
        assert!(read_table::<T>(&tree("n = 3"), "targets[1]", &mut problems).is_some());
        assert!(problems.is_empty());
        assert!(read_table::<T>(&tree("n = \"x\""), "targets[1]", &mut problems).is_none());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "targets[1].n");
    }

    #[test]
    fn kind_input_tells_the_kind_its_name() {
        assert_eq!(with_input(None, |i| i.kind_name()), ("vault", vec![]));
        assert_eq!(with_input(None, |i| i.url().is_none()), (true, vec![]));
    }
}
