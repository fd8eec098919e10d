//! The Vault simulator over real HTTP: every documented behaviour the
//! exporter relies on, with exact values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use upload_session_sim::{
    Endpoint, FaultKind, FaultRule, Scenario, SessionSeed, SimConfig, Simulator, UserSpec,
    VaultSpec, DEFAULT_API_VERSIONS,
};

const V: &str = "v25.2";
const MIB: usize = 1024 * 1024;

async fn start(config: SimConfig) -> Simulator {
    Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("simulator starts")
}

fn idle_with(vaults: Vec<VaultSpec>) -> SimConfig {
    SimConfig {
        scenario: Scenario::Idle,
        seed: 1,
        vaults,
        deepset: Vec::new(),
        s3: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn main_url(sim: &Simulator) -> String {
    sim.vault_url("main").expect("main vault")
}

fn uploads(base: &str) -> String {
    format!("{base}/api/{V}/services/file_staging/upload")
}

fn err_type(v: &Value) -> &str {
    v["errors"][0]["type"].as_str().unwrap_or("<none>")
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn auth(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> Value {
    http.post(format!("{base}/api/{V}/auth"))
        .form(&[("username", user), ("password", pw)])
        .send()
        .await
        .expect("auth sent")
        .json()
        .await
        .expect("auth json")
}

async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> String {
    let v = auth(http, base, user, pw).await;
    assert_eq!(v["responseStatus"], "SUCCESS", "{v}");
    v["sessionId"].as_str().expect("sessionId").to_owned()
}

async fn demo_login(http: &reqwest::Client, base: &str) -> String {
    login(http, base, "demo@example.com", "demo").await
}

/// Sends a request with the session and returns status, headers and JSON.
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    sid: &str,
) -> (StatusCode, HeaderMap, Value) {
    let resp = http
        .request(method, url)
        .header("Authorization", sid)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, headers, v)
}

async fn get(http: &reqwest::Client, url: &str, sid: &str) -> Value {
    let (status, _, v) = call(http, Method::GET, url, sid).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn create(http: &reqwest::Client, base: &str, sid: &str, path: &str, size: u64) -> Value {
    http.post(uploads(base))
        .header("Authorization", sid)
        .form(&[("path", path), ("size", &size.to_string())])
        .send()
        .await
        .expect("create sent")
        .json()
        .await
        .expect("create json")
}

async fn create_id(http: &reqwest::Client, base: &str, sid: &str, path: &str, size: u64) -> String {
    let v = create(http, base, sid, path, size).await;
    assert_eq!(v["responseStatus"], "SUCCESS", "{v}");
    v["data"]["id"].as_str().expect("id").to_owned()
}

async fn put_part(
    http: &reqwest::Client,
    base: &str,
    sid: &str,
    id: &str,
    number: &str,
    body: Vec<u8>,
    md5: Option<&str>,
) -> Value {
    let mut req = http
        .put(format!("{}/{id}", uploads(base)))
        .header("Authorization", sid)
        .header("X-VaultAPI-FilePartNumber", number)
        .header("Content-Type", "application/octet-stream")
        .body(body);
    if let Some(m) = md5 {
        req = req.header("Content-MD5", m);
    }
    req.send()
        .await
        .expect("part sent")
        .json()
        .await
        .expect("part json")
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn ts(v: &Value) -> OffsetDateTime {
    let s = v.as_str().expect("timestamp string");
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("rfc3339")
}

/// Sends a raw HTTP/1.1 request and reads one response (headers + body).
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.parse::<usize>().ok());
                if len.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answered in time");
    String::from_utf8_lossy(&buf).into_owned()
}

// ------------------------------------------------------------------- auth

#[tokio::test]
async fn login_succeeds_with_vault_fields_and_headers() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let resp = http
        .post(format!("{base}/api/{V}/auth"))
        .form(&[("username", "demo@example.com"), ("password", "demo")])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    let v: Value = resp.json().await.expect("json");
    let sid = v["sessionId"].as_str().expect("sessionId").to_owned();
    assert_eq!(sid.len(), 128);
    assert!(sid
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
    assert_eq!(
        v,
        json!({
            "responseStatus": "SUCCESS",
            "sessionId": sid,
            "userId": 10001400,
            "vaultIds": [{"id": 1000, "name": "Demo Vault", "url": format!("{base}/api")}],
            "vaultId": 1000
        })
    );
    assert_eq!(header(&h, "content-type"), "application/json;charset=UTF-8");
    assert_eq!(header(&h, "x-vaultapi-userid"), "10001400");
    assert_eq!(header(&h, "x-vaultapi-vaultid"), "1000");
    assert_eq!(header(&h, "x-vaultapi-truncatedsessionid"), &sid[..12]);

    // The first vault is also served at the root, with root URLs.
    let root = sim.base_url();
    let v = auth(&http, &root, "DEMO@example.com", "demo").await;
    assert_eq!(v["vaultIds"][0]["url"], format!("{root}/api"));
    assert_eq!(v["userId"], 10001400);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_passwords_lock_the_user_out_until_unlocked() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    for _ in 0..5 {
        let v = auth(&http, &base, "demo@example.com", "wrong").await;
        assert_eq!(
            v,
            json!({
                "responseStatus": "FAILURE",
                "errors": [{"type": "USERNAME_OR_PASSWORD_INCORRECT",
                            "message": "Authentication failed for user: demo@example.com."}],
                "errorType": "USERNAME_OR_PASSWORD_INCORRECT"
            })
        );
    }
    let v = auth(&http, &base, "demo@example.com", "demo").await;
    assert_eq!(err_type(&v), "USER_LOCKED_OUT");
    assert_eq!(v["errorType"], "USER_LOCKED_OUT");
    sim.vault("main")
        .expect("main")
        .unlock_user("demo@example.com");
    demo_login(&http, &base).await;

    // Fewer than five failures in a row do not lock: a success resets.
    for _ in 0..4 {
        auth(&http, &base, "demo@example.com", "wrong").await;
    }
    demo_login(&http, &base).await;
    for _ in 0..4 {
        auth(&http, &base, "demo@example.com", "wrong").await;
    }
    demo_login(&http, &base).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn login_failure_types() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.users.push(UserSpec {
        active: false,
        ..UserSpec::new(7, "gone@example.com", "pw")
    });
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = main_url(&sim);
    let v = auth(&http, &base, "gone@example.com", "pw").await;
    assert_eq!(err_type(&v), "INACTIVE_USER");
    assert_eq!(v["errorType"], "INACTIVE_USER");
    let v = auth(&http, &base, "demo@example.com", "").await;
    assert_eq!(err_type(&v), "NO_PASSWORD_PROVIDED");
    let v: Value = http
        .post(format!("{base}/api/{V}/auth"))
        .form(&[("username", "demo@example.com")])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(err_type(&v), "NO_PASSWORD_PROVIDED");
    let v = auth(&http, &base, "nobody@example.com", "x").await;
    assert_eq!(err_type(&v), "USERNAME_OR_PASSWORD_INCORRECT");
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_rate_limit_is_per_user_per_minute() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.auth_limit_per_minute = 3;
    spec.users.push(UserSpec::new(5, "other@example.com", "pw"));
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = main_url(&sim);
    for _ in 0..3 {
        demo_login(&http, &base).await;
    }
    let v = auth(&http, &base, "demo@example.com", "demo").await;
    assert_eq!(err_type(&v), "API_LIMIT_EXCEEDED");
    assert_eq!(v["errorType"], "API_LIMIT_EXCEEDED");
    login(&http, &base, "other@example.com", "pw").await;
    sim.advance(Duration::from_secs(61));
    demo_login(&http, &base).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn login_may_land_in_the_users_other_vault() {
    let mut config = SimConfig::demo();
    config.scenario = Scenario::Idle;
    config.vaults[0].users.push(UserSpec {
        login_vault_id_override: Some(2000),
        ..UserSpec::new(9, "twovaults@example.com", "pw")
    });
    let sim = start(config).await;
    let http = client();
    let base = main_url(&sim);
    let v = auth(&http, &base, "twovaults@example.com", "pw").await;
    assert_eq!(v["vaultId"], 2000);
    assert_eq!(
        v["vaultIds"],
        json!([
            {"id": 1000, "name": "Demo Vault", "url": format!("{base}/api")},
            {"id": 2000, "name": "Demo SiteVault",
             "url": format!("{}/api", sim.vault_url("sitevault").expect("site"))}
        ])
    );
    sim.shutdown().await;
}

// --------------------------------------------------------------- versions

#[tokio::test]
async fn api_versions_are_listed_with_a_session() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let v = get(&http, &format!("{base}/api/"), &sid).await;
    let expected: BTreeMap<String, String> = DEFAULT_API_VERSIONS
        .iter()
        .map(|ver| ((*ver).to_owned(), format!("{base}/api/{ver}")))
        .collect();
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "values": expected}));
    assert_eq!(expected.len(), 15);
    let (_, _, v) = call(&http, Method::GET, &format!("{base}/api"), "nope").await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    sim.shutdown().await;
}

#[tokio::test]
async fn unserved_version_answers_invalid_session_id_but_logins_work() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.api_versions = vec!["v24.3".into(), "v25.1".into()];
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await; // v25.2: not served, still logs in
    let (status, h, v) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"responseStatus": "FAILURE",
               "errors": [{"type": "INVALID_SESSION_ID", "message": "Invalid or expired session ID."}]})
    );
    assert_eq!(header(&h, "x-vaultapi-vaultid"), "1000");
    let v = get(
        &http,
        &format!("{base}/api/v24.3/services/file_staging/upload"),
        &sid,
    )
    .await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "data": []}));
    let v = get(&http, &format!("{base}/api/"), &sid).await;
    assert_eq!(
        v["values"],
        json!({"v24.3": format!("{base}/api/v24.3"), "v25.1": format!("{base}/api/v25.1")})
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------- upload flow

#[tokio::test]
async fn create_upload_paginate_and_commit() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let size = (2 * 5 * MIB + 1000) as u64;
    let before = sim.now();
    let v = create(&http, &base, &sid, "/u10001400/big/file.bin", size).await;
    assert_eq!(v["responseStatus"], "SUCCESS", "{v}");
    let d = &v["data"];
    let id = d["id"].as_str().expect("id").to_owned();
    assert!(id.ends_with("--") && id.len() == 80, "{id}");
    assert_eq!(
        d,
        &json!({
            "path": "/u10001400/big/file.bin", "name": "file.bin", "id": id,
            "expiration_date": d["expiration_date"], "created_date": d["created_date"],
            "last_uploaded_date": d["created_date"], "owner": 10001400,
            "uploaded_parts": 0, "size": size, "uploaded": 0, "overwrite": false
        })
    );
    let created = ts(&d["created_date"]);
    assert!(created >= before && created <= sim.now());
    assert_eq!(
        ts(&d["expiration_date"]) - created,
        time::Duration::hours(72)
    );
    let created_text = d["created_date"].as_str().expect("text");
    assert_eq!(created_text.len(), 24, "{created_text}");
    assert!(created_text.ends_with('Z'));

    let parts = [pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1000, 3)];
    let md5s: Vec<String> = parts.iter().map(|p| md5_hex(p)).collect();
    let v = put_part(
        &http,
        &base,
        &sid,
        &id,
        "1",
        parts[0].clone(),
        Some(&md5s[0]),
    )
    .await;
    assert_eq!(
        v,
        json!({"responseStatus": "SUCCESS",
               "data": {"size": 5 * MIB, "part_number": 1, "part_content_md5": md5s[0]}})
    );
    // A wrong Content-MD5 is refused and stores nothing.
    let v = put_part(
        &http,
        &base,
        &sid,
        &id,
        "2",
        parts[1].clone(),
        Some(&md5s[0]),
    )
    .await;
    assert_eq!(err_type(&v), "INVALID_DATA");
    let v = get(&http, &format!("{}/{id}", uploads(&base)), &sid).await;
    assert_eq!(v["data"]["uploaded_parts"], 1);
    assert_eq!(v["data"]["uploaded"], 5 * MIB);
    let v = put_part(
        &http,
        &base,
        &sid,
        &id,
        "2",
        parts[1].clone(),
        Some(&md5s[1].to_uppercase()),
    )
    .await;
    assert_eq!(v["data"]["part_content_md5"], md5s[1]);
    let v = put_part(&http, &base, &sid, &id, "3", parts[2].clone(), None).await;
    assert_eq!(
        v["data"],
        json!({"size": 1000, "part_number": 3, "part_content_md5": md5s[2]})
    );

    let v = get(&http, &format!("{}/{id}", uploads(&base)), &sid).await;
    let d = &v["data"];
    assert_eq!(d["uploaded"], size);
    assert_eq!(d["uploaded_parts"], 3);
    assert_eq!(d["size"], size);
    assert!(ts(&d["last_uploaded_date"]) >= created);

    // Pages of two, absolute next_page.
    let first = get(
        &http,
        &format!("{}/{id}/parts?limit=2", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(
        first["data"],
        json!([
            {"size": 5 * MIB, "part_number": 1, "part_content_md5": md5s[0]},
            {"size": 5 * MIB, "part_number": 2, "part_content_md5": md5s[1]}
        ])
    );
    let next = first["responseDetails"]["next_page"]
        .as_str()
        .expect("next_page")
        .to_owned();
    let prefix = format!("{}/{id}/parts?cursor=", uploads(&base));
    assert!(
        next.starts_with(&prefix) && next.ends_with("&limit=2"),
        "{next}"
    );
    assert!(next.contains("%3A"), "cursor is URL-encoded: {next}");
    let second = get(&http, &next, &sid).await;
    assert_eq!(
        second,
        json!({"responseStatus": "SUCCESS",
               "data": [{"size": 1000, "part_number": 3, "part_content_md5": md5s[2]}]})
    );
    let all = get(&http, &format!("{}/{id}/parts", uploads(&base)), &sid).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(3));
    assert!(all.get("responseDetails").is_none());

    let (_, _, v) = call(
        &http,
        Method::POST,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(
        v,
        json!({"responseStatus": "SUCCESS", "data": {"job_id": 70301}})
    );
    let v = get(&http, &uploads(&base), &sid).await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "data": []}));
    let v = get(&http, &format!("{}/{id}", uploads(&base)), &sid).await;
    assert_eq!(err_type(&v), "INVALID_DATA");
    sim.shutdown().await;
}

#[tokio::test]
async fn relative_next_page_is_a_path() {
    let mut spec = VaultSpec::new("rel", 3000);
    spec.next_page_absolute = false;
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = sim.vault_url("rel").expect("rel");
    let sid = demo_login(&http, &base).await;
    let ctl = sim.vault("rel").expect("rel");
    let mut seed = SessionSeed::new("/u10001400/r.bin", 10001400, 50 * MIB as u64, sim.now());
    seed.uploaded = 25 * MIB as u64;
    seed.uploaded_parts = 5;
    let id = ctl.insert_session(seed);
    let mut url = format!("{}/{id}/parts?limit=2", uploads(&base));
    let mut numbers = Vec::new();
    let mut pages = 0;
    loop {
        let v = get(&http, &url, &sid).await;
        pages += 1;
        for p in v["data"].as_array().expect("data") {
            assert_eq!(p["size"], 5 * MIB);
            numbers.push(p["part_number"].as_u64().expect("n"));
        }
        match v["responseDetails"]["next_page"].as_str() {
            Some(next) => {
                let path =
                    format!("/vaults/rel/api/{V}/services/file_staging/upload/{id}/parts?cursor=");
                assert!(
                    next.starts_with(&path) && next.ends_with("&limit=2"),
                    "{next}"
                );
                url = format!("{}{next}", sim.base_url());
            }
            None => break,
        }
    }
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert_eq!(pages, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn part_order_size_and_commit_rules() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let id = create_id(
        &http,
        &base,
        &sid,
        "/u10001400/r.bin",
        (6 * MIB + 10) as u64,
    )
    .await;
    let url = format!("{}/{id}", uploads(&base));

    let v = put_part(&http, &base, &sid, &id, "2", vec![1; 10], None).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "part 2 before part 1");
    for bad in ["0", "2001", "abc", "-1"] {
        let v = put_part(&http, &base, &sid, &id, bad, vec![1; 10], None).await;
        assert_eq!(err_type(&v), "INVALID_DATA", "part number {bad}");
    }
    let v: Value = http
        .put(&url)
        .header("Authorization", &sid)
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(err_type(&v), "PARAMETER_REQUIRED");
    let v = put_part(&http, &base, &sid, &id, "1", vec![1; 10], Some("xyz")).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "malformed Content-MD5");
    let v = put_part(&http, &base, &sid, &id, "1", Vec::new(), None).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "empty part");
    let v = put_part(&http, &base, &sid, &id, "1", vec![1; 6 * MIB + 11], None).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "beyond the declared size");

    // A small first part, then commit: refused (all but the last >= 5 MiB).
    put_part(&http, &base, &sid, &id, "1", vec![1; MIB], None).await;
    let (_, _, v) = call(&http, Method::POST, &url, &sid).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "uploaded < size");
    let v = put_part(&http, &base, &sid, &id, "2", vec![2; 5 * MIB + 10], None).await;
    assert_eq!(v["data"]["part_number"], 2);
    let (_, _, v) = call(&http, Method::POST, &url, &sid).await;
    assert_eq!(err_type(&v), "INVALID_DATA", "part 1 too small");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("part [1]")),
        "{v}"
    );
    // Overwriting part 1 fixes it... but now the total exceeds the size.
    let v = put_part(&http, &base, &sid, &id, "1", vec![3; 5 * MIB], None).await;
    assert_eq!(err_type(&v), "INVALID_DATA");
    // Overwrite part 2 smaller, then part 1 bigger: consistent again.
    let v = put_part(&http, &base, &sid, &id, "2", vec![4; MIB + 10], None).await;
    assert_eq!(v["data"]["size"], MIB + 10);
    let body = vec![5u8; 5 * MIB];
    let md5 = md5_hex(&body);
    let v = put_part(&http, &base, &sid, &id, "1", body, None).await;
    assert_eq!(v["data"]["part_content_md5"], md5);
    let v = get(&http, &url, &sid).await;
    assert_eq!(v["data"]["uploaded"], 6 * MIB + 10);
    assert_eq!(v["data"]["uploaded_parts"], 2);
    let (_, _, v) = call(&http, Method::POST, &url, &sid).await;
    assert_eq!(v["data"]["job_id"], 70301);
    sim.shutdown().await;
}

#[tokio::test]
async fn abort_removes_the_session() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let id = create_id(&http, &base, &sid, "/u10001400/a.bin", 100).await;
    let keep = create_id(&http, &base, &sid, "/u10001400/b.bin", 100).await;
    let (status, _, v) = call(
        &http,
        Method::DELETE,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"responseStatus": "SUCCESS"}));
    let v = get(&http, &uploads(&base), &sid).await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, vec![keep.as_str()]);
    let (_, _, v) = call(
        &http,
        Method::DELETE,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(err_type(&v), "INVALID_DATA");
    sim.shutdown().await;
}

#[tokio::test]
async fn at_most_fifty_sessions() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(create_id(&http, &base, &sid, &format!("/u10001400/f{i}.bin"), 10).await);
    }
    let v = create(&http, &base, &sid, "/u10001400/f50.bin", 10).await;
    assert_eq!(err_type(&v), "OPERATION_NOT_ALLOWED");
    call(
        &http,
        Method::DELETE,
        &format!("{}/{}", uploads(&base), ids[0]),
        &sid,
    )
    .await;
    create_id(&http, &base, &sid, "/u10001400/f50.bin", 10).await;
    let v = get(&http, &uploads(&base), &sid).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(50));
    sim.shutdown().await;
}

#[tokio::test]
async fn non_admins_see_and_touch_only_their_own() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.users.push(UserSpec::new(11, "ann@example.com", "pw"));
    spec.users.push(UserSpec::new(12, "bob@example.com", "pw"));
    spec.users.push(UserSpec {
        file_staging: false,
        ..UserSpec::new(13, "cy@example.com", "pw")
    });
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = main_url(&sim);
    let admin = demo_login(&http, &base).await;
    let ann = login(&http, &base, "ann@example.com", "pw").await;
    let bob = login(&http, &base, "bob@example.com", "pw").await;
    let cy = login(&http, &base, "cy@example.com", "pw").await;
    let a = create_id(&http, &base, &ann, "/u11/a.bin", 10).await;
    let b = create_id(&http, &base, &bob, "/u12/b.bin", 10).await;

    let owners = |v: &Value| -> Vec<u64> {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|s| s["owner"].as_u64())
            .collect()
    };
    assert_eq!(
        owners(&get(&http, &uploads(&base), &admin).await),
        vec![11, 12]
    );
    assert_eq!(owners(&get(&http, &uploads(&base), &ann).await), vec![11]);
    assert_eq!(owners(&get(&http, &uploads(&base), &bob).await), vec![12]);

    let b_url = format!("{}/{b}", uploads(&base));
    let (_, h, v) = call(&http, Method::GET, &b_url, &ann).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    assert_eq!(header(&h, "x-vaultapi-userid"), "11");
    let (_, _, v) = call(&http, Method::GET, &format!("{b_url}/parts"), &ann).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    let (_, _, v) = call(&http, Method::DELETE, &b_url, &ann).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    let v = put_part(&http, &base, &ann, &b, "1", vec![1; 10], None).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    // The admin may act on anyone's session.
    let v = put_part(&http, &base, &admin, &a, "1", vec![1; 10], None).await;
    assert_eq!(v["data"]["size"], 10);

    // No File Staging permission: every file staging call is refused.
    let (_, _, v) = call(&http, Method::GET, &uploads(&base), &cy).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    let v = create(&http, &base, &cy, "/u13/c.bin", 10).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    let (_, _, v) = call(&http, Method::GET, &b_url, &cy).await;
    assert_eq!(err_type(&v), "INSUFFICIENT_ACCESS");
    let v = get(&http, &format!("{base}/api/"), &cy).await;
    assert_eq!(v["responseStatus"], "SUCCESS");
    sim.shutdown().await;
}

// ------------------------------------------------------ sessions & time

#[tokio::test]
async fn login_sessions_time_out_refresh_and_end() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let list = uploads(&base);
    // Each call refreshes the 20-minute idle timer.
    for _ in 0..3 {
        sim.advance(Duration::from_secs(19 * 60));
        get(&http, &list, &format!("Bearer {sid}")).await;
    }
    sim.advance(Duration::from_secs(19 * 60));
    let (_, _, v) = call(
        &http,
        Method::POST,
        &format!("{base}/api/{V}/keep-alive"),
        &sid,
    )
    .await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS"}));
    sim.advance(Duration::from_secs(19 * 60));
    assert_eq!(get(&http, &list, &sid).await["responseStatus"], "SUCCESS");
    sim.advance(Duration::from_secs(20 * 60 + 1));
    let (_, h, v) = call(&http, Method::GET, &list, &sid).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    assert_eq!(header(&h, "x-vaultapi-userid"), "<none>");

    let sid = demo_login(&http, &base).await;
    let (_, _, v) = call(
        &http,
        Method::DELETE,
        &format!("{base}/api/{V}/session"),
        &sid,
    )
    .await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS"}));
    let (_, _, v) = call(&http, Method::GET, &list, &sid).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");

    let sid = demo_login(&http, &base).await;
    sim.vault("main").expect("main").invalidate_login_sessions();
    let (_, _, v) = call(&http, Method::GET, &list, &sid).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_sessions_stay_listed_then_are_purged() {
    let mut keep = VaultSpec::new("keep", 1001);
    keep.purge_after_expiry = None;
    let sim = start(idle_with(vec![VaultSpec::new("main", 1000), keep])).await;
    let http = client();
    let base = main_url(&sim);
    let keep_base = sim.vault_url("keep").expect("keep");
    let sid = demo_login(&http, &base).await;
    let id = create_id(&http, &base, &sid, "/u10001400/x.bin", 100).await;
    let kept = create_id(
        &http,
        &keep_base,
        &demo_login(&http, &keep_base).await,
        "/k.bin",
        5,
    )
    .await;

    sim.advance(Duration::from_secs(72 * 3600 + 1));
    let sid = demo_login(&http, &base).await;
    let v = get(&http, &uploads(&base), &sid).await;
    assert_eq!(v["data"][0]["id"], id.as_str(), "expired but listed");
    let v = put_part(&http, &base, &sid, &id, "1", vec![1; 10], None).await;
    assert_eq!(
        err_type(&v),
        "INVALID_DATA",
        "expired session takes no parts"
    );
    let (_, _, v) = call(
        &http,
        Method::POST,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(err_type(&v), "INVALID_DATA");

    sim.advance(Duration::from_secs(10 * 60));
    let v = get(&http, &uploads(&base), &sid).await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "data": []}));
    assert!(sim.vault("main").expect("main").sessions().is_empty());
    let ids: Vec<String> = sim
        .vault("keep")
        .expect("keep")
        .sessions()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![kept]);
    sim.shutdown().await;
}

// ----------------------------------------------------------- rate limits

#[tokio::test]
async fn burst_limit_headers_and_delay() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.burst_limit = 10;
    spec.response_delay = Duration::from_millis(300);
    let sim = start(idle_with(vec![spec])).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await; // call 1 of 10
    let (_, h1, _) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(header(&h1, "x-vaultapi-burstlimit"), "10");
    assert_eq!(header(&h1, "x-vaultapi-burstlimitremaining"), "8");
    assert_eq!(header(&h1, "x-vaultapi-vaultid"), "1000");
    assert_eq!(header(&h1, "x-vaultapi-responsedelay"), "<none>");
    let (_, h2, _) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(header(&h2, "x-vaultapi-burstlimitremaining"), "7");
    assert_ne!(
        header(&h1, "x-vaultapi-executionid"),
        header(&h2, "x-vaultapi-executionid")
    );
    assert_eq!(header(&h2, "x-vaultapi-executionid").len(), 36);

    let ctl = sim.vault("main").expect("main");
    ctl.set_burst_remaining(1);
    let t = Instant::now();
    let (_, h, _) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(header(&h, "x-vaultapi-burstlimitremaining"), "0");
    assert_eq!(header(&h, "x-vaultapi-responsedelay"), "<none>");
    assert!(t.elapsed() < Duration::from_millis(300));
    for _ in 0..2 {
        let t = Instant::now();
        let (status, h, v) = call(&http, Method::GET, &uploads(&base), &sid).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["responseStatus"], "SUCCESS");
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(header(&h, "x-vaultapi-burstlimitremaining"), "0");
        assert_eq!(header(&h, "x-vaultapi-responsedelay"), "300");
    }
    // A new window restores the budget.
    sim.advance(Duration::from_secs(5 * 60));
    let (_, h, _) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(header(&h, "x-vaultapi-burstlimitremaining"), "9");
    assert_eq!(header(&h, "x-vaultapi-responsedelay"), "<none>");
    sim.shutdown().await;
}

// ----------------------------------------------------------------- faults

/// A simulator with one listed session and a logged-in admin.
async fn fault_env() -> (Simulator, reqwest::Client, String, String) {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let ctl = sim.vault("main").expect("main");
    ctl.insert_session(SessionSeed::new(
        "/u10001400/f.bin",
        10001400,
        1234,
        datetime!(2030-01-01 00:00 UTC),
    ));
    (sim, http, base, sid)
}

#[tokio::test]
async fn fault_vault_failure_status_and_html() {
    let (sim, http, base, sid) = fault_env().await;
    let ctl = sim.vault("main").expect("main");
    let list = uploads(&base);
    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::VaultFailure {
            error_type: "UNEXPECTED_ERROR".into(),
            message: "boom".into(),
        },
        1,
    ));
    let (status, h, v) = call(&http, Method::GET, &list, &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"responseStatus": "FAILURE", "errors": [{"type": "UNEXPECTED_ERROR", "message": "boom"}]})
    );
    assert_eq!(header(&h, "x-vaultapi-vaultid"), "1000");
    assert_eq!(get(&http, &list, &sid).await["responseStatus"], "SUCCESS");

    ctl.inject(FaultRule::times(
        None,
        FaultKind::HttpStatus {
            status: 503,
            content_type: "text/html".into(),
            body: "<html>busy</html>".into(),
        },
        1,
    ));
    let resp = http
        .get(&list)
        .header("Authorization", &sid)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(resp.headers(), "content-type"), "text/html");
    assert_eq!(header(resp.headers(), "x-vaultapi-vaultid"), "<none>");
    assert_eq!(resp.text().await.expect("body"), "<html>busy</html>");

    ctl.inject(FaultRule::times(
        Some(Endpoint::Auth),
        FaultKind::HtmlSignIn,
        1,
    ));
    let resp = http
        .post(format!("{base}/api/{V}/auth"))
        .form(&[("username", "demo@example.com"), ("password", "demo")])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-type"),
        "text/html;charset=UTF-8"
    );
    let text = resp.text().await.expect("body");
    assert!(
        text.starts_with("<!DOCTYPE html>") && text.contains("<form"),
        "{text}"
    );
    demo_login(&http, &base).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_broken_bodies() {
    let (sim, http, base, sid) = fault_env().await;
    let ctl = sim.vault("main").expect("main");
    let list = uploads(&base);
    let text = |r: reqwest::Response| async move { r.text().await.expect("body") };
    let send = || http.get(&list).header("Authorization", &sid).send();
    let normal = text(send().await.expect("sent")).await;
    assert!(normal.starts_with(r#"{"responseStatus":"SUCCESS","data":[{"path":"/u10001400/f.bin""#));

    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::MalformedJson,
        1,
    ));
    let resp = send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-type"),
        "application/json;charset=UTF-8"
    );
    let body = text(resp).await;
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");

    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::TruncatedJson,
        1,
    ));
    let body = text(send().await.expect("sent")).await;
    assert_eq!(body, normal[..normal.len() / 2]);

    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::Oversized { bytes: 3_000_000 },
        1,
    ));
    let body = text(send().await.expect("sent")).await;
    assert_eq!(body.len(), 3_000_000);
    assert!(body.starts_with(r#"{"responseStatus":"SUCCESS""#));

    assert_eq!(text(send().await.expect("sent")).await, normal);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_reset_delay_and_hang() {
    let (sim, http, base, sid) = fault_env().await;
    let ctl = sim.vault("main").expect("main");
    let list = uploads(&base);

    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::Reset,
        1,
    ));
    let err = http
        .get(&list)
        .header("Authorization", &sid)
        .send()
        .await
        .expect_err("connection closed without an answer");
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(get(&http, &list, &sid).await["responseStatus"], "SUCCESS");

    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::Delay(Duration::from_millis(400)),
        1,
    ));
    let t = Instant::now();
    assert_eq!(get(&http, &list, &sid).await["responseStatus"], "SUCCESS");
    assert!(t.elapsed() >= Duration::from_millis(400));

    ctl.inject(FaultRule::always(
        Some(Endpoint::ListSessions),
        FaultKind::Hang,
    ));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = impatient
        .get(&list)
        .header("Authorization", &sid)
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    // Leave a hanging request in flight: shutdown must still be quick.
    let hanging = tokio::spawn({
        let http = http.clone();
        let list = list.clone();
        let sid = sid.clone();
        async move { http.get(&list).header("Authorization", &sid).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ctl.request_count(Endpoint::ListSessions), 5);
    let t = Instant::now();
    sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let res = hanging.await.expect("joined");
    assert!(res.is_err(), "the hung request ends without an answer");
}

#[tokio::test]
async fn fault_wrong_version_trap_spares_logins() {
    let (sim, http, base, sid) = fault_env().await;
    let ctl = sim.vault("main").expect("main");
    ctl.inject(FaultRule::always(None, FaultKind::WrongVersionTrap));
    let (_, _, v) = call(&http, Method::GET, &uploads(&base), &sid).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    let fresh = demo_login(&http, &base).await;
    let (_, _, v) = call(&http, Method::GET, &uploads(&base), &fresh).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    let (_, _, v) = call(&http, Method::GET, &format!("{base}/api/"), &fresh).await;
    assert_eq!(err_type(&v), "INVALID_SESSION_ID");
    ctl.clear_faults();
    let v = get(&http, &uploads(&base), &fresh).await;
    assert_eq!(v["data"][0]["size"], 1234);
    sim.shutdown().await;
}

// ---------------------------------------------------- counting & client id

#[tokio::test]
async fn requests_are_counted_and_client_ids_recorded() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let ctl = sim.vault("main").expect("main");
    assert_eq!(ctl.client_ids(), (None, 0));
    let sid = demo_login(&http, &base).await; // no client id
    let with_id = |id: &'static str| {
        http.get(uploads(&base))
            .header("Authorization", sid.clone())
            .header("X-VaultAPI-ClientID", id)
            .send()
    };
    with_id("acme-monitoring-exporter").await.expect("sent");
    ctl.inject(FaultRule::times(
        Some(Endpoint::ListSessions),
        FaultKind::MalformedJson,
        1,
    ));
    with_id("acme-monitoring-exporter-2").await.expect("sent");
    get(&http, &format!("{base}/api/"), &sid).await;
    let id = create_id(&http, &base, &sid, "/u10001400/c.bin", 10).await;
    get(&http, &format!("{}/{id}", uploads(&base)), &sid).await;
    get(&http, &format!("{}/{id}/parts", uploads(&base)), &sid).await;
    put_part(&http, &base, &sid, &id, "1", vec![0; 10], None).await;
    call(
        &http,
        Method::POST,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    call(
        &http,
        Method::POST,
        &format!("{base}/api/{V}/keep-alive"),
        &sid,
    )
    .await;
    call(
        &http,
        Method::DELETE,
        &format!("{base}/api/{V}/session"),
        &sid,
    )
    .await;
    let sid = demo_login(&http, &sim.base_url()).await; // root counts for main
    let id = create_id(&http, &base, &sid, "/u10001400/d.bin", 10).await;
    call(
        &http,
        Method::DELETE,
        &format!("{}/{id}", uploads(&base)),
        &sid,
    )
    .await;
    let _ = http.get(format!("{base}/api/{V}/nothing")).send().await;

    let counts: Vec<(Endpoint, u64)> = [
        Endpoint::Auth,
        Endpoint::ApiVersions,
        Endpoint::KeepAlive,
        Endpoint::Logout,
        Endpoint::ListSessions,
        Endpoint::SessionDetails,
        Endpoint::ListParts,
        Endpoint::CreateSession,
        Endpoint::UploadPart,
        Endpoint::CommitSession,
        Endpoint::AbortSession,
    ]
    .into_iter()
    .map(|e| (e, ctl.request_count(e)))
    .collect();
    assert_eq!(
        counts,
        vec![
            (Endpoint::Auth, 2),
            (Endpoint::ApiVersions, 1),
            (Endpoint::KeepAlive, 1),
            (Endpoint::Logout, 1),
            (Endpoint::ListSessions, 2),
            (Endpoint::SessionDetails, 1),
            (Endpoint::ListParts, 1),
            (Endpoint::CreateSession, 2),
            (Endpoint::UploadPart, 1),
            (Endpoint::CommitSession, 1),
            (Endpoint::AbortSession, 1),
        ]
    );
    // 15 requests reached the vault, 2 of them with a client id.
    assert_eq!(
        ctl.client_ids(),
        (Some("acme-monitoring-exporter-2".to_owned()), 13)
    );
    sim.shutdown().await;
}

// ------------------------------------------------------------------ seeds

/// `data` of seed 000 (List Upload Sessions).
fn seed_000() -> Value {
    json!([
        {
            "path": "/u10001400/Gludacta-2021/Gludacta-Flyer.docx",
            "id": "yYFg7jN_fZBmUD9Tj98RkL2yqtbTdIh17iy02nd5pby62oqVJLXv.R.ea1jSr786rgwpf7Vx3RmmQ--",
            "expiration_date": "2020-10-10T18:32:55.000Z",
            "created_date": "2020-10-07T18:32:55.000Z",
            "last_uploaded_date": "2020-10-07T19:27:07.000Z",
            "owner": 10001400,
            "uploaded_parts": 1,
            "size": 1273267,
            "uploaded": 1273267
        },
        {
            "path": "/u10001400/Gludacta-2021/GludactaPackageBrochure.pdf",
            "id": "JEtOyUb9i.DXVbtW7xZT7jWr2rNLWtdWrV7IPCo9aILqd.k8nlNNlG3SbplEVDJulPijrFwnelJw--",
            "expiration_date": "2020-10-10T19:11:57.000Z",
            "created_date": "2020-10-07T19:11:57.000Z",
            "last_uploaded_date": "2020-10-07T19:11:57.000Z",
            "owner": 10001400,
            "uploaded_parts": 0,
            "size": 1438827,
            "uploaded": 0
        },
        {
            "path": "/u10001400/cholecap-2021/Cholecap-Commercial-2021.mp4",
            "id": "TpE_3roGfhpCppmk9ltKaEAbb8.kWbZEe6xDuW3lNa42801RbIEPJaWG07xvwrITJgVmXDw3UVL1w--",
            "expiration_date": "2020-10-10T19:30:18.000Z",
            "created_date": "2020-10-07T19:30:18.000Z",
            "last_uploaded_date": "2020-10-07T19:38:29.000Z",
            "owner": 10001400,
            "uploaded_parts": 2,
            "size": 32862312,
            "uploaded": 10485760
        }
    ])
}

#[tokio::test]
async fn seed_000_sessions_are_listed_exactly() {
    let mut spec = VaultSpec::new("main", 1000);
    spec.purge_after_expiry = None; // the seed's sessions expired in 2020
    let sim = start(idle_with(vec![spec])).await;
    let ctl = sim.vault("main").expect("main");
    let seeds = [
        (
            "/u10001400/Gludacta-2021/Gludacta-Flyer.docx",
            "yYFg7jN_fZBmUD9Tj98RkL2yqtbTdIh17iy02nd5pby62oqVJLXv.R.ea1jSr786rgwpf7Vx3RmmQ--",
            datetime!(2020-10-07 18:32:55 UTC),
            datetime!(2020-10-07 19:27:07 UTC),
            1,
            1273267u64,
            1273267u64,
        ),
        (
            "/u10001400/Gludacta-2021/GludactaPackageBrochure.pdf",
            "JEtOyUb9i.DXVbtW7xZT7jWr2rNLWtdWrV7IPCo9aILqd.k8nlNNlG3SbplEVDJulPijrFwnelJw--",
            datetime!(2020-10-07 19:11:57 UTC),
            datetime!(2020-10-07 19:11:57 UTC),
            0,
            1438827,
            0,
        ),
        (
            "/u10001400/cholecap-2021/Cholecap-Commercial-2021.mp4",
            "TpE_3roGfhpCppmk9ltKaEAbb8.kWbZEe6xDuW3lNa42801RbIEPJaWG07xvwrITJgVmXDw3UVL1w--",
            datetime!(2020-10-07 19:30:18 UTC),
            datetime!(2020-10-07 19:38:29 UTC),
            2,
            32862312,
            10485760,
        ),
    ];
    for (path, id, created, last, parts, size, uploaded) in seeds {
        let mut s = SessionSeed::new(path, 10001400, size, created);
        s.id = Some(id.to_owned());
        s.last_uploaded = last;
        s.uploaded_parts = parts;
        s.uploaded = uploaded;
        assert_eq!(ctl.insert_session(s), id);
    }
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let raw = http
        .get(uploads(&base))
        .header("Authorization", &sid)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let v: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "data": seed_000()}));
    // Field order as in the seed.
    assert!(
        raw.contains(r#"{"path":"/u10001400/Gludacta-2021/Gludacta-Flyer.docx","id":"yYFg7jN_"#)
    );
    assert!(
        raw.contains(r#""owner":10001400,"uploaded_parts":1,"size":1273267,"uploaded":1273267}"#)
    );

    // Seed 002: details of the third one.
    let third = "TpE_3roGfhpCppmk9ltKaEAbb8.kWbZEe6xDuW3lNa42801RbIEPJaWG07xvwrITJgVmXDw3UVL1w--";
    let v = get(&http, &format!("{}/{third}", uploads(&base)), &sid).await;
    assert_eq!(
        v,
        json!({"responseStatus": "SUCCESS", "data": seed_000()[2]})
    );
    // Seed 003's shape: two 5 MiB parts.
    let v = get(
        &http,
        &format!("{}/{third}/parts?limit=1", uploads(&base)),
        &sid,
    )
    .await;
    assert_eq!(v["data"][0]["size"], 5242880);
    assert_eq!(v["data"][0]["part_number"], 1);
    let md5 = v["data"][0]["part_content_md5"].as_str().expect("md5");
    assert_eq!(md5.len(), 32);
    assert!(v["responseDetails"]["next_page"].is_string());
    let v = get(&http, &format!("{}/{third}/parts", uploads(&base)), &sid).await;
    let sizes: Vec<u64> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|p| p["size"].as_u64())
        .collect();
    assert_eq!(sizes, vec![5242880, 5242880]);
    sim.shutdown().await;
}

// ------------------------------------------------------- control surface

#[tokio::test]
async fn control_calls_shape_what_is_served() {
    let sim = start(SimConfig::idle()).await;
    let ctl = sim.vault("main").expect("main");
    let now = datetime!(2031-05-06 07:08:09.123 UTC);
    let id = ctl.insert_session(SessionSeed::new(
        "/u1/x.mp4",
        10001400,
        40 * MIB as u64,
        now,
    ));
    let view = ctl.session(&id).expect("listed");
    assert_eq!(view.expiration, datetime!(2031-05-09 07:08:09.123 UTC));
    assert_eq!(
        (view.uploaded, view.uploaded_parts, view.part_records),
        (0, 0, 0)
    );

    assert!(ctl.add_synthetic_part(&id, 8 * MIB as u64));
    assert!(ctl.add_synthetic_part(&id, 8 * MIB as u64));
    assert!(!ctl.add_synthetic_part(&id, 30 * MIB as u64), "beyond size");
    assert!(!ctl.add_synthetic_part(&id, 0));
    assert!(!ctl.add_synthetic_part("nope", 1));
    let view = ctl.session(&id).expect("listed");
    assert_eq!((view.uploaded, view.uploaded_parts), (16 * MIB as u64, 2));
    let since = ctl.now() - view.last_uploaded;
    assert!(
        since >= time::Duration::ZERO && since < time::Duration::seconds(5),
        "{since}"
    );

    let last = datetime!(2031-05-06 08:00 UTC);
    assert!(ctl.set_progress(&id, 20 * MIB as u64, 4, last));
    assert!(!ctl.set_progress("nope", 1, 1, last));
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let v = get(&http, &format!("{}/{id}", uploads(&base)), &sid).await;
    assert_eq!(v["data"]["uploaded"], 20 * MIB);
    assert_eq!(v["data"]["uploaded_parts"], 4);
    assert_eq!(v["data"]["last_uploaded_date"], "2031-05-06T08:00:00.000Z");
    assert_eq!(v["data"]["created_date"], "2031-05-06T07:08:09.123Z");
    let v = get(&http, &format!("{}/{id}/parts", uploads(&base)), &sid).await;
    let sizes: Vec<u64> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|p| p["size"].as_u64())
        .collect();
    assert_eq!(sizes, vec![5 * MIB as u64; 4]);

    assert_eq!(ctl.sessions().len(), 1);
    assert!(ctl.remove_session(&id));
    assert!(!ctl.remove_session(&id));
    assert!(ctl.sessions().is_empty());
    sim.shutdown().await;
}

// ------------------------------------------------------- bad requests

#[tokio::test]
async fn unknown_paths_and_methods() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    for url in [
        format!("{}/nope", sim.base_url()),
        format!("{}/vaults/unknown/api/", sim.base_url()),
        format!("{base}/api/{V}/services/file_staging/nothing"),
        format!("{base}/api/latest/services/file_staging/upload"),
        format!("{base}/other"),
    ] {
        let (status, _, v) = call(&http, Method::GET, &url, "x").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(err_type(&v), "MALFORMED_URL", "{url}");
        assert_eq!(v["responseStatus"], "FAILURE");
    }
    for (method, url) in [
        (Method::GET, format!("{base}/api/{V}/auth")),
        (Method::PATCH, uploads(&base)),
        (Method::POST, format!("{}/abc/parts", uploads(&base))),
        (Method::DELETE, format!("{base}/api/")),
    ] {
        let (status, _, v) = call(&http, method.clone(), &url, "x").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
        assert_eq!(err_type(&v), "METHOD_NOT_SUPPORTED", "{method} {url}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_vault_errors() {
    let sim = start(SimConfig::idle()).await;
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let post = |form: Vec<(&'static str, String)>| {
        http.post(uploads(&base))
            .header("Authorization", sid.clone())
            .form(&form)
            .send()
    };
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("size", "10".into())], "PARAMETER_REQUIRED"),
        (vec![("path", "/a.bin".into())], "PARAMETER_REQUIRED"),
        (
            vec![("path", "/a.bin".into()), ("size", "abc".into())],
            "INVALID_DATA",
        ),
        (
            vec![("path", "/a.bin".into()), ("size", "0".into())],
            "INVALID_DATA",
        ),
        (
            vec![("path", "/a.bin".into()), ("size", "-5".into())],
            "INVALID_DATA",
        ),
        (
            vec![
                ("path", "/a.bin".into()),
                ("size", "99999999999999999999999".into()),
            ],
            "INVALID_DATA",
        ),
        (
            vec![
                ("path", "/a.bin".into()),
                ("size", (500u64 * 1024 * 1024 * 1024 + 1).to_string()),
            ],
            "EXCEEDS_FILE_MAX_SIZE",
        ),
        (
            vec![
                ("path", "/a.bin".into()),
                ("size", "10".into()),
                ("overwrite", "maybe".into()),
            ],
            "INVALID_DATA",
        ),
        (
            vec![("path", "/dir/".into()), ("size", "10".into())],
            "INVALID_DATA",
        ),
        (
            vec![("path", "x".repeat(100_000)), ("size", "10".into())],
            "INVALID_DATA",
        ),
    ];
    for (form, expected) in cases {
        let v: Value = post(form.clone())
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(err_type(&v), expected, "{form:?}");
    }
    let v: Value = post(vec![
        ("path", "u10001400/ok.bin".into()),
        ("size", (500u64 * 1024 * 1024 * 1024).to_string()),
        ("overwrite", "TRUE".into()),
    ])
    .await
    .expect("sent")
    .json()
    .await
    .expect("json");
    assert_eq!(v["data"]["path"], "/u10001400/ok.bin");
    assert_eq!(v["data"]["overwrite"], true);
    let id = v["data"]["id"].as_str().expect("id").to_owned();
    let other = create_id(&http, &base, &sid, "/o.bin", 10).await;
    put_part(&http, &base, &sid, &other, "1", vec![1; 5], None).await;

    let parts = format!("{}/{id}/parts", uploads(&base));
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "limit=",
        "cursor=abc",
        "cursor=%2B%2B%3A%3D",
    ] {
        let (_, _, v) = call(&http, Method::GET, &format!("{parts}?{q}"), &sid).await;
        assert_eq!(err_type(&v), "INVALID_DATA", "{q}");
    }
    // A cursor of another session is refused.
    put_part(&http, &base, &sid, &other, "2", vec![1; 5], None).await;
    let v = get(
        &http,
        &format!("{}/{other}/parts?limit=1", uploads(&base)),
        &sid,
    )
    .await;
    let next = v["responseDetails"]["next_page"].as_str().expect("next");
    let cursor = next.split("cursor=").nth(1).expect("cursor");
    let (_, _, v) = call(
        &http,
        Method::GET,
        &format!("{parts}?cursor={cursor}"),
        &sid,
    )
    .await;
    assert_eq!(err_type(&v), "INVALID_DATA");
    let v = get(&http, &format!("{parts}?limit=1000"), &sid).await;
    assert_eq!(v, json!({"responseStatus": "SUCCESS", "data": []}));

    // A declared 60 MB part is refused before its body is read.
    let answer = raw_request(
        sim.addr(),
        &format!(
            "PUT /vaults/main/api/{V}/services/file_staging/upload/{id} HTTP/1.1\r\nHost: sim\r\n\
             Authorization: {sid}\r\nX-VaultAPI-FilePartNumber: 1\r\nContent-Length: 60000000\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains(r#""type":"INVALID_DATA""#), "{answer}");
    // A streamed (chunked) part has no Content-Length, which Vault requires.
    let answer = raw_request(
        sim.addr(),
        &format!(
            "PUT /vaults/main/api/{V}/services/file_staging/upload/{id} HTTP/1.1\r\nHost: sim\r\n\
             Authorization: {sid}\r\nX-VaultAPI-FilePartNumber: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(
        answer.contains(r#""type":"PARAMETER_REQUIRED""#),
        "{answer}"
    );
    // Garbage form encoding and non-UTF-8 bytes are just bad parameters.
    let v: Value = http
        .post(uploads(&base))
        .header("Authorization", &sid)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![0xff, b'=', 0xfe, b'&', b'%', b'z', b'z'])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(err_type(&v), "PARAMETER_REQUIRED");
    let v = get(&http, &uploads(&base), &sid).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    sim.shutdown().await;
}

// ------------------------------------------------------------------ demo

#[tokio::test]
async fn demo_scenario_serves_both_vaults_with_activity() {
    let sim = start(SimConfig::demo()).await;
    let main = sim.vault("main").expect("main");
    let site = sim.vault("sitevault").expect("site");
    let deadline = Instant::now() + Duration::from_secs(5);
    while site.sessions().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = client();
    let base = main_url(&sim);
    let sid = demo_login(&http, &base).await;
    let v = get(&http, &uploads(&base), &sid).await;
    let listed = v["data"].as_array().expect("data");
    assert_eq!(listed.len(), 12, "{v}");
    for s in listed {
        assert!(s["uploaded"].as_u64() <= s["size"].as_u64(), "{s}");
        let owner = s["owner"].as_u64().expect("owner");
        assert!((10001400..=10001404).contains(&owner), "{s}");
        assert!(s["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("/u{owner}/"))));
    }
    let site_base = sim.vault_url("sitevault").expect("site");
    let v = auth(&http, &site_base, "demo@example.com", "demo").await;
    assert_eq!(v["vaultId"], 2000);
    assert_eq!(v["userId"], 20001400);
    let site_sid = v["sessionId"].as_str().expect("sid");
    let v = get(&http, &uploads(&site_base), site_sid).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(5));
    login(&http, &base, "priya.patel@example.com", "upload").await;

    // Progress shows within a few seconds (the demo ticks every 2 s).
    let before: u64 = main.sessions().iter().map(|s| s.uploaded).sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = before;
    while after == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = main.sessions().iter().map(|s| s.uploaded).sum();
    }
    assert_ne!(after, before, "uploads progress");
    for s in main.sessions() {
        assert!(s.uploaded <= s.size);
        assert_eq!(s.part_records, s.uploaded_parts);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_configurations_are_rejected() {
    let bad = |vaults: Vec<VaultSpec>| async move {
        Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), idle_with(vaults))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(bad(vec![]).await.is_err());
    assert!(bad(vec![VaultSpec::new("a/b", 1)]).await.is_err());
    assert!(bad(vec![VaultSpec::new("a", 1), VaultSpec::new("a", 2)])
        .await
        .is_err());
    let mut v = VaultSpec::new("a", 1);
    v.api_versions = vec!["25.2".into()];
    assert!(bad(vec![v]).await.is_err());
    assert_eq!(bad(vec![VaultSpec::new("a", 1)]).await, Ok(()));
}
