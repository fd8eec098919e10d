//! The S3 kind against the simulator's S3 side over real HTTP (SigV4
//! verified by the simulator): exact per-owner figures of seeded uploads,
//! the lifecycle rule's expiry and `upload_session_abort_after_seconds`,
//! one target per bucket, the cost guard's cap, and the error reasons.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{eventually, get, value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{poll_all_once, with_found, Exporter, ServeOptions};
use upload_session_exporter::config::{parse_str, Config, Environment};
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::upstream::{ErrorReason, RequestLimiter};
use upload_session_sim::s3::{
    LifecycleRule, S3BucketSpec, S3Endpoint, S3Identity, S3Spec, S3UploadSeed,
    S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};
use upload_session_sim::{FaultKind, FaultRule};
use upload_session_sim::{SimConfig, Simulator};

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const MIB: u64 = 1024 * 1024;

struct Env(HashMap<&'static str, &'static str>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|s| s.to_string())
    }
}

fn env() -> Env {
    Env(HashMap::from([
        ("S3_KEY", S3_DEMO_ACCESS_KEY_ID),
        ("S3_SECRET", S3_DEMO_SECRET_ACCESS_KEY),
        ("S3_WRONG", "not-the-secret-0000000000000000000000000"),
    ]))
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `uploads`: alice's two uploads under `incoming/` with parts, bob's
/// part-less one elsewhere, a 2-day abort rule for `incoming/`.
fn uploads_bucket(now: OffsetDateTime) -> (S3BucketSpec, [OffsetDateTime; 3]) {
    let t = [
        now - time::Duration::hours(1),
        now - time::Duration::minutes(30),
        now - time::Duration::days(3),
    ];
    let mut b = S3BucketSpec::new("uploads");
    b.lifecycle = Some(vec![LifecycleRule::abort_after("stale", "incoming/", 2)]);
    let mut a = S3UploadSeed::new("incoming/a.bin", S3Identity::new(ALICE, "alice"), t[0]);
    a.parts = vec![(1, 5 * MIB), (2, 5 * MIB), (3, 1000)];
    let mut c = S3UploadSeed::new("incoming/b b+é.bin", S3Identity::new(ALICE, "alice"), t[1]);
    c.parts = vec![(1, 100)];
    let d = S3UploadSeed::new("other/c.bin", S3Identity::new(BOB, ""), t[2]);
    b.uploads = vec![a, c, d];
    (b, t)
}

async fn s3_sim(buckets: Vec<S3BucketSpec>) -> Simulator {
    let mut cfg = SimConfig::idle();
    let mut spec = S3Spec::new();
    spec.buckets = buckets;
    cfg.s3 = Some(spec);
    Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts")
}

fn config(sim: &Simulator, extra: &str) -> Config {
    target(sim, "s3", &format!("buckets = [\"uploads\"]\n{extra}"))
}

/// One S3 target on the simulator with the demo key pair, plus `extra`.
fn target(sim: &Simulator, name: &str, extra: &str) -> Config {
    let url = sim.s3_url().expect("an S3 listener");
    let toml = format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"s3\"\nurl = \"{url}\"\n\
         access_key_id_env = \"S3_KEY\"\nsecret_access_key_env = \"S3_SECRET\"\ntimeout = \"5s\"\n{extra}\n"
    );
    match parse_str(&toml, "s3.toml", &env()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn seeded_uploads_give_exact_owner_figures() {
    let now = OffsetDateTime::now_utc();
    let (bucket, t) = uploads_bucket(now);
    let sim = s3_sim(vec![bucket]).await;
    let cfg = config(&sim, "");
    assert_eq!(cfg.targets.len(), 1);
    assert_eq!(cfg.targets[0].name, "s3:uploads");
    let (text, failed) = poll_all_once(&cfg).await;
    assert!(failed.is_empty(), "{failed:?}");
    let o = |m: &str, who: &str| {
        value(
            &text,
            &format!("{m}{{target=\"s3:uploads\",owner_id=\"{who}\"}}"),
        )
    };
    assert_eq!(
        value(
            &text,
            &format!("upload_session_sessions{{target=\"s3:uploads\",owner_id=\"{ALICE}\",state=\"active\"}}")
        ),
        "2"
    );
    assert_eq!(
        o("upload_session_uploaded_bytes", ALICE),
        (10 * MIB + 1100).to_string()
    );
    assert_eq!(o("upload_session_uploaded_parts", ALICE), "4");
    assert_eq!(o("upload_session_uploaded_bytes", BOB), "0");
    assert_eq!(o("upload_session_uploaded_parts", BOB), "0");
    // Parts' LastModified: initiation plus the part number in minutes.
    let last = ms(t[1] + time::Duration::minutes(1)) / 1000;
    assert!(
        o("upload_session_last_upload_timestamp_seconds", ALICE).starts_with(&last.to_string()),
        "{text}"
    );
    let oldest = ms(t[0]) / 1000;
    assert!(o("upload_session_oldest_created_timestamp_seconds", ALICE)
        .starts_with(&oldest.to_string()));
    // The 2-day rule covers incoming/: the earlier upload expires first, at
    // the midnight after its initiation plus 2 days.
    let day = 86_400_000;
    let abort = (ms(t[0]) + 2 * day).div_euclid(day) * day + day;
    assert_eq!(
        o("upload_session_next_expiry_timestamp_seconds", ALICE),
        format!("{}", abort / 1000)
    );
    assert!(!text.contains(&format!(
        "upload_session_next_expiry_timestamp_seconds{{target=\"s3:uploads\",owner_id=\"{BOB}\"}}"
    )));
    // The last part of a.bin came 57 minutes ago, b's 29 minutes ago, and
    // c.bin has none after 3 days.
    assert_eq!(o("upload_session_stalled_sessions", ALICE), "1");
    assert_eq!(o("upload_session_stalled_sessions", BOB), "1");
    assert_eq!(
        value(
            &text,
            &format!("upload_session_owner_info{{target=\"s3:uploads\",owner_id=\"{ALICE}\",owner_name=\"alice\"}}")
        ),
        "1"
    );
    // No declared size: no size, at-risk or awaiting-commit series.
    for absent in [
        "upload_session_size_bytes{",
        "upload_session_at_risk_sessions{",
        "upload_session_awaiting_commit_sessions{",
        "upload_session_ingested_files{",
    ] {
        assert!(!text.contains(absent), "{absent}");
    }
    // The rule covers incoming/ only, not the whole bucket.
    assert!(!text.contains("upload_session_abort_after_seconds{"));
    for (endpoint, n) in [
        ("list_multipart_uploads", "1"),
        ("list_parts", "3"),
        ("get_bucket_lifecycle", "1"),
    ] {
        assert_eq!(
            value(
                &text,
                &format!("upload_session_api_requests_total{{target=\"s3:uploads\",endpoint=\"{endpoint}\"}}")
            ),
            n
        );
    }
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"s3:uploads\",kind=\"s3\"}"
        ),
        "1"
    );
    if let Some((ok, out)) = common::promtool_check(&text) {
        assert!(ok, "{out}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn one_target_per_bucket_prefixes_and_the_rule_gauge() {
    let now = OffsetDateTime::now_utc();
    let (bucket, _) = uploads_bucket(now);
    let mut empty = S3BucketSpec::new("empty");
    empty.lifecycle = Some(vec![LifecycleRule::abort_after("all", "", 7)]);
    let sim = s3_sim(vec![bucket, empty]).await;
    let mut cfg = config(&sim, "prefix = \"incoming/\"");
    // One configuration with two buckets: two targets.
    let url = sim.s3_url().unwrap();
    let toml = format!(
        "[[targets]]\nname = \"s3\"\nkind = \"s3\"\nurl = \"{url}\"\nbuckets = [\"uploads\", \"empty\"]\n\
         access_key_id_env = \"S3_KEY\"\nsecret_access_key_env = \"S3_SECRET\"\n"
    );
    let both = parse_str(&toml, "s3.toml", &env()).unwrap();
    let names: Vec<&str> = both.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["s3:uploads", "s3:empty"]);
    cfg.targets.push(both.targets[1].clone());
    let (text, failed) = poll_all_once(&cfg).await;
    assert!(failed.is_empty(), "{failed:?}");
    // With the prefix only alice's uploads are listed; bob's is not.
    assert!(!text.contains(BOB), "{text}");
    assert_eq!(
        value(
            &text,
            "upload_session_abort_after_seconds{target=\"s3:uploads\"}"
        ),
        "172800"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_abort_after_seconds{target=\"s3:empty\"}"
        ),
        "604800"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"s3:empty\",kind=\"s3\"}"
        ),
        "1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_cost_guard_caps_list_parts_per_poll() {
    let now = OffsetDateTime::now_utc();
    let mut b = S3BucketSpec::new("uploads");
    for i in 0..5 {
        let mut u = S3UploadSeed::new(
            &format!("k{i}"),
            S3Identity::new(ALICE, "alice"),
            now - time::Duration::minutes(5),
        );
        u.parts = vec![(1, 10)];
        b.uploads.push(u);
    }
    let sim = s3_sim(vec![b]).await;
    let s3 = sim.s3().unwrap();
    let cfg = config(&sim, "max_list_parts_per_poll = 2");
    let target = &cfg.targets[0];
    let mut source = Source::new(target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(target);
    let mut per_poll = Vec::new();
    for _ in 0..4 {
        let before = s3.request_count(S3Endpoint::ListParts);
        poll_once(target, &mut source, &mut state).await.unwrap();
        per_poll.push(s3.request_count(S3Endpoint::ListParts) - before);
    }
    // 2 per poll, round robin: all five listed after three polls.
    assert_eq!(per_poll, [2, 2, 2, 2]);
    // The lifecycle configuration is read once an hour, not every poll.
    assert_eq!(s3.request_count(S3Endpoint::GetLifecycle), 1);
    assert_eq!(state.owners()[ALICE].uploaded, 50);
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_their_reasons_and_no_secret() {
    let now = OffsetDateTime::now_utc();
    let (bucket, _) = uploads_bucket(now);
    let sim = s3_sim(vec![bucket]).await;
    let poll = |extra: &'static str| {
        let cfg = config(&sim, extra);
        async move {
            let target = cfg.targets[0].clone();
            let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
            let mut state = TargetState::for_target(&target);
            poll_once(&target, &mut source, &mut state).await
        }
    };
    let e = poll("").await;
    assert!(e.is_ok(), "{e:?}");
    // A wrong secret: auth, and the secret is never shown.
    let url = sim.s3_url().unwrap();
    let toml = format!(
        "[[targets]]\nname = \"s3\"\nkind = \"s3\"\nurl = \"{url}\"\nbuckets = [\"uploads\"]\n\
         access_key_id_env = \"S3_KEY\"\nsecret_access_key_env = \"S3_WRONG\"\n"
    );
    let wrong = parse_str(&toml, "s3.toml", &env()).unwrap();
    let target = &wrong.targets[0];
    let mut source = Source::new(target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(target);
    let e = poll_once(target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), ErrorReason::Auth);
    let m = e.to_string();
    assert!(m.contains("SignatureDoesNotMatch"), "{m}");
    assert!(
        !m.contains("not-the-secret") && !m.contains(S3_DEMO_SECRET_ACCESS_KEY),
        "{m}"
    );
    // A bucket that does not exist: http_status.
    let toml = toml
        .replace("\"uploads\"", "\"nope\"")
        .replace("S3_WRONG", "S3_SECRET");
    let nope = parse_str(&toml, "s3.toml", &env()).unwrap();
    let target = &nope.targets[0];
    let mut source = Source::new(target, &RequestLimiter::default()).unwrap();
    let e = poll_once(target, &mut source, &mut TargetState::for_target(target))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), ErrorReason::HttpStatus, "{e}");
    assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    // SlowDown: rate_limited, honouring Retry-After.
    let s3 = sim.s3().unwrap();
    assert!(s3.inject(
        Some("uploads"),
        FaultRule {
            endpoint: Some(S3Endpoint::ListMultipartUploads),
            kind: FaultKind::TooManyRequests { retry_after: 7 },
            times: Some(1),
        }
    ));
    let e = poll("").await.unwrap_err();
    assert_eq!(e.reason(), ErrorReason::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    // A body that is not XML: decode.
    assert!(s3.inject(
        Some("uploads"),
        FaultRule {
            endpoint: Some(S3Endpoint::ListMultipartUploads),
            kind: FaultKind::MalformedJson,
            times: Some(1),
        }
    ));
    let e = poll("").await.unwrap_err();
    assert_eq!(e.reason(), ErrorReason::Decode, "{e}");
    // An error document sent with HTTP 200 is an error, not an empty
    // listing (serde alone would read it as one).
    assert!(s3.inject(
        Some("uploads"),
        FaultRule {
            endpoint: Some(S3Endpoint::ListMultipartUploads),
            kind: FaultKind::HttpStatus {
                status: 200,
                content_type: "application/xml".into(),
                body: "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>try again</Message></Error>".into(),
            },
            times: Some(1),
        }
    ));
    let e = poll("").await.unwrap_err();
    assert_eq!(e.reason(), ErrorReason::HttpStatus, "{e}");
    assert!(e.to_string().contains("InternalError: try again"), "{e}");
    // An empty answer is no listing either.
    assert!(s3.inject(
        Some("uploads"),
        FaultRule {
            endpoint: Some(S3Endpoint::ListMultipartUploads),
            kind: FaultKind::HttpStatus {
                status: 200,
                content_type: "application/xml".into(),
                body: String::new(),
            },
            times: Some(1),
        }
    ));
    let e = poll("").await.unwrap_err();
    assert_eq!(e.reason(), ErrorReason::Decode, "{e}");
    assert!(
        e.to_string()
            .contains("not an XML document (expected <ListMultipartUploadsResult>)"),
        "{e}"
    );
    sim.shutdown().await;
}

#[test]
fn configuration_errors_name_the_key() {
    let p = |toml: &str| match parse_str(toml, "s3.toml", &env()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .to_string()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    };
    // AWS (no url): region required; buckets may be left out (found at
    // run time) but not given empty.
    let got = p("[[targets]]\nname = \"a\"\nkind = \"s3\"\nbuckets = []\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("s3.toml: targets[0].region: missing"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("s3.toml: targets[0].buckets: is empty"),
        "{got:?}"
    );
    let c = parse_str(
        "[[targets]]\nname = \"a\"\nkind = \"s3\"\nregion = \"eu-west-1\"\n",
        "s3.toml",
        &env(),
    )
    .unwrap();
    let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a"], "the target that finds the buckets");
    // AWS with a region: its endpoint, virtual-hosted style.
    let c = parse_str(
        "[[targets]]\nname = \"a\"\nkind = \"s3\"\nregion = \"eu-west-1\"\nbuckets = [\"b\"]\n",
        "s3.toml",
        &env(),
    )
    .unwrap();
    assert_eq!(
        c.targets[0].url.as_str(),
        "https://s3.eu-west-1.amazonaws.com/"
    );
    let s = c.targets[0]
        .settings::<upload_session_exporter::kinds::s3::S3Config>()
        .unwrap();
    assert!(!s.path_style && s.access_key_id.is_none());
    // Virtual-hosted, a bucket must be able to stand in a host name;
    // path style takes any.
    let got = p(
        "[[targets]]\nname = \"a\"\nkind = \"s3\"\nregion = \"eu-west-1\"\nbuckets = [\"ok\", \"My_Bucket\"]\n",
    );
    assert_eq!(
        got,
        ["s3.toml: targets[0].buckets: \"My_Bucket\" cannot be part of a host name (virtual-hosted style); set path_style = true"]
    );
    assert!(p(
        "[[targets]]\nname = \"a\"\nkind = \"s3\"\nregion = \"eu-west-1\"\npath_style = true\nbuckets = [\"My_Bucket\"]\n"
    )
    .is_empty());
    // With a url the region is only signed, never part of a host name.
    let got = p(
        "[[targets]]\nname = \"a\"\nkind = \"s3\"\nurl = \"http://127.0.0.1:9\"\n\
                 region = \"eu west\"\nbuckets = [\"b\"]\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("targets[0].region: \"eu west\" is not a region"),
        "{got:?}"
    );
    // Half a key pair, an inline secret, a Vault key, a bad count.
    let got = p("[[targets]]\nname = \"a\"\nkind = \"s3\"\nurl = \"http://127.0.0.1:9\"\nbuckets = [\"b\", \"b\"]\n\
                 access_key_id_env = \"S3_KEY\"\nsecret_access_key = \"x\"\nusername = \"u\"\nmax_list_parts_per_poll = 0\n");
    let want = [
        "targets[0].username: is a Vault key; a kind = \"s3\" target does not use it",
        "targets[0].buckets: \"b\" is listed twice",
        "targets[0].secret_access_key: secrets may not be written in the configuration file",
        "targets[0].secret_access_key_env: set both",
        "targets[0].max_list_parts_per_poll: 0 is out of range",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.contains(w)),
            "missing {w:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    assert!(got.iter().all(|g| !g.contains("\"x\"")));
}

/// A target without `buckets`: the buckets ListBuckets returns.
fn finder_config(sim: &Simulator, extra: &str) -> Config {
    target(sim, "all", extra)
}

#[tokio::test]
async fn without_buckets_every_bucket_listbuckets_returns_is_watched() {
    let now = OffsetDateTime::now_utc();
    let (bucket, _) = uploads_bucket(now);
    let mut empty = S3BucketSpec::new("empty");
    empty.lifecycle = Some(vec![LifecycleRule::abort_after("all", "", 7)]);
    let sim = s3_sim(vec![bucket, empty]).await;
    let cfg = finder_config(&sim, "");
    let (text, failed) = poll_all_once(&cfg).await;
    assert!(failed.is_empty(), "{failed:?}");
    // The finder: up, one ListBuckets, no sessions of its own.
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"all\",kind=\"s3\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_api_requests_total{target=\"all\",endpoint=\"list_buckets\"}"
        ),
        "1"
    );
    assert!(!text.contains("{target=\"all\",owner_id"), "{text}");
    // Each bucket found is a target of its own, with exact figures.
    for b in ["all:uploads", "all:empty"] {
        assert_eq!(
            value(
                &text,
                &format!("upload_session_target_up{{target=\"{b}\",kind=\"s3\"}}")
            ),
            "1"
        );
    }
    assert_eq!(
        value(
            &text,
            &format!(
                "upload_session_uploaded_bytes{{target=\"all:uploads\",owner_id=\"{ALICE}\"}}"
            )
        ),
        (10 * MIB + 1100).to_string()
    );
    assert_eq!(
        value(
            &text,
            "upload_session_abort_after_seconds{target=\"all:empty\"}"
        ),
        "604800"
    );
    // `sessions` finds them too, under the same names.
    let (found, failed) = with_found(&cfg).await;
    assert!(failed.is_empty(), "{failed:?}");
    let names: Vec<&str> = found.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["all:empty", "all:uploads"]);
    // ListBuckets refused: the finder fails with its reason, nothing is found.
    let s3 = sim.s3().unwrap();
    assert!(s3.inject(
        None,
        FaultRule {
            endpoint: Some(S3Endpoint::ListBuckets),
            kind: FaultKind::HttpStatus {
                status: 403,
                content_type: "application/xml".into(),
                body: "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                    .into(),
            },
            times: Some(2),
        }
    ));
    let (text, failed) = poll_all_once(&cfg).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "all");
    assert!(failed[0].1.contains("s3:ListAllMyBuckets"), "{failed:?}");
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"all\",kind=\"s3\"}"
        ),
        "0"
    );
    assert!(!text.contains("target=\"all:uploads\""));
    let (_, failed) = with_found(&cfg).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].1.contains("(auth)"), "{failed:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn buckets_found_at_run_time_come_and_go_and_a_failing_listbuckets_loses_nothing() {
    let now = OffsetDateTime::now_utc();
    let (bucket, _) = uploads_bucket(now);
    let sim = s3_sim(vec![bucket, S3BucketSpec::new("empty")]).await;
    // Slow first answers, so that what /-/ready waits for can be seen: the
    // finder until its ListBuckets answered, then the buckets it found.
    let s3 = sim.s3().unwrap();
    assert!(s3.inject(
        None,
        FaultRule {
            endpoint: Some(S3Endpoint::ListBuckets),
            kind: FaultKind::Delay(Duration::from_millis(1500)),
            times: Some(1),
        }
    ));
    assert!(s3.inject(
        Some("uploads"),
        FaultRule {
            endpoint: Some(S3Endpoint::ListMultipartUploads),
            kind: FaultKind::Delay(Duration::from_millis(1500)),
            times: Some(1),
        }
    ));
    let mut cfg = finder_config(&sim, "");
    cfg.targets[0].poll_interval = Duration::from_millis(300);
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start(cfg, None, ServeOptions::loopback(), shutdown.clone())
        .await
        .unwrap();
    assert_eq!(exporter.waiting_targets(), ["all"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            exporter.waiting_targets() == ["all:uploads"]
        })
        .await,
        "{:?}",
        exporter.waiting_targets()
    );
    let base = format!("http://{}", exporter.addr());
    let page = || async { get(&format!("{base}/metrics")).await.text().await.unwrap() };
    let shows = |needle: String| {
        let page = &page;
        async move {
            eventually(Duration::from_secs(10), || {
                let needle = needle.clone();
                async move { page().await.contains(&needle) }
            })
            .await
        }
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&format!("{base}/-/ready")).await.status() == 200
        })
        .await
    );
    // Ready means the buckets found were polled too (they are waited for
    // before the finder's poll ends): no target waits any more.
    assert!(exporter.waiting_targets().is_empty());
    // The page is assembled a moment after the polls.
    assert!(shows("target=\"all:empty\"".into()).await);
    assert!(
        shows(format!(
            "upload_session_uploaded_parts{{target=\"all:uploads\",owner_id=\"{ALICE}\"}}"
        ))
        .await
    );
    let text = page().await;
    assert_eq!(
        value(
            &text,
            &format!(
                "upload_session_uploaded_parts{{target=\"all:uploads\",owner_id=\"{ALICE}\"}}"
            )
        ),
        "4",
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"all:empty\",kind=\"s3\"}"
        ),
        "1"
    );
    // A new bucket is watched from the next ListBuckets on; a deleted one
    // goes with its series.
    assert!(s3.create_bucket("fresh"));
    let mut u = S3UploadSeed::new("f.bin", S3Identity::new(BOB, "bob"), now);
    u.parts = vec![(1, 777)];
    assert!(s3.insert_upload("fresh", u).is_some());
    assert!(s3.remove_bucket("empty"));
    assert!(
        shows(format!(
            "upload_session_uploaded_bytes{{target=\"all:fresh\",owner_id=\"{BOB}\"}} 777"
        ))
        .await,
        "{}",
        page().await
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            !page().await.contains("target=\"all:empty\"")
        })
        .await
    );
    // ListBuckets failing from now on: the finder reads down, the buckets
    // found before keep being polled.
    assert!(s3.inject(
        None,
        FaultRule {
            endpoint: Some(S3Endpoint::ListBuckets),
            kind: FaultKind::HttpStatus {
                status: 500,
                content_type: "application/xml".into(),
                body: "<Error><Code>InternalError</Code><Message>oops</Message></Error>".into(),
            },
            times: None,
        }
    ));
    assert!(shows("upload_session_target_up{target=\"all\",kind=\"s3\"} 0".into()).await);
    let before = value(
        &page().await,
        "upload_session_api_requests_total{target=\"all:fresh\",endpoint=\"list_multipart_uploads\"}",
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let text = page().await;
            value(
                &text,
                "upload_session_api_requests_total{target=\"all:fresh\",endpoint=\"list_multipart_uploads\"}",
            ) != before
                && text.contains("upload_session_target_up{target=\"all:uploads\",kind=\"s3\"} 1")
        })
        .await
    );
    shutdown.cancel();
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_changes_or_removes_the_finder_changes_what_it_found() {
    let now = OffsetDateTime::now_utc();
    let (bucket, _) = uploads_bucket(now);
    let sim = s3_sim(vec![bucket]).await;
    let with = |extra: &str| {
        let mut cfg = finder_config(&sim, extra);
        cfg.targets[0].poll_interval = Duration::from_millis(300);
        cfg
    };
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start(with(""), None, ServeOptions::loopback(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", exporter.addr());
    let page = || async { get(&format!("{base}/metrics")).await.text().await.unwrap() };
    let bob = format!("upload_session_sessions{{target=\"all:uploads\",owner_id=\"{BOB}\"");
    let alice = format!("upload_session_sessions{{target=\"all:uploads\",owner_id=\"{ALICE}\"");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let p = page().await;
            p.contains(&bob) && p.contains(&alice)
        })
        .await
    );
    // A prefix now: the finder restarts; the bucket it found keeps its series
    // until the new finder's buckets replace it, with the prefix.
    let summary = exporter.apply(with("prefix = \"incoming/\"")).await;
    assert_eq!(summary.changed, ["all"], "{summary}");
    // What the old finder found keeps running, untouched.
    assert_eq!(summary.unchanged, 1, "{summary}");
    assert!(page().await.contains(&alice));
    assert!(
        eventually(Duration::from_secs(10), || async {
            let p = page().await;
            !p.contains(&bob) && p.contains(&alice)
        })
        .await,
        "{}",
        page().await
    );
    // The finder removed: what it found goes with it.
    let mut none = with("");
    none.targets.clear();
    let summary = exporter.apply(none).await;
    assert_eq!(summary.removed, ["all", "all:uploads"], "{summary}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            !page().await.contains("target=\"all")
        })
        .await
    );
    assert!(exporter.waiting_targets().is_empty());
    shutdown.cancel();
    exporter.stop().await;
    sim.shutdown().await;
}
