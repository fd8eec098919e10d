//! The deepset Cloud simulator over real HTTP: every documented behaviour
//! the exporter relies on, with exact values.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;
use upload_session_sim::deepset::{DEMO_API_KEY, DEMO_USER_ID, DOCUMENTATION_URL};
use upload_session_sim::{
    DeepsetControl, DeepsetEndpoint, DeepsetSessionSeed, DeepsetSpec, DeepsetUser, FaultKind,
    FaultRule, FileSeed, Scenario, SimConfig, Simulator,
};

const KEY: &str = DEMO_API_KEY;
const OTHER_ID: &str = "7d1e4c2b-9a8f-4b3c-8d2e-5f6a7b8c9d0e";
const OTHER_KEY: &str = "other-key";

async fn start(config: SimConfig) -> Simulator {
    Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("simulator starts")
}

/// Workspaces "default" (demo user) and "other" (Olive Other only).
fn config_with(extra: Vec<DeepsetSpec>) -> SimConfig {
    let mut other = DeepsetSpec::new("other");
    other.users = vec![DeepsetUser::new(OTHER_ID, "Olive", "Other", OTHER_KEY)];
    let mut deepset = vec![DeepsetSpec::new("default"), other];
    deepset.extend(extra);
    SimConfig {
        scenario: Scenario::Idle,
        seed: 1,
        vaults: Vec::new(),
        deepset,
        s3: None,
    }
}

async fn idle() -> (Simulator, DeepsetControl) {
    let sim = start(config_with(Vec::new())).await;
    let ctl = sim.deepset("default").expect("default workspace");
    (sim, ctl)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn sessions_url(sim: &Simulator, ws: &str) -> String {
    format!(
        "{}/api/v1/workspaces/{ws}/upload_sessions",
        sim.deepset_url()
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
}

/// Sends a request and returns status, headers and body text.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = http.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, text) = send(http, method, url, Some(key), body).await;
    let v = if text.is_empty() {
        Value::Null
    } else {
        parse(&text)
    };
    (status, v)
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    let (status, v) = call(http, Method::GET, url, KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{url}: {v}");
    v
}

/// The `n`-th test session id: sorts like `n` (fixed-width hex).
fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("timestamp string"), &Rfc3339).expect("rfc3339")
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s["session_id"].as_str().expect("session_id").to_owned())
        .collect()
}

fn seed(n: u64, created: OffsetDateTime) -> DeepsetSessionSeed {
    let mut s = DeepsetSessionSeed::open(DEMO_USER_ID, created);
    s.id = Some(uid(n));
    s.expires_at = Some(datetime!(2099-01-01 0:00 UTC));
    s
}

async fn create(http: &reqwest::Client, sim: &Simulator, key: &str, body: Value) -> Value {
    let (status, v) = call(
        http,
        Method::POST,
        &sessions_url(sim, "default"),
        key,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

/// Posts a presigned form with a file, as a browser or the SDK does.
async fn upload(
    http: &reqwest::Client,
    created: &Value,
    name: &str,
    data: Vec<u8>,
    tweak: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> (StatusCode, String) {
    let cfg = &created["aws_prefixed_request_config"];
    let mut fields = cfg["fields"].as_object().expect("fields").clone();
    tweak(&mut fields);
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k, v.as_str().expect("field text").to_owned());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(data).file_name(name.to_owned()),
    );
    let resp = http
        .post(cfg["url"].as_str().expect("url"))
        .multipart(form)
        .send()
        .await
        .expect("upload sent");
    (resp.status(), resp.text().await.expect("body"))
}

fn s3_code(xml: &str) -> &str {
    xml.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("<none>", |(code, _)| code)
}

fn s3_message(xml: &str) -> &str {
    xml.split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map_or("<none>", |(m, _)| m)
}

// ------------------------------------------------------------------- auth

#[tokio::test]
async fn auth_errors_are_fastapis() {
    let (sim, ctl) = idle().await;
    let http = client();
    let list = sessions_url(&sim, "default");
    for key in [None, Some("wrong-key")] {
        let (status, h, body) = send(&http, Method::GET, &list, key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
        assert_eq!(header(&h, "www-authenticate"), "Bearer");
        assert_eq!(header(&h, "content-type"), "application/json");
    }
    let resp = http
        .get(&list)
        .header("Authorization", format!("Basic {KEY}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A real key of a user who is no member of the workspace.
    let (status, v) = call(&http, Method::GET, &list, OTHER_KEY, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        v,
        json!({"detail": "You don't have access to workspace default."})
    );
    let (status, v) = call(
        &http,
        Method::GET,
        &sessions_url(&sim, "other"),
        OTHER_KEY,
        None,
    )
    .await;
    assert_eq!(
        (status, v),
        (
            StatusCode::OK,
            json!({"data": [], "has_more": false, "total": 0})
        )
    );

    // Unknown workspace: 404 once authenticated, 401 before.
    let nowhere = sessions_url(&sim, "nowhere");
    let (status, v) = call(&http, Method::GET, &nowhere, KEY, None).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Workspace not found"})
        )
    );
    let (status, _, _) = send(&http, Method::GET, &nowhere, Some("bad"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Unknown paths and methods.
    let (status, v) = call(
        &http,
        Method::GET,
        &format!("{}/api/v1/nope", sim.deepset_url()),
        KEY,
        None,
    )
    .await;
    assert_eq!(
        (status, v),
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
    let (status, v) = call(&http, Method::DELETE, &list, KEY, None).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method Not Allowed"})
        )
    );

    // 401s and 403s to a known workspace count; the rest counts nowhere.
    assert_eq!(ctl.request_count(DeepsetEndpoint::ListSessions), 4);
    sim.shutdown().await;
}

// ------------------------------------------------------------------ seeds

#[tokio::test]
async fn seed_004_schema_exactly() {
    let (sim, ctl) = idle().await;
    let http = client();
    ctl.insert_session(DeepsetSessionSeed {
        id: Some("3FA85F64-5717-4562-B3FC-2C963F66AFA6".into()),
        user_id: DEMO_USER_ID.into(),
        created_at: datetime!(2025-03-14 09:26:53.123456789 UTC),
        expires_at: Some(datetime!(2099-03-15 09:26:53.123456 UTC)),
        status: "OPEN".into(),
        write_mode: "KEEP".into(),
        files: vec![FileSeed::pending("a.txt", 3)],
    });
    let stranger = "0e1d2c3b-4a59-4687-a5b4-c3d2e1f0a9b8";
    ctl.insert_session(DeepsetSessionSeed {
        id: Some("5b3f1c2e-8d4a-4f6b-9c7e-1a2b3c4d5e6f".into()),
        user_id: stranger.into(),
        created_at: datetime!(2025-03-14 10:00:00 UTC),
        expires_at: None,
        status: "ARCHIVED".into(),
        write_mode: "TEMPORARY".into(),
        files: Vec::new(),
    });
    let (status, h, body) = send(
        &http,
        Method::GET,
        &sessions_url(&sim, "default"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(
        body,
        concat!(
            r#"{"data":[{"session_id":"5b3f1c2e-8d4a-4f6b-9c7e-1a2b3c4d5e6f","#,
            r#""created_by":{"user_id":"0e1d2c3b-4a59-4687-a5b4-c3d2e1f0a9b8","given_name":"","family_name":""},"#,
            r#""created_at":"2025-03-14T10:00:00.000000Z","expires_at":null,"status":"ARCHIVED","write_mode":"TEMPORARY"},"#,
            r#"{"session_id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","#,
            r#""created_by":{"user_id":"6c3f7e7a-2b1d-4d8e-9f4a-1a2b3c4d5e6f","given_name":"Dana","family_name":"Demo"},"#,
            r#""created_at":"2025-03-14T09:26:53.123456Z","expires_at":"2099-03-15T09:26:53.123456Z","status":"OPEN","write_mode":"KEEP"}],"#,
            r#""has_more":false,"total":2}"#
        )
    );
    // Seed 004's schema: required fields and types of every item.
    let v = parse(&body);
    for s in v["data"].as_array().expect("data") {
        for field in ["expires_at", "created_by", "created_at"] {
            assert!(s.get(field).is_some(), "{field} missing in {s}");
        }
        let by = &s["created_by"];
        for field in ["given_name", "family_name", "user_id"] {
            assert!(by[field].is_string(), "{field} in {by}");
        }
        assert!(uuid::Uuid::parse_str(by["user_id"].as_str().unwrap_or("")).is_ok());
        assert!(uuid::Uuid::parse_str(s["session_id"].as_str().unwrap_or("")).is_ok());
        ts(&s["created_at"]);
        assert!(s["expires_at"].is_null() || ts(&s["expires_at"]) > ts(&s["created_at"]));
        assert!(s["status"].is_string() && s["write_mode"].is_string());
    }
    assert!(v["has_more"].is_boolean() && v["total"].is_u64());

    let v = get(&http, &format!("{}?limit=1", sessions_url(&sim, "default"))).await;
    assert_eq!(
        (v["has_more"].clone(), v["total"].clone()),
        (json!(true), json!(2))
    );
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn legacy_timestamps_end_in_plus_zero() {
    let mut legacy = DeepsetSpec::new("legacy");
    legacy.legacy_timestamps = true;
    let sim = start(config_with(vec![legacy])).await;
    let http = client();
    let at = datetime!(2024-11-02 08:07:06.5 UTC);
    for ws in ["default", "legacy"] {
        let mut s = seed(1, at);
        s.expires_at = Some(datetime!(2099-11-03 08:07:06.000001 UTC));
        sim.deepset(ws).expect("ws").insert_session(s);
    }
    let url = |ws: &str| {
        format!(
            "{}/api/v1/workspaces/{ws}/upload_sessions",
            sim.deepset_url()
        )
    };
    let v = get(&http, &url("legacy")).await;
    assert_eq!(
        v["data"][0]["created_at"],
        "2024-11-02T08:07:06.500000+00:00"
    );
    assert_eq!(
        v["data"][0]["expires_at"],
        "2099-11-03T08:07:06.000001+00:00"
    );
    let v = get(&http, &format!("{}/{}", url("legacy"), uid(1))).await;
    assert_eq!(v["expires_at"], "2099-11-03T08:07:06.000001+00:00");
    let v = get(&http, &url("default")).await;
    assert_eq!(v["data"][0]["created_at"], "2024-11-02T08:07:06.500000Z");
    let (status, created) = call(&http, Method::POST, &url("legacy"), KEY, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let exp = created["expires_at"].as_str().unwrap_or("");
    assert!(exp.ends_with("+00:00") && exp.len() == 32, "{exp}");
    sim.shutdown().await;
}

// ----------------------------------------------------------- upload flow

#[tokio::test]
async fn create_upload_close_and_ingest() {
    let (sim, ctl) = idle().await;
    let http = client();
    let before = sim.now();
    let created = create(
        &http,
        &sim,
        KEY,
        json!({"expires_in_seconds": 3600, "write_mode": "OVERWRITE", "parallel_processing_enabled": true}),
    )
    .await;
    let sid = created["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    let parsed = uuid::Uuid::parse_str(&sid).expect("uuid");
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(parsed.hyphenated().to_string(), sid);
    let obj = created.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aws_prefixed_request_config",
            "documentation_url",
            "expires_at",
            "session_id"
        ]
    );
    assert_eq!(created["documentation_url"], DOCUMENTATION_URL);
    let view = ctl.session(&sid).expect("stored");
    assert_eq!(
        (view.status.as_str(), view.write_mode.as_str()),
        ("OPEN", "OVERWRITE")
    );
    assert_eq!(view.user_id, DEMO_USER_ID);
    assert!(view.created_at >= before);
    assert_eq!(
        view.expires_at,
        Some(view.created_at + time::Duration::seconds(3600))
    );
    assert_eq!(Some(ts(&created["expires_at"])), view.expires_at);

    let cfg = &created["aws_prefixed_request_config"];
    assert_eq!(
        cfg["url"],
        format!("{}/deepset/storage/deepset-sim-default", sim.base_url())
    );
    let fields = cfg["fields"].as_object().expect("fields");
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "key",
            "policy",
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-date",
            "x-amz-signature"
        ]
    );
    assert_eq!(fields["key"], format!("default/{sid}/${{filename}}"));
    assert_eq!(fields["x-amz-algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(fields["x-amz-signature"].as_str().map(str::len), Some(64));
    let policy = base64::engine::general_purpose::STANDARD
        .decode(fields["policy"].as_str().expect("policy"))
        .expect("base64");
    let policy: Value = serde_json::from_slice(&policy).expect("policy JSON");
    let exp = view.expires_at.expect("expires");
    assert_eq!(
        policy["expiration"],
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            exp.year(),
            u8::from(exp.month()),
            exp.day(),
            exp.hour(),
            exp.minute(),
            exp.second()
        )
    );

    let files = [
        ("report.pdf", 100usize),
        ("archive.zip", 10),
        ("empty.txt", 0),
        ("corrupt-notes.md", 20),
        ("notes.txt", 5),
    ];
    for (name, size) in files {
        let (status, body) = upload(&http, &created, name, vec![b'x'; size], |_| {}).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}: {body}");
        assert_eq!(body, "");
    }
    let sizes: Vec<(String, u64, String)> = ctl
        .session(&sid)
        .expect("session")
        .files
        .into_iter()
        .map(|f| (f.name, f.size, f.status))
        .collect();
    assert_eq!(
        sizes,
        files
            .iter()
            .map(|(n, s)| ((*n).to_owned(), *s as u64, "PENDING".to_owned()))
            .collect::<Vec<_>>()
    );
    let url = format!("{}/{sid}", sessions_url(&sim, "default"));
    let listed = get(&http, &format!("{url}/files")).await;
    assert_eq!(listed["total"], 5);
    assert_eq!(listed["has_more"], false);
    for (item, (name, _)) in listed["data"].as_array().expect("data").iter().zip(files) {
        assert_eq!(item["name"], name);
        assert_eq!(item["ingestion_status"], "PENDING");
        assert!(item["ingestion_status_reason"].is_null());
        assert!(uuid::Uuid::parse_str(item["file_ingestion_id"].as_str().unwrap_or("")).is_ok());
    }
    assert_eq!(
        get(&http, &url).await,
        json!({"session_id": sid, "expires_at": created["expires_at"],
               "documentation_url": DOCUMENTATION_URL,
               "ingestion_status": {"failed_files": 0, "finished_files": 0}})
    );

    let close = json!({"status": "CLOSED"});
    let (status, _, body) = send(&http, Method::PUT, &url, Some(KEY), Some(close.clone())).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    let (status, v) = call(&http, Method::PUT, &url, KEY, Some(close)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v, json!({"detail": "Upload session is already closed."}));
    // Ingestion takes 3 s: nothing is done yet.
    let pending = get(
        &http,
        &format!("{url}/files?ingestion_status=PENDING&limit=1"),
    )
    .await;
    assert_eq!(pending["total"], 5);
    assert_eq!(
        get(&http, &url).await["ingestion_status"],
        json!({"failed_files": 0, "finished_files": 0})
    );

    ctl.ingest_now();
    let listed = get(&http, &format!("{url}/files")).await;
    let outcome: Vec<(&str, &str, Option<&str>)> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or(""),
                f["ingestion_status"].as_str().unwrap_or(""),
                f["ingestion_status_reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        vec![
            ("report.pdf", "FINISHED", None),
            ("archive.zip", "FAILED", Some("Unsupported file type")),
            ("empty.txt", "FAILED", Some("File is empty")),
            ("corrupt-notes.md", "FAILED", Some("Failed to parse file")),
            ("notes.txt", "FINISHED", None),
        ]
    );
    assert_eq!(
        get(&http, &url).await["ingestion_status"],
        json!({"failed_files": 3, "finished_files": 2})
    );

    // The storage refuses uploads into a closed session.
    let (status, xml) = upload(&http, &created, "late.txt", b"late".to_vec(), |_| {}).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s3_code(&xml), "AccessDenied");
    assert_eq!(
        s3_message(&xml),
        format!("Access Denied: upload session {sid} is CLOSED.")
    );
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"),
        "{xml}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn ingestion_runs_after_the_delay_on_the_simulated_clock() {
    let (sim, ctl) = idle().await;
    let id = ctl.insert_session(seed(1, sim.now()));
    assert!(ctl.add_file(&id, "a.txt", 1));
    assert!(ctl.add_file(&id, "b.csv", 0));
    assert!(ctl.close_session(&id));
    assert!(!ctl.close_session(&id));
    assert!(
        !ctl.add_file(&id, "c.txt", 1),
        "closed sessions take no files"
    );
    let statuses = |ctl: &DeepsetControl| -> Vec<String> {
        ctl.session(&uid(1))
            .expect("session")
            .files
            .into_iter()
            .map(|f| f.status)
            .collect()
    };
    assert_eq!(statuses(&ctl), ["PENDING", "PENDING"]);
    sim.advance(Duration::from_secs(3));
    assert_eq!(statuses(&ctl), ["FINISHED", "FAILED"]);

    // Files of open or expired sessions are never ingested.
    let open = ctl.insert_session(seed(2, sim.now()));
    assert!(ctl.add_file(&open, "x.txt", 1));
    ctl.ingest_now();
    assert_eq!(ctl.session(&open).expect("open").files[0].status, "PENDING");
    sim.shutdown().await;
}

#[tokio::test]
async fn storage_checks_signature_policy_and_form() {
    let (sim, ctl) = idle().await;
    let http = client();
    let created = create(&http, &sim, KEY, json!({"expires_in_seconds": 60})).await;
    let sid = created["session_id"].as_str().expect("sid").to_owned();
    let ok = |status: StatusCode| assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, xml) = upload(&http, &created, "a.txt", b"a".to_vec(), |f| {
        f.insert("x-amz-signature".into(), json!("0".repeat(64)));
    })
    .await;
    assert_eq!(
        (status, s3_code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    assert_eq!(
        s3_message(&xml),
        "The request signature we calculated does not match the signature you provided."
    );
    let (status, xml) = upload(&http, &created, "a.txt", b"a".to_vec(), |f| {
        f.remove("x-amz-signature");
    })
    .await;
    assert_eq!(
        (status, s3_code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    let (status, xml) = upload(&http, &created, "a.txt", b"a".to_vec(), |f| {
        f.insert("key".into(), json!(format!("default/{}/a.txt", uid(9))));
    })
    .await;
    assert_eq!(
        (status, s3_code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    assert!(
        s3_message(&xml).starts_with("Invalid according to Policy: Policy Condition failed"),
        "{xml}"
    );
    let (status, xml) = upload(&http, &created, "a.txt", b"a".to_vec(), |f| {
        f.insert("acl".into(), json!("public-read"));
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        s3_message(&xml),
        "Invalid according to Policy: Extra input fields: acl"
    );
    // A fixed key (no ${filename}) inside the prefix is fine.
    let (status, _) = upload(&http, &created, "ignored.bin", b"abc".to_vec(), |f| {
        f.insert("key".into(), json!(format!("default/{sid}/fixed.md")));
    })
    .await;
    ok(status);
    assert_eq!(ctl.session(&sid).expect("s").files[0].name, "fixed.md");

    // Not multipart, no file, unknown bucket.
    let url = created["aws_prefixed_request_config"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let resp = http.post(&url).body("x").send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(resp.headers(), "content-type"), "application/xml");
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in created["aws_prefixed_request_config"]["fields"]
        .as_object()
        .expect("f")
    {
        form = form.text(k.clone(), v.as_str().unwrap_or("").to_owned());
    }
    let resp = http.post(&url).multipart(form).send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        s3_code(&resp.text().await.expect("body")),
        "InvalidArgument"
    );
    let resp = http
        .post(format!("{}/storage/nope", sim.deepset_url()))
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(s3_code(&resp.text().await.expect("body")), "NoSuchBucket");

    // Past expiry: the policy has expired (and the session with it).
    sim.advance(Duration::from_secs(61));
    let (status, xml) = upload(&http, &created, "b.txt", b"b".to_vec(), |_| {}).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        s3_message(&xml),
        "Invalid according to Policy: Policy expired."
    );
    assert_eq!(ctl.session(&sid).expect("s").status, "EXPIRED");
    assert_eq!(ctl.session(&sid).expect("s").files.len(), 1);

    // A session that is not OPEN though its policy still holds.
    let created = create(&http, &sim, KEY, json!({})).await;
    let sid = created["session_id"].as_str().expect("sid").to_owned();
    assert!(ctl.set_status(&sid, "ARCHIVED"));
    let (status, xml) = upload(&http, &created, "c.txt", b"c".to_vec(), |_| {}).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        s3_message(&xml),
        format!("Access Denied: upload session {sid} is ARCHIVED.")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn at_most_ten_open_sessions_per_user() {
    let mut default = DeepsetSpec::new("default");
    default
        .users
        .push(DeepsetUser::new(OTHER_ID, "Olive", "Other", OTHER_KEY));
    let sim = start(SimConfig {
        scenario: Scenario::Idle,
        seed: 1,
        vaults: Vec::new(),
        deepset: vec![default],
        s3: None,
    })
    .await;
    let ctl = sim.deepset("default").expect("ws");
    let http = client();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(create(&http, &sim, KEY, json!({})).await["session_id"].clone());
    }
    let url = sessions_url(&sim, "default");
    let (status, v) = call(&http, Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        v,
        json!({"detail": "You have reached the maximum of 10 open upload sessions. Close a session before you open a new one."})
    );
    // Per user: another user may still open sessions.
    create(&http, &sim, OTHER_KEY, json!({})).await;
    // Closed and expired sessions do not count.
    assert!(ctl.close_session(ids[0].as_str().unwrap_or("")));
    create(&http, &sim, KEY, json!({})).await;
    let (status, _) = call(&http, Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(ctl.set_expires_at(ids[1].as_str().unwrap_or(""), Some(sim.now())));
    create(&http, &sim, KEY, json!({})).await;
    let open = ctl
        .sessions()
        .iter()
        .filter(|s| s.user_id == DEMO_USER_ID && s.status == "OPEN")
        .count();
    assert_eq!(open, 10);
    sim.shutdown().await;
}

#[tokio::test]
async fn create_defaults_and_body_validation() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    // No body at all: every default.
    let resp = http.post(&url).bearer_auth(KEY).send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.expect("json");
    let s = ctl
        .session(v["session_id"].as_str().unwrap_or(""))
        .expect("stored");
    assert_eq!(s.write_mode, "KEEP");
    assert_eq!(s.expires_at, Some(s.created_at + time::Duration::hours(24)));
    let v = create(&http, &sim, KEY, json!({"write_mode": "TEMPORARY"})).await;
    let s = ctl
        .session(v["session_id"].as_str().unwrap_or(""))
        .expect("stored");
    assert_eq!(s.write_mode, "TEMPORARY");

    let (status, v) = call(
        &http,
        Method::POST,
        &url,
        KEY,
        Some(json!({"expires_in_seconds": 0, "write_mode": "MERGE"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({"detail": [
            {"type": "greater_than_equal", "loc": ["body", "expires_in_seconds"],
             "msg": "Input should be greater than or equal to 1", "input": 0, "ctx": {"ge": 1}},
            {"type": "enum", "loc": ["body", "write_mode"],
             "msg": "Input should be 'KEEP', 'OVERWRITE', 'FAIL' or 'TEMPORARY'", "input": "MERGE",
             "ctx": {"expected": "'KEEP', 'OVERWRITE', 'FAIL' or 'TEMPORARY'"}}
        ]})
    );
    let (status, v) = call(
        &http,
        Method::POST,
        &url,
        KEY,
        Some(json!({"expires_in_seconds": 86401})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["type"], "less_than_equal");
    assert_eq!(v["detail"][0]["ctx"], json!({"le": 86400}));
    let resp = http
        .post(&url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["detail"][0]["type"], "json_invalid");
    assert_eq!(v["detail"][0]["loc"], json!(["body", 1]));
    assert_eq!(ctl.sessions().len(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn session_endpoints_validate_and_404() {
    let (sim, ctl) = idle().await;
    let http = client();
    let base = sessions_url(&sim, "default");
    let id = ctl.insert_session(seed(1, sim.now()));
    let unknown = uid(2);

    let (status, v) = call(&http, Method::GET, &format!("{base}/{unknown}"), KEY, None).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Session not found"})
        )
    );
    let (status, v) = call(
        &http,
        Method::GET,
        &format!("{base}/{unknown}/files"),
        KEY,
        None,
    )
    .await;
    assert_eq!(
        (status, v),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Session not found"})
        )
    );
    let close = Some(json!({"status": "CLOSED"}));
    let (status, v) = call(
        &http,
        Method::PUT,
        &format!("{base}/{unknown}"),
        KEY,
        close.clone(),
    )
    .await;
    assert_eq!(
        (status, v),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Session not found"})
        )
    );

    let (status, v) = call(&http, Method::GET, &format!("{base}/not-a-uuid"), KEY, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["type"], "uuid_parsing");
    assert_eq!(v["detail"][0]["loc"], json!(["path", "session_id"]));
    assert_eq!(v["detail"][0]["input"], "not-a-uuid");

    // Body problems come before the lookup, and with the path's.
    let (status, v) = call(
        &http,
        Method::PUT,
        &format!("{base}/{unknown}"),
        KEY,
        Some(json!({"status": "OPEN"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({"detail": [{"type": "literal_error", "loc": ["body", "status"], "msg": "Input should be 'CLOSED'",
                           "input": "OPEN", "ctx": {"expected": "'CLOSED'"}}]})
    );
    let (status, v) = call(
        &http,
        Method::PUT,
        &format!("{base}/x"),
        KEY,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let kinds: Vec<&str> = v["detail"]
        .as_array()
        .expect("d")
        .iter()
        .map(|p| p["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["uuid_parsing", "missing"]);
    let (status, v) = call(
        &http,
        Method::GET,
        &format!("{base}/{id}/files?ingestion_status=DONE&limit=101"),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let kinds: Vec<&str> = v["detail"]
        .as_array()
        .expect("d")
        .iter()
        .map(|p| p["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["enum", "less_than_equal"]);

    // Closing an expired session conflicts too.
    assert!(ctl.set_expires_at(&id, Some(sim.now())));
    let (status, v) = call(&http, Method::PUT, &format!("{base}/{id}"), KEY, close).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::CONFLICT,
            json!({"detail": "Upload session has expired."})
        )
    );
    assert_eq!(ctl.session(&id).expect("s").status, "EXPIRED");
    sim.shutdown().await;
}

// ------------------------------------------------------------ list query

#[tokio::test]
async fn list_validation_is_fastapis() {
    let (sim, ctl) = idle().await;
    let http = client();
    ctl.insert_session(seed(1, sim.now()));
    let base = sessions_url(&sim, "default");
    let bad = |q: &str| {
        let http = http.clone();
        let url = format!("{base}?{q}");
        let q = q.to_owned();
        async move {
            let (status, v) = call(&http, Method::GET, &url, KEY, None).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
            v
        }
    };
    assert_eq!(
        bad("limit=101").await,
        json!({"detail": [{"type": "less_than_equal", "loc": ["query", "limit"],
                           "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}}]})
    );
    assert_eq!(
        bad("limit=0").await["detail"][0],
        json!({"type": "greater_than_equal", "loc": ["query", "limit"],
               "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}})
    );
    assert_eq!(
        bad("page_number=0").await["detail"][0]["loc"],
        json!(["query", "page_number"])
    );
    let after = format!("page_number=1&after={}", uid(1));
    let v = bad(&after).await;
    assert_eq!(
        v,
        json!({"detail": [{"type": "value_error", "loc": ["query", "page_number"],
                           "msg": "Value error, page_number cannot be combined with after or before; clear page_number to use a cursor",
                           "input": "1", "ctx": {"error": {}}}]})
    );
    let v = bad("after=123").await;
    assert_eq!(v["detail"][0]["type"], "uuid_parsing");
    assert_eq!(v["detail"][0]["loc"], json!(["query", "after"]));
    assert_eq!(v["detail"][0]["input"], "123");
    let v = bad("before=00000000-0000-4000-8000-00000000abcd").await;
    assert_eq!(
        v,
        json!({"detail": [{"type": "value_error", "loc": ["query", "before"],
                           "msg": "Value error, Upload session 00000000-0000-4000-8000-00000000abcd does not exist",
                           "input": "00000000-0000-4000-8000-00000000abcd", "ctx": {"error": {}}}]})
    );
    let v = bad("field=size&order=up&is_expired=maybe").await;
    let kinds: Vec<(&str, &str)> = v["detail"]
        .as_array()
        .expect("d")
        .iter()
        .map(|p| {
            (
                p["type"].as_str().unwrap_or(""),
                p["loc"][1].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("bool_parsing", "is_expired"),
            ("enum", "field"),
            ("enum", "order")
        ]
    );
    sim.shutdown().await;
}

/// 257 sessions, three per `created_at`, ids scrambled against time so
/// the tie-break matters.
fn many(ctl: &DeepsetControl) -> Vec<(OffsetDateTime, String)> {
    let base = datetime!(2025-01-01 0:00 UTC);
    let mut all: Vec<(OffsetDateTime, String)> = (0..257u64)
        .map(|i| {
            let created = base + time::Duration::seconds((i / 3) as i64);
            let id = ctl.insert_session(seed((i * 7919) % 1000, created));
            (created, id)
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn pagination_covers_every_session_exactly_once() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    let asc: Vec<String> = many(&ctl).into_iter().map(|(_, id)| id).collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();

    // Page numbers.
    let mut seen = Vec::new();
    for (page, more) in [(1, true), (2, true), (3, false)] {
        let v = get(&http, &format!("{url}?limit=100&page_number={page}")).await;
        assert_eq!(
            (v["has_more"].clone(), v["total"].clone()),
            (json!(more), json!(257))
        );
        seen.extend(ids(&v));
    }
    assert_eq!(seen, desc);
    let v = get(&http, &format!("{url}?limit=100&page_number=4")).await;
    assert_eq!(v, json!({"data": [], "has_more": false, "total": 257}));

    // `after` cursors, both directions of sort.
    for (order, expected) in [("DESC", &desc), ("ASC", &asc)] {
        let mut seen: Vec<String> = Vec::new();
        let mut pages = 0;
        loop {
            let cursor = seen
                .last()
                .map(|id| format!("&after={id}"))
                .unwrap_or_default();
            let v = get(&http, &format!("{url}?limit=100&order={order}{cursor}")).await;
            assert_eq!(v["total"], 257);
            seen.extend(ids(&v));
            pages += 1;
            if v["has_more"] == false {
                break;
            }
            assert!(pages < 10, "runaway pagination");
        }
        assert_eq!(pages, 3);
        assert_eq!(&seen, expected);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 257);
    }

    // `before` pages backwards: the page nearest to the cursor each time.
    let last = get(&http, &format!("{url}?limit=100&page_number=3")).await;
    let mut back = ids(&last);
    assert_eq!(back.len(), 57);
    for more in [true, false] {
        let v = get(&http, &format!("{url}?limit=100&before={}", back[0])).await;
        assert_eq!(
            (v["has_more"].clone(), v["total"].clone()),
            (json!(more), json!(257))
        );
        let mut page = ids(&v);
        page.extend(back);
        back = page;
    }
    assert_eq!(back, desc);
    sim.shutdown().await;
}

#[tokio::test]
async fn after_cursor_stays_valid_when_its_session_expires_or_closes() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    let base = datetime!(2025-01-01 0:00 UTC);
    for i in 0..30u64 {
        ctl.insert_session(seed(i, base + time::Duration::seconds(i as i64)));
    }
    let v = get(&http, &format!("{url}?is_expired=false")).await;
    let page1 = ids(&v);
    assert_eq!(page1, (20..30).rev().map(uid).collect::<Vec<_>>());
    let cursor = uid(20);
    let now = sim.now();
    ctl.after_list_request(0, move |c| {
        assert!(c.set_expires_at(&uid(20), Some(now)));
    });
    let v = get(&http, &format!("{url}?is_expired=false&after={cursor}")).await;
    assert_eq!(ids(&v), (10..20).rev().map(uid).collect::<Vec<_>>());
    assert_eq!(
        (v["has_more"].clone(), v["total"].clone()),
        (json!(true), json!(29))
    );
    let v = get(&http, &format!("{url}?is_expired=true")).await;
    assert_eq!(ids(&v), [uid(20)]);
    assert_eq!(v["data"][0]["status"], "EXPIRED");

    // Closing moves the cursor's session in a status sort: `after` goes on
    // from its new place.
    let (sim, ctl) = idle().await;
    let url = sessions_url(&sim, "default");
    for i in 0..24u64 {
        let mut s = seed(i, base);
        if i % 2 == 1 {
            s.status = "CLOSED".into();
        }
        ctl.insert_session(s);
    }
    let v = get(&http, &format!("{url}?field=status&order=DESC")).await;
    assert_eq!(ids(&v), [22, 20, 18, 16, 14, 12, 10, 8, 6, 4].map(uid));
    assert!(ctl.close_session(&uid(4)));
    let v = get(
        &http,
        &format!("{url}?field=status&order=DESC&after={}", uid(4)),
    )
    .await;
    assert_eq!(ids(&v), [3, 1].map(uid));
    assert_eq!(
        (v["has_more"].clone(), v["total"].clone()),
        (json!(false), json!(24))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn is_expired_filter_and_lazy_expiry() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    let now = sim.now();
    let at = |secs: i64| Some(now + time::Duration::seconds(secs));
    let add = |n: u64, status: &str, expires: Option<OffsetDateTime>| {
        let mut s = seed(
            n,
            datetime!(2025-01-01 0:00 UTC) + time::Duration::seconds(n as i64),
        );
        s.status = status.into();
        s.expires_at = expires;
        ctl.insert_session(s);
    };
    add(1, "OPEN", at(-10)); // lazily expired
    add(2, "OPEN", at(30)); // expires after the advance below
    add(3, "OPEN", None);
    add(4, "CLOSED", at(-3600)); // closed long ago: expired by time
    add(5, "CLOSED", at(3600));
    add(6, "ARCHIVED", at(-1));
    let list = |q: &'static str| {
        let http = http.clone();
        let url = format!("{url}?order=ASC&{q}");
        async move { get(&http, &url).await }
    };
    let statuses = |v: &Value| -> Vec<(String, String)> {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|s| {
                (
                    s["session_id"].as_str().unwrap_or("").to_owned(),
                    s["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let v = list("is_expired=true").await;
    assert_eq!(
        statuses(&v),
        [
            (uid(1), "EXPIRED"),
            (uid(4), "CLOSED"),
            (uid(6), "ARCHIVED")
        ]
        .map(|(a, b)| (a, b.to_owned()))
    );
    assert_eq!(v["total"], 3);
    assert_eq!(ids(&list("is_expired=false").await), [2, 3, 5].map(uid));
    assert_eq!(list("").await["total"], 6);
    assert_eq!(ids(&list("is_expired=0").await), [2, 3, 5].map(uid));

    sim.advance(Duration::from_secs(31));
    assert_eq!(ids(&list("is_expired=true").await), [1, 2, 4, 6].map(uid));
    assert_eq!(ctl.session(&uid(2)).expect("s").status, "EXPIRED");
    assert_eq!(ctl.session(&uid(5)).expect("s").status, "CLOSED");
    sim.advance(Duration::from_secs(3600));
    assert_eq!(
        ctl.session(&uid(5)).expect("s").status,
        "CLOSED",
        "closed stays closed"
    );
    assert_eq!(ids(&list("is_expired=false").await), [3].map(uid));
    sim.shutdown().await;
}

/// (n, created, expires, status, write mode, files) of a sort test row.
type Row = (u64, i64, Option<i64>, &'static str, &'static str, usize);

#[tokio::test]
async fn sorting_by_every_field_and_order() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    let t = |s: i64| datetime!(2025-01-01 0:00 UTC) + time::Duration::seconds(s);
    // (n, created, expires, status, write mode, files)
    let rows: [Row; 5] = [
        (1, 50, Some(400), "OPEN", "OVERWRITE", 2),
        (2, 10, None, "CLOSED", "KEEP", 0),
        (3, 30, Some(100), "OPEN", "FAIL", 5),
        (4, 40, Some(100), "EXPIRED", "KEEP", 1),
        (5, 20, Some(900), "ARCHIVED", "TEMPORARY", 2),
    ];
    for (n, created, expires, status, mode, files) in rows {
        ctl.insert_session(DeepsetSessionSeed {
            id: Some(uid(n)),
            user_id: DEMO_USER_ID.into(),
            created_at: t(created),
            expires_at: expires.map(|e| t(e) + time::Duration::days(40000)),
            status: status.into(),
            write_mode: mode.into(),
            files: (0..files)
                .map(|i| FileSeed::pending(&format!("f{i}.txt"), 1))
                .collect(),
        });
    }
    let cases: [(&str, [u64; 5]); 8] = [
        ("field=created_at&order=ASC", [2, 5, 3, 4, 1]),
        ("", [1, 4, 3, 5, 2]),
        ("field=expires_at&order=ASC", [3, 4, 1, 5, 2]),
        ("field=expires_at&order=DESC", [2, 5, 1, 4, 3]),
        ("field=status&order=ASC", [5, 2, 4, 1, 3]),
        ("field=write_mode&order=DESC", [5, 1, 4, 2, 3]),
        ("field=file_count&order=ASC", [2, 4, 1, 5, 3]),
        ("field=name&order=ASC", [1, 2, 3, 4, 5]),
    ];
    for (q, expected) in cases {
        let v = get(&http, &format!("{url}?{q}")).await;
        assert_eq!(ids(&v), expected.map(uid), "{q}");
    }
    let v = get(
        &http,
        &format!("{url}?field=ingestion_status_reason&order=DESC"),
    )
    .await;
    assert_eq!(ids(&v), [5, 4, 3, 2, 1].map(uid));
    sim.shutdown().await;
}

#[tokio::test]
async fn files_filter_pages_and_cheap_count() {
    let (sim, ctl) = idle().await;
    let http = client();
    let mut s = seed(1, sim.now());
    s.status = "CLOSED".into();
    s.files = (0..25)
        .map(|i| {
            let name = if i % 5 == 0 {
                format!("file{i}.zip")
            } else {
                format!("file{i}.txt")
            };
            if i < 20 {
                FileSeed::ingested(&name, 1)
            } else {
                FileSeed::pending(&name, 1)
            }
        })
        .collect();
    let id = ctl.insert_session(s);
    let url = format!("{}/{id}", sessions_url(&sim, "default"));
    let count = |status: &'static str| {
        let http = http.clone();
        let url = format!("{url}/files?limit=1&ingestion_status={status}");
        async move {
            let v = get(&http, &url).await;
            assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");
            (
                v["total"].as_u64().unwrap_or(0),
                v["has_more"].as_bool().unwrap_or(false),
            )
        }
    };
    assert_eq!(count("FINISHED").await, (16, true));
    assert_eq!(count("FAILED").await, (4, true));
    assert_eq!(count("PENDING").await, (5, true));
    let v = get(&http, &format!("{url}/files?ingestion_status=FAILED")).await;
    let failed: Vec<(&str, &str)> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or(""),
                f["ingestion_status_reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        failed,
        ["file0.zip", "file5.zip", "file10.zip", "file15.zip"]
            .map(|n| (n, "Unsupported file type"))
    );
    assert_eq!(
        get(&http, &url).await["ingestion_status"],
        json!({"failed_files": 4, "finished_files": 16})
    );

    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|f| f["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let all: Vec<String> = (0..25)
        .map(|i| {
            if i % 5 == 0 {
                format!("file{i}.zip")
            } else {
                format!("file{i}.txt")
            }
        })
        .collect();
    let v = get(&http, &format!("{url}/files?limit=10&page_number=3")).await;
    assert_eq!(names(&v), all[20..]);
    assert_eq!(
        (v["has_more"].clone(), v["total"].clone()),
        (json!(false), json!(25))
    );
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = get(&http, &format!("{url}/files?limit=10{cursor}")).await;
        seen.extend(names(&v));
        let last = v["data"]
            .as_array()
            .and_then(|d| d.last())
            .cloned()
            .unwrap_or_default();
        cursor = format!(
            "&after={}",
            last["file_ingestion_id"].as_str().unwrap_or("")
        );
        if v["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen, all);
    sim.shutdown().await;
}

#[tokio::test]
async fn after_list_request_mutates_between_pages() {
    let (sim, ctl) = idle().await;
    let http = client();
    let url = sessions_url(&sim, "default");
    let base = datetime!(2025-01-01 0:00 UTC);
    for i in 0..25u64 {
        ctl.insert_session(seed(i, base + time::Duration::seconds(i as i64)));
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let hook = |n: u64| {
        let runs = Arc::clone(&runs);
        move |c: &DeepsetControl| {
            runs.fetch_add(1, Ordering::SeqCst);
            c.insert_session(seed(100 + n, base + time::Duration::hours(1 + n as i64)));
        }
    };
    // A newer session arrives after page 1: page numbers shift by one.
    ctl.after_list_request(1, hook(0));
    let v = get(&http, &url).await;
    assert_eq!(ids(&v), (15..25).rev().map(uid).collect::<Vec<_>>());
    assert_eq!(v["total"], 25);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let v = get(&http, &format!("{url}?page_number=2")).await;
    assert_eq!(ids(&v), (6..16).rev().map(uid).collect::<Vec<_>>());
    assert_eq!(v["total"], 26);

    // The same with a cursor: no entry twice.
    ctl.after_list_request(1, hook(1));
    let v = get(&http, &url).await;
    assert_eq!(ids(&v)[0], uid(100));
    let last = ids(&v).last().cloned().unwrap_or_default();
    assert_eq!(last, uid(16));
    let v = get(&http, &format!("{url}?after={last}")).await;
    assert_eq!(ids(&v), (6..16).rev().map(uid).collect::<Vec<_>>());
    assert_eq!(v["total"], 27);
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // n counts list requests from now; other endpoints do not count.
    ctl.after_list_request(2, hook(2));
    get(&http, &url).await;
    get(&http, &format!("{url}/{}", uid(1))).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    get(&http, &url).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(ctl.sessions().len(), 28);
    get(&http, &url).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "each hook runs once");
    sim.shutdown().await;
}

// ------------------------------------------------------------------ faults

async fn fault_env() -> (Simulator, DeepsetControl, reqwest::Client, String) {
    let (sim, ctl) = idle().await;
    ctl.insert_session(seed(1, datetime!(2025-01-01 0:00 UTC)));
    let url = sessions_url(&sim, "default");
    (sim, ctl, client(), url)
}

#[tokio::test]
async fn faults_statuses_on_deepset_endpoints() {
    let (sim, ctl, http, url) = fault_env().await;
    let list = Some(DeepsetEndpoint::ListSessions);
    let (_, _, normal) = send(&http, Method::GET, &url, Some(KEY), None).await;

    ctl.inject(FaultRule::times(
        list,
        FaultKind::TooManyRequests { retry_after: 7 },
        1,
    ));
    let (status, h, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&h, "retry-after"), "7");
    assert_eq!(body, r#"{"detail":"Too many requests"}"#);

    ctl.inject(FaultRule::times(list, FaultKind::bad_gateway(), 1));
    let (status, h, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(header(&h, "content-type"), "text/html");
    assert!(body.contains("<h1>502 Bad Gateway</h1>"), "{body}");

    // Faults act before auth, like a gateway: even a bad key gets them.
    ctl.inject(FaultRule::times(list, FaultKind::unauthorized(), 1));
    let (status, _, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"detail":"Not authenticated"}"#
        )
    );
    ctl.inject(FaultRule::times(list, FaultKind::validation(), 1));
    let (status, _, body) = send(&http, Method::GET, &url, Some("bad"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(parse(&body)["detail"][0]["type"], "less_than_equal");

    ctl.inject(FaultRule::times(
        list,
        FaultKind::VaultFailure {
            error_type: "UNEXPECTED_ERROR".into(),
            message: "boom".into(),
        },
        1,
    ));
    let (status, v) = call(&http, Method::GET, &url, KEY, None).await;
    assert_eq!(
        (status, v),
        (StatusCode::INTERNAL_SERVER_ERROR, json!({"detail": "boom"}))
    );
    ctl.inject(FaultRule::times(list, FaultKind::HtmlSignIn, 1));
    let (status, h, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert!(
        body.starts_with("<!DOCTYPE html>") && body.contains("<form"),
        "{body}"
    );
    ctl.inject(FaultRule::times(list, FaultKind::WrongVersionTrap, 1));
    let (_, _, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(body, normal, "the version trap means nothing to deepset");

    // A rule for one endpoint spares the others; `None` hits all.
    ctl.inject(FaultRule::always(
        Some(DeepsetEndpoint::ListFiles),
        FaultKind::bad_gateway(),
    ));
    let (status, _, _) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        &http,
        Method::GET,
        &format!("{url}/{}/files", uid(1)),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    ctl.clear_faults();
    ctl.inject(FaultRule::times(
        None,
        FaultKind::TooManyRequests { retry_after: 1 },
        2,
    ));
    let (status, _, _) = send(
        &http,
        Method::GET,
        &format!("{url}/{}", uid(1)),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = send(&http, Method::POST, &url, Some(KEY), Some(json!({}))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ctl.sessions().len(), 1, "a faulted create creates nothing");
    let (status, _, _) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);

    // The storage has faults of its own.
    let created = create(&http, &sim, KEY, json!({})).await;
    ctl.inject(FaultRule::times(
        Some(DeepsetEndpoint::StorageUpload),
        FaultKind::HttpStatus {
            status: 503,
            content_type: "application/xml".into(),
            body: "<Error><Code>SlowDown</Code></Error>".into(),
        },
        1,
    ));
    let (status, body) = upload(&http, &created, "a.txt", b"a".to_vec(), |_| {}).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "<Error><Code>SlowDown</Code></Error>"
        )
    );
    let (status, _) = upload(&http, &created, "a.txt", b"a".to_vec(), |_| {}).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_broken_bodies() {
    let (sim, ctl, http, url) = fault_env().await;
    let list = Some(DeepsetEndpoint::ListSessions);
    let (_, _, normal) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert!(
        normal.starts_with(r#"{"data":[{"session_id":""#),
        "{normal}"
    );

    ctl.inject(FaultRule::times(list, FaultKind::MalformedJson, 1));
    let (status, h, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");

    ctl.inject(FaultRule::times(list, FaultKind::TruncatedJson, 1));
    let (status, _, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, normal[..normal.len() / 2]);

    ctl.inject(FaultRule::times(
        list,
        FaultKind::Oversized { bytes: 3_000_000 },
        1,
    ));
    let (_, _, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(body.len(), 3_000_000);
    let v = parse(&body);
    assert_eq!(
        (v["data"].clone(), v["total"].clone()),
        (json!([]), json!(0))
    );

    let (_, _, body) = send(&http, Method::GET, &url, Some(KEY), None).await;
    assert_eq!(body, normal);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_reset_delay_and_hang() {
    let (sim, ctl, http, url) = fault_env().await;
    let list = Some(DeepsetEndpoint::ListSessions);
    ctl.inject(FaultRule::times(list, FaultKind::Reset, 1));
    let err = http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect_err("reset");
    assert!(!err.is_timeout(), "{err}");

    ctl.inject(FaultRule::times(
        list,
        FaultKind::Delay(Duration::from_millis(400)),
        1,
    ));
    let t = Instant::now();
    assert_eq!(get(&http, &url).await["total"], 1);
    assert!(t.elapsed() >= Duration::from_millis(400));

    ctl.inject(FaultRule::always(list, FaultKind::Hang));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = impatient
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    let hanging = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move { http.get(&url).bearer_auth(KEY).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ctl.request_count(DeepsetEndpoint::ListSessions), 4);
    let t = Instant::now();
    sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(hanging.await.expect("joined").is_err());
}

#[tokio::test]
async fn requests_are_counted_per_endpoint() {
    let (sim, ctl) = idle().await;
    let other = sim.deepset("other").expect("other");
    let http = client();
    let url = sessions_url(&sim, "default");
    get(&http, &url).await;
    send(&http, Method::GET, &url, None, None).await; // 401, counted
    let created = create(&http, &sim, KEY, json!({})).await;
    let sid = created["session_id"].as_str().expect("sid").to_owned();
    upload(&http, &created, "a.txt", b"a".to_vec(), |_| {}).await;
    upload(&http, &created, "b.txt", b"b".to_vec(), |_| {}).await;
    get(&http, &format!("{url}/{sid}")).await;
    get(&http, &format!("{url}/{sid}/files")).await;
    call(
        &http,
        Method::PUT,
        &format!("{url}/{sid}"),
        KEY,
        Some(json!({"status": "CLOSED"})),
    )
    .await;
    call(
        &http,
        Method::PUT,
        &format!("{url}/{sid}"),
        KEY,
        Some(json!({"status": "CLOSED"})),
    )
    .await;
    send(
        &http,
        Method::GET,
        &sessions_url(&sim, "nowhere"),
        Some(KEY),
        None,
    )
    .await;
    call(&http, Method::GET, &sessions_url(&sim, "other"), KEY, None).await; // 403 there
    let counts = |c: &DeepsetControl| -> Vec<u64> {
        [
            DeepsetEndpoint::ListSessions,
            DeepsetEndpoint::CreateSession,
            DeepsetEndpoint::SessionStatus,
            DeepsetEndpoint::ListFiles,
            DeepsetEndpoint::CloseSession,
            DeepsetEndpoint::StorageUpload,
        ]
        .map(|e| c.request_count(e))
        .to_vec()
    };
    assert_eq!(counts(&ctl), [2, 1, 1, 1, 2, 2]);
    assert_eq!(counts(&other), [1, 0, 0, 0, 0, 0]);
    sim.shutdown().await;
}

// ------------------------------------------------------------------ demo

#[tokio::test]
async fn demo_scenario_has_users_states_and_progress() {
    let sim = start(SimConfig::demo()).await;
    let ctl = sim.deepset("default").expect("default");
    let deadline = Instant::now() + Duration::from_secs(5);
    while ctl.sessions().len() < 311 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sessions = ctl.sessions();
    assert!(sessions.len() >= 311, "{}", sessions.len());
    let users: HashSet<&str> = sessions.iter().map(|s| s.user_id.as_str()).collect();
    assert_eq!(users.len(), 6);
    let now = sim.now();
    let count = |st: &str| sessions.iter().filter(|s| s.status == st).count();
    assert!(count("CLOSED") >= 301 && count("EXPIRED") >= 4 && count("OPEN") >= 4);
    let expiring = sessions
        .iter()
        .filter(|s| {
            s.status == "OPEN"
                && s.expires_at
                    .is_some_and(|e| e - now < time::Duration::minutes(30))
        })
        .count();
    assert_eq!(expiring, 3);

    let http = client();
    let url = sessions_url(&sim, "default");
    // History and expired sessions are expired by time; the rest is not
    // (the demo may add sessions meanwhile, hence the bounds).
    let v = get(&http, &format!("{url}?is_expired=true&limit=1")).await;
    assert!(v["total"].as_u64().unwrap_or(0) >= 304, "{v}");
    let v = get(&http, &format!("{url}?is_expired=false&limit=100")).await;
    assert!(v["total"].as_u64().unwrap_or(0) >= 7, "{v}");
    let (status, v) = call(
        &http,
        Method::GET,
        &format!("{url}?limit=1"),
        "demo-api-key-4",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Progress within seconds: uploads add files, ingestion finishes.
    // The session closed at start (created 95 s before) is ingested
    // within seconds; uploads add files.
    let files = |c: &DeepsetControl| -> usize { c.sessions().iter().map(|s| s.files.len()).sum() };
    let just_closed = |c: &DeepsetControl| -> Vec<String> {
        c.sessions()
            .into_iter()
            .filter(|s| {
                let age = now - s.created_at;
                s.status == "CLOSED"
                    && age > time::Duration::minutes(1)
                    && age < time::Duration::minutes(5)
            })
            .flat_map(|s| s.files.into_iter().map(|f| f.status))
            .collect()
    };
    assert!(just_closed(&ctl).len() >= 3);
    let files0 = files(&ctl);
    let deadline = Instant::now() + Duration::from_secs(15);
    while (files(&ctl) == files0 || just_closed(&ctl).iter().any(|s| s == "PENDING"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(files(&ctl) > files0, "files are uploaded");
    let ingested = just_closed(&ctl);
    assert!(
        ingested.iter().all(|s| s == "FINISHED" || s == "FAILED"),
        "{ingested:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_deepset_configurations_are_rejected() {
    let bad = |deepset: Vec<DeepsetSpec>| async move {
        Simulator::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SimConfig {
                scenario: Scenario::Idle,
                seed: 1,
                vaults: Vec::new(),
                deepset,
                s3: None,
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        bad(vec![]).await,
        Err(
            "invalid simulator configuration: at least one vault, deepset workspace or the S3 side is needed"
                .into()
        )
    );
    assert!(bad(vec![DeepsetSpec::new("a b")]).await.is_err());
    assert!(bad(vec![DeepsetSpec::new("a"), DeepsetSpec::new("a")])
        .await
        .is_err());
    let mut spec = DeepsetSpec::new("a");
    spec.users
        .push(DeepsetUser::new(OTHER_ID, "X", "Y", DEMO_API_KEY));
    assert!(bad(vec![spec]).await.is_err());
    assert_eq!(bad(vec![DeepsetSpec::new("a")]).await, Ok(()));
}
