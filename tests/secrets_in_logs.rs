//! No secret reaches a log line, at any level, from our code or from the
//! HTTP libraries: this test records everything at TRACE while the exporter
//! logs in, logs in again, fails, talks to deepset and logs out, and signs
//! S3 requests with temporary credentials (the AWS crates log at TRACE).

mod common;

use common::*;
use upload_session_exporter::config::{parse_str, Environment};
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::secret::Secret;
use upload_session_exporter::upstream::RequestLimiter;
use upload_session_sim::{
    DeepsetSpec, DeepsetUser, FaultKind, FaultRule, S3BucketSpec, S3Spec, S3UploadSeed, S3User,
    SimConfig, Simulator, UserSpec,
};

const PASSWORD: &str = "Vault-Pw-4f9a2c71";
const API_KEY: &str = "ds-key-8b1e77d0";
const S3_KEY_ID: &str = "ASIASECRETSINLOGS001";
const S3_SECRET: &str = "s3-secret-key-5e0b1a77";
const S3_WRONG_SECRET: &str = "s3-secret-key-5e0b1a78";
const S3_TOKEN: &str = "s3-session-token-93d4c0aa";

/// The S3 credentials by variable name, with this secret key.
struct S3Env(&'static str);

impl Environment for S3Env {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "K" => Some(S3_KEY_ID.to_owned()),
            "S" => Some(self.0.to_owned()),
            "T" => Some(S3_TOKEN.to_owned()),
            _ => None,
        }
    }
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();

    let mut spec = vault_spec("main", 1000);
    let mut user = UserSpec::new(77, "monitor@example.com", PASSWORD);
    user.admin = true;
    spec.users.push(user);
    let mut ws = DeepsetSpec::new("default");
    ws.users.push(DeepsetUser::new(
        "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01",
        "Ada",
        "L",
        API_KEY,
    ));
    let mut s3 = S3Spec::new();
    let mut s3_user = S3User::new(
        S3_KEY_ID,
        S3_SECRET,
        "arn:aws:sts::111122223333:assumed-role/r/s",
        "r/s",
    );
    s3_user.session_token = Some(S3_TOKEN.to_owned());
    s3.users.push(s3_user);
    let mut bucket = S3BucketSpec::new("bkt-1");
    let mut up = S3UploadSeed::new(
        "k",
        s3.users[0].identity.clone(),
        time::OffsetDateTime::now_utc(),
    );
    up.parts = vec![(1, 10)];
    bucket.uploads.push(up);
    s3.buckets.push(bucket);
    let mut cfg = SimConfig::idle();
    cfg.vaults = vec![spec];
    cfg.deepset = vec![ws];
    cfg.s3 = Some(s3);
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .unwrap();
    let vault = sim.vault("main").unwrap();

    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).username = "monitor@example.com".into();
    vault_cfg(&mut target).password = Secret::new(PASSWORD);
    vault_cfg(&mut target).resolve_owner_names = true;
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    vault.invalidate_login_sessions();
    poll_once(&target, &mut source, &mut state).await.unwrap();
    vault.inject(FaultRule {
        endpoint: None,
        kind: FaultKind::WrongVersionTrap,
        times: Some(4),
    });
    let _ = poll_once(&target, &mut source, &mut state).await;
    source.close().await;
    // A refused login with a wrong password that looks like the right one.
    let mut wrong = target.clone();
    vault_cfg(&mut wrong).password = Secret::new(format!("{PASSWORD}x"));
    let mut s = Source::new(&wrong, &RequestLimiter::default()).unwrap();
    let _ = poll_once(&wrong, &mut s, &mut state).await;

    let mut ds = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    common::deepset_cfg(&mut ds).api_key = Secret::new(API_KEY);
    let mut s = Source::new(&ds, &RequestLimiter::default()).unwrap();
    let mut st = TargetState::for_target(&ds);
    poll_once(&ds, &mut s, &mut st).await.unwrap();
    common::deepset_cfg(&mut ds).api_key = Secret::new(format!("{API_KEY}-revoked"));
    let mut s = Source::new(&ds, &RequestLimiter::default()).unwrap();
    let _ = poll_once(&ds, &mut s, &mut st).await;

    // S3 with temporary credentials (the AWS crates sign at TRACE too): a
    // poll, a refused token, a wrong secret.
    let s3 = sim.s3().unwrap();
    let s3_toml = format!(
        "[[targets]]\nname = \"s3\"\nkind = \"s3\"\nurl = \"{}\"\nbuckets = [\"bkt-1\"]\n\
         access_key_id_env = \"K\"\nsecret_access_key_env = \"S\"\nsession_token_env = \"T\"\n",
        sim.s3_url().unwrap()
    );
    let s3_target = |secret: &'static str| {
        let env = S3Env(secret);
        parse_str(&s3_toml, "s3.toml", &env)
            .unwrap()
            .targets
            .remove(0)
    };
    let t = s3_target(S3_SECRET);
    let mut s = Source::new(&t, &RequestLimiter::default()).unwrap();
    let mut st = TargetState::for_target(&t);
    poll_once(&t, &mut s, &mut st).await.unwrap();
    // The errors are logged as the target's task logs them.
    s3.set_token_expired(S3_KEY_ID, true);
    let e = poll_once(&t, &mut s, &mut st).await.unwrap_err();
    tracing::warn!(error = %e, "poll failed");
    s3.set_token_expired(S3_KEY_ID, false);
    let wrong = s3_target(S3_WRONG_SECRET);
    let mut s = Source::new(&wrong, &RequestLimiter::default()).unwrap();
    let e = poll_once(&wrong, &mut s, &mut st).await.unwrap_err();
    tracing::warn!(error = %e, "poll failed");
    tracing::info!(config = ?t, "S3 target for the record");

    // Debug output of the configuration is safe to log too.
    tracing::info!(config = ?target, "target for the record");
    sim.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.len() > 1000,
        "the test captured too little to mean anything: {logs}"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "nothing below info was captured"
    );
    assert!(
        logs.contains("Secret(***)"),
        "the Debug of the config was logged"
    );
    // The S3 polls were logged, the AWS crates' signing too.
    for seen in [
        "signing request",
        "x-amz-security-token:** redacted",
        "ExpiredToken",
        "SignatureDoesNotMatch",
    ] {
        assert!(logs.contains(seen), "{seen:?} not logged");
    }
    for secret in [PASSWORD, API_KEY, S3_SECRET, S3_WRONG_SECRET, S3_TOKEN] {
        assert!(!logs.contains(secret), "secret {secret} found in the logs");
    }
    // aws-sigv4's TRACE "signing request" event shows the access key id
    // (the secret and token redacted); the exporter's own filter never goes
    // below debug (src/logging.rs). No other line may show it.
    let key_id: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(S3_KEY_ID))
        .filter(|l| !(l.contains("TRACE") && l.contains("aws_sigv4::http_request::sign")))
        .collect();
    assert_eq!(key_id, Vec::<&str>::new(), "the S3 key id in the logs");
}
