//! The S3 side over real HTTP: paging, lifecycle, errors and faults, with
//! exact values. Requests are signed by [`sign`] below, a SigV4 signer
//! written for this test (boto3 proves the simulator against a real
//! client in `s3_boto3.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::macros::{datetime, time};
use time::OffsetDateTime;
use upload_session_sim::{
    LifecycleRule, S3BucketSpec, S3Control, S3Identity, S3Spec, S3UploadSeed, S3User, Scenario,
    SimConfig, SimOptions, Simulator, S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};

const BUCKET: &str = "seeded";
const TEMP_KEY: &str = "ASIATEMPORARY0000001";
const TEMP_SECRET: &str = "temporary-secret";
const TEMP_TOKEN: &str = "temporary-token";
/// Virtual-hosted domain ([`S3Spec::domain`]); `.test` never resolves.
const DOMAIN: &str = "s3.sim.test";

fn ana() -> S3Identity {
    S3Identity::new("arn:aws:iam::111122223333:user/ana", "ana")
}

/// Bucket "seeded": uploads of keys a, b, b, c (initiated a minute apart,
/// in that order), "a" with parts 1, 2, 3, 5; bucket "empty".
fn config() -> SimConfig {
    let mut s3 = S3Spec::new();
    let mut temp = S3User::new(
        TEMP_KEY,
        TEMP_SECRET,
        "arn:aws:sts::1:assumed-role/r/s",
        "r/s",
    );
    temp.session_token = Some(TEMP_TOKEN.to_owned());
    s3.users.push(temp);
    let mut b = S3BucketSpec::new(BUCKET);
    let t0 = datetime!(2025-03-14 09:00 UTC);
    for (i, key) in ["a", "b", "b", "c"].iter().enumerate() {
        let mut u = S3UploadSeed::new(key, ana(), t0 + time::Duration::minutes(i as i64));
        u.id = Some(format!("id-{i}"));
        if i == 0 {
            u.parts = vec![(1, 10), (2, 20), (3, 30), (5, 50)];
        }
        b.uploads.push(u);
    }
    s3.buckets = vec![b, S3BucketSpec::new("empty")];
    s3.domain = Some(DOMAIN.to_owned());
    SimConfig {
        scenario: Scenario::Idle,
        seed: 1,
        vaults: Vec::new(),
        deepset: Vec::new(),
        s3: Some(s3),
    }
}

async fn start() -> (Simulator, S3Control) {
    let sim = Simulator::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        config(),
        SimOptions::with_admin(),
    )
    .await
    .expect("simulator starts");
    let ctl = sim.s3().expect("S3 side");
    (sim, ctl)
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn enc(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Credentials of a request.
struct Creds<'a> {
    key: &'a str,
    secret: &'a str,
    token: Option<&'a str>,
}

const DEMO: Creds<'static> = Creds {
    key: S3_DEMO_ACCESS_KEY_ID,
    secret: S3_DEMO_SECRET_ACCESS_KEY,
    token: None,
};

/// Sends a request signed with SigV4 (payload hash signed) or unsigned
/// (`creds` None); status and body.
async fn send(
    sim: &Simulator,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
    creds: Option<&Creds<'_>>,
) -> (StatusCode, String) {
    let base = sim.s3_url().expect("S3 url");
    let host = base.trim_start_matches("http://").to_owned();
    send_to(sim, &host, &host, method, path, query, body, creds).await
}

/// [`send`] for `http://{host}`, signed for `Host: {signed_host}`; a host
/// other than the simulator's address is reached with the simulator as
/// the HTTP proxy (no name is resolved: the request line is absolute).
#[allow(clippy::too_many_arguments)]
async fn send_to(
    sim: &Simulator,
    host: &str,
    signed_host: &str,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
    creds: Option<&Creds<'_>>,
) -> (StatusCode, String) {
    let sim_url = sim.s3_url().expect("S3 url");
    let base = format!("http://{host}");
    let proxied = base != sim_url;
    let host = signed_host.to_owned();
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (enc(k, false), enc(v, false)))
        .collect();
    q.sort();
    let qs = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!(
        "{base}{}{}{qs}",
        enc(path, true),
        if qs.is_empty() { "" } else { "?" }
    );
    let mut http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy();
    if proxied {
        http = http.proxy(reqwest::Proxy::http(&sim_url).expect("proxy url"));
    }
    let http = http.build().expect("client");
    let mut req = http.request(method.clone(), &url).body(body.to_vec());
    if let Some(c) = creds {
        let now = OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let payload = hex::encode(Sha256::digest(body));
        let mut headers = vec![
            ("host".to_owned(), host.clone()),
            ("x-amz-content-sha256".to_owned(), payload.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        if let Some(t) = c.token {
            headers.push(("x-amz-security-token".to_owned(), t.to_owned()));
        }
        let signed = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canon_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let cr = format!(
            "{}\n{}\n{qs}\n{canon_headers}\n{signed}\n{payload}",
            method.as_str(),
            enc(path, true)
        );
        let scope = format!("{date}/us-east-1/s3/aws4_request");
        let sts = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(cr.as_bytes()))
        );
        let k = hmac(format!("AWS4{}", c.secret).as_bytes(), &date);
        let k = hmac(&k, "us-east-1");
        let k = hmac(&k, "s3");
        let k = hmac(&k, "aws4_request");
        let sig = hex::encode(hmac(&k, &sts));
        for (k, v) in headers.iter().skip(1) {
            req = req.header(k, v);
        }
        req = req.header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
                c.key
            ),
        );
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn get(sim: &Simulator, path: &str, query: &[(&str, &str)]) -> String {
    let (status, body) = send(sim, Method::GET, path, query, b"", Some(&DEMO)).await;
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    body
}

/// Texts of every `<name>` element, in order.
fn all(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

fn one(xml: &str, name: &str) -> String {
    all(xml, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

fn code(body: &str) -> String {
    one(body, "Code")
}

#[tokio::test]
async fn uploads_page_with_exact_markers() {
    let (sim, _ctl) = start().await;
    let b = get(&sim, "/seeded", &[("uploads", ""), ("max-uploads", "2")]).await;
    assert!(
        b.contains(
            "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        ),
        "{b}"
    );
    assert_eq!(all(&b, "UploadId"), ["id-0", "id-1"]);
    assert_eq!(all(&b, "Key"), ["a", "b"]);
    assert_eq!(one(&b, "IsTruncated"), "true");
    assert_eq!(one(&b, "MaxUploads"), "2");
    assert_eq!(
        (one(&b, "NextKeyMarker"), one(&b, "NextUploadIdMarker")),
        ("b".into(), "id-1".into())
    );
    assert_eq!(all(&b, "Initiated")[0], "2025-03-14T09:00:00.000Z");
    assert_eq!(all(&b, "ID")[0], "arn:aws:iam::111122223333:user/ana");
    assert_eq!(all(&b, "DisplayName")[..2], ["ana", "sim-owner"]);
    assert_eq!(one(&b, "StorageClass"), "STANDARD");

    let b = get(
        &sim,
        "/seeded",
        &[
            ("uploads", ""),
            ("max-uploads", "2"),
            ("key-marker", "b"),
            ("upload-id-marker", "id-1"),
        ],
    )
    .await;
    assert_eq!(all(&b, "UploadId"), ["id-2", "id-3"]);
    assert_eq!(one(&b, "IsTruncated"), "false");
    assert_eq!(
        (one(&b, "KeyMarker"), one(&b, "UploadIdMarker")),
        ("b".into(), "id-1".into())
    );
    assert_eq!(
        (one(&b, "NextKeyMarker"), one(&b, "NextUploadIdMarker")),
        ("c".into(), "id-3".into())
    );

    // Key marker alone: every upload of that key is skipped.
    let b = get(&sim, "/seeded", &[("uploads", ""), ("key-marker", "b")]).await;
    assert_eq!(all(&b, "UploadId"), ["id-3"]);
    // Upload id marker without key marker is ignored.
    let b = get(
        &sim,
        "/seeded",
        &[("uploads", ""), ("upload-id-marker", "id-2")],
    )
    .await;
    assert_eq!(all(&b, "UploadId"), ["id-0", "id-1", "id-2", "id-3"]);
    let b = get(&sim, "/seeded", &[("uploads", ""), ("prefix", "b")]).await;
    assert_eq!(all(&b, "UploadId"), ["id-1", "id-2"]);
    assert_eq!(one(&b, "Prefix"), "b");
    let b = get(
        &sim,
        "/seeded",
        &[
            ("uploads", ""),
            ("max-uploads", "1"),
            ("key-marker", "c"),
            ("upload-id-marker", "id-3"),
        ],
    )
    .await;
    assert!(all(&b, "Upload").is_empty(), "{b}");
    assert_eq!(
        (one(&b, "IsTruncated"), one(&b, "NextKeyMarker")),
        ("false".into(), String::new())
    );
    let b = get(&sim, "/empty", &[("uploads", "")]).await;
    assert_eq!(
        (one(&b, "IsTruncated"), one(&b, "MaxUploads")),
        ("false".into(), "1000".into())
    );
    for bad in ["0", "1001", "-1", "ten"] {
        let (s, body) = send(
            &sim,
            Method::GET,
            "/seeded",
            &[("uploads", ""), ("max-uploads", bad)],
            b"",
            Some(&DEMO),
        )
        .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::BAD_REQUEST, "InvalidArgument".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn parts_page_with_exact_markers() {
    let (sim, _ctl) = start().await;
    let b = get(
        &sim,
        "/seeded/a",
        &[("uploadId", "id-0"), ("max-parts", "2")],
    )
    .await;
    assert_eq!(all(&b, "PartNumber"), ["1", "2"]);
    assert_eq!(all(&b, "Size"), ["10", "20"]);
    assert_eq!(one(&b, "IsTruncated"), "true");
    assert_eq!(
        (
            one(&b, "PartNumberMarker"),
            one(&b, "NextPartNumberMarker"),
            one(&b, "MaxParts")
        ),
        ("0".into(), "2".into(), "2".into())
    );
    assert_eq!(all(&b, "LastModified")[0], "2025-03-14T09:01:00.000Z");
    assert!(all(&b, "ETag")[0].starts_with("&quot;") || all(&b, "ETag")[0].starts_with('"'));
    let b = get(
        &sim,
        "/seeded/a",
        &[
            ("uploadId", "id-0"),
            ("max-parts", "2"),
            ("part-number-marker", "2"),
        ],
    )
    .await;
    assert_eq!(all(&b, "PartNumber"), ["3", "5"]);
    assert_eq!(
        (one(&b, "IsTruncated"), one(&b, "NextPartNumberMarker")),
        ("false".into(), "5".into())
    );
    let b = get(
        &sim,
        "/seeded/a",
        &[("uploadId", "id-0"), ("part-number-marker", "3")],
    )
    .await;
    assert_eq!(all(&b, "PartNumber"), ["5"]);
    let b = get(&sim, "/seeded/b", &[("uploadId", "id-1")]).await;
    assert!(all(&b, "Part").is_empty());
    assert_eq!(one(&b, "NextPartNumberMarker"), "0");
    // An upload id of another key is no upload of this one.
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded/b",
        &[("uploadId", "id-0")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchUpload".into())
    );
}

#[tokio::test]
async fn multipart_round_trip_and_object_errors() {
    let (sim, ctl) = start().await;
    let (s, b) = send(
        &sim,
        Method::POST,
        "/empty/dir/file.bin",
        &[("uploads", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let id = one(&b, "UploadId");
    let (s, _) = send(
        &sim,
        Method::PUT,
        "/empty/dir/file.bin",
        &[("partNumber", "1"), ("uploadId", &id)],
        b"hello",
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = send(
        &sim,
        Method::PUT,
        "/empty/dir/file.bin",
        &[("partNumber", "10001"), ("uploadId", &id)],
        b"x",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::BAD_REQUEST, "InvalidArgument".into())
    );
    let up = &ctl.uploads("empty")[0];
    assert_eq!(
        (up.key.as_str(), up.parts.as_slice()),
        ("dir/file.bin", &[(1, 5)][..])
    );
    assert_eq!(up.initiator.id, S3User::demo().identity.id);
    let done = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"5d41402abc4b2a76b9719d911017c592\"</ETag></Part></CompleteMultipartUpload>";
    let (s, b) = send(
        &sim,
        Method::POST,
        "/empty/dir/file.bin",
        &[("uploadId", &id)],
        done.as_bytes(),
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(one(&b, "Key"), "dir/file.bin");
    assert!(ctl.uploads("empty").is_empty());
    let (s, body) = send(&sim, Method::GET, "/empty/nope", &[], b"", Some(&DEMO)).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchKey".into())
    );
    let (s, _) = send(
        &sim,
        Method::DELETE,
        "/seeded/c",
        &[("uploadId", "id-3")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = send(
        &sim,
        Method::DELETE,
        "/seeded/c",
        &[("uploadId", "id-3")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchUpload".into())
    );
}

#[tokio::test]
async fn lifecycle_put_get_delete() {
    let (sim, _ctl) = start().await;
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("lifecycle", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchLifecycleConfiguration".into())
    );
    let doc = "<LifecycleConfiguration><Rule><ID>abort-1d</ID><Filter><Prefix>b</Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>";
    let (s, b) = send(
        &sim,
        Method::PUT,
        "/seeded",
        &[("lifecycle", "")],
        doc.as_bytes(),
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let b = get(&sim, "/seeded", &[("lifecycle", "")]).await;
    assert_eq!(one(&b, "ID"), "abort-1d");
    assert_eq!(one(&b, "Prefix"), "b");
    assert_eq!(one(&b, "Status"), "Enabled");
    assert_eq!(one(&b, "DaysAfterInitiation"), "1");
    let (s, body) = send(
        &sim,
        Method::PUT,
        "/seeded",
        &[("lifecycle", "")],
        b"<LifecycleConfiguration><Rule>",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::BAD_REQUEST, "MalformedXML".into())
    );
    let (s, _) = send(
        &sim,
        Method::DELETE,
        "/seeded",
        &[("lifecycle", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("lifecycle", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchLifecycleConfiguration".into())
    );
}

#[tokio::test]
async fn lifecycle_aborts_after_the_rounded_up_midnight() {
    let (sim, ctl) = start().await;
    // Uploads initiated at 00:00:00.001 and at 23:00 today (simulated):
    // with a 1-day rule both go at midnight two days from now, not before.
    let now = ctl.now();
    let today = now.date().with_time(time!(0:00)).assume_utc();
    for (key, at) in [
        ("tmp/early", today + time::Duration::milliseconds(1)),
        ("tmp/late", today + time::Duration::hours(23)),
        ("keep/x", today),
    ] {
        ctl.insert_upload("empty", S3UploadSeed::new(key, ana(), at))
            .expect("bucket");
    }
    assert!(ctl.set_lifecycle(
        "empty",
        Some(vec![LifecycleRule::abort_after("r", "tmp/", 1)])
    ));
    let deadline = today + time::Duration::days(2);
    let listed = |b: &str| all(b, "Key");
    // Just before the deadline: all listed.
    let before = deadline - now - time::Duration::seconds(5);
    sim.advance(Duration::try_from(before).expect("positive"));
    let b = get(&sim, "/empty", &[("uploads", "")]).await;
    assert_eq!(listed(&b), ["keep/x", "tmp/early", "tmp/late"]);
    sim.advance(Duration::from_secs(10));
    let b = get(&sim, "/empty", &[("uploads", "")]).await;
    assert_eq!(listed(&b), ["keep/x"], "past {deadline}");
    assert_eq!(ctl.lifecycle_aborted("empty"), 2);
    // A disabled rule does nothing.
    let mut off = LifecycleRule::abort_after("r", "", 1);
    off.enabled = false;
    ctl.set_lifecycle("empty", Some(vec![off]));
    sim.advance(Duration::from_secs(10 * 86_400));
    assert_eq!(ctl.uploads("empty").len(), 1);
}

#[tokio::test]
async fn authentication_errors() {
    let (sim, ctl) = start().await;
    let (s, body) = send(&sim, Method::GET, "/", &[], b"", None).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "AccessDenied".into())
    );
    let wrong = Creds {
        secret: "not-the-secret",
        ..DEMO
    };
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&wrong),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch".into())
    );
    assert!(
        !body.contains("not-the-secret") && !body.contains(S3_DEMO_SECRET_ACCESS_KEY),
        "{body}"
    );
    let unknown = Creds {
        key: "AKIANOBODY0000000000",
        ..DEMO
    };
    let (s, body) = send(&sim, Method::GET, "/", &[], b"", Some(&unknown)).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "InvalidAccessKeyId".into())
    );
    let temp = Creds {
        key: TEMP_KEY,
        secret: TEMP_SECRET,
        token: Some(TEMP_TOKEN),
    };
    let (s, body) = send(&sim, Method::GET, "/", &[], b"", Some(&temp)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    ctl.set_token_expired(TEMP_KEY, true);
    let (s, body) = send(&sim, Method::GET, "/", &[], b"", Some(&temp)).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::BAD_REQUEST, "ExpiredToken".into())
    );
    assert!(!body.contains(TEMP_TOKEN), "{body}");
    ctl.set_token_expired(TEMP_KEY, false);
    let (s, _) = send(&sim, Method::GET, "/", &[], b"", Some(&temp)).await;
    assert_eq!(s, StatusCode::OK);
    // An Authorization header that is not SigV4 is refused.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/", sim.s3_url().unwrap_or_default()))
        .header("authorization", "Bearer x")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (s, body) = send(
        &sim,
        Method::GET,
        "/no-such-bucket",
        &[("uploads", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "NoSuchBucket".into())
    );
    assert_eq!(one(&body, "BucketName"), "no-such-bucket");
}

#[tokio::test]
async fn faults_armed_through_the_admin_api() {
    let (sim, _ctl) = start().await;
    let admin = format!("{}/_sim/faults", sim.base_url());
    let http = reqwest::Client::new();
    let arm = |body: serde_json::Value| {
        let http = http.clone();
        let admin = admin.clone();
        async move {
            let r = http.post(&admin).json(&body).send().await.expect("admin");
            assert_eq!(
                r.status(),
                StatusCode::CREATED,
                "{body}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    };
    arm(json!({"api": "s3", "bucket": BUCKET, "endpoint": "list_multipart_uploads", "kind": "s3_error", "code": "InternalError", "times": 1})).await;
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalError".into())
    );
    // Other buckets are not hit; the fault is used up.
    get(&sim, "/empty", &[("uploads", "")]).await;
    get(&sim, "/seeded", &[("uploads", "")]).await;

    arm(json!({"api": "s3", "kind": "slow_down", "retry_after": 7, "times": 1})).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/", sim.s3_url().unwrap_or_default()))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(code(&resp.text().await.unwrap_or_default()), "SlowDown");

    arm(json!({"api": "s3", "bucket": BUCKET, "kind": "malformed_xml", "times": 1})).await;
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("<Key>a<</Upload>"), "{body}");

    arm(
        json!({"api": "s3", "bucket": BUCKET, "kind": "oversized", "bytes": 3_000_000, "times": 1}),
    )
    .await;
    let (s, body) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&DEMO),
    )
    .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 3_000_000));
    assert!(body.ends_with("</ListMultipartUploadsResult>"));

    arm(json!({"api": "s3", "bucket": BUCKET, "kind": "hang", "times": 1})).await;
    let hung = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client")
        .get(format!(
            "{}/seeded?uploads",
            sim.s3_url().unwrap_or_default()
        ))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()));

    let list: serde_json::Value = http
        .get(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        list["s3"]["*"].as_array().is_some_and(Vec::is_empty),
        "{list}"
    );
    let r = http
        .post(&admin)
        .json(&json!({"api": "s3", "bucket": "nope", "kind": "hang"}))
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn virtual_hosted_requests_name_the_bucket_by_host() {
    let (sim, ctl) = start().await;
    let url = sim.s3_url().expect("S3 url");
    let port = url.rsplit(':').next().expect("a port");
    let vhost = format!("{BUCKET}.{DOMAIN}:{port}");
    let apex = format!("{DOMAIN}:{port}");
    let at = |host: &str, signed: &str, method: Method, path: &str, query: &[(&str, &str)]| {
        let (host, signed, path) = (host.to_owned(), signed.to_owned(), path.to_owned());
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sim = &sim;
        async move {
            let q: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            send_to(sim, &host, &signed, method, &path, &q, b"", Some(&DEMO)).await
        }
    };

    // The host names the bucket; the path is empty...
    let (s, b) = at(&vhost, &vhost, Method::GET, "/", &[("uploads", "")]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(one(&b, "Bucket"), BUCKET);
    assert_eq!(all(&b, "UploadId"), ["id-0", "id-1", "id-2", "id-3"]);
    // ... or the key.
    let (s, b) = at(&vhost, &vhost, Method::GET, "/a", &[("uploadId", "id-0")]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (one(&b, "Bucket"), one(&b, "Key")),
        (BUCKET.into(), "a".into())
    );
    assert_eq!(all(&b, "Size"), ["10", "20", "30", "50"]);
    let (s, b) = at(&vhost, &vhost, Method::GET, "/", &[("lifecycle", "")]).await;
    assert_eq!(
        (s, code(&b), one(&b, "BucketName")),
        (
            StatusCode::NOT_FOUND,
            "NoSuchLifecycleConfiguration".into(),
            BUCKET.into()
        )
    );
    let (s, b) = at(
        &vhost,
        &vhost,
        Method::POST,
        "/dir/new.bin",
        &[("uploads", "")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (one(&b, "Bucket"), one(&b, "Key")),
        (BUCKET.into(), "dir/new.bin".into())
    );
    // The signature covers the Host header as sent: one signed for another
    // host does not match, and S3's canonical request shows the host used.
    let (s, b) = at(&vhost, &apex, Method::GET, "/", &[("uploads", "")]).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch".into())
    );
    assert!(
        one(&b, "CanonicalRequest").contains(&format!("\nhost:{vhost}\n")),
        "{b}"
    );
    // A bucket named by the host that does not exist.
    let nope = format!("nope.{DOMAIN}:{port}");
    let (s, b) = at(&nope, &nope, Method::GET, "/", &[("uploads", "")]).await;
    assert_eq!(
        (s, code(&b), one(&b, "BucketName")),
        (StatusCode::NOT_FOUND, "NoSuchBucket".into(), "nope".into())
    );
    assert_eq!(ctl.virtual_hosted_requests(), 6);

    // The domain itself, and any other host, are path-style.
    let (s, b) = at(&apex, &apex, Method::GET, "/", &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(all(&b, "Name"), ["empty", BUCKET]);
    let (s, b) = at(&apex, &apex, Method::GET, "/seeded", &[("uploads", "")]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(all(&b, "Key"), ["a", "b", "b", "c", "dir/new.bin"]);
    let elsewhere = format!("{BUCKET}.elsewhere.test:{port}");
    let (s, b) = at(&elsewhere, &elsewhere, Method::GET, "/", &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(all(&b, "Name"), ["empty", BUCKET]);
    // Path-style at the simulator's address, at the same time.
    let b = get(&sim, "/seeded", &[("uploads", "")]).await;
    assert_eq!(all(&b, "Key"), ["a", "b", "b", "c", "dir/new.bin"]);
    assert_eq!(ctl.virtual_hosted_requests(), 6);
    assert_eq!(
        ctl.request_count(upload_session_sim::S3Endpoint::ListMultipartUploads),
        5
    );
}

#[tokio::test]
async fn a_reflecting_store_echoes_the_secret_the_token_and_the_request() {
    use upload_session_sim::{FaultKind, FaultRule, S3Endpoint};
    let (sim, ctl) = start().await;
    assert!(ctl.inject(
        Some(BUCKET),
        FaultRule::times(
            Some(S3Endpoint::ListMultipartUploads),
            FaultKind::ReflectRequest { status: 502 },
            2,
        ),
    ));
    let temp = Creds {
        key: TEMP_KEY,
        secret: TEMP_SECRET,
        token: Some(TEMP_TOKEN),
    };
    let (s, b) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&temp),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_GATEWAY, "AccessDenied".into())
    );
    let m = one(&b, "Message");
    let head = format!(
        "Invalid request: secret access key: {TEMP_SECRET}\nx-amz-security-token: {TEMP_TOKEN}\n\
         Authorization: AWS4-HMAC-SHA256 Credential={TEMP_KEY}/"
    );
    assert!(m.starts_with(&head), "{m}");
    assert!(m.contains("\nGET /seeded?uploads=\n"), "{m}");
    // A key id the store does not know: no secret to echo, the rest as sent.
    let stranger = Creds {
        key: "AKIASTRANGER00000001",
        secret: "stranger-secret",
        token: None,
    };
    let (s, b) = send(
        &sim,
        Method::GET,
        "/seeded",
        &[("uploads", "")],
        b"",
        Some(&stranger),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_GATEWAY, "AccessDenied".into())
    );
    let m = one(&b, "Message");
    assert!(
        m.starts_with(
            "Invalid request: Authorization: AWS4-HMAC-SHA256 Credential=AKIASTRANGER00000001/"
        ),
        "{m}"
    );
    assert!(!m.contains("stranger-secret"), "{m}");
    // Used up: the listing answers again.
    get(&sim, "/seeded", &[("uploads", "")]).await;
}
