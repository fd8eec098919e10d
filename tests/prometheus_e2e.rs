//! End to end with a real Prometheus: the in-process simulator and exporter,
//! Debian's `prometheus` binary scraping the exporter every second and
//! evaluating the shipped alert rules, and assertions through Prometheus's
//! HTTP API: the target is up, values are exact, every dashboard query
//! evaluates, and a stalled upload raises UploadSessionStalled.
//!
//! Prometheus loads a COPY of `deploy/prometheus/upload_session_alerts.yml`
//! in which every `for:` is shortened to 2s so the test takes seconds, not
//! hours; the exprs, labels and annotations are the shipped ones (the test
//! checks that the copy's exprs are identical).

mod common;
mod deploy_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{start_exporter, vault_spec, vault_target};
use deploy_support::*;
use serde_json::Value;
use time::OffsetDateTime;
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_exporter::kinds::deepset::DeepsetConfig;
use upload_session_exporter::secret::Secret;
use upload_session_sim::{
    DeepsetSessionSeed, DeepsetUser, FileSeed, SessionSeed, SimConfig, Simulator, VaultControl,
};
use yaml_rust2::{Yaml, YamlEmitter};

const TARGET: &str = "vault-e2e";
const DEEPSET_TARGET: &str = "deepset-e2e";
/// The S3 bucket target as published: `<name>:<bucket>`.
const S3_TARGET: &str = "s3-e2e:e2e-bucket";
const S3_OWNER: &str = "arn:aws:iam::111122223333:user/e2e";
/// A deepset user whose closed session has a file that failed ingestion.
const DEEPSET_OWNER: &str = "0b5e8f1c-3d2a-4c6b-9e7f-112233445566";
/// Fully uploaded, never committed: static, so its bytes can be compared.
const OWNER_AWAITING: u64 = 10001401;
/// Uploading a part every 250 ms, expiring in 5 minutes: moving, at risk.
const OWNER_MOVING: u64 = 10001402;
/// Uploading until its session expires a few seconds into the test.
const OWNER_EXPIRING: u64 = 10001403;
/// Gets a session whose last byte is an hour old, mid-test.
const OWNER_STALLED: u64 = 10001404;
/// Commits (the session leaves the list) mid-test.
const OWNER_COMMITTING: u64 = 10001405;
const MIB: u64 = 1024 * 1024;

/// Kills the Prometheus child process when dropped (also on panic).
struct PrometheusGuard {
    child: Child,
    log: std::path::PathBuf,
}

impl PrometheusGuard {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PrometheusGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The shipped rules with every `for:` shortened; exprs untouched.
fn quick_rules_copy(dir: &Path) -> std::path::PathBuf {
    let original = rules();
    let mut copy = original.clone();
    let key = Yaml::String("for".into());
    for group in copy["groups"].as_mut_vec().expect("groups") {
        for rule in group["rules"].as_mut_vec().expect("rules") {
            if let Some(m) = rule.as_mut_hash() {
                if m.contains_key(&key) {
                    m.insert(key.clone(), Yaml::String("2s".into()));
                }
            }
        }
    }
    let exprs = |doc: &Yaml| -> Vec<String> {
        alert_rules(doc)
            .iter()
            .map(|r| r["expr"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(exprs(&original), exprs(&copy), "the copy keeps every expr");
    let path = dir.join("upload_session_alerts.yml");
    let mut text = String::new();
    YamlEmitter::new(&mut text).dump(&copy).expect("yaml");
    std::fs::write(&path, text).expect("write rules");
    path
}

/// `scrape_protocols` (Prometheus 2.49 and later) limited to OpenMetrics 1.0;
/// older versions (Debian bookworm ships 2.42) have no such setting but
/// already offer `application/openmetrics-text;version=1.0.0` first.
fn openmetrics_only() -> &'static str {
    let out = Command::new("prometheus")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "prometheus, version 2.42.0+ds (branch: ..."
    let version: Vec<u32> = out
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .filter_map(|n| n.parse().ok())
        .collect();
    if version.as_slice() >= [2, 49].as_slice() {
        "    scrape_protocols: [OpenMetricsText1.0.0]\n"
    } else {
        ""
    }
}

fn start_prometheus(dir: &Path, exporter: SocketAddr, rules: &Path) -> (PrometheusGuard, String) {
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: {JOB}\n{protocols}    static_configs:\n      - targets: ['{exporter}']\n",
        rules = rules.display(),
        protocols = openmetrics_only(),
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("prometheus starts");
    (
        PrometheusGuard { child, log },
        format!("http://127.0.0.1:{port}"),
    )
}

/// A small client of Prometheus's HTTP API.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() || body["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// An instant query's result vector (error text on failure).
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            Some("scalar") => Ok(vec![data["result"].clone()]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// The single value of a query, if it has exactly one.
    async fn value(&self, expr: &str) -> Option<String> {
        let r = self.query(expr).await.ok()?;
        match r.as_slice() {
            [one] => one["value"][1].as_str().map(str::to_string),
            _ => None,
        }
    }

    async fn alerts(&self) -> Vec<Value> {
        self.get("/api/v1/alerts", &[])
            .await
            .ok()
            .and_then(|d| d["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The state of alert `name` for `owner` (any owner if `None`).
    async fn alert_state(&self, name: &str, owner: Option<u64>) -> Option<(String, Value)> {
        self.alerts().await.into_iter().find_map(|a| {
            let matches = a["labels"]["alertname"] == name
                && owner.is_none_or(|o| a["labels"]["owner_id"] == o.to_string().as_str());
            matches.then(|| (a["state"].as_str().unwrap_or("").to_string(), a))
        })
    }
}

/// The deepset workspace of `sim`, polled every second.
fn deepset_target(sim: &Simulator) -> upload_session_exporter::config::TargetConfig {
    let mut t = vault_target(sim, DEEPSET_TARGET, "main");
    t.url = sim.deepset_url().parse().expect("deepset url");
    t.poll_interval = Duration::from_secs(1);
    t.kind = Box::new(DeepsetConfig::new(
        "default",
        Secret::new(upload_session_sim::deepset::DEMO_API_KEY),
    ));
    t
}

fn seed(owner: u64, file: &str, size: u64, uploaded: u64, now: OffsetDateTime) -> SessionSeed {
    let mut s = SessionSeed::new(format!("/u{owner}/{file}"), owner, size, now);
    s.uploaded = uploaded;
    s.uploaded_parts = u32::try_from(uploaded.div_ceil(5 * MIB)).expect("parts");
    s
}

/// Sessions whose figures the test knows; returns the ids of the moving,
/// expiring and committing sessions.
fn seed_sessions(vault: &VaultControl) -> (String, String, String) {
    let now = vault.now();
    let mut awaiting = seed(OWNER_AWAITING, "dossier.zip", 123_456_789, 123_456_789, now);
    awaiting.created = now - time::Duration::minutes(10);
    awaiting.last_uploaded = now - time::Duration::minutes(1);
    vault.insert_session(awaiting);

    // 10 GiB, 5 MiB every 250 ms (~20 MiB/s): ~8.5 min to go, 5 min left.
    let mut moving = seed(OWNER_MOVING, "video.mp4", 2000 * 5 * MIB, 5 * MIB, now);
    moving.created = now - time::Duration::hours(72) + time::Duration::minutes(5);
    moving.expiration = now + time::Duration::minutes(5);
    let moving = vault.insert_session(moving);

    let mut expiring = seed(OWNER_EXPIRING, "scan.pdf", 2000 * 5 * MIB, 5 * MIB, now);
    expiring.created = now - time::Duration::hours(72) + time::Duration::seconds(6);
    expiring.expiration = now + time::Duration::seconds(6);
    let expiring = vault.insert_session(expiring);

    let committing =
        vault.insert_session(seed(OWNER_COMMITTING, "done.csv", 5 * MIB, 5 * MIB, now));
    (moving, expiring, committing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_evaluates_the_dashboard_and_alerts_on_a_stall() {
    if !tool_available("prometheus", "prometheus_e2e") {
        return;
    }
    let started = Instant::now();
    let mut sim_config = SimConfig::idle();
    sim_config.vaults = vec![vault_spec("main", 1000)];
    sim_config.deepset[0].users.push(DeepsetUser::new(
        DEEPSET_OWNER,
        "Amara",
        "Okafor",
        "amara-api-key",
    ));
    // An S3 bucket with one incomplete upload and a 1-day abort rule.
    let mut s3 = upload_session_sim::S3Spec::new();
    let mut bucket = upload_session_sim::S3BucketSpec::new("e2e-bucket");
    bucket.lifecycle = Some(vec![upload_session_sim::LifecycleRule::abort_after(
        "abort", "", 1,
    )]);
    let mut upload = upload_session_sim::S3UploadSeed::new(
        "incoming/e2e.bin",
        upload_session_sim::S3Identity::new(S3_OWNER, "e2e"),
        OffsetDateTime::now_utc() - time::Duration::minutes(10),
    );
    upload.parts = vec![(1, 5 * MIB), (2, 3 * MIB)];
    bucket.uploads.push(upload);
    s3.buckets.push(bucket);
    // And one without any lifecycle rule, for the dashboard's "uploads
    // without expiry" panels.
    let mut norule = upload_session_sim::S3BucketSpec::new("e2e-norule");
    norule.uploads.push(upload_session_sim::S3UploadSeed::new(
        "stuck.bin",
        upload_session_sim::S3Identity::new(S3_OWNER, "e2e"),
        OffsetDateTime::now_utc() - time::Duration::days(2),
    ));
    s3.buckets.push(norule);
    sim_config.s3 = Some(s3);
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), sim_config)
        .await
        .expect("simulator starts");
    let vault = sim.vault("main").expect("vault");
    let (moving, expiring, committing) = seed_sessions(&vault);
    // A closed deepset session: one file ingested, one refused.
    let workspace = sim.deepset("default").expect("deepset workspace");
    let mut closed = DeepsetSessionSeed::open(DEEPSET_OWNER, workspace.now());
    closed.status = "CLOSED".into();
    closed.files = vec![
        FileSeed::ingested("report.pdf", 2048),
        FileSeed::ingested("scan.xyz", 4096),
    ];
    workspace.insert_session(closed);

    // Keep two uploads moving, as a client would.
    let uploader = {
        let vault = vault.clone();
        tokio::spawn(async move {
            loop {
                vault.add_synthetic_part(&moving, 5 * MIB);
                vault.add_synthetic_part(&expiring, 5 * MIB);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let mut target = vault_target(&sim, TARGET, "main");
    target.poll_interval = Duration::from_secs(1);
    target.stall_after = Duration::from_secs(2);
    target.stale_after = Duration::from_secs(30);
    // A poll a second is 300 calls per 5-minute window: allow it (the sim's
    // burst limit is 2000), or budget protection stretches the interval.
    common::vault_cfg(&mut target).burst_limit_share = 1.0;
    let config = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: [vec![target, deepset_target(&sim)], s3_targets(&sim)].concat(),
    };
    let exporter = start_exporter(config).await;

    // Declared before the guard, so Prometheus is killed before its
    // storage directory is removed.
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_copy = quick_rules_copy(dir.path());
    let (prom, base) = start_prometheus(dir.path(), exporter.addr(), &rules_copy);
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let metrics_url = format!("http://{}/metrics", exporter.addr());
    let result = run(&api, &vault, &committing).await;
    let result = match result {
        Ok(()) => s3_as_prometheus_sees_it(&api).await,
        e => e,
    };
    let result = match result {
        Ok(()) => scraped_as_openmetrics(&api, &metrics_url).await,
        e => e,
    };
    if let Err(msg) = result {
        panic!("{msg}\n--- prometheus log:\n{}", prom.log());
    }
    eprintln!("prometheus e2e took {:?}", started.elapsed());
    uploader.abort();
    drop(prom);
    exporter.stop().await;
    sim.shutdown().await;
}

/// The S3 bucket targets of `sim`, polled every second, signed with the
/// simulator's demo key (read through the configuration, as a user would).
fn s3_targets(sim: &Simulator) -> Vec<upload_session_exporter::config::TargetConfig> {
    struct Env;
    impl upload_session_exporter::config::Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "K" => Some(upload_session_sim::S3_DEMO_ACCESS_KEY_ID.to_string()),
                "S" => Some(upload_session_sim::S3_DEMO_SECRET_ACCESS_KEY.to_string()),
                _ => None,
            }
        }
    }
    let url = sim.s3_url().expect("an S3 listener");
    let toml = format!(
        "[[targets]]\nname = \"s3-e2e\"\nkind = \"s3\"\nurl = \"{url}\"\n\
         buckets = [\"e2e-bucket\", \"e2e-norule\"]\naccess_key_id_env = \"K\"\nsecret_access_key_env = \"S\"\n\
         poll_interval = \"1s\"\n\
         # Long: the stall alert of this test is for the Vault's stall.\n\
         stall_after = \"7d\"\n"
    );
    upload_session_exporter::config::parse_str(&toml, "e2e.toml", &Env)
        .expect("valid")
        .targets
}

/// The S3 bucket as Prometheus stores it: exact figures of the seeded
/// upload and the rule gauge.
async fn s3_as_prometheus_sees_it(api: &Api) -> Result<(), String> {
    let o = |m: &str| format!("{m}{{target=\"{S3_TARGET}\",owner_id=\"{S3_OWNER}\"}}");
    for (q, want) in [
        (
            format!("upload_session_target_up{{target=\"{S3_TARGET}\",kind=\"s3\"}}"),
            "1".to_string(),
        ),
        (o("upload_session_uploaded_bytes"), (8 * MIB).to_string()),
        (o("upload_session_uploaded_parts"), "2".to_string()),
        (
            format!("upload_session_abort_after_seconds{{target=\"{S3_TARGET}\"}}"),
            "86400".to_string(),
        ),
    ] {
        let got = wait_for_ok(&q, Duration::from_secs(30), || api.value(&q)).await?;
        check(got == want, format!("{q}: {got}, want {want}"))?;
    }
    // The bucket without a rule has no rule gauge.
    let none = api
        .query("upload_session_abort_after_seconds{target=\"s3-e2e:e2e-norule\"}")
        .await?;
    check(
        none.is_empty(),
        format!("a rule gauge without a rule: {none:?}"),
    )?;
    // No declared size for S3: Prometheus holds no such series.
    let none = api
        .query(&format!(
            "upload_session_size_bytes{{target=\"{S3_TARGET}\"}}"
        ))
        .await?;
    check(none.is_empty(), format!("size_bytes for S3: {none:?}"))
}

/// The assertions; `Err` carries the reason so the caller can show the
/// Prometheus log with it.
async fn run(api: &Api, vault: &VaultControl, committing: &str) -> Result<(), String> {
    let ready = wait_for_ok("Prometheus /-/ready", Duration::from_secs(20), || async {
        let r = api
            .http
            .get(format!("{}/-/ready", api.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    ready?;

    // The exporter is a healthy scrape target of job upload_session_exporter.
    let target = wait_for_ok(
        "the scrape target to be up",
        Duration::from_secs(15),
        || async {
            let t = api
                .get("/api/v1/targets", &[("state", "active")])
                .await
                .ok()?;
            let active = t["activeTargets"].as_array()?.first()?.clone();
            (active["health"] == "up").then_some(active)
        },
    )
    .await?;
    check(
        target["labels"]["job"] == JOB,
        format!("job label: {target}"),
    )?;
    let up = wait_for_ok(
        "upload_session_target_up 1",
        Duration::from_secs(15),
        || async {
            api.value(&format!("upload_session_target_up{{target=\"{TARGET}\"}}"))
                .await
                .filter(|v| v == "1")
        },
    )
    .await?;
    check(up == "1", "target_up")?;
    check(
        api.value(&format!("up{{job=\"{JOB}\"}}")).await.as_deref() == Some("1"),
        "up{job} is 1",
    )?;

    // Per-owner figures equal what the simulator holds, to the byte.
    let held: u64 = vault
        .sessions()
        .iter()
        .filter(|s| s.owner == OWNER_AWAITING)
        .map(|s| s.uploaded)
        .sum();
    check(held == 123_456_789, format!("simulator holds {held}"))?;
    let owner = |m: &str, o: u64| format!("{m}{{target=\"{TARGET}\",owner_id=\"{o}\"}}");
    for (metric, want) in [
        ("upload_session_uploaded_bytes", held.to_string()),
        ("upload_session_size_bytes", "123456789".to_string()),
        ("upload_session_uploaded_parts", "24".to_string()),
        ("upload_session_awaiting_commit_sessions", "1".to_string()),
        ("upload_session_stalled_sessions", "0".to_string()),
    ] {
        let got = api.value(&owner(metric, OWNER_AWAITING)).await;
        check(
            got.as_deref() == Some(want.as_str()),
            format!("{metric} of {OWNER_AWAITING}: {got:?}, want {want}"),
        )?;
    }

    // deepset: ingestion results and the owner's name, as the sim holds them.
    let ds = |m: &str, extra: &str| {
        format!("{m}{{target=\"{DEEPSET_TARGET}\",owner_id=\"{DEEPSET_OWNER}\"{extra}}}")
    };
    for (q, want) in [
        (
            format!("upload_session_target_up{{target=\"{DEEPSET_TARGET}\",kind=\"deepset\"}}"),
            "1",
        ),
        (
            ds("upload_session_ingested_files", ",result=\"failed\""),
            "1",
        ),
        (
            ds("upload_session_ingested_files", ",result=\"finished\""),
            "1",
        ),
        (
            ds("upload_session_ingested_files", ",result=\"pending\""),
            "0",
        ),
        (
            ds("upload_session_owner_info", ",owner_name=\"Amara Okafor\""),
            "1",
        ),
    ] {
        wait_for_ok(&q, Duration::from_secs(15), || async {
            api.value(&q).await.filter(|v| v == want)
        })
        .await?;
    }

    // Commit one session; the other expires by itself (6 s after seeding).
    check(vault.remove_session(committing), "commit")?;
    let ended = |outcome: &str, o: u64| {
        format!(
            "upload_session_ended_total{{target=\"{TARGET}\",owner_id=\"{o}\",outcome=\"{outcome}\"}}"
        )
    };
    for (outcome, o) in [("completed", OWNER_COMMITTING), ("expired", OWNER_EXPIRING)] {
        let q = ended(outcome, o);
        wait_for_ok(&q, Duration::from_secs(15), || async {
            api.value(&q).await.filter(|v| v == "1")
        })
        .await?;
    }

    // Moving uploads do not stall: the gauge is 0 and no stall alert exists
    // after several evaluations (the stall_after of the target is 2 s).
    for o in [OWNER_MOVING, OWNER_AWAITING] {
        let v = api
            .value(&owner("upload_session_stalled_sessions", o))
            .await;
        check(v.as_deref() == Some("0"), format!("{o} stalled: {v:?}"))?;
        let a = api.alert_state("UploadSessionStalled", Some(o)).await;
        check(a.is_none(), format!("no stall alert for {o}: {a:?}"))?;
    }
    check(
        api.alert_state("UploadSessionStalled", None)
            .await
            .is_none(),
        "no stall alert before the stall",
    )?;

    // Now a session stops moving: its last byte is an hour old.
    let now = vault.now();
    let mut stalled = seed(OWNER_STALLED, "stuck.iso", 100 * MIB, 50 * MIB, now);
    stalled.created = now - time::Duration::hours(2);
    stalled.expiration = stalled.created + time::Duration::hours(72);
    stalled.last_uploaded = now - time::Duration::hours(1);
    vault.insert_session(stalled);
    let alert = wait_for_ok(
        "UploadSessionStalled to fire",
        Duration::from_secs(20),
        || async {
            api.alert_state("UploadSessionStalled", Some(OWNER_STALLED))
                .await
                .filter(|(state, _)| state == "firing")
        },
    )
    .await?
    .1;
    check(alert["labels"]["severity"] == "warning", format!("{alert}"))?;
    check(alert["labels"]["target"] == TARGET, format!("{alert}"))?;
    check(alert["labels"]["job"] == JOB, format!("{alert}"))?;
    let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
    check(
        summary == format!("Upload stalled: owner {OWNER_STALLED} on {TARGET}"),
        format!("summary: {summary}"),
    )?;
    let description = alert["annotations"]["description"].as_str().unwrap_or("");
    check(
        description.starts_with(&format!("1 upload session(s) of owner {OWNER_STALLED}")),
        format!("description: {description}"),
    )?;
    check(
        alert["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("docs/runbook.md#uploadsessionstalled")),
        format!("{alert}"),
    )?;

    // The owner's name is joined into the annotations where it is known.
    let failed = wait_for_ok(
        "UploadSessionIngestionFailed to fire",
        Duration::from_secs(10),
        || async {
            api.alerts().await.into_iter().find(|a| {
                a["labels"]["alertname"] == "UploadSessionIngestionFailed"
                    && a["labels"]["owner_id"] == DEEPSET_OWNER
                    && a["state"] == "firing"
            })
        },
    )
    .await?;
    let summary = failed["annotations"]["summary"].as_str().unwrap_or("");
    check(
        summary
            == format!(
                "deepset ingestion failed: owner {DEEPSET_OWNER} (Amara Okafor) on {DEEPSET_TARGET}"
            ),
        format!("summary: {summary}"),
    )?;

    // The other upload alerts fire for the owners the scenario set up.
    for (name, o) in [
        ("UploadSessionExpired", OWNER_EXPIRING),
        ("UploadSessionAwaitingCommit", OWNER_AWAITING),
        ("UploadSessionAtRisk", OWNER_MOVING),
    ] {
        wait_for_ok(name, Duration::from_secs(10), || async {
            api.alert_state(name, Some(o))
                .await
                .filter(|(state, _)| state == "firing")
        })
        .await?;
    }
    // And the health alerts stay quiet.
    for name in [
        "UploadSessionTargetDown",
        "UploadSessionDataStale",
        "UploadSessionExporterDown",
        "UploadSessionApiBudgetLow",
        "UploadSessionExporterConfigReloadFailed",
        "UploadSessionStalled",
    ] {
        let others: Vec<Value> = api
            .alerts()
            .await
            .into_iter()
            .filter(|a| {
                a["labels"]["alertname"] == name
                    && a["labels"]["owner_id"] != OWNER_STALLED.to_string().as_str()
            })
            .collect();
        check(
            others.is_empty(),
            format!("{name} must not be active: {others:?}"),
        )?;
    }

    // Every dashboard query evaluates and returns data (with both targets).
    let d = dashboard();
    let mut empty = Vec::new();
    let exprs = dashboard_exprs(&d);
    for (title, expr) in &exprs {
        let e = substitute(expr, ".*");
        check(
            !e.contains('$'),
            format!("{title}: unsubstituted variable in {e}"),
        )?;
        let result = api
            .query(&e)
            .await
            .map_err(|err| format!("{title}: {e}\n{err}"))?;
        if result.is_empty() {
            empty.push(format!("{title}: {e}"));
        }
    }
    check(
        empty.is_empty(),
        format!("dashboard queries without data:\n{empty:#?}"),
    )?;
    check(exprs.len() >= 40, format!("only {} queries", exprs.len()))?;

    // The template variables list what the panels filter on.
    for (var, want) in [
        ("target", TARGET.to_string()),
        ("owner", OWNER_STALLED.to_string()),
    ] {
        let q = variable_query(variable(&d, var).expect("variable"));
        let (selector, label) = label_values_args(&q).expect("label_values");
        let selector = substitute(&selector, ".*");
        let values = api
            .get(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", &selector)],
            )
            .await?;
        check(
            values
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x == want.as_str())),
            format!("${var} ({q}) lists {values}, not {want}"),
        )?;
    }
    Ok(())
}

/// Prometheus scraped OpenMetrics (it keeps the `# UNIT`s, which the text
/// format cannot carry), and holds the values the text page shows.
async fn scraped_as_openmetrics(api: &Api, metrics_url: &str) -> Result<(), String> {
    let meta = api
        .get(
            "/api/v1/metadata",
            &[("metric", "upload_session_poll_duration_seconds")],
        )
        .await?;
    let entry = &meta["upload_session_poll_duration_seconds"][0];
    check(
        entry["unit"] == "seconds" && entry["type"] == "gauge",
        format!("poll_duration metadata from an OpenMetrics scrape: {meta}"),
    )?;
    // A counter's family is named without _total in OpenMetrics.
    let meta = api
        .get(
            "/api/v1/metadata",
            &[("metric", "upload_session_api_requests")],
        )
        .await?;
    check(
        meta["upload_session_api_requests"][0]["type"] == "counter",
        format!("api_requests counter metadata: {meta}"),
    )?;
    // Series that do not move during the test: what the exporter's text
    // page says is what Prometheus ingested from its OpenMetrics page.
    let text = reqwest::get(metrics_url)
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let mut compared = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, want)) = line.rsplit_once(' ') else {
            continue;
        };
        let stable = [
            "upload_session_size_bytes{",
            "upload_session_owner_info{",
            "upload_session_exporter_build_info{",
            "upload_session_ingested_files{",
        ];
        if !stable.iter().any(|p| series.starts_with(p)) {
            continue;
        }
        let got = api.value(series).await;
        check(
            got.as_deref() == Some(want),
            format!("{series}: Prometheus has {got:?}, the page {want}"),
        )?;
        compared += 1;
    }
    check(compared >= 8, format!("only {compared} series compared"))
}

/// Polls `f` every 200 ms until it yields something; `Err` after `within`.
async fn wait_for_ok<T, F, Fut>(what: &str, within: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {within:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}
