//! The exporter binary against the simulator's S3 side with nothing but
//! what an admin on AWS would give it: no key pair (the standard AWS
//! credential chain reads a shared credentials file) and no `buckets` (they
//! are found with ListBuckets). `--once` and `sessions` both see the
//! buckets found, under the names `<name>:<bucket>`.

use crate::common::{self, run_bin, value};

use time::OffsetDateTime;
use upload_session_sim::s3::{
    S3BucketSpec, S3Identity, S3Spec, S3UploadSeed, S3_DEMO_ACCESS_KEY_ID,
    S3_DEMO_SECRET_ACCESS_KEY,
};
use upload_session_sim::{SimConfig, Simulator};

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

/// The AWS variables of the test's own environment that could reach the
/// chain before the shared file does.
const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

#[test]
fn the_credential_chain_and_listbuckets_with_once_and_sessions() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let now = OffsetDateTime::now_utc();
    let sim = rt.block_on(async {
        let mut uploads = S3BucketSpec::new("uploads");
        let mut a = S3UploadSeed::new(
            "in/a.bin",
            S3Identity::new(ALICE, "alice"),
            now - time::Duration::minutes(5),
        );
        a.parts = vec![(1, 5_242_880), (2, 123)];
        uploads.uploads = vec![a];
        let mut spec = S3Spec::new();
        spec.buckets = vec![uploads, S3BucketSpec::new("quiet")];
        let mut cfg = SimConfig::idle();
        cfg.s3 = Some(spec);
        Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
            .await
            .expect("simulator starts")
    });
    let url = sim.s3_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3.toml");
    std::fs::write(
        &config,
        format!("[[targets]]\nname = \"all\"\nkind = \"s3\"\nurl = \"{url}\"\ntimeout = \"5s\"\n"),
    )
    .unwrap();
    let profile = |secret: &str| {
        let path = dir.path().join(format!("credentials-{}", secret.len()));
        std::fs::write(
            &path,
            format!(
                "[sim]\naws_access_key_id = {S3_DEMO_ACCESS_KEY_ID}\naws_secret_access_key = {secret}\n"
            ),
        )
        .unwrap();
        path
    };
    let good = profile(S3_DEMO_SECRET_ACCESS_KEY);
    let no_config = dir.path().join("no-aws-config");
    let run = |args: &[&str], credentials: &std::path::Path| {
        let env = [
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ("AWS_CONFIG_FILE", no_config.to_str().unwrap()),
            ("AWS_PROFILE", "sim"),
            // No instance metadata service here: do not wait for one.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let mut all = vec!["--config.file", config.to_str().unwrap()];
        all.extend_from_slice(args);
        // The simulator runs on `rt`'s worker threads meanwhile.
        run_bin(&all, AWS_VARS, &env)
    };
    let (code, out, err) = run(&["--once"], &good);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        value(&out, "upload_session_target_up{target=\"all\",kind=\"s3\"}"),
        "1"
    );
    assert_eq!(
        value(
            &out,
            &format!(
                "upload_session_uploaded_bytes{{target=\"all:uploads\",owner_id=\"{ALICE}\"}}"
            )
        ),
        "5243003"
    );
    assert_eq!(
        value(
            &out,
            "upload_session_target_up{target=\"all:quiet\",kind=\"s3\"}"
        ),
        "1"
    );
    if let Some((ok, text)) = common::promtool_check(&out) {
        assert!(ok, "{text}");
    }
    // `sessions` looks a found target up by its name.
    let (code, out, err) = run(&["sessions", "--target", "all:uploads"], &good);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("all:uploads"), "{out}");
    assert!(out.contains("in/a.bin") && out.contains("alice"), "{out}");
    assert!(!out.contains("all:quiet"), "{out}");
    // A wrong secret in the profile: auth, and no secret anywhere.
    let wrong = profile("wrongSecretKey/0000/0000000000000000000000000");
    let (code, out, err) = run(&["--once"], &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("target all:") && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    for text in [&out, &err] {
        assert!(!text.contains("wrongSecretKey"), "{text}");
        assert!(!text.contains(S3_DEMO_SECRET_ACCESS_KEY), "{text}");
    }
    assert_eq!(
        value(&out, "upload_session_target_up{target=\"all\",kind=\"s3\"}"),
        "0"
    );
    rt.block_on(sim.shutdown());
}
