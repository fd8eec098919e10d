//! `path_style = false` against a server: the exporter addresses the bucket
//! as `http://uploads.s3.sim.test:PORT/` and the simulator, configured
//! with that domain (`S3Spec::domain`, like MinIO's `MINIO_DOMAIN`), takes
//! the bucket from the host. `.test` names never resolve, so the exporter
//! runs as a child with `HTTP_PROXY` set to the simulator: reqwest then
//! sends the whole URL in the request line (absolute form) to the
//! simulator, which routes by it, and SigV4 still signs the bucket's host.
//! A path-style target of the same bucket, exempt from the proxy by
//! `NO_PROXY`, polls in the same run.

use crate::common;

use common::value;
use time::OffsetDateTime;
use upload_session_sim::s3::{
    LifecycleRule, RuleFilter, S3BucketSpec, S3Endpoint, S3Identity, S3Spec, S3UploadSeed,
    S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};
use upload_session_sim::{SimConfig, Simulator};

const DOMAIN: &str = "s3.sim.test";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const MIB: u64 = 1024 * 1024;

/// Proxy settings of the test's own environment that must not reach the
/// child (the upper-case name wins over the lower-case one in reqwest;
/// `REQUEST_METHOD` makes it ignore `HTTP_PROXY`, as in CGI).
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "no_proxy",
    "REQUEST_METHOD",
    "AWS_ENDPOINT_URL",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_reaches_the_bucket_by_its_host() {
    let now = OffsetDateTime::now_utc();
    let mut b = S3BucketSpec::new("uploads");
    // A rule for the whole bucket: `upload_session_abort_after_seconds`.
    b.lifecycle = Some(vec![LifecycleRule {
        filter: RuleFilter::Empty,
        ..LifecycleRule::abort_after("abort-3d", "", 3)
    }]);
    let mut a = S3UploadSeed::new(
        "in/a.bin",
        S3Identity::new(ALICE, "alice"),
        now - time::Duration::hours(1),
    );
    a.parts = vec![(1, 5 * MIB), (2, 1000)];
    let mut c = S3UploadSeed::new(
        "in/b b.bin",
        S3Identity::new(ALICE, "alice"),
        now - time::Duration::minutes(30),
    );
    c.parts = vec![(1, 300)];
    let d = S3UploadSeed::new(
        "other/c.bin",
        S3Identity::new(BOB, ""),
        now - time::Duration::days(2),
    );
    b.uploads = vec![a, c, d];
    let mut spec = S3Spec::new();
    spec.domain = Some(DOMAIN.to_owned());
    spec.buckets = vec![b];
    let mut cfg = SimConfig::idle();
    cfg.s3 = Some(spec);
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts");
    let ctl = sim.s3().expect("S3 side");
    let url = sim.s3_url().expect("S3 url");
    let port = url.rsplit(':').next().expect("a port").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exporter.toml");
    let creds = "access_key_id_env = \"S3_KEY\"\nsecret_access_key_env = \"S3_SECRET\"\n";
    std::fs::write(
        &path,
        format!(
            "[[targets]]\nname = \"vh\"\nkind = \"s3\"\nurl = \"http://{DOMAIN}:{port}\"\n\
             path_style = false\nbuckets = [\"uploads\"]\n{creds}\n\
             [[targets]]\nname = \"path\"\nkind = \"s3\"\nurl = \"{url}\"\n\
             buckets = [\"uploads\"]\n{creds}"
        ),
    )
    .expect("write config");
    let path = path.display().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::run_bin(
            &["--config.file", &path, "--once"],
            &PROXY_VARS,
            &[
                ("HTTP_PROXY", url.as_str()),
                ("NO_PROXY", "127.0.0.1"),
                ("S3_KEY", S3_DEMO_ACCESS_KEY_ID),
                ("S3_SECRET", S3_DEMO_SECRET_ACCESS_KEY),
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}\n{err}");

    for target in ["vh:uploads", "path:uploads"] {
        let o = |m: &str, who: &str| {
            value(
                &out,
                &format!("{m}{{target=\"{target}\",owner_id=\"{who}\"}}"),
            )
        };
        let active = |who: &str| {
            value(
                &out,
                &format!(
                    "upload_session_sessions{{target=\"{target}\",owner_id=\"{who}\",state=\"active\"}}"
                ),
            )
        };
        assert_eq!(active(ALICE), "2", "{target}");
        assert_eq!(active(BOB), "1", "{target}");
        assert_eq!(
            o("upload_session_uploaded_bytes", ALICE),
            (5 * MIB + 1300).to_string(),
            "{target}"
        );
        assert_eq!(o("upload_session_uploaded_parts", ALICE), "3", "{target}");
        assert_eq!(o("upload_session_uploaded_bytes", BOB), "0", "{target}");
        assert_eq!(o("upload_session_uploaded_parts", BOB), "0", "{target}");
        assert_eq!(
            value(
                &out,
                &format!("upload_session_abort_after_seconds{{target=\"{target}\"}}")
            ),
            "259200",
            "{target}"
        );
        for (endpoint, n) in [
            ("list_multipart_uploads", "1"),
            ("list_parts", "3"),
            ("get_bucket_lifecycle", "1"),
        ] {
            assert_eq!(
                value(
                    &out,
                    &format!(
                        "upload_session_api_requests_total{{target=\"{target}\",endpoint=\"{endpoint}\"}}"
                    )
                ),
                n,
                "{target}"
            );
        }
    }
    // The vh target's five requests named the bucket by host, the path
    // target's five did not.
    assert_eq!(ctl.virtual_hosted_requests(), 5);
    assert_eq!(ctl.request_count(S3Endpoint::ListMultipartUploads), 2);
    assert_eq!(ctl.request_count(S3Endpoint::ListParts), 6);
    sim.shutdown().await;
}
