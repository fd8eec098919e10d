//! Property tests of the configuration parser and the exposition encoder
//! (issue 6): any text or key/value combination gives a configuration or
//! an error naming the file, never a panic; a valid generated configuration
//! parses to exactly its values; an escaped label value reads back as the
//! original.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use upload_session_exporter::config::{parse_str, Config, ConfigError, Environment};
use upload_session_exporter::kinds::deepset::{DeepsetConfig, Pagination, DEFAULT_EXPIRED_WINDOW};
use upload_session_exporter::kinds::vault::{VaultConfig, DEFAULT_API_VERSION, DEFAULT_CLIENT_ID};
use upload_session_exporter::logging::LogLevel;
use upload_session_exporter::metrics::text::{sample, Value};

const FILE: &str = "fuzz.toml";

struct Env(HashMap<String, String>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env() -> Env {
    Env(HashMap::from([
        ("PW".to_string(), "pw-secret".to_string()),
        ("KEY".to_string(), "key-secret".to_string()),
        ("EMPTY".to_string(), String::new()),
    ]))
}

/// Parses and checks the error contract: every error names the file.
fn parse_checked(text: &str, env: &Env) -> Result<Config, String> {
    match parse_str(text, FILE, env) {
        Ok(c) => Ok(c),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{FILE}: ")),
                "error does not name the file: {msg:?}\ninput:\n{text}"
            );
            if let ConfigError::Invalid { problems, .. } = &e {
                assert!(!problems.is_empty(), "an invalid file with no problem");
                for line in msg.lines() {
                    assert!(
                        line.starts_with(&format!("{FILE}: ")),
                        "problem line without the file: {line:?}\ninput:\n{text}"
                    );
                }
                assert_eq!(msg.lines().count(), problems.len(), "one line per problem");
            }
            for secret in ["pw-secret", "key-secret"] {
                assert!(!msg.contains(secret), "a secret in an error: {msg}");
            }
            Err(msg)
        }
    }
}

const TABLES: &[&str] = &[
    "[defaults]",
    "[exporter]",
    "[[targets]]",
    "[targets]",
    "[other]",
];
const KEYS: &[&str] = &[
    "name",
    "kind",
    "url",
    "username",
    "password",
    "password_env",
    "password_file",
    "vault_id",
    "resolve_owner_names",
    "workspace",
    "api_key",
    "api_key_env",
    "api_key_file",
    "pagination",
    "expired_window",
    "poll_interval",
    "timeout",
    "stall_after",
    "stale_after",
    "at_risk_horizon",
    "burst_limit_share",
    "burst_limit_reserve",
    "max_response_size",
    "api_version",
    "client_id",
    "max_concurrent_requests",
    "log_level",
    "unknown_key",
];
const WORDS: &[&str] = &[
    "vault",
    "deepset",
    "https://v.example.com",
    "http://127.0.0.1:1/x",
    "ftp://x",
    "https://user:pw@h.example.com",
    "https://h.example.com/?q=1",
    "not a url",
    "60s",
    "1h 30m",
    "0s",
    "50ms",
    "-5s",
    "forever",
    "16MiB",
    "1KB",
    "18446744073709551615GiB",
    "v25.2",
    "v25",
    "25.2",
    "PW",
    "KEY",
    "EMPTY",
    "MISSING",
    "/nonexistent/secret",
    "cursor",
    "page",
    "debug",
    "loud",
    "",
    " ",
    "a\"b",
];

/// A TOML value: mostly well-formed, sometimes not.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(toml_string),
        ".{0,16}".prop_map(|s| toml_string(&s)),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[1, \"two\", 3.0]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("\"unterminated".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        ".{0,8}",
    ]
}

/// TOML's basic string, escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TABLES).prop_map(str::to_string),
        (
            prop_oneof![
                prop::sample::select(KEYS).prop_map(str::to_string),
                "[a-z_]{1,8}"
            ],
            toml_value()
        )
            .prop_map(|(k, v)| format!("{k} = {v}")),
        ".{0,30}",
        Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = parse_checked(&text, &env());
    }

    #[test]
    fn toml_ish_text_never_panics(lines in prop::collection::vec(toml_line(), 0..40)) {
        let _ = parse_checked(&lines.join("\n"), &env());
    }

    /// Tables of known and unknown keys with any values: each parses or
    /// is refused naming the file.
    #[test]
    fn key_value_combinations_never_panic(
        defaults in prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..6),
        exporter in prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..3),
        targets in prop::collection::vec(
            prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..12),
            0..4,
        ),
    ) {
        let mut text = String::new();
        let mut table = |header: &str, kv: &[(&str, String)]| {
            text.push_str(header);
            text.push('\n');
            let mut seen = std::collections::HashSet::new();
            for (k, v) in kv {
                // A repeated key is a TOML error; keep the first so that
                // the validation behind it is reached.
                if seen.insert(*k) {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
        };
        table("[defaults]", &defaults);
        table("[exporter]", &exporter);
        for t in &targets {
            table("[[targets]]", t);
        }
        let _ = parse_checked(&text, &env());
    }
}

// ------------------------------------------------------- valid configurations

#[derive(Debug, Clone)]
struct DurationSpec {
    text: String,
    value: Duration,
}

fn arb_duration(min_secs: u64) -> impl Strategy<Value = DurationSpec> {
    prop_oneof![
        (min_secs.max(1)..100_000u64).prop_map(|s| DurationSpec {
            text: format!("{s}s"),
            value: Duration::from_secs(s),
        }),
        (min_secs.div_ceil(60).max(1)..2_000u64).prop_map(|m| DurationSpec {
            text: format!("{m}m"),
            value: Duration::from_secs(m * 60),
        }),
        (1u64..48, 0u64..60).prop_map(|(h, m)| DurationSpec {
            text: format!("{h}h {m}m"),
            value: Duration::from_secs(h * 3600 + m * 60),
        }),
    ]
}

fn arb_size() -> impl Strategy<Value = (String, u64)> {
    prop_oneof![
        (1024u64..100_000_000).prop_map(|n| (n.to_string(), n)),
        (1u64..100_000).prop_map(|n| (format!("{n}KiB"), n * 1024)),
        (2u64..100_000).prop_map(|n| (format!("{n}KB"), n * 1000)),
        (1u64..4096).prop_map(|n| (format!("{n}MiB"), n * 1024 * 1024)),
        (1u64..64).prop_map(|n| (format!("{n}GB"), n * 1_000_000_000)),
    ]
}

/// The per-target (or `[defaults]`) settings, each maybe set.
#[derive(Debug, Clone)]
struct Settings {
    poll_interval: Option<DurationSpec>,
    timeout: Option<DurationSpec>,
    stall_after: Option<DurationSpec>,
    stale_after: Option<DurationSpec>,
    at_risk_horizon: Option<DurationSpec>,
    share: Option<f64>,
    reserve: Option<f64>,
    size: Option<(String, u64)>,
}

fn arb_settings() -> impl Strategy<Value = Settings> {
    (
        proptest::option::of(arb_duration(1)),
        proptest::option::of(arb_duration(1)),
        proptest::option::of(arb_duration(1)),
        proptest::option::of(arb_duration(1)),
        proptest::option::of(arb_duration(0)),
        proptest::option::of((1u32..=1000).prop_map(|n| f64::from(n) / 1000.0)),
        proptest::option::of((0u32..1000).prop_map(|n| f64::from(n) / 1000.0)),
        proptest::option::of(arb_size()),
    )
        .prop_map(
            |(
                poll_interval,
                timeout,
                stall_after,
                stale_after,
                at_risk_horizon,
                share,
                reserve,
                size,
            )| {
                Settings {
                    poll_interval,
                    timeout,
                    stall_after,
                    stale_after,
                    at_risk_horizon,
                    share,
                    reserve,
                    size,
                }
            },
        )
}

impl Settings {
    /// The keys as TOML; the Vault budget keys only where they may stand
    /// (`[defaults]` and Vault targets).
    fn toml(&self, out: &mut String, budget_keys: bool) {
        let mut d = |k: &str, v: &Option<DurationSpec>| {
            if let Some(v) = v {
                out.push_str(&format!("{k} = \"{}\"\n", v.text));
            }
        };
        d("poll_interval", &self.poll_interval);
        d("timeout", &self.timeout);
        d("stall_after", &self.stall_after);
        d("stale_after", &self.stale_after);
        d("at_risk_horizon", &self.at_risk_horizon);
        if let Some(s) = self.share.filter(|_| budget_keys) {
            out.push_str(&format!("burst_limit_share = {s:?}\n"));
        }
        if let Some(r) = self.reserve.filter(|_| budget_keys) {
            out.push_str(&format!("burst_limit_reserve = {r:?}\n"));
        }
        if let Some((s, _)) = &self.size {
            out.push_str(&format!("max_response_size = \"{s}\"\n"));
        }
    }
}

#[derive(Debug, Clone)]
enum KindSpec {
    Vault {
        username: String,
        api_version: Option<String>,
        client_id: Option<String>,
        vault_id: Option<u32>,
        resolve: Option<bool>,
    },
    Deepset {
        workspace: String,
        pagination: Option<bool>,
        expired_window: Option<DurationSpec>,
    },
}

#[derive(Debug, Clone)]
struct TargetSpec {
    url: String,
    settings: Settings,
    kind: KindSpec,
}

fn arb_kind() -> impl Strategy<Value = KindSpec> {
    prop_oneof![
        (
            "[a-z]{1,10}@[a-z]{1,8}\\.com",
            proptest::option::of((1u32..99, 0u32..9).prop_map(|(a, b)| format!("v{a}.{b}"))),
            proptest::option::of("[A-Za-z0-9._-]{1,100}"),
            proptest::option::of(1u32..),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(username, api_version, client_id, vault_id, resolve)| {
                KindSpec::Vault {
                    username,
                    api_version,
                    client_id,
                    vault_id,
                    resolve,
                }
            }),
        (
            "[A-Za-z0-9_-]{1,20}",
            proptest::option::of(any::<bool>()),
            proptest::option::of(arb_duration(0)),
        )
            .prop_map(
                |(workspace, pagination, expired_window)| KindSpec::Deepset {
                    workspace,
                    pagination,
                    expired_window,
                }
            ),
    ]
}

fn arb_target() -> impl Strategy<Value = TargetSpec> {
    (
        (
            prop::sample::select(vec!["https", "http"]),
            // "h..." never starts with "xn--" (punycode, refused unless valid).
            "h[a-z0-9-]{0,20}",
            proptest::option::of(1u16..),
            proptest::option::of("[a-z0-9]{1,8}"),
        )
            .prop_map(|(scheme, host, port, path)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let path = path.map(|p| format!("/{p}")).unwrap_or_default();
                format!("{scheme}://{host}.example.com{port}{path}")
            }),
        arb_settings(),
        arb_kind(),
    )
        .prop_map(|(url, settings, kind)| TargetSpec {
            url,
            settings,
            kind,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A valid generated configuration parses to exactly its values, with
    /// `[defaults]` applied where a target does not set a key.
    #[test]
    fn valid_configs_parse_exactly(
        defaults in arb_settings(),
        requests in proptest::option::of(1u32..=1024),
        level in proptest::option::of(prop::sample::select(vec!["debug", "info", "warn", "error"])),
        targets in prop::collection::vec(arb_target(), 1..5),
    ) {
        let mut text = String::from("[defaults]\n");
        defaults.toml(&mut text, true);
        text.push_str("\n[exporter]\n");
        if let Some(n) = requests {
            text.push_str(&format!("max_concurrent_requests = {n}\n"));
        }
        if let Some(l) = level {
            text.push_str(&format!("log_level = \"{l}\"\n"));
        }
        for (i, t) in targets.iter().enumerate() {
            text.push_str(&format!("\n[[targets]]\nname = \"t{i}.x:y-z\"\nurl = \"{}\"\n", t.url));
            t.settings.toml(&mut text, matches!(t.kind, KindSpec::Vault { .. }));
            match &t.kind {
                KindSpec::Vault { username, api_version, client_id, vault_id, resolve } => {
                    text.push_str(&format!("kind = \"vault\"\nusername = \"{username}\"\npassword_env = \"PW\"\n"));
                    if let Some(v) = api_version { text.push_str(&format!("api_version = \"{v}\"\n")); }
                    if let Some(c) = client_id { text.push_str(&format!("client_id = \"{c}\"\n")); }
                    if let Some(v) = vault_id { text.push_str(&format!("vault_id = {v}\n")); }
                    if let Some(r) = resolve { text.push_str(&format!("resolve_owner_names = {r}\n")); }
                }
                KindSpec::Deepset { workspace, pagination, expired_window } => {
                    text.push_str(&format!("kind = \"deepset\"\nworkspace = \"{workspace}\"\napi_key_env = \"KEY\"\n"));
                    if let Some(p) = pagination {
                        text.push_str(&format!("pagination = \"{}\"\n", if *p { "page" } else { "cursor" }));
                    }
                    if let Some(w) = expired_window { text.push_str(&format!("expired_window = \"{}\"\n", w.text)); }
                }
            }
        }
        let config = match parse_checked(&text, &env()) {
            Ok(c) => c,
            Err(e) => panic!("a valid configuration was refused: {e}\n{text}"),
        };
        prop_assert_eq!(config.exporter.max_concurrent_requests, requests.map_or(32, |n| n as usize));
        prop_assert_eq!(config.exporter.log_level, level.and_then(LogLevel::parse));
        prop_assert_eq!(config.targets.len(), targets.len());
        for (i, (got, want)) in config.targets.iter().zip(&targets).enumerate() {
            let pick = |t: &Option<DurationSpec>, d: &Option<DurationSpec>| {
                t.as_ref().or(d.as_ref()).map(|s| s.value)
            };
            let (s, d) = (&want.settings, &defaults);
            let poll = pick(&s.poll_interval, &d.poll_interval).unwrap_or(Duration::from_secs(60));
            prop_assert_eq!(&got.name, &format!("t{i}.x:y-z"));
            let want_url = url::Url::parse(&want.url).unwrap();
            prop_assert_eq!(got.url.as_str(), want_url.as_str());
            prop_assert_eq!(got.poll_interval, poll);
            prop_assert_eq!(got.timeout, pick(&s.timeout, &d.timeout).unwrap_or(Duration::from_secs(15)));
            prop_assert_eq!(got.stall_after, pick(&s.stall_after, &d.stall_after).unwrap_or(Duration::from_secs(1800)));
            prop_assert_eq!(got.stale_after, pick(&s.stale_after, &d.stale_after).unwrap_or(poll * 5));
            prop_assert_eq!(got.at_risk_horizon, pick(&s.at_risk_horizon, &d.at_risk_horizon).unwrap_or(Duration::from_secs(12 * 3600)));
            prop_assert_eq!(
                got.max_response_bytes,
                s.size.as_ref().or(d.size.as_ref()).map_or(16 * 1024 * 1024, |(_, n)| *n)
            );
            match (got.settings::<VaultConfig>(), got.settings::<DeepsetConfig>(), &want.kind) {
                (Some(v), None, KindSpec::Vault { username, api_version, client_id, vault_id, resolve }) => {
                    prop_assert_eq!(v.burst_limit_share, s.share.or(d.share).unwrap_or(0.05));
                    prop_assert_eq!(v.burst_limit_reserve, s.reserve.or(d.reserve).unwrap_or(0.1));
                    prop_assert_eq!(&v.username, username);
                    prop_assert_eq!(v.password.expose(), "pw-secret");
                    prop_assert_eq!(v.api_version.as_str(), api_version.as_deref().unwrap_or(DEFAULT_API_VERSION));
                    prop_assert_eq!(v.client_id.as_str(), client_id.as_deref().unwrap_or(DEFAULT_CLIENT_ID));
                    prop_assert_eq!(v.vault_id, vault_id.map(u64::from));
                    prop_assert_eq!(v.resolve_owner_names, resolve.unwrap_or(false));
                }
                (None, Some(ds), KindSpec::Deepset { workspace, pagination, expired_window }) => {
                    prop_assert_eq!(&ds.workspace, workspace);
                    prop_assert_eq!(ds.api_key.expose(), "key-secret");
                    let p = if pagination.unwrap_or(false) { Pagination::Page } else { Pagination::Cursor };
                    prop_assert_eq!(ds.pagination, p);
                    prop_assert_eq!(
                        ds.expired_window,
                        expired_window.as_ref().map_or(DEFAULT_EXPIRED_WINDOW, |w| w.value)
                    );
                }
                _ => panic!("kind {:?} for {:?}", got.kind, want.kind),
            }
        }
    }
}

// ------------------------------------------------------ label escaping

/// A sample read back: name, label pairs (values unescaped), value.
type Line = (String, Vec<(String, String)>, String);

/// Reads one sample line written by `sample`; `None` if the line is not
/// well-formed exposition.
fn read_line(line: &str) -> Option<Line> {
    let body = line.strip_suffix('\n')?;
    if body.contains('\n') {
        return None; // a raw newline would split the sample
    }
    let open = body.find(['{', ' '])?;
    let name = body[..open].to_string();
    let mut rest = &body[open..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let r = rest.strip_prefix(',').unwrap_or(rest);
            let eq = r.find("=\"")?;
            let key = r[..eq].to_string();
            let mut chars = r[eq + 2..].char_indices();
            let mut value = String::new();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => return None, // no other escapes exist
                    },
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            rest = &r[eq + 2 + end + 1..];
        }
    }
    let value = rest.strip_prefix(' ')?.to_string();
    Some((name, labels, value))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn escaped_label_values_read_back(
        values in prop::collection::vec(
            prop_oneof![
                ".*",
                "[\\\\\"\n{}=, a]{0,12}",
                Just("\\\"\n\\n\\\\\"".to_string()),
            ],
            1..4,
        ),
        n: u64,
    ) {
        let keys = ["target", "owner_id", "owner_name"];
        let labels: Vec<(&str, &str)> = keys.iter().zip(&values).map(|(k, v)| (*k, v.as_str())).collect();
        let mut out = String::new();
        sample(&mut out, "upload_session_owner_info", &labels, Value::U(n));
        let (name, read, value) = read_line(&out).unwrap_or_else(|| panic!("not a sample line: {out:?}"));
        prop_assert_eq!(name, "upload_session_owner_info");
        prop_assert_eq!(value, n.to_string());
        let want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        prop_assert_eq!(read, want);
    }
}
