//! `/sessions` and `/api/v1/sessions` of an exporter polling the simulator
//! over real HTTP: exact figures, filters, protection, escaping.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, ServeOptions};
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::web::WebConfigWatcher;
use upload_session_sim::deepset::DEMO_USER_ID;
use upload_session_sim::{
    DeepsetSessionSeed, DeepsetSpec, DeepsetUser, FileSeed, SessionSeed, Simulator,
};

const ADA: &str = "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01";
const HOSTILE_FILE: &str = "/u10001400/<img src=x onerror=alert(1)>.bin";
const UNICODE_FILE: &str = "/u10001400/Zoë-Ångström/日本語の資料-📄.pdf";

/// The Vault seed sessions of seed 000 (owner 10001400, all expired in 2020) and owner 42's live 40 GB upload.
fn vault_seeds(now: time::OffsetDateTime) -> (Vec<SessionSeed>, time::OffsetDateTime) {
    let mut big = SessionSeed::new("/u42/big.zip", 42, 40_000_000_000, now);
    big.uploaded = 12_884_901_888;
    big.uploaded_parts = 1229;
    let big_expiry = big.expiration;
    (
        seed_000_sessions().into_iter().chain([big]).collect(),
        big_expiry,
    )
}

/// The deepset sessions of tests/in_process/exporter_deepset.rs: Ada's open
/// session with 3 pending files and closed one with 5 (4 ingested, 1
/// failed); Dana's expired and open ones.
fn deepset_seeds(sim: &Simulator) {
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    let mut open = DeepsetSessionSeed::open(ADA, now - time::Duration::hours(22));
    open.files = vec![
        FileSeed::pending("a.pdf", 10),
        FileSeed::pending("b.pdf", 10),
        FileSeed::pending("c.pdf", 10),
    ];
    ws.insert_session(open);
    ws.insert_session(DeepsetSessionSeed {
        status: "CLOSED".into(),
        files: ["1.pdf", "2.txt", "3.md", "4.csv", "tool.exe"]
            .iter()
            .map(|n| FileSeed::ingested(n, 5))
            .collect(),
        ..DeepsetSessionSeed::open(ADA, now - time::Duration::hours(1))
    });
    ws.insert_session(DeepsetSessionSeed {
        status: "EXPIRED".into(),
        expires_at: Some(now - time::Duration::hours(1)),
        ..DeepsetSessionSeed::open(DEMO_USER_ID, now - time::Duration::hours(25))
    });
    ws.insert_session(DeepsetSessionSeed::open(DEMO_USER_ID, now));
}

fn workspace(ada_given_name: &str) -> DeepsetSpec {
    let mut ws = DeepsetSpec::new("default");
    ws.users
        .push(DeepsetUser::new(ADA, ada_given_name, "Lovelace", "ada-key"));
    ws.ingestion_delay = Duration::ZERO;
    ws
}

/// Starts the exporter on `sim`'s vault `main` (target `t`) and workspace
/// (target `ds`) and waits until both are polled.
async fn start(sim: &Simulator, opts: ServeOptions) -> Exporter {
    let cfg = config(vec![
        vault_target(sim, "t", "main"),
        deepset_target(sim, "ds", "default", Pagination::Cursor),
    ]);
    let exporter = Exporter::start(cfg, None, opts, CancellationToken::new())
        .await
        .unwrap();
    let url = format!("http://{}/-/ready", exporter.addr());
    let ready = eventually(Duration::from_secs(10), || async {
        get(&url).await.status() == 200
    })
    .await;
    assert!(ready, "targets not polled");
    exporter
}

async fn api(exporter: &Exporter, query: &str) -> Value {
    let r = get(&format!(
        "http://{}/api/v1/sessions{query}",
        exporter.addr()
    ))
    .await;
    assert_eq!(r.status(), 200, "{query}");
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

fn find<'a>(doc: &'a Value, file_or_id: &str) -> &'a Value {
    doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"] == file_or_id || s["id"] == file_or_id)
        .unwrap_or_else(|| panic!("no session {file_or_id} in {doc:#}"))
}

fn sum(doc: &Value, owner: &str, field: &str) -> u64 {
    doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["owner_id"] == owner)
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn api_gives_the_exact_figures_of_the_simulated_sessions() {
    let sim = sim_with(vec![vault_spec("main", 1000)], vec![workspace("Ada")]).await;
    let vault = sim.vault("main").unwrap();
    let (seeds, big_expiry) = vault_seeds(sim.now());
    for s in seeds {
        vault.insert_session(s);
    }
    deepset_seeds(&sim);
    let exporter = start(&sim, ServeOptions::loopback()).await;

    let all = api(&exporter, "").await;
    assert_eq!(all["total_sessions"], 8, "{all:#}");
    assert_eq!(
        (all["page"].as_u64(), all["pages"].as_u64()),
        (Some(1), Some(1))
    );
    let targets = all["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["name"], "ds");
    assert_eq!(targets[1]["name"], "t");
    assert_eq!(targets[1]["kind"], "vault");
    assert_eq!(targets[1]["up"], true);
    assert_eq!(targets[1]["sessions"], 4);
    assert!(targets[1]["last_error"].is_null());

    // The same sums as upload_session_uploaded_bytes / size_bytes /
    // uploaded_parts in tests/in_process/exporter_vault.rs.
    assert_eq!(sum(&all, "10001400", "uploaded_bytes"), 11759027);
    assert_eq!(sum(&all, "10001400", "size_bytes"), 35574406);
    assert_eq!(sum(&all, "10001400", "uploaded_parts"), 3);
    let flyer = find(&all, "/u10001400/Gludacta-2021/Gludacta-Flyer.docx");
    assert_eq!(flyer["state"], "expired");
    assert_eq!(flyer["uploaded_bytes"], 1273267);
    assert_eq!(flyer["size_bytes"], 1273267);
    assert_eq!(flyer["progress_ratio"], 1.0);
    assert_eq!(flyer["created_at"], "2020-10-07T18:32:55Z");
    assert_eq!(flyer["expires_at"], "2020-10-10T18:32:55Z");
    assert_eq!(flyer["last_upload_at"], "2020-10-07T19:27:07Z");
    assert!(flyer["expires_in_seconds"].is_null(), "expired: {flyer:#}");
    assert!(flyer["eta_seconds"].is_null());
    assert_eq!(flyer["stalled"], false, "expired sessions are not stalled");

    let big = find(&all, "/u42/big.zip");
    assert_eq!(big["target"], "t");
    assert_eq!(big["kind"], "vault");
    assert_eq!(big["owner_id"], "42");
    assert_eq!(big["state"], "active");
    assert_eq!(big["uploaded_bytes"], 12_884_901_888u64);
    assert_eq!(big["size_bytes"], 40_000_000_000u64);
    assert_eq!(big["uploaded_parts"], 1229);
    assert_eq!(big["progress_ratio"], 12_884_901_888.0 / 40_000_000_000.0);
    let expiry = big_expiry
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // Millisecond precision, as the metric's expiry.
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let ms = |t: time::OffsetDateTime| t.unix_timestamp_nanos() / 1_000_000;
    assert_eq!(
        ms(parse(big["expires_at"].as_str().unwrap())),
        ms(parse(&expiry))
    );
    let left = big["expires_in_seconds"].as_f64().unwrap();
    assert!((71.0 * 3600.0..=72.0 * 3600.0).contains(&left), "{left}");

    // deepset, as upload_session_ingested_files in tests/in_process/exporter_deepset.rs.
    let ada: Vec<&Value> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["owner_id"] == ADA)
        .collect();
    assert_eq!(ada.len(), 2);
    for s in &ada {
        assert_eq!(s["owner_name"], "Ada Lovelace");
        assert_eq!(s["kind"], "deepset");
        assert!(s["uploaded_bytes"].is_null() && s["file"].is_null());
    }
    let open = ada.iter().find(|s| s["state"] == "open").unwrap();
    assert_eq!(open["files"]["total"], 3);
    assert_eq!(open["files"]["pending"], 3);
    let left = open["expires_in_seconds"].as_f64().unwrap();
    assert!((1.9 * 3600.0..=2.0 * 3600.0).contains(&left), "{left}");
    let closed = ada.iter().find(|s| s["state"] == "closed").unwrap();
    assert_eq!(
        (
            &closed["files"]["total"],
            &closed["files"]["finished"],
            &closed["files"]["failed"],
            &closed["files"]["pending"]
        ),
        (
            &Value::from(5),
            &Value::from(4),
            &Value::from(1),
            &Value::from(0)
        )
    );
    assert_eq!(closed["progress_ratio"], 1.0);
    assert!(closed["expires_in_seconds"].is_null(), "closed: {closed:#}");

    // Filters.
    let one = api(&exporter, "?target=t&owner_id=42").await;
    assert_eq!(one["total_sessions"], 1);
    assert_eq!(one["targets"].as_array().unwrap().len(), 1);
    assert_eq!(one["filters"]["owner_id"][0], "42");
    let expired = api(&exporter, "?state=expired").await;
    assert_eq!(expired["total_sessions"], 4, "3 Vault + 1 deepset");
    assert!(expired["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "expired"));
    let both = api(&exporter, "?state=open&state=closed&target=ds").await;
    assert_eq!(both["total_sessions"], 3);
    let nobody = api(&exporter, "?owner_id=nobody").await;
    assert_eq!(nobody["total_sessions"], 0);
    assert_eq!(nobody["pages"], 1);
    let r = get(&format!(
        "http://{}/api/v1/sessions?state=bogus",
        exporter.addr()
    ))
    .await;
    assert_eq!(r.status(), 400);
    let r = get(&format!("http://{}/sessions?state=bogus", exporter.addr())).await;
    assert_eq!(r.status(), 400);

    // Most urgent first: the live Vault upload before the ended ones.
    let vault_only = api(&exporter, "?target=t").await;
    assert_eq!(vault_only["sessions"][0]["owner_id"], "42");

    // The HTML page shows the same rows and links the landing page to it.
    let r = get(&format!("http://{}/sessions?target=t", exporter.addr())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = r.text().await.unwrap();
    assert_eq!(
        html.matches("data-target=\"t\" data-owner=").count(),
        4,
        "{html}"
    );
    assert!(html.contains("/u42/big.zip"));
    assert!(html.contains("12.0 GiB / 37.3 GiB"), "{html}");
    let landing = get(&format!("http://{}/", exporter.addr()))
        .await
        .text()
        .await
        .unwrap();
    assert!(landing.contains("href=\"/sessions\""), "{landing}");
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn hostile_long_and_unicode_names_are_shown_as_text() {
    let long_name = format!("Ada{}", "x".repeat(100 * 1024));
    let sim = sim_with(
        vec![vault_spec("main", 1000)],
        vec![workspace("<script>alert(1)</script>")],
    )
    .await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    for path in [
        HOSTILE_FILE.to_string(),
        UNICODE_FILE.to_string(),
        format!("/u10001400/{long_name}.bin"),
    ] {
        vault.insert_session(SessionSeed::new(path, 10001400, 100, now));
    }
    let ws = sim.deepset("default").unwrap();
    ws.insert_session(DeepsetSessionSeed::open(ADA, ws.now()));
    let exporter = start(&sim, ServeOptions::loopback()).await;
    let r = get(&format!("http://{}/sessions", exporter.addr())).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("/u10001400/&lt;img src=x onerror=alert(1)&gt;.bin"),
        "{html}"
    );
    assert!(!html.contains("<img"), "unescaped markup in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; Lovelace"));
    assert!(!html.contains("<script"), "unescaped markup in the page");
    assert!(html.contains(UNICODE_FILE), "unicode kept");
    // The 100 KB name is cut: the page stays small, the end of the path
    // (the file name) stays.
    assert!(html.len() < 40_000, "{} bytes", html.len());
    assert!(html.contains("xxx.bin"));
    assert!(!html.contains(&"x".repeat(600)));
    // JSON escapes by itself; names are cut there too.
    let doc = api(&exporter, "").await;
    let hostile = find(&doc, HOSTILE_FILE);
    assert_eq!(hostile["file"], HOSTILE_FILE);
    let long = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"].as_str().is_some_and(|f| f.contains("xxxx")))
        .unwrap();
    assert!(long["file"].as_str().unwrap().chars().count() <= 512);
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn basic_auth_guards_the_pages_and_the_flag_turns_them_off() {
    let sim = sim_with(vec![vault_spec("main", 1000)], vec![workspace("Ada")]).await;
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let opts = ServeOptions {
        web: Some(Arc::new(WebConfigWatcher::new(&web).unwrap())),
        ..ServeOptions::loopback()
    };
    let exporter = start(&sim, opts).await;
    let client = reqwest::Client::new();
    for path in ["/sessions", "/api/v1/sessions?target=t"] {
        let url = format!("http://{}{path}", exporter.addr());
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        let r = client
            .get(&url)
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong password");
        let r = client
            .get(&url)
            .basic_auth("prometheus", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with credentials");
    }
    exporter.stop().await;

    let opts = ServeOptions {
        sessions_page: false,
        ..ServeOptions::loopback()
    };
    let exporter = start(&sim, opts).await;
    for path in ["/sessions", "/api/v1/sessions", "/sessions?target=t"] {
        let r = get(&format!("http://{}{path}", exporter.addr())).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let landing = get(&format!("http://{}/", exporter.addr()))
        .await
        .text()
        .await
        .unwrap();
    assert!(!landing.contains("/sessions"), "{landing}");
    let metrics = get(&format!("http://{}/metrics", exporter.addr())).await;
    assert_eq!(metrics.status(), 200);
    exporter.stop().await;
    sim.shutdown().await;
}
