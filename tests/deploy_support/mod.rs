//! Helpers shared by `deploy_rules.rs` and `prometheus_e2e.rs`: where the
//! deploy files are, what they contain, which metrics the exporter really
//! exposes, and what to do when a Prometheus tool is missing.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use upload_session_exporter::metrics::exposition::PagePublisher;
use upload_session_exporter::metrics::Family;
use yaml_rust2::{Yaml, YamlLoader};

/// The alert rules file, relative to the repository.
pub const RULES: &str = "deploy/prometheus/upload_session_alerts.yml";
/// Their `promtool test rules` file.
pub const RULES_TEST: &str = "deploy/prometheus/upload_session_alerts_test.yml";
/// The Grafana dashboard.
pub const DASHBOARD: &str = "deploy/grafana/upload_session_dashboard.json";
/// The runbook the alerts link to.
pub const RUNBOOK: &str = "docs/runbook.md";
/// The scrape job name the exporter-down alerts select.
pub const JOB: &str = "upload_session_exporter";

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Reads a repository file, or panics naming it.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// True if `tool --version` runs. When it does not: panics in CI (`CI`
/// set: `.ci/run` installs Debian's `prometheus` package, which has both
/// tools), otherwise prints `SKIPPED: ...` and returns false.
pub fn tool_available(tool: &str, test: &str) -> bool {
    match std::process::Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{tool} is required in CI (.ci/run installs Debian's prometheus package): {e}"
                );
            }
            eprintln!(
                "SKIPPED: {test}: {tool} not found ({e}); install Debian's `prometheus` package to run it"
            );
            false
        }
    }
}

/// The parsed dashboard.
pub fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).expect("dashboard is JSON")
}

/// Every panel of the dashboard, rows' nested panels included (rows
/// themselves excluded).
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] == "row" {
                walk(&p["panels"], out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// (panel title, expr) of every panel query.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or("").to_string()))
        })
        .collect()
}

/// The dashboard's template variables by name.
pub fn variable<'a>(dashboard: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    dashboard["templating"]["list"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// The query of a query variable (`label_values(...)`).
pub fn variable_query(v: &serde_json::Value) -> String {
    match &v["query"] {
        serde_json::Value::String(s) => s.clone(),
        q => q["query"].as_str().unwrap_or("").to_string(),
    }
}

/// Splits `label_values(selector, label)` into its two arguments.
pub fn label_values_args(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// Parses a repository YAML file (its single document).
pub fn yaml(path: &str) -> Yaml {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path}: empty"))
}

/// The parsed alert rules file.
pub fn rules() -> Yaml {
    yaml(RULES)
}

/// Every alerting rule (a mapping with `alert:`) of a rules document.
pub fn alert_rules(doc: &Yaml) -> Vec<&Yaml> {
    doc["groups"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_vec().into_iter().flatten())
        .filter(|r| !r["alert"].is_badvalue())
        .collect()
}

/// A string field of a YAML mapping ("" if absent or not a string).
pub fn ystr<'a>(v: &'a Yaml, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Every metric name the exporter really exposes: the per-target families,
/// plus what its own registry serves (build info, `process_*`), plus
/// Prometheus's own `up`.
pub fn exposed_metrics() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = Family::ALL.iter().map(|f| f.name().to_string()).collect();
    let page = PagePublisher::new().assemble();
    let text = String::from_utf8_lossy(&page.plain);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_string());
            }
        }
    }
    assert!(
        names.contains("upload_session_exporter_build_info"),
        "the exporter's own registry lost its build info: {names:?}"
    );
    names.insert("up".to_string());
    names
}

/// PromQL keywords and aggregation operators: identifiers that are not
/// metric names even when no `(` follows them directly.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside
/// strings, label matchers, ranges and label lists that are neither
/// keywords nor function calls. Grafana variables (`$x`) are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let (mut braces, mut brackets) = (0i32, 0i32);
    let mut i = 0;
    let ident_start = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || ch == ':';
    let ident_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    while i < c.len() {
        let ch = c[i];
        match ch {
            '"' | '\'' | '`' => {
                i += 1;
                while i < c.len() && c[i] != ch {
                    if c[i] == '\\' && ch != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '{' => {
                braces += 1;
                i += 1;
            }
            '}' => {
                braces -= 1;
                i += 1;
            }
            '[' => {
                brackets += 1;
                i += 1;
            }
            ']' => {
                brackets -= 1;
                i += 1;
            }
            '$' => {
                // A Grafana variable: $name or ${name}.
                i += 1;
                if i < c.len() && c[i] == '{' {
                    while i < c.len() && c[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < c.len() && ident_char(c[i]) {
                        i += 1;
                    }
                }
            }
            _ if braces > 0 || brackets > 0 => i += 1,
            _ if ch.is_ascii_digit()
                || (ch == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                // A number or a duration (1h, 0.10, 1e3).
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                    i += 1;
                }
            }
            _ if ident_start(ch) => {
                let start = i;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                let call = c.get(j) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) && call {
                    // Skip the label names.
                    while j < c.len() && c[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                } else if !call && !KEYWORDS.contains(&word.as_str()) {
                    out.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// `upload_session_*` tokens anywhere in a text (annotation templates).
pub fn upload_session_tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("upload_session_") {
        let tail = &rest[at..];
        let end = tail
            .find(|ch: char| !(ch.is_ascii_lowercase() || ch == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Replaces Grafana's variables by values Prometheus can evaluate.
pub fn substitute(expr: &str, target: &str) -> String {
    let mut e = expr.to_string();
    for (from, to) in [
        ("$__rate_interval", "1m"),
        ("$__range", "1m"),
        ("$__interval", "15s"),
        ("${target}", target),
        ("$target", target),
        ("${owner}", ".*"),
        ("$owner", ".*"),
        ("${job}", JOB),
        ("$job", JOB),
    ] {
        e = e.replace(from, to);
    }
    e
}
