//! The alerting and dashboard deliverables under `deploy/`: promtool accepts
//! the rules and their unit tests pass, every alert follows the conventions
//! and links a runbook section that exists, and the rules and the dashboard
//! use only metrics the exporter really exposes.

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use deploy_support::*;

/// The alerts the rules file must define (removing one is a decision to
/// make here, not an accident).
const ALERTS: &[&str] = &[
    "UploadSessionStalled",
    "UploadSessionAtRisk",
    "UploadSessionExpired",
    "UploadSessionAwaitingCommit",
    "UploadSessionIngestionFailed",
    "UploadSessionS3UploadsNeverExpire",
    "UploadSessionTargetDown",
    "UploadSessionDataStale",
    "UploadSessionApiBudgetLow",
    "UploadSessionExporterDown",
    "UploadSessionExporterAbsent",
    "UploadSessionExporterConfigReloadFailed",
];

/// Runs promtool from the repository root; `None` when it is missing
/// outside CI.
fn promtool(args: &[&str], test: &str) -> Option<(bool, String)> {
    if !tool_available("promtool", test) {
        return None;
    }
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo("."))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn promtool_check_rules_accepts_every_rule() {
    let Some((ok, out)) = promtool(&["check", "rules", RULES], "promtool check rules") else {
        return;
    };
    assert!(ok, "promtool check rules failed:\n{out}");
    let n = alert_rules(&rules()).len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "expected {n} rules:\n{out}"
    );
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let Some((ok, out)) = promtool(&["test", "rules", RULES_TEST], "promtool test rules") else {
        return;
    };
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn promtool_accepts_the_example_config() {
    let Some((ok, out)) = promtool(
        &[
            "check",
            "config",
            "deploy/prometheus/prometheus.example.yml",
        ],
        "promtool check config",
    ) else {
        return;
    };
    assert!(ok, "promtool check config failed:\n{out}");
}

/// GitHub-style anchors of the runbook's `## ` headings.
fn runbook_anchors() -> BTreeSet<String> {
    read(RUNBOOK)
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn alert_rules_follow_the_conventions() {
    let doc = rules();
    let rules = alert_rules(&doc);
    let names: Vec<&str> = rules.iter().map(|r| ystr(r, "alert")).collect();
    assert_eq!(
        names.iter().copied().collect::<BTreeSet<_>>(),
        ALERTS.iter().copied().collect::<BTreeSet<_>>(),
        "the alert set changed"
    );
    assert_eq!(
        names.len(),
        ALERTS.len(),
        "duplicate alert names: {names:?}"
    );
    let anchors = runbook_anchors();
    let exposed = exposed_metrics();
    for r in &rules {
        let name = ystr(r, "alert");
        assert!(
            name.starts_with("UploadSession") && !name.contains('_'),
            "{name}: CamelCase with the UploadSession prefix"
        );
        let severity = ystr(&r["labels"], "severity");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let ann = &r["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            assert!(!ystr(ann, key).trim().is_empty(), "{name}: no {key}");
        }
        let url = ystr(ann, "runbook_url");
        let (page, anchor) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}: runbook_url without an anchor: {url}"));
        assert!(page.ends_with("/docs/runbook.md"), "{name}: {url}");
        assert_eq!(anchor, name.to_lowercase(), "{name}: anchor of {url}");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/runbook.md has no section #{anchor} (has {anchors:?})"
        );

        // Per-owner alerts open the owner's sessions on the exporter.
        if ystr(ann, "summary").contains("$labels.owner_id") {
            assert_eq!(
                ystr(ann, "sessions_url"),
                "http://{{ $labels.instance }}/sessions?target={{ $labels.target | urlquery }}&owner_id={{ $labels.owner_id | urlquery }}",
                "{name}: sessions_url"
            );
        }

        let expr = ystr(r, "expr");
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{name}: no metric in {expr}");
        for m in &used {
            assert!(
                exposed.contains(m),
                "{name}: {m} is not exposed by the exporter (expr: {expr})"
            );
        }
        // Metrics named in annotation templates (queries, hints); the job
        // name is the only other upload_session_ token allowed there.
        for key in ["summary", "description"] {
            for m in upload_session_tokens(ystr(ann, key)) {
                assert!(
                    exposed.contains(&m) || m == JOB,
                    "{name}: {key} names {m}, which the exporter does not expose"
                );
            }
        }
        // The `up` series itself (not `upload_session_target_up{`).
        let selects_up = expr.match_indices("up{").any(|(i, _)| {
            !expr[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if selects_up {
            assert!(
                expr.contains(&format!("job=\"{JOB}\"")),
                "{name}: up must select job=\"{JOB}\""
            );
        }
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let doc = yaml(RULES_TEST);
    // alertname -> (a case where it fires, a case where it must not).
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for t in doc["tests"].as_vec().expect("tests") {
        for case in t["alert_rule_test"].as_vec().into_iter().flatten() {
            let name = ystr(case, "alertname").to_string();
            let exp = case["exp_alerts"].as_vec().map(Vec::len).unwrap_or(0);
            let e = seen.entry(name.clone()).or_default();
            if exp > 0 {
                e.0 = true;
                for a in case["exp_alerts"].as_vec().into_iter().flatten() {
                    let ann = &a["exp_annotations"];
                    assert!(
                        !ystr(ann, "summary").is_empty() && !ystr(ann, "description").is_empty(),
                        "{name}: firing cases check the annotations exactly"
                    );
                    assert!(
                        !ystr(&a["exp_labels"], "severity").is_empty(),
                        "{name}: firing cases check the labels exactly"
                    );
                }
            } else {
                e.1 = true;
            }
        }
    }
    for name in ALERTS {
        let (fires, quiet) = seen.get(*name).copied().unwrap_or_default();
        assert!(fires, "{name}: no unit test where it fires");
        assert!(quiet, "{name}: no unit test where it must not fire");
    }
}

#[test]
fn metric_name_extraction_sees_only_selected_metrics() {
    let e = r#"sum by (target) (rate(upload_session_api_requests_total{target=~"$target", x="up"}[$__rate_interval]))
  * on (target, owner_id) group_left (owner_name) group by (target, owner_id, owner_name) (upload_session_owner_info)
  or time() - upload_session_last_success_timestamp_seconds offset 1h > 0.10 and up"#;
    let names: Vec<String> = metric_names(e).into_iter().collect();
    assert_eq!(
        names,
        [
            "up",
            "upload_session_api_requests_total",
            "upload_session_last_success_timestamp_seconds",
            "upload_session_owner_info"
        ]
    );
    assert!(metric_names("bottomk(10, not_exposed_metric)").contains("not_exposed_metric"));
    assert!(!exposed_metrics().contains("not_exposed_metric"));
    assert_eq!(
        substitute("x{target=~\"$target\"}[$__rate_interval]", "t"),
        "x{target=~\"t\"}[1m]"
    );
}

#[test]
fn dashboard_panels_query_only_exposed_metrics() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_i64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let exposed = exposed_metrics();
    let panels = panels(&d);
    assert!(panels.len() >= 20, "only {} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(ids.insert(p["id"].as_i64()), "{title}: duplicate panel id");
        assert!(p["gridPos"]["w"].as_i64().is_some(), "{title}: no gridPos");
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title}: empty expr");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: no metric in {expr}");
            for m in names {
                assert!(
                    exposed.contains(&m),
                    "{title}: {m} is not exposed by the exporter (expr: {expr})"
                );
                used.insert(m);
            }
            // Only variables the dashboard defines, or Grafana's own.
            for var in expr.split('$').skip(1) {
                let var: String = var
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    var.starts_with("__") || variable(&d, &var).is_some(),
                    "{title}: undefined variable ${var}"
                );
            }
        }
    }
    // The views the dashboard exists for.
    for m in [
        "upload_session_target_up",
        "upload_session_sessions",
        "upload_session_uploaded_bytes",
        "upload_session_size_bytes",
        "upload_session_next_expiry_timestamp_seconds",
        "upload_session_stalled_sessions",
        "upload_session_at_risk_sessions",
        "upload_session_awaiting_commit_sessions",
        "upload_session_ended_total",
        "upload_session_owner_info",
        "upload_session_api_burst_limit_remaining",
        "upload_session_api_burst_limit",
        "upload_session_api_requests_total",
        "upload_session_api_response_delay_seconds",
        "upload_session_poll_interval_seconds",
        "upload_session_poll_duration_seconds",
        "upload_session_poll_errors_total",
        "upload_session_last_success_timestamp_seconds",
        "upload_session_exporter_build_info",
    ] {
        assert!(used.contains(m), "no panel shows {m}");
    }
    let exprs = dashboard_exprs(&d);
    assert!(
        exprs.iter().filter(|(_, e)| e.contains("$target")).count() >= 10,
        "panels must follow the target variable"
    );
    assert!(
        exprs.iter().filter(|(_, e)| e.contains("$owner")).count() >= 10,
        "per-owner panels must follow the owner variable"
    );
}

#[test]
fn dashboard_variables_select_the_datasource_target_and_owner() {
    let d = dashboard();
    let ds = variable(&d, "datasource").expect("a datasource variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let exposed = exposed_metrics();
    for (name, label) in [("target", "target"), ("owner", "owner_id"), ("job", "job")] {
        let v = variable(&d, name).unwrap_or_else(|| panic!("no {name} variable"));
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        let q = variable_query(v);
        let (selector, l) =
            label_values_args(&q).unwrap_or_else(|| panic!("{name}: not label_values(): {q}"));
        assert_eq!(l, label, "{name}: {q}");
        for m in metric_names(&selector) {
            assert!(exposed.contains(&m), "{name}: {m} is not exposed");
        }
    }
    for name in ["target", "owner"] {
        let v = variable(&d, name).expect("variable");
        assert_eq!(v["multi"], true, "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".*", "{name}");
    }
}

#[test]
fn dashboard_owner_tables_link_to_the_sessions_page() {
    let d = dashboard();
    let url = variable(&d, "exporter_url").expect("an exporter_url variable");
    assert_eq!(url["type"], "textbox");
    let mut linked = 0;
    for p in panels(&d) {
        let owner_table = p["type"] == "table"
            && p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["expr"].as_str().unwrap_or("").contains("owner_id"));
        if !owner_table {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?");
        let links: Vec<&str> = p["fieldConfig"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["matcher"]["options"] == "owner_id")
            .flat_map(|o| o["properties"].as_array().into_iter().flatten())
            .filter(|prop| prop["id"] == "links")
            .flat_map(|prop| prop["value"].as_array().into_iter().flatten())
            .filter_map(|l| l["url"].as_str())
            .collect();
        assert_eq!(
            links,
            ["${exporter_url}/sessions?target=${__data.fields.target:percentencode}&owner_id=${__data.fields.owner_id:percentencode}"],
            "{title}: the owner column links to /sessions"
        );
        linked += 1;
    }
    assert!(linked >= 5, "only {linked} owner tables link to /sessions");
}
