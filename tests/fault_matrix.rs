//! The fault matrix (issue 6): for every fault class the simulator can
//! produce, the real exporter runs against a simulator holding one healthy
//! Vault, one healthy deepset workspace and one faulty target (a Vault, a
//! deepset workspace or an S3 bucket), the fault is
//! switched on at run time through the simulator's admin API, and:
//!
//! - every scrape of `/metrics` answers 200 within [`SCRAPE_BOUND`] and
//!   never shows a secret;
//! - the healthy targets' figures stay exact, up, error-free and on their
//!   interval at every scrape;
//! - the faulty target reads down with the right `reason` (or stays up
//!   where the fault is benign), keeps its last figures, and recovers by
//!   itself within its backoff once the fault is cleared (refused logins:
//!   the 5-minute login backoff is scheduled and no second login happens).
//!
//! Separate tests cover memory under huge bodies (the response size cap),
//! slow upstreams (other targets keep their interval), and the admin API
//! itself (off unless enabled, never in `--demo`).
//!
//! `FAULT_MATRIX_CASE=substring` runs only the matching rows.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{base_target, config, samples, start_exporter, vault_spec};
use serde_json::{json, Value};
use tokio::sync::{RwLock, Semaphore};
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::Exporter;
use upload_session_exporter::config::TargetConfig;
use upload_session_exporter::kinds::deepset::DeepsetConfig;
use upload_session_exporter::kinds::s3::S3Config;
use upload_session_exporter::kinds::vault::VaultConfig;
use upload_session_exporter::secret::Secret;
use upload_session_sim::deepset::DeepsetEndpoint;
use upload_session_sim::{
    DeepsetSessionSeed, DeepsetSpec, DeepsetUser, Endpoint, FaultKind, FaultRule, FileSeed,
    S3BucketSpec, S3Endpoint, S3Identity, S3Spec, S3UploadSeed, SessionSeed, SimConfig, SimOptions,
    Simulator, UserSpec, S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};

/// A correctness bound, not a benchmark: a scrape only takes this long if
/// something blocks it.
const SCRAPE_BOUND: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_secs(1);
/// Time between two scrapes while waiting for something.
const SCRAPE_PERIOD: Duration = Duration::from_millis(150);
const TIMEOUT: Duration = Duration::from_secs(2);
/// Rows run at the same time.
const CONCURRENT_CASES: usize = 6;
/// Whole-body sizes of the oversized faults: far beyond any cap.
const HUGE: u64 = 200 * 1024 * 1024;

const USERNAME: &str = "monitor@example.com";
/// Unique strings: no scrape may ever contain them.
const PASSWORD: &str = "Pw-matrix-3c9e1f-secret";
const API_KEY: &str = "key-matrix-8b2d4a-secret";
const ADA: &str = "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01";
const BEA: &str = "5e1a9b7c-3d2f-4c6e-8a0b-1f2e3d4c5b02";
const S3_OWNER: &str = "arn:aws:iam::111122223333:user/s3-owner";

/// Names in the simulator (vaults and workspaces alike) and exporter targets.
const HEALTHY: &str = "healthy";
const FAULTY: &str = "faulty";
const HV: &str = "hv";
const HD: &str = "hd";
const F: &str = "f";

const REASONS: [&str; 7] = [
    "auth",
    "timeout",
    "connect",
    "http_status",
    "api_error",
    "decode",
    "rate_limited",
];

/// Tests that measure the whole process (resident memory) take this lock
/// for writing; every other test holds it for reading.
fn exclusive() -> &'static RwLock<()> {
    static LOCK: OnceLock<RwLock<()>> = OnceLock::new();
    LOCK.get_or_init(|| RwLock::new(()))
}

// ------------------------------------------------------------------ matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Vault,
    Deepset,
    S3,
}

/// What the admin API is asked to do to the faulty target.
#[derive(Debug, Clone)]
enum Arm {
    /// `POST /_sim/faults` with this body (api and name are added).
    Fault(Value),
    /// `POST /_sim/actions` with this body (api and name are added).
    Action(Value),
}

#[derive(Debug, Clone)]
enum Expect {
    /// `target_up 0` with this reason (and no other); the next poll is at
    /// least `min_wait` seconds away; recovers within its backoff.
    Down { reason: &'static str, min_wait: f64 },
    /// A refused login: `reason="auth"`, the next login ≥ 300 s away and no
    /// second login within the observation window.
    LoginRefused,
    /// Benign: up at every scrape, no errors, these extra samples exact
    /// while the fault is on (and gone after it), `logins` more logins.
    Up {
        extra: &'static [(&'static str, &'static str)],
        logins: u64,
    },
    /// The API budget: up, next poll ≥ 300 s away, the given response delay
    /// (seconds) and burst remaining at most `remaining`.
    Throttled { delay: &'static str, remaining: u64 },
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    api: Api,
    arm: Vec<Arm>,
    expect: Expect,
}

fn down(reason: &'static str) -> Expect {
    Expect::Down {
        reason,
        min_wait: 0.0,
    }
}

fn benign() -> Expect {
    Expect::Up {
        extra: &[],
        logins: 0,
    }
}

fn fault(v: Value) -> Vec<Arm> {
    vec![Arm::Fault(v)]
}

fn on_list(kind: Value) -> Vec<Arm> {
    let mut v = kind;
    v["endpoint"] = json!("list_sessions");
    fault(v)
}

/// A fault on the S3 bucket's `ListMultipartUploads`.
fn on_uploads(kind: Value) -> Vec<Arm> {
    let mut v = kind;
    v["endpoint"] = json!("list_multipart_uploads");
    fault(v)
}

fn vault_failure(t: &str) -> Value {
    json!({"kind": "vault_failure", "error_type": t})
}

/// Vault records with negative, fractional, huge and wrongly typed numbers
/// and impossible dates.
fn absurd_vault_records() -> Value {
    let max = u64::MAX;
    json!([
        {"id": "odd-neg", "path": "/u/neg", "owner": -7, "size": -1, "uploaded": -100,
         "uploaded_parts": -2, "created_date": "2020-13-45T99:99:99Z",
         "expiration_date": "-0001-01-01T00:00:00Z", "last_uploaded_date": "yesterday"},
        {"id": "odd-huge-1", "owner": 424242, "size": max, "uploaded": max, "uploaded_parts": max,
         "created_date": "0000-01-01T00:00:00.000Z",
         "expiration_date": "9999-12-31T23:59:59.999Z",
         "last_uploaded_date": "9999-12-31T23:59:59.999Z"},
        {"id": "odd-huge-2", "owner": 424242, "size": max, "uploaded": max, "uploaded_parts": max,
         "expiration_date": "9999-12-31T23:59:59.999Z"},
        {"id": "odd-float", "owner": "424243", "size": 1.5e300, "uploaded": "12",
         "uploaded_parts": 3.7, "expiration_date": null},
        {"id": "odd-big-neg", "owner": 424244, "size": i64::MIN, "uploaded": 1e19,
         "uploaded_parts": -0.0}
    ])
}

/// Vault records with missing, null, empty and wrongly typed fields, and
/// entries that are no records at all.
fn sparse_vault_records() -> Value {
    json!([
        {"id": null, "owner": 5, "size": 10},
        {},
        "not a record", 17, null, [],
        {"id": "odd-missing"},
        {"id": "odd-nulls", "path": null, "owner": null, "size": null, "uploaded": null,
         "uploaded_parts": null, "created_date": null, "expiration_date": null,
         "last_uploaded_date": null},
        {"id": "", "owner": 9},
        {"id": 12345, "owner": 9},
        {"id": "odd-types", "owner": true, "size": {"a": 1}, "uploaded": [1], "created_date": 5}
    ])
}

fn sparse_deepset_records() -> Value {
    json!([
        {"session_id": null, "status": "OPEN"},
        {},
        "junk", 3, null,
        {"session_id": "", "status": "OPEN"},
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000001", "created_by": null,
         "created_at": null, "expires_at": null, "status": null, "write_mode": null},
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000002",
         "created_by": {"user_id": null, "given_name": null, "family_name": null},
         "status": "OPEN", "expires_at": "garbage"},
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000003",
         "created_by": {"user_id": "odd-user"}, "status": 42}
    ])
}

fn unknown_enum_deepset_records() -> Value {
    json!([
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000011",
         "created_by": {"user_id": "odd-user", "given_name": "Odd", "family_name": "User"},
         "created_at": "2025-03-14T09:26:53.123456Z", "expires_at": null,
         "status": "ARCHIVED", "write_mode": "APPEND_V2"},
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000012",
         "created_by": {"user_id": "odd-user"}, "status": "QUARANTINED",
         "expires_at": "2000-01-01T00:00:00Z", "write_mode": "KEEP"}
    ])
}

fn absurd_deepset_records() -> Value {
    json!([
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000021",
         "created_by": {"user_id": "odd-user", "given_name": 7, "family_name": ["x"]},
         "status": "OPEN"},
        {"session_id": "7d3c5a9e-0000-4000-8000-000000000022",
         "created_by": {"user_id": "odd-user"}, "created_at": "0001-01-01T00:00:00Z",
         "expires_at": "9999-12-31T23:59:59.999999Z", "status": "OPEN",
         "file_count": -5, "total": 1e300}
    ])
}

fn cases() -> Vec<Case> {
    use Api::{Deepset as D, Vault as V, S3};
    let case = |name, api, arm, expect| Case {
        name,
        api,
        arm,
        expect,
    };
    vec![
        // ---------------------------------------------------------- Vault
        case(
            "vault: HTTP 500 with an HTML body",
            V,
            on_list(json!({"kind": "http_status", "status": 500})),
            down("http_status"),
        ),
        case(
            "vault: HTTP 503 with an HTML body",
            V,
            on_list(json!({"kind": "http_status", "status": 503})),
            down("http_status"),
        ),
        case(
            "vault: HTTP 200 HTML sign-in page",
            V,
            on_list(json!({"kind": "html_sign_in"})),
            down("decode"),
        ),
        case(
            "vault: malformed JSON",
            V,
            on_list(json!({"kind": "malformed_json"})),
            down("decode"),
        ),
        case(
            "vault: truncated JSON",
            V,
            on_list(json!({"kind": "truncated_json"})),
            down("decode"),
        ),
        case(
            "vault: 200 MiB body with Content-Length",
            V,
            on_list(json!({"kind": "oversized", "bytes": HUGE})),
            down("decode"),
        ),
        case(
            "vault: 200 MiB body, chunked",
            V,
            on_list(json!({"kind": "oversized_chunked", "bytes": HUGE})),
            down("decode"),
        ),
        case(
            "vault: connection hangs",
            V,
            on_list(json!({"kind": "hang"})),
            down("timeout"),
        ),
        case(
            "vault: connection reset",
            V,
            on_list(json!({"kind": "reset"})),
            down("connect"),
        ),
        case(
            "vault: INVALID_SESSION_ID once (session ended)",
            V,
            vec![Arm::Action(json!({"action": "invalidate_login_sessions"}))],
            Expect::Up {
                extra: &[],
                logins: 1,
            },
        ),
        case(
            "vault: INVALID_SESSION_ID for good (wrong-version trap)",
            V,
            fault(json!({"kind": "wrong_version_trap"})),
            down("auth"),
        ),
        case(
            "vault: USERNAME_OR_PASSWORD_INCORRECT at login",
            V,
            vec![
                Arm::Fault(json!({"kind": "vault_failure", "endpoint": "auth",
                    "error_type": "USERNAME_OR_PASSWORD_INCORRECT"})),
                Arm::Action(json!({"action": "invalidate_login_sessions"})),
            ],
            Expect::LoginRefused,
        ),
        case(
            "vault: USER_LOCKED_OUT at login",
            V,
            vec![
                Arm::Fault(json!({"kind": "vault_failure", "endpoint": "auth",
                    "error_type": "USER_LOCKED_OUT"})),
                Arm::Action(json!({"action": "invalidate_login_sessions"})),
            ],
            Expect::LoginRefused,
        ),
        case(
            "vault: INSUFFICIENT_ACCESS",
            V,
            on_list(vault_failure("INSUFFICIENT_ACCESS")),
            down("auth"),
        ),
        case(
            "vault: API_LIMIT_EXCEEDED",
            V,
            on_list(vault_failure("API_LIMIT_EXCEEDED")),
            down("rate_limited"),
        ),
        case(
            "vault: HTTP 429 with Retry-After",
            V,
            on_list(json!({"kind": "too_many_requests", "retry_after": 2})),
            Expect::Down {
                reason: "rate_limited",
                min_wait: 2.0,
            },
        ),
        case(
            "vault: unknown error type",
            V,
            on_list(vault_failure("SOMETHING_NEW_IN_V30")),
            down("api_error"),
        ),
        case(
            "vault: unknown fields",
            V,
            on_list(json!({"kind": "unknown_fields", "times": 3})),
            benign(),
        ),
        case(
            "vault: missing and null fields",
            V,
            on_list(json!({"kind": "odd_records", "records": sparse_vault_records()})),
            Expect::Up {
                extra: &[(
                    "upload_session_sessions{target=\"f\",owner_id=\"unknown\",state=\"active\"}",
                    "2",
                )],
                logins: 0,
            },
        ),
        case(
            "vault: negative and absurd numbers",
            V,
            on_list(json!({"kind": "odd_records", "records": absurd_vault_records()})),
            Expect::Up {
                extra: &[
                    (
                        "upload_session_sessions{target=\"f\",owner_id=\"424242\",state=\"active\"}",
                        "2",
                    ),
                    (
                        "upload_session_uploaded_bytes{target=\"f\",owner_id=\"424242\"}",
                        "18446744073709551615",
                    ),
                    (
                        "upload_session_size_bytes{target=\"f\",owner_id=\"424242\"}",
                        "18446744073709551615",
                    ),
                    (
                        "upload_session_uploaded_parts{target=\"f\",owner_id=\"424242\"}",
                        "18446744073709551615",
                    ),
                    (
                        "upload_session_next_expiry_timestamp_seconds{target=\"f\",owner_id=\"424242\"}",
                        "253402300799.999",
                    ),
                    (
                        "upload_session_uploaded_bytes{target=\"f\",owner_id=\"424243\"}",
                        "12",
                    ),
                    (
                        "upload_session_size_bytes{target=\"f\",owner_id=\"424243\"}",
                        "0",
                    ),
                    (
                        "upload_session_uploaded_parts{target=\"f\",owner_id=\"424243\"}",
                        "0",
                    ),
                    (
                        "upload_session_uploaded_bytes{target=\"f\",owner_id=\"424244\"}",
                        "0",
                    ),
                    (
                        "upload_session_sessions{target=\"f\",owner_id=\"unknown\",state=\"active\"}",
                        "1",
                    ),
                    (
                        "upload_session_uploaded_bytes{target=\"f\",owner_id=\"unknown\"}",
                        "0",
                    ),
                ],
                logins: 0,
            },
        ),
        case(
            "vault: burst limit nearly spent",
            V,
            vec![Arm::Action(
                json!({"action": "set_burst_remaining", "remaining": 100}),
            )],
            Expect::Throttled {
                delay: "0",
                remaining: 100,
            },
        ),
        case(
            "vault: burst limit spent, responses delayed",
            V,
            vec![Arm::Action(json!({"action": "set_burst_remaining", "remaining": 0,
                "response_delay_ms": 300}))],
            Expect::Throttled {
                delay: "0.3",
                remaining: 0,
            },
        ),
        // -------------------------------------------------------- deepset
        case(
            "deepset: HTTP 401",
            D,
            on_list(json!({"kind": "unauthorized"})),
            down("auth"),
        ),
        case(
            "deepset: HTTP 422",
            D,
            on_list(json!({"kind": "validation"})),
            down("http_status"),
        ),
        case(
            "deepset: HTTP 429 with Retry-After",
            D,
            on_list(json!({"kind": "too_many_requests", "retry_after": 2})),
            Expect::Down {
                reason: "rate_limited",
                min_wait: 2.0,
            },
        ),
        case(
            "deepset: HTTP 502 for good",
            D,
            on_list(json!({"kind": "bad_gateway"})),
            down("http_status"),
        ),
        case(
            "deepset: HTTP 502 once (retried within the poll)",
            D,
            on_list(json!({"kind": "bad_gateway", "times": 1})),
            benign(),
        ),
        case(
            "deepset: HTTP 503 with an HTML body",
            D,
            on_list(json!({"kind": "http_status", "status": 503})),
            down("http_status"),
        ),
        case(
            "deepset: HTTP 200 HTML sign-in page",
            D,
            on_list(json!({"kind": "html_sign_in"})),
            down("decode"),
        ),
        case(
            "deepset: malformed JSON",
            D,
            on_list(json!({"kind": "malformed_json"})),
            down("decode"),
        ),
        case(
            "deepset: truncated JSON",
            D,
            on_list(json!({"kind": "truncated_json"})),
            down("decode"),
        ),
        case(
            "deepset: 200 MiB body with Content-Length",
            D,
            on_list(json!({"kind": "oversized", "bytes": HUGE})),
            down("decode"),
        ),
        case(
            "deepset: 200 MiB body, chunked",
            D,
            on_list(json!({"kind": "oversized_chunked", "bytes": HUGE})),
            down("decode"),
        ),
        // ------------------------------------------------------------- S3
        case(
            "s3: InternalError 500",
            S3,
            on_uploads(json!({"kind": "s3_error", "code": "InternalError"})),
            down("http_status"),
        ),
        case(
            "s3: AccessDenied",
            S3,
            on_uploads(json!({"kind": "s3_error", "code": "AccessDenied"})),
            down("auth"),
        ),
        case(
            "s3: SlowDown with Retry-After",
            S3,
            on_uploads(json!({"kind": "slow_down", "retry_after": 2})),
            Expect::Down {
                reason: "rate_limited",
                min_wait: 2.0,
            },
        ),
        case(
            "s3: malformed XML",
            S3,
            on_uploads(json!({"kind": "malformed_xml"})),
            down("decode"),
        ),
        case(
            "s3: 200 MiB listing",
            S3,
            on_uploads(json!({"kind": "oversized", "bytes": HUGE})),
            down("decode"),
        ),
        case(
            "s3: connection hangs",
            S3,
            on_uploads(json!({"kind": "hang"})),
            down("timeout"),
        ),
        case(
            "s3: connection hangs on ListParts",
            S3,
            fault(json!({"kind": "hang", "endpoint": "list_parts"})),
            down("timeout"),
        ),
        case(
            "s3: connection reset",
            S3,
            on_uploads(json!({"kind": "reset"})),
            down("connect"),
        ),
        case(
            "deepset: connection hangs",
            D,
            on_list(json!({"kind": "hang"})),
            down("timeout"),
        ),
        case(
            "deepset: connection hangs on the file count",
            D,
            fault(json!({"kind": "hang", "endpoint": "list_files"})),
            down("timeout"),
        ),
        case(
            "deepset: connection reset",
            D,
            on_list(json!({"kind": "reset"})),
            down("connect"),
        ),
        case(
            "deepset: unknown fields",
            D,
            fault(json!({"kind": "unknown_fields", "times": 8})),
            benign(),
        ),
        case(
            "deepset: unknown enum values",
            D,
            on_list(json!({"kind": "odd_records", "records": unknown_enum_deepset_records()})),
            Expect::Up {
                extra: &[
                    (
                        "upload_session_sessions{target=\"f\",owner_id=\"odd-user\",state=\"open\"}",
                        "1",
                    ),
                    (
                        "upload_session_sessions{target=\"f\",owner_id=\"odd-user\",state=\"expired\"}",
                        "1",
                    ),
                    (
                        "upload_session_owner_info{target=\"f\",owner_id=\"odd-user\",owner_name=\"Odd User\"}",
                        "1",
                    ),
                ],
                logins: 0,
            },
        ),
        case(
            "deepset: missing and null fields",
            D,
            on_list(json!({"kind": "odd_records", "records": sparse_deepset_records()})),
            Expect::Up {
                extra: &[(
                    "upload_session_sessions{target=\"f\",owner_id=\"unknown\",state=\"open\"}",
                    "2",
                )],
                logins: 0,
            },
        ),
        case(
            "deepset: wrongly typed and absurd values",
            D,
            on_list(json!({"kind": "odd_records", "records": absurd_deepset_records()})),
            Expect::Up {
                extra: &[
                    (
                        "upload_session_sessions{target=\"f\",owner_id=\"odd-user\",state=\"open\"}",
                        "1",
                    ),
                    (
                        "upload_session_next_expiry_timestamp_seconds{target=\"f\",owner_id=\"odd-user\"}",
                        "253402300799.999",
                    ),
                    (
                        "upload_session_oldest_created_timestamp_seconds{target=\"f\",owner_id=\"odd-user\"}",
                        "-62135596800",
                    ),
                ],
                logins: 0,
            },
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix() {
    let _shared = exclusive().read().await;
    let filter = std::env::var("FAULT_MATRIX_CASE").ok();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    assert!(!cases.is_empty(), "no case matches {filter:?}");
    let limit = Arc::new(Semaphore::new(CONCURRENT_CASES));
    let started = Instant::now();
    let mut handles = Vec::new();
    for case in cases {
        let limit = Arc::clone(&limit);
        let name = case.name;
        handles.push((
            name,
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let t = Instant::now();
                let slowest = tokio::time::timeout(Duration::from_secs(60), run_case(case))
                    .await
                    .unwrap_or_else(|_| panic!("did not finish within 60 s"));
                (t.elapsed(), slowest)
            }),
        ));
    }
    let mut failures = Vec::new();
    let mut report = String::new();
    for (name, h) in handles {
        match h.await {
            Ok((took, slowest)) => report.push_str(&format!(
                "  ok    {took:>6.1?}  slowest scrape {slowest:>9.1?}  {name}\n"
            )),
            Err(e) => {
                let msg = panic_message(e);
                report.push_str(&format!("  FAIL           {name}: {msg}\n"));
                failures.push(name);
            }
        }
    }
    eprintln!("fault matrix ({:.1?}):\n{report}", started.elapsed());
    assert!(failures.is_empty(), "failed rows: {failures:#?}\n{report}");
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into()),
        Err(e) => e.to_string(),
    }
}

// ------------------------------------------------------------ the harness

/// Samples of one scrape.
#[derive(Debug, Clone)]
struct Metrics(BTreeMap<String, String>);

impl Metrics {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    fn up(&self, target: &str, kind: &str) -> Option<bool> {
        self.get(&format!(
            "upload_session_target_up{{target=\"{target}\",kind=\"{kind}\"}}"
        ))
        .map(|v| v == "1")
    }

    fn errors(&self, target: &str, reason: &str) -> u64 {
        self.get(&format!(
            "upload_session_poll_errors_total{{target=\"{target}\",reason=\"{reason}\"}}"
        ))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
    }

    fn interval(&self, target: &str) -> Option<f64> {
        self.num(&format!(
            "upload_session_poll_interval_seconds{{target=\"{target}\"}}"
        ))
    }

    /// Keys whose values differ from `want` (missing ones included).
    fn mismatches(&self, want: &[(String, String)]) -> Vec<String> {
        want.iter()
            .filter(|(k, v)| self.get(k) != Some(v.as_str()))
            .map(|(k, v)| format!("{k}: want {v}, got {:?}", self.get(k)))
            .collect()
    }
}

fn owner_key(metric: &str, target: &str, owner: &str, extra: &str) -> String {
    format!("{metric}{{target=\"{target}\",owner_id=\"{owner}\"{extra}}}")
}

fn exact(pairs: &[(&str, &str, &str, &str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(m, t, o, extra, v)| (owner_key(m, t, o, extra), v.to_string()))
        .collect()
}

/// The healthy targets' exact figures (what the simulator was seeded with).
fn healthy_figures() -> Vec<(String, String)> {
    let mut v = exact(&[
        ("upload_session_sessions", HV, "5", ",state=\"active\"", "1"),
        ("upload_session_uploaded_bytes", HV, "5", "", "123456789"),
        ("upload_session_size_bytes", HV, "5", "", "1000000000"),
        ("upload_session_uploaded_parts", HV, "5", "", "12"),
        ("upload_session_sessions", HV, "6", ",state=\"active\"", "1"),
        ("upload_session_uploaded_bytes", HV, "6", "", "8589934592"),
        ("upload_session_size_bytes", HV, "6", "", "9007199254740993"),
        ("upload_session_uploaded_parts", HV, "6", "", "820"),
        ("upload_session_sessions", HD, ADA, ",state=\"open\"", "1"),
        ("upload_session_sessions", HD, ADA, ",state=\"closed\"", "1"),
        (
            "upload_session_ingested_files",
            HD,
            ADA,
            ",result=\"finished\"",
            "4",
        ),
        (
            "upload_session_ingested_files",
            HD,
            ADA,
            ",result=\"failed\"",
            "1",
        ),
        (
            "upload_session_ingested_files",
            HD,
            ADA,
            ",result=\"pending\"",
            "3",
        ),
    ]);
    for (t, kind) in [(HV, "vault"), (HD, "deepset")] {
        v.push((
            format!("upload_session_target_up{{target=\"{t}\",kind=\"{kind}\"}}"),
            "1".into(),
        ));
        v.push((
            format!("upload_session_poll_interval_seconds{{target=\"{t}\"}}"),
            "1".into(),
        ));
        for r in REASONS {
            v.push((
                format!("upload_session_poll_errors_total{{target=\"{t}\",reason=\"{r}\"}}"),
                "0".into(),
            ));
        }
    }
    v.push((
        "upload_session_api_response_delay_seconds{target=\"hv\"}".into(),
        "0".into(),
    ));
    v
}

/// The faulty target's own figures, kept while it is down.
fn faulty_figures(api: Api) -> Vec<(String, String)> {
    match api {
        Api::Vault => exact(&[
            ("upload_session_sessions", F, "7", ",state=\"active\"", "1"),
            ("upload_session_uploaded_bytes", F, "7", "", "4294967296"),
            ("upload_session_size_bytes", F, "7", "", "10000000000"),
            ("upload_session_uploaded_parts", F, "7", "", "410"),
        ]),
        Api::S3 => exact(&[
            (
                "upload_session_sessions",
                F,
                S3_OWNER,
                ",state=\"active\"",
                "1",
            ),
            ("upload_session_uploaded_bytes", F, S3_OWNER, "", "7340032"),
            ("upload_session_uploaded_parts", F, S3_OWNER, "", "2"),
        ]),
        Api::Deepset => exact(&[
            ("upload_session_sessions", F, BEA, ",state=\"open\"", "2"),
            (
                "upload_session_ingested_files",
                F,
                BEA,
                ",result=\"pending\"",
                "2",
            ),
            (
                "upload_session_ingested_files",
                F,
                BEA,
                ",result=\"finished\"",
                "0",
            ),
        ]),
    }
}

fn admin_user() -> UserSpec {
    let mut u = UserSpec::new(77, USERNAME, PASSWORD);
    u.admin = true;
    u
}

fn sim_config() -> SimConfig {
    let mut healthy = vault_spec(HEALTHY, 1000);
    healthy.users.push(admin_user());
    let mut faulty = vault_spec(FAULTY, 2000);
    faulty.users.push(admin_user());
    let ada = DeepsetUser::new(ADA, "Ada", "Lovelace", API_KEY);
    let mut hd = DeepsetSpec::new(HEALTHY);
    hd.users.push(ada.clone());
    hd.ingestion_delay = Duration::ZERO;
    let mut fd = DeepsetSpec::new(FAULTY);
    fd.users.push(ada);
    fd.users
        .push(DeepsetUser::new(BEA, "Bea", "Berg", "key-bea-unused"));
    fd.ingestion_delay = Duration::ZERO;
    let mut cfg = SimConfig::idle();
    cfg.vaults = vec![healthy, faulty];
    cfg.deepset = vec![hd, fd];
    let mut s3 = S3Spec::new();
    let mut bucket = S3BucketSpec::new(FAULTY);
    let mut upload = S3UploadSeed::new(
        "incoming/f.bin",
        S3Identity::new(S3_OWNER, "s3-owner"),
        time::OffsetDateTime::now_utc() - time::Duration::minutes(5),
    );
    upload.parts = vec![(1, 5 * 1024 * 1024), (2, 2 * 1024 * 1024)];
    bucket.uploads.push(upload);
    s3.buckets.push(bucket);
    cfg.s3 = Some(s3);
    cfg
}

/// Places the sessions behind [`healthy_figures`] and [`faulty_figures`].
fn seed(sim: &Simulator) {
    let now = sim.now();
    let hv = sim.vault(HEALTHY).expect("healthy vault");
    let mut s = SessionSeed::new("/u5/a.bin", 5, 1_000_000_000, now);
    s.uploaded = 123_456_789;
    s.uploaded_parts = 12;
    hv.insert_session(s);
    let mut s = SessionSeed::new("/u6/b.bin", 6, 9_007_199_254_740_993, now);
    s.uploaded = 8_589_934_592;
    s.uploaded_parts = 820;
    hv.insert_session(s);
    let fv = sim.vault(FAULTY).expect("faulty vault");
    let mut s = SessionSeed::new("/u7/c.bin", 7, 10_000_000_000, now);
    s.uploaded = 4_294_967_296;
    s.uploaded_parts = 410;
    fv.insert_session(s);

    let hd = sim.deepset(HEALTHY).expect("healthy workspace");
    let now = hd.now();
    let mut open = DeepsetSessionSeed::open(ADA, now - time::Duration::hours(2));
    open.files = vec![
        FileSeed::pending("a.pdf", 10),
        FileSeed::pending("b.pdf", 10),
        FileSeed::pending("c.pdf", 10),
    ];
    hd.insert_session(open);
    hd.insert_session(DeepsetSessionSeed {
        status: "CLOSED".into(),
        files: vec![
            FileSeed::ingested("1.pdf", 5),
            FileSeed::ingested("2.txt", 5),
            FileSeed::ingested("3.md", 5),
            FileSeed::ingested("4.csv", 5),
            FileSeed::ingested("tool.exe", 5),
        ],
        ..DeepsetSessionSeed::open(ADA, now - time::Duration::hours(1))
    });
    let fd = sim.deepset(FAULTY).expect("faulty workspace");
    for name in ["x.pdf", "y.pdf"] {
        let mut s = DeepsetSessionSeed::open(BEA, now - time::Duration::hours(3));
        s.files = vec![FileSeed::pending(name, 10)];
        fd.insert_session(s);
    }
}

fn vault_target(sim: &Simulator, name: &str, vault: &str) -> TargetConfig {
    let url = sim.vault_url(vault).expect("vault exists");
    tune(base_target(
        name,
        &url,
        Box::new(VaultConfig {
            client_id: "fault-matrix".into(),
            // A 1 s interval is 300 calls per burst window: more than the
            // default 5% of 2000, which would (rightly) stretch the
            // interval to 3 s.
            burst_limit_share: 1.0,
            ..VaultConfig::new(USERNAME, Secret::new(PASSWORD))
        }),
    ))
}

fn deepset_target(sim: &Simulator, name: &str, workspace: &str) -> TargetConfig {
    tune(base_target(
        name,
        &sim.deepset_url(),
        Box::new(DeepsetConfig::new(workspace, Secret::new(API_KEY))),
    ))
}

/// The S3 bucket `FAULTY` of `sim`, published as target `name` (the
/// configuration would call it `<name>:<bucket>`).
fn s3_target(sim: &Simulator, name: &str) -> TargetConfig {
    let cfg = S3Config {
        access_key_id: Some(Secret::new(S3_DEMO_ACCESS_KEY_ID)),
        secret_access_key: Some(Secret::new(S3_DEMO_SECRET_ACCESS_KEY)),
        bucket: Some(FAULTY.into()),
        buckets: vec![FAULTY.into()],
        region: "us-east-1".into(),
        prefix: String::new(),
        path_style: true,
        session_token: None,
        dormant_refresh: Duration::from_secs(3600),
        max_list_parts_per_poll: 1000,
    };
    tune(base_target(
        name,
        &sim.s3_url().expect("an S3 listener"),
        Box::new(cfg),
    ))
}

fn tune(mut t: TargetConfig) -> TargetConfig {
    t.poll_interval = POLL;
    t.timeout = TIMEOUT;
    t
}

/// One simulator and one exporter, scraped with checks.
struct Run {
    label: String,
    sim: Simulator,
    exporter: Exporter,
    http: reqwest::Client,
    metrics_url: String,
    admin_url: String,
    api: Api,
    /// Checked at every scrape once the baseline is reached.
    always: Vec<(String, String)>,
    baseline: bool,
    /// The faulty target must read up at every scrape.
    faulty_stays_up: bool,
    scrapes: u64,
    slowest: Duration,
}

impl Run {
    async fn start(label: &str, api: Api, extra_targets: Vec<TargetConfig>) -> Run {
        let sim = Simulator::start_with(
            ([127, 0, 0, 1], 0).into(),
            sim_config(),
            SimOptions::with_admin(),
        )
        .await
        .expect("simulator starts");
        seed(&sim);
        let faulty = match api {
            Api::Vault => vault_target(&sim, F, FAULTY),
            Api::Deepset => deepset_target(&sim, F, FAULTY),
            Api::S3 => s3_target(&sim, F),
        };
        let mut targets = vec![
            vault_target(&sim, HV, HEALTHY),
            deepset_target(&sim, HD, HEALTHY),
            faulty,
        ];
        targets.extend(extra_targets);
        Self::start_with(label, api, sim, targets).await
    }

    async fn start_with(label: &str, api: Api, sim: Simulator, targets: Vec<TargetConfig>) -> Run {
        let exporter = start_exporter(config(targets)).await;
        let mut always = healthy_figures();
        always.extend(faulty_figures(api));
        Run {
            label: label.to_string(),
            metrics_url: format!("http://{}/metrics", exporter.addr()),
            admin_url: format!("{}/_sim", sim.base_url()),
            sim,
            exporter,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            api,
            always,
            baseline: false,
            faulty_stays_up: false,
            scrapes: 0,
            slowest: Duration::ZERO,
        }
    }

    fn kind(&self) -> &'static str {
        match self.api {
            Api::Vault => "vault",
            Api::Deepset => "deepset",
            Api::S3 => "s3",
        }
    }

    /// Scrapes `/metrics` and checks what must hold at every scrape.
    async fn scrape(&mut self) -> Metrics {
        let t = Instant::now();
        let resp = self
            .http
            .get(&self.metrics_url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: scrape failed: {e}", self.label));
        let status = resp.status();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{}: scrape body: {e}", self.label));
        let took = t.elapsed();
        self.scrapes += 1;
        self.slowest = self.slowest.max(took);
        assert_eq!(status, 200, "{}: /metrics answered {status}", self.label);
        assert!(
            took < SCRAPE_BOUND,
            "{}: a scrape took {took:?} (bound {SCRAPE_BOUND:?})",
            self.label
        );
        assert!(
            !text.contains(PASSWORD)
                && !text.contains(API_KEY)
                && !text.contains(S3_DEMO_SECRET_ACCESS_KEY),
            "{}: a secret appears in /metrics",
            self.label
        );
        let m = Metrics(samples(&text));
        if self.baseline {
            let bad = m.mismatches(&self.always);
            assert!(
                bad.is_empty(),
                "{}: figures that must stay exact changed:\n  {}",
                self.label,
                bad.join("\n  ")
            );
            if self.faulty_stays_up {
                assert_eq!(
                    m.up(F, self.kind()),
                    Some(true),
                    "{}: a benign fault took the target down: {:?}",
                    self.label,
                    REASONS.map(|r| (r, m.errors(F, r)))
                );
            }
        }
        m
    }

    /// Scrapes every [`SCRAPE_PERIOD`] until `cond` holds; panics after `within`.
    async fn until(
        &mut self,
        within: Duration,
        what: &str,
        mut cond: impl FnMut(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + within;
        loop {
            let m = self.scrape().await;
            if cond(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: not within {within:?}: {what}\nfaulty target: up={:?} errors={:?} interval={:?}",
                    self.label,
                    m.up(F, self.kind()),
                    REASONS.map(|r| (r, m.errors(F, r))),
                    m.interval(F)
                );
            }
            tokio::time::sleep(SCRAPE_PERIOD).await;
        }
    }

    /// Keeps scraping (with all checks) for `d`.
    async fn watch(&mut self, d: Duration) -> Metrics {
        let end = Instant::now() + d;
        let mut m = self.scrape().await;
        while Instant::now() < end {
            tokio::time::sleep(SCRAPE_PERIOD).await;
            m = self.scrape().await;
        }
        m
    }

    async fn baseline(&mut self) {
        let want = self.always.clone();
        let kind = self.kind();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = self.scrape().await;
            let bad = m.mismatches(&want);
            if bad.is_empty() && m.up(F, kind) == Some(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no baseline within 15 s (every target up with exact figures):\n  {}",
                self.label,
                bad.join("\n  ")
            );
            tokio::time::sleep(SCRAPE_PERIOD).await;
        }
        self.baseline = true;
    }

    fn target_fields(&self) -> Value {
        match self.api {
            Api::Vault => json!({"api": "vault", "vault": FAULTY}),
            Api::Deepset => json!({"api": "deepset", "workspace": FAULTY}),
            Api::S3 => json!({"api": "s3", "bucket": FAULTY}),
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.admin_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: admin {method} {path}: {e}", self.label));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "{}: admin {method} {path} answered {status}: {v}",
            self.label
        );
        v
    }

    async fn arm(&self, arm: &[Arm]) {
        for a in arm {
            let (path, body) = match a {
                Arm::Fault(v) => ("/faults", v),
                Arm::Action(v) => ("/actions", v),
            };
            let mut body = body.clone();
            if let (Some(b), Some(t)) = (body.as_object_mut(), self.target_fields().as_object()) {
                for (k, v) in t {
                    b.insert(k.clone(), v.clone());
                }
            }
            self.admin(reqwest::Method::POST, path, Some(body)).await;
        }
    }

    async fn clear(&self) {
        self.admin(reqwest::Method::DELETE, "/faults", None).await;
    }

    async fn armed_faults(&self) -> usize {
        let list = self.admin(reqwest::Method::GET, "/faults", None).await;
        let key = match self.api {
            Api::Vault => "vaults",
            Api::Deepset => "deepset",
            Api::S3 => "s3",
        };
        list[key][FAULTY].as_array().map_or(0, Vec::len)
    }

    /// List calls the faulty upstream received (faulted ones included).
    fn faulty_lists(&self) -> u64 {
        match self.api {
            Api::Vault => self
                .sim
                .vault(FAULTY)
                .map_or(0, |v| v.request_count(Endpoint::ListSessions)),
            Api::Deepset => self
                .sim
                .deepset(FAULTY)
                .map_or(0, |w| w.request_count(DeepsetEndpoint::ListSessions)),
            Api::S3 => self
                .sim
                .s3()
                .map_or(0, |c| c.request_count(S3Endpoint::ListMultipartUploads)),
        }
    }

    fn faulty_logins(&self) -> u64 {
        self.sim
            .vault(FAULTY)
            .map_or(0, |v| v.request_count(Endpoint::Auth))
    }

    async fn stop(self) {
        self.exporter.stop().await;
        self.sim.shutdown().await;
    }
}

/// Runs one row; returns the slowest scrape.
async fn run_case(case: Case) -> Duration {
    let mut run = Run::start(case.name, case.api, Vec::new()).await;
    run.baseline().await;
    let kind = run.kind();
    let lists_before = run.faulty_lists();
    let logins_before = run.faulty_logins();
    match case.expect.clone() {
        Expect::Down { reason, min_wait } => {
            run.arm(&case.arm).await;
            let m = run
                .until(
                    Duration::from_secs(10),
                    "the faulty target reads down",
                    |m| m.up(F, kind) == Some(false) && m.errors(F, reason) >= 1,
                )
                .await;
            for r in REASONS.iter().filter(|r| **r != reason) {
                assert_eq!(m.errors(F, r), 0, "{}: also counted as {r}", case.name);
            }
            let wait = m.interval(F).unwrap_or(0.0);
            assert!(
                wait >= min_wait.max(POLL.as_secs_f64()),
                "{}: next poll in {wait} s, want at least {min_wait}",
                case.name
            );
            // The fault clears; the target recovers by itself within the
            // backoff it scheduled (a poll in flight may still fail and
            // double it once).
            let failed = m.errors(F, reason);
            run.clear().await;
            let cleared = Instant::now();
            let mut longest = wait;
            let m = run
                .until(
                    Duration::from_secs(90),
                    "recovery after the fault clears",
                    |m| {
                        longest = longest.max(m.interval(F).unwrap_or(0.0));
                        m.up(F, kind) == Some(true)
                    },
                )
                .await;
            let took = cleared.elapsed();
            let bound =
                Duration::from_secs_f64(longest * 1.1) + TIMEOUT + Duration::from_millis(1500);
            assert!(
                took <= bound,
                "{}: recovered after {took:?}, backoff allowed {bound:?}",
                case.name
            );
            assert!(
                m.errors(F, reason) <= failed + 1,
                "{}: errors kept growing after the fault cleared",
                case.name
            );
            assert_eq!(
                m.interval(F),
                Some(1.0),
                "{}: back to its interval",
                case.name
            );
        }
        Expect::LoginRefused => {
            run.arm(&case.arm).await;
            let m = run
                .until(
                    Duration::from_secs(10),
                    "the refused login reads down",
                    |m| m.up(F, kind) == Some(false) && m.errors(F, "auth") >= 1,
                )
                .await;
            assert_eq!(m.errors(F, "auth"), 1, "{}", case.name);
            for r in REASONS.iter().filter(|r| **r != "auth") {
                assert_eq!(m.errors(F, r), 0, "{}: also counted as {r}", case.name);
            }
            let wait = m.interval(F).unwrap_or(0.0);
            assert!(
                wait >= 300.0,
                "{}: a refused login must back off 5 minutes, next poll in {wait} s",
                case.name
            );
            let logins = run.faulty_logins();
            assert_eq!(
                logins,
                logins_before + 1,
                "{}: exactly one refused login",
                case.name
            );
            let lists = run.faulty_lists();
            // Without the login backoff this would be three more polls.
            let m = run.watch(Duration::from_secs(3)).await;
            assert_eq!(
                run.faulty_logins(),
                logins,
                "{}: logged in again",
                case.name
            );
            assert_eq!(run.faulty_lists(), lists, "{}: polled again", case.name);
            assert_eq!(m.errors(F, "auth"), 1, "{}", case.name);
            assert_eq!(
                m.get("upload_session_api_requests_total{target=\"f\",endpoint=\"auth\"}"),
                Some("2"),
                "{}",
                case.name
            );
            run.clear().await;
        }
        Expect::Up { extra, logins } => {
            run.faulty_stays_up = true;
            run.arm(&case.arm).await;
            let extra: Vec<(String, String)> = extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            // At least three polls meet the fault.
            let mut polls_seen = 0;
            loop {
                let m = run.scrape().await;
                if run.faulty_lists() >= lists_before + 3 && m.mismatches(&extra).is_empty() {
                    break;
                }
                polls_seen += 1;
                assert!(
                    polls_seen < 100,
                    "{}: benign fault's records not shown as expected:\n  {}",
                    case.name,
                    m.mismatches(&extra).join("\n  ")
                );
                tokio::time::sleep(SCRAPE_PERIOD).await;
            }
            let m = run.scrape().await;
            for r in REASONS {
                assert_eq!(m.errors(F, r), 0, "{}: counted as {r}", case.name);
            }
            assert_eq!(
                run.faulty_logins(),
                logins_before + logins,
                "{}: logins",
                case.name
            );
            let once = case
                .arm
                .iter()
                .any(|a| matches!(a, Arm::Fault(v) if v.get("times").is_some()));
            if once {
                // Every use of the fault is spent while the target stays up.
                let deadline = Instant::now() + Duration::from_secs(10);
                while run.armed_faults().await > 0 {
                    assert!(
                        Instant::now() < deadline,
                        "{}: the fault was not used up",
                        case.name
                    );
                    run.scrape().await;
                    tokio::time::sleep(SCRAPE_PERIOD).await;
                }
                // And one more poll after it.
                let lists = run.faulty_lists() + 1;
                let deadline = Instant::now() + Duration::from_secs(5);
                while run.faulty_lists() < lists {
                    assert!(Instant::now() < deadline, "{}: polls stopped", case.name);
                    run.scrape().await;
                    tokio::time::sleep(SCRAPE_PERIOD).await;
                }
            }
            run.clear().await;
            if !extra.is_empty() {
                // Odd records leave with the fault.
                let keys: Vec<String> = extra.iter().map(|(k, _)| k.clone()).collect();
                run.until(
                    Duration::from_secs(10),
                    "odd records gone after clearing",
                    |m| keys.iter().all(|k| m.get(k).is_none()),
                )
                .await;
            }
        }
        Expect::Throttled { delay, remaining } => {
            run.faulty_stays_up = true;
            run.arm(&case.arm).await;
            let m = run
                .until(
                    Duration::from_secs(10),
                    "the budget stretches the interval",
                    |m| m.interval(F).is_some_and(|i| i >= 300.0),
                )
                .await;
            assert_eq!(
                m.get("upload_session_api_response_delay_seconds{target=\"f\"}"),
                Some(delay),
                "{}",
                case.name
            );
            let left = m
                .num("upload_session_api_burst_limit_remaining{target=\"f\"}")
                .unwrap_or(f64::MAX);
            assert!(left <= remaining as f64, "{}: remaining {left}", case.name);
            for r in REASONS {
                assert_eq!(m.errors(F, r), 0, "{}: counted as {r}", case.name);
            }
            let lists = run.faulty_lists();
            run.watch(Duration::from_secs(3)).await;
            assert_eq!(
                run.faulty_lists(),
                lists,
                "{}: polled again while sparing the budget",
                case.name
            );
        }
    }
    assert!(
        run.scrapes >= 5,
        "{}: only {} scrapes",
        case.name,
        run.scrapes
    );
    let slowest = run.slowest;
    run.stop().await;
    slowest
}

// ------------------------------------------------------- memory and load

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The simulator streams 200 MiB bodies (with and without a length) at
/// both kinds of target, poll after poll, four exporters at once; their
/// cap (`max_response_size`, 4 MiB here) keeps resident memory bounded.
/// The simulators run in this process too, so their generated bodies would
/// count as well if they were held in memory. One uncapped body alone
/// would exceed the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_bodies_keep_memory_bounded() {
    let _alone = exclusive().write().await;
    const CAP: u64 = 4 * 1024 * 1024;
    const GROWTH_BOUND_KIB: u64 = 50 * 1024;
    let mut runs = Vec::new();
    for (api, kind) in [
        (Api::Vault, "oversized"),
        (Api::Vault, "oversized_chunked"),
        (Api::Deepset, "oversized"),
        (Api::Deepset, "oversized_chunked"),
    ] {
        let label = format!("memory {api:?} {kind}");
        let sim = Simulator::start_with(
            ([127, 0, 0, 1], 0).into(),
            sim_config(),
            SimOptions::with_admin(),
        )
        .await
        .expect("simulator starts");
        seed(&sim);
        let mut faulty = match api {
            Api::Vault => vault_target(&sim, F, FAULTY),
            Api::Deepset => deepset_target(&sim, F, FAULTY),
            Api::S3 => s3_target(&sim, F),
        };
        faulty.max_response_bytes = CAP;
        let targets = vec![
            vault_target(&sim, HV, HEALTHY),
            deepset_target(&sim, HD, HEALTHY),
            faulty,
        ];
        let mut run = Run::start_with(&label, api, sim, targets).await;
        run.baseline().await;
        runs.push((run, kind));
    }
    let before = rss_kib();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = CancellationToken::new();
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (mut run, kind) in runs {
        tasks.spawn(async move {
            let lists = run.faulty_lists();
            run.arm(&on_list(json!({"kind": kind, "bytes": HUGE})))
                .await;
            let k = run.kind();
            run.until(
                Duration::from_secs(15),
                "three polls refused as too large",
                |m| m.errors(F, "decode") >= 3 && m.up(F, k) == Some(false),
            )
            .await;
            assert!(
                run.faulty_lists() >= lists + 3,
                "{}: the bodies were served",
                run.label
            );
            run
        });
    }
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        done.push(r.unwrap_or_else(|e| panic!("{}", panic_message(e))));
    }
    stop.cancel();
    sampler.await.expect("sampler");
    let peak = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(rss_kib());
    let growth = peak.saturating_sub(before);
    eprintln!(
        "memory: VmRSS {before} KiB before, peak {peak} KiB (+{growth} KiB) while 4 targets \
         were sent 200 MiB bodies, 3+ polls each"
    );
    assert!(
        growth < GROWTH_BOUND_KIB,
        "resident memory grew by {growth} KiB while 200 MiB bodies were refused"
    );
    for mut run in done {
        // Each target recovers within the backoff it scheduled (under load
        // it may have failed more often and backed off longer).
        let mut longest = run.scrape().await.interval(F).unwrap_or(0.0);
        run.clear().await;
        let cleared = Instant::now();
        let k = run.kind();
        run.until(Duration::from_secs(90), "recovery", |m| {
            longest = longest.max(m.interval(F).unwrap_or(0.0));
            m.up(F, k) == Some(true)
        })
        .await;
        let bound = Duration::from_secs_f64(longest * 1.1) + TIMEOUT + Duration::from_millis(1500);
        assert!(
            cleared.elapsed() <= bound,
            "{}: recovered after {:?}, backoff allowed {bound:?}",
            run.label,
            cleared.elapsed()
        );
        run.stop().await;
    }
}

/// Ten targets whose upstream answers every list call 2.5 s late poll back
/// to back; the healthy targets keep their 1 s interval and fresh data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_upstreams_do_not_slow_other_targets() {
    let _shared = exclusive().read().await;
    let sim = Simulator::start_with(
        ([127, 0, 0, 1], 0).into(),
        sim_config(),
        SimOptions::with_admin(),
    )
    .await
    .expect("simulator starts");
    seed(&sim);
    let mut f = vault_target(&sim, F, FAULTY);
    f.timeout = Duration::from_secs(5);
    let mut targets = vec![
        vault_target(&sim, HV, HEALTHY),
        deepset_target(&sim, HD, HEALTHY),
        f,
    ];
    for i in 0..10 {
        let mut t = vault_target(&sim, &format!("slow{i}"), FAULTY);
        t.timeout = Duration::from_secs(5);
        targets.push(t);
    }
    let mut run = Run::start_with("flood", Api::Vault, sim, targets).await;
    run.baseline().await;
    run.faulty_stays_up = true;
    run.arm(&on_list(json!({"kind": "delay", "ms": 2500})))
        .await;
    let healthy = run.sim.vault(HEALTHY).expect("healthy vault");
    let hd = run.sim.deepset(HEALTHY).expect("healthy workspace");
    let (hv0, hd0, slow0) = (
        healthy.request_count(Endpoint::ListSessions),
        hd.request_count(DeepsetEndpoint::ListSessions),
        run.faulty_lists(),
    );
    let started = Instant::now();
    let mut stale = Vec::new();
    let end = started + Duration::from_secs(8);
    let mut m = run.scrape().await;
    while Instant::now() < end {
        tokio::time::sleep(SCRAPE_PERIOD).await;
        m = run.scrape().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for t in [HV, HD] {
            let last = m
                .num(&format!(
                    "upload_session_last_success_timestamp_seconds{{target=\"{t}\"}}"
                ))
                .unwrap_or(0.0);
            if now - last > 2.5 {
                stale.push(format!("{t} {:.1} s old", now - last));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let hv_polls = healthy.request_count(Endpoint::ListSessions) - hv0;
    // deepset: two list calls per poll.
    let hd_polls = (hd.request_count(DeepsetEndpoint::ListSessions) - hd0) / 2;
    let slow_calls = run.faulty_lists() - slow0;
    eprintln!(
        "flood: {secs:.1} s, healthy vault {hv_polls} polls, healthy deepset {hd_polls} polls, \
         {slow_calls} slow list calls, slowest scrape {:?} of {}",
        run.slowest, run.scrapes
    );
    assert!(stale.is_empty(), "healthy data went stale: {stale:?}");
    let want = (secs / 1.1).floor() as u64 - 1;
    assert!(
        hv_polls >= want,
        "healthy vault polled {hv_polls} times in {secs:.1} s"
    );
    assert!(
        hd_polls >= want,
        "healthy deepset polled {hd_polls} times in {secs:.1} s"
    );
    // Eleven targets poll the slow vault back to back.
    assert!(
        slow_calls >= 11 * 2,
        "the slow upstream was flooded: {slow_calls}"
    );
    for i in 0..10 {
        let d = m
            .num(&format!(
                "upload_session_poll_duration_seconds{{target=\"slow{i}\"}}"
            ))
            .unwrap_or(0.0);
        assert!(d >= 2.5, "slow{i} took {d} s");
        assert_eq!(m.up(&format!("slow{i}"), "vault"), Some(true));
    }
    run.clear().await;
    run.stop().await;
}

// -------------------------------------------------------------- admin API

async fn status_of(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(5));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_api_is_off_unless_enabled() {
    let _shared = exclusive().read().await;
    // The exporter's --demo simulator.
    let (demo, _config) = upload_session_exporter::demo::start()
        .await
        .expect("demo starts");
    let off = Simulator::start(([127, 0, 0, 1], 0).into(), SimConfig::idle())
        .await
        .expect("simulator starts");
    for base in [demo.base_url().to_string(), off.base_url()] {
        for (method, path) in [
            (reqwest::Method::GET, "/_sim/faults"),
            (reqwest::Method::POST, "/_sim/faults"),
            (reqwest::Method::DELETE, "/_sim/faults"),
            (reqwest::Method::POST, "/_sim/actions"),
            (reqwest::Method::GET, "/_sim"),
        ] {
            let body = json!({"api": "vault", "vault": "main", "kind": "hang"});
            let (status, _) = status_of(method.clone(), &format!("{base}{path}"), Some(body)).await;
            assert_eq!(status, 404, "{method} {base}{path}");
        }
        // The fault was not armed: the API still answers.
        let (status, _) = status_of(reqwest::Method::GET, &format!("{base}/api/"), None).await;
        assert_eq!(status, 200, "{base}/api/");
    }
    demo.shutdown().await;
    off.shutdown().await;
}

#[tokio::test]
async fn admin_api_arms_lists_and_clears() {
    let _shared = exclusive().read().await;
    let sim = Simulator::start_with(
        ([127, 0, 0, 1], 0).into(),
        sim_config(),
        SimOptions::with_admin(),
    )
    .await
    .expect("simulator starts");
    let admin = format!("{}/_sim", sim.base_url());
    let post = |path: &'static str, body: Value| {
        let url = format!("{admin}{path}");
        async move { status_of(reqwest::Method::POST, &url, Some(body)).await }
    };
    let (s, armed) = post(
        "/faults",
        json!({"api": "vault", "vault": FAULTY, "endpoint": "list_sessions",
               "kind": "too_many_requests", "retry_after": 9, "times": 2}),
    )
    .await;
    assert_eq!(s, 201, "{armed}");
    assert_eq!(armed["kind"], "too_many_requests");
    assert_eq!(armed["retry_after"], 9);
    assert_eq!(armed["times"], 2);
    assert_eq!(armed["vault"], FAULTY);
    let (s, _) = post(
        "/faults",
        json!({"api": "deepset", "workspace": HEALTHY, "kind": "delay", "ms": 1}),
    )
    .await;
    assert_eq!(s, 201);
    // In code, the same rules.
    let rules = sim.vault(FAULTY).unwrap().faults();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].endpoint, Some(Endpoint::ListSessions));
    assert_eq!(sim.deepset(HEALTHY).unwrap().faults().len(), 1);
    // It fires (and counts down): a 429 with Retry-After.
    let list = format!(
        "{}/api/v25.2/services/file_staging/upload",
        sim.vault_url(FAULTY).unwrap()
    );
    let resp = reqwest::get(&list).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "9");
    let (s, listed) = status_of(reqwest::Method::GET, &format!("{admin}/faults"), None).await;
    assert_eq!(s, 200);
    assert_eq!(listed["vaults"][FAULTY][0]["times"], 1, "{listed}");
    assert_eq!(listed["vaults"][HEALTHY], json!([]));
    assert_eq!(listed["deepset"][HEALTHY][0]["kind"], "delay");
    assert_eq!(listed["deepset"][HEALTHY][0]["ms"], 1);
    assert_eq!(listed["deepset"][HEALTHY][0]["endpoint"], Value::Null);
    // Clear one, then all.
    let (s, v) = status_of(
        reqwest::Method::DELETE,
        &format!("{admin}/faults?api=deepset&workspace={HEALTHY}"),
        None,
    )
    .await;
    assert_eq!((s, v["cleared"].as_u64()), (200, Some(1)));
    assert_eq!(sim.vault(FAULTY).unwrap().faults().len(), 1);
    let (s, v) = status_of(reqwest::Method::DELETE, &format!("{admin}/faults"), None).await;
    assert_eq!((s, v["cleared"].as_u64()), (200, Some(1)));
    assert_eq!(reqwest::get(&list).await.unwrap().status(), 200);
    // Actions.
    let (s, v) = post(
        "/actions",
        json!({"api": "vault", "vault": FAULTY, "action": "set_burst_remaining",
               "remaining": 0, "response_delay_ms": 20}),
    )
    .await;
    assert_eq!((s, v["done"].as_str()), (200, Some("set_burst_remaining")));
    let resp = reqwest::get(&list).await.unwrap();
    assert_eq!(resp.headers()["x-vaultapi-burstlimitremaining"], "0");
    assert_eq!(resp.headers()["x-vaultapi-responsedelay"], "20");
    // Refusals say why.
    for (path, body, want) in [
        (
            "/faults",
            json!({"api": "vault", "vault": "nope", "kind": "hang"}),
            404,
        ),
        (
            "/faults",
            json!({"api": "deepset", "workspace": "nope", "kind": "hang"}),
            404,
        ),
        ("/faults", json!({"api": "vault", "kind": "hang"}), 400),
        ("/faults", json!({"api": "ftp", "kind": "hang"}), 400),
        ("/faults", json!({"api": "vault", "vault": FAULTY}), 400),
        (
            "/faults",
            json!({"api": "vault", "vault": FAULTY, "kind": "nope"}),
            400,
        ),
        (
            "/faults",
            json!({"api": "vault", "vault": FAULTY, "kind": "delay"}),
            400,
        ),
        (
            "/faults",
            json!({"api": "vault", "vault": FAULTY, "kind": "hang", "times": 0}),
            400,
        ),
        (
            "/faults",
            json!({"api": "vault", "vault": FAULTY, "kind": "hang", "endpoint": "x"}),
            400,
        ),
        (
            "/faults",
            json!({"api": "deepset", "workspace": FAULTY, "kind": "wrong_version_trap"}),
            400,
        ),
        (
            "/faults",
            json!({"api": "vault", "vault": FAULTY, "kind": "http_status", "status": 7}),
            400,
        ),
        (
            "/actions",
            json!({"api": "vault", "vault": FAULTY, "action": "nope"}),
            400,
        ),
        (
            "/actions",
            json!({"api": "deepset", "workspace": FAULTY, "action": "invalidate_login_sessions"}),
            400,
        ),
        ("/nope", json!({}), 404),
    ] {
        let (s, v) = post(path, body.clone()).await;
        assert_eq!(s, want, "{path} {body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    let resp = reqwest::Client::new()
        .post(format!("{admin}/faults"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (s, _) = status_of(reqwest::Method::PUT, &format!("{admin}/faults"), None).await;
    assert_eq!(s, 405);
    assert!(
        sim.vault(FAULTY).unwrap().faults().is_empty(),
        "refused requests arm nothing"
    );
    sim.shutdown().await;
}

// `upload_session_sim --admin` as a binary: sim/tests/binary.rs.

// -------------------------------------------------------------- Retry-After

/// README, "How it behaves under failure": deepset 429 "waits at least
/// `Retry-After`", counted from the answer. (Found by this test: the poll
/// jitter used to shorten it by up to 10%.)
#[tokio::test]
async fn retry_after_is_never_shortened() {
    let _shared = exclusive().read().await;
    let sim = Simulator::start_with(
        ([127, 0, 0, 1], 0).into(),
        sim_config(),
        SimOptions::with_admin(),
    )
    .await
    .expect("simulator starts");
    seed(&sim);
    let targets = vec![deepset_target(&sim, F, FAULTY)];
    let mut run = Run::start_with("retry-after", Api::Deepset, sim, targets).await;
    let ws = run.sim.deepset(FAULTY).expect("workspace");
    run.until(Duration::from_secs(10), "first poll", |m| {
        m.up(F, "deepset") == Some(true)
    })
    .await;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        // Arm a single 429 (Retry-After 1 s) and time the answer it gets.
        let served = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let next = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let (s1, n1) = (Arc::clone(&served), Arc::clone(&next));
        ws.inject(FaultRule::times(
            Some(DeepsetEndpoint::ListSessions),
            FaultKind::TooManyRequests { retry_after: 1 },
            1,
        ));
        ws.after_list_request(1, move |_| {
            *s1.lock().unwrap() = Some(Instant::now());
        });
        ws.after_list_request(2, move |_| {
            *n1.lock().unwrap() = Some(Instant::now());
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while next.lock().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (a, b) = (*served.lock().unwrap(), *next.lock().unwrap());
        let (Some(a), Some(b)) = (a, b) else {
            panic!("no retry within 10 s");
        };
        gaps.push(b - a);
        run.until(Duration::from_secs(10), "recovered", |m| {
            m.up(F, "deepset") == Some(true)
        })
        .await;
    }
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_secs(1)),
        "asked to wait 1 s (Retry-After), the next request came after {gaps:?}"
    );
    run.stop().await;
}
