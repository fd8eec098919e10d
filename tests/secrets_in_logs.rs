//! No secret reaches a log line, at any level, from our code or from the
//! HTTP libraries: this test records everything at TRACE while the exporter
//! logs in, logs in again, fails, talks to deepset and logs out.

mod common;

use common::*;
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::secret::Secret;
use upload_session_exporter::upstream::RequestLimiter;
use upload_session_sim::{DeepsetSpec, DeepsetUser, FaultKind, FaultRule, UserSpec};

const PASSWORD: &str = "Vault-Pw-4f9a2c71";
const API_KEY: &str = "ds-key-8b1e77d0";

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
    let sim = sim_with(vec![spec], vec![ws]).await;
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
    for secret in [PASSWORD, API_KEY] {
        assert!(!logs.contains(secret), "secret {secret} found in the logs");
    }
}
