//! The exporter against the Vault simulator, over real HTTP.

use crate::common;

use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{poll_all_once, Exporter, ServeOptions};
use upload_session_exporter::config::TargetConfig;
use upload_session_exporter::kinds::vault::{VaultClient, VaultConfig};
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::upstream::{ErrorReason, RequestLimiter};
use upload_session_sim::{Endpoint, FaultKind, FaultRule, SessionSeed, UserSpec};

#[tokio::test]
async fn seed_sessions_give_exact_owner_figures() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    for s in seed_000_sessions() {
        vault.insert_session(s);
    }
    // A second owner, live, to check the owners are kept apart.
    let now = sim.now();
    let mut other = SessionSeed::new("/u42/big.zip", 42, 40_000_000_000, now);
    other.uploaded = 12_884_901_888;
    other.uploaded_parts = 1229;
    let expiration_ms = (other.expiration.unix_timestamp_nanos() / 1_000_000) as f64;
    vault.insert_session(other);

    let target = vault_target(&sim, "t", "main");
    let (text, failed) = poll_all_once(&config(vec![target])).await;
    assert!(failed.is_empty(), "{failed:?}");
    let o = |m: &str| value(&text, &format!("{m}{{target=\"t\",owner_id=\"10001400\"}}"));
    // The seed dates are in 2020: the sessions are listed but expired.
    assert_eq!(
        value(
            &text,
            "upload_session_sessions{target=\"t\",owner_id=\"10001400\",state=\"expired\"}"
        ),
        "3"
    );
    assert_eq!(o("upload_session_uploaded_bytes"), "11759027");
    assert_eq!(o("upload_session_size_bytes"), "35574406");
    assert_eq!(o("upload_session_uploaded_parts"), "3");
    // Every seed session has expired: no next expiry for this owner.
    assert!(!text.contains(
        "upload_session_next_expiry_timestamp_seconds{target=\"t\",owner_id=\"10001400\"}"
    ));
    assert!(
        !text.contains("upload_session_time_to_expiry_seconds{target=\"t\",owner_id=\"10001400\"}")
    );
    assert_eq!(
        o("upload_session_last_upload_timestamp_seconds"),
        "1602099509"
    );
    assert_eq!(
        o("upload_session_oldest_created_timestamp_seconds"),
        "1602095575"
    );
    assert_eq!(
        o("upload_session_stalled_sessions"),
        "0",
        "expired sessions are not stalled"
    );

    let big = |m: &str| value(&text, &format!("{m}{{target=\"t\",owner_id=\"42\"}}"));
    assert_eq!(
        value(
            &text,
            "upload_session_sessions{target=\"t\",owner_id=\"42\",state=\"active\"}"
        ),
        "1"
    );
    assert_eq!(big("upload_session_uploaded_bytes"), "12884901888");
    assert_eq!(big("upload_session_size_bytes"), "40000000000");
    assert_eq!(big("upload_session_uploaded_parts"), "1229");
    let next: f64 = big("upload_session_next_expiry_timestamp_seconds")
        .parse()
        .unwrap();
    assert_eq!(next, expiration_ms / 1000.0, "millisecond-exact expiry");
    let tte: f64 = big("upload_session_time_to_expiry_seconds")
        .parse()
        .unwrap();
    assert!(
        (72.0 * 3600.0 - 60.0..=72.0 * 3600.0).contains(&tte),
        "{tte}"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"t\",kind=\"vault\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_api_requests_total{target=\"t\",endpoint=\"list_upload_sessions\"}"
        ),
        "1"
    );
    assert_eq!(
        value(&text, "upload_session_api_burst_limit{target=\"t\"}"),
        "2000"
    );
    // Labels stay bounded: no session ids or paths.
    assert!(!text.contains("Gludacta"), "paths must not become labels");
    assert!(!text.contains("yYFg7jN"), "ids must not become labels");

    if let Some((ok, msg)) = promtool_check(&text) {
        assert!(ok, "promtool check metrics failed:\n{msg}\n{text}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn one_list_call_per_poll_and_session_reused() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let target = vault_target(&sim, "t", "main");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    for _ in 0..3 {
        poll_once(&target, &mut source, &mut state).await.unwrap();
    }
    assert_eq!(vault.request_count(Endpoint::Auth), 1);
    assert_eq!(vault.request_count(Endpoint::ListSessions), 3);
    let (client_id, missing) = vault.client_ids();
    assert_eq!(client_id.as_deref(), Some("test-upload-session-exporter"));
    assert_eq!(missing, 0, "every call carries X-VaultAPI-ClientID");
    source.close().await;
    assert_eq!(vault.request_count(Endpoint::Logout), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn ended_session_relogs_in_once() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let target = vault_target(&sim, "t", "main");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    vault.invalidate_login_sessions();
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert!(state.up());
    assert_eq!(vault.request_count(Endpoint::Auth), 2);
    assert_eq!(
        vault.request_count(Endpoint::ListSessions),
        3,
        "the failed call is retried once"
    );
    for r in ErrorReason::ALL {
        assert_eq!(state.errors(r), 0, "{r}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn unserved_version_is_reported_not_looped() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).api_version = "v99.9".into();
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let mut last = String::new();
    for _ in 0..3 {
        last = poll_once(&target, &mut source, &mut state)
            .await
            .unwrap_err()
            .to_string();
    }
    assert_eq!(state.errors(ErrorReason::Auth), 3);
    assert!(last.contains("v99.9"), "{last}");
    assert!(last.contains("api_version"), "{last}");
    // Never a login loop: at most one login per poll, whatever the Vault says.
    assert!(
        vault.request_count(Endpoint::Auth) <= 3,
        "{}",
        vault.request_count(Endpoint::Auth)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_version_trap_after_relogin_names_the_versions() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let target = vault_target(&sim, "t", "main");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    vault.inject(FaultRule {
        endpoint: None,
        kind: FaultKind::WrongVersionTrap,
        times: None,
    });
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Auth);
    assert!(
        err.to_string()
            .contains("INVALID_SESSION_ID right after a fresh login"),
        "{err}"
    );
    // One transparent re-login, then stop.
    assert_eq!(vault.request_count(Endpoint::Auth), 2);
    vault.clear_faults();
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert!(state.up(), "recovers when the Vault does");
    sim.shutdown().await;
}

const FAILURE_TEST_PASSWORD: &str = "Pw-9f3b2e-unique";

/// Polls once with `fault` injected on List Upload Sessions (or the given
/// endpoint) and returns the error reason and message.
async fn failure(
    endpoint: Option<Endpoint>,
    fault: FaultKind,
    tweak: impl FnOnce(&mut TargetConfig),
) -> (ErrorReason, String) {
    let mut spec = vault_spec("main", 1000);
    let mut user = UserSpec::new(77, "monitor@example.com", FAILURE_TEST_PASSWORD);
    user.admin = true;
    spec.users.push(user);
    let sim = sim(vec![spec]).await;
    let vault = sim.vault("main").unwrap();
    vault.inject(FaultRule {
        endpoint,
        kind: fault,
        times: None,
    });
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).username = "monitor@example.com".into();
    vault_cfg(&mut target).password =
        upload_session_exporter::secret::Secret::new(FAILURE_TEST_PASSWORD);
    tweak(&mut target);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert!(!state.up());
    assert_eq!(state.errors(err.reason()), 1);
    let fragment = String::from_utf8({
        let publisher = upload_session_exporter::metrics::exposition::PagePublisher::new();
        publisher.publish("t", state.render());
        publisher.assemble().plain.to_vec()
    })
    .unwrap();
    assert_eq!(
        value(
            &fragment,
            &format!(
                "upload_session_poll_errors_total{{target=\"t\",reason=\"{}\"}}",
                err.reason()
            )
        ),
        "1"
    );
    assert_eq!(
        value(
            &fragment,
            "upload_session_target_up{target=\"t\",kind=\"vault\"}"
        ),
        "0"
    );
    sim.shutdown().await;
    (err.reason(), err.to_string())
}

fn vault_failure(t: &str) -> FaultKind {
    FaultKind::VaultFailure {
        error_type: t.into(),
        message: format!("simulated {t}"),
    }
}

#[tokio::test]
async fn each_failure_type_has_its_reason() {
    let list = Some(Endpoint::ListSessions);
    let cases: Vec<(Option<Endpoint>, FaultKind, ErrorReason)> = vec![
        (
            list,
            vault_failure("INSUFFICIENT_ACCESS"),
            ErrorReason::Auth,
        ),
        (list, vault_failure("INACTIVE_USER"), ErrorReason::Auth),
        (
            list,
            vault_failure("API_LIMIT_EXCEEDED"),
            ErrorReason::RateLimited,
        ),
        (
            list,
            vault_failure("UNEXPECTED_ERROR"),
            ErrorReason::ApiError,
        ),
        (list, vault_failure("MALFORMED_URL"), ErrorReason::ApiError),
        (
            list,
            vault_failure("OPERATION_NOT_ALLOWED"),
            ErrorReason::ApiError,
        ),
        (
            list,
            vault_failure("CONFIGURATION_MODE_ENABLED"),
            ErrorReason::ApiError,
        ),
        (
            list,
            vault_failure("SOMETHING_NEW_IN_V30"),
            ErrorReason::ApiError,
        ),
        (
            list,
            FaultKind::HttpStatus {
                status: 503,
                content_type: "text/html".into(),
                body: "<html><body>Service Unavailable</body></html>".into(),
            },
            ErrorReason::HttpStatus,
        ),
        (
            list,
            FaultKind::HttpStatus {
                status: 429,
                content_type: "text/plain".into(),
                body: "slow down".into(),
            },
            ErrorReason::RateLimited,
        ),
        (list, FaultKind::HtmlSignIn, ErrorReason::Decode),
        (list, FaultKind::MalformedJson, ErrorReason::Decode),
        (list, FaultKind::TruncatedJson, ErrorReason::Decode),
        (
            list,
            FaultKind::Oversized {
                bytes: 2 * 1024 * 1024,
            },
            ErrorReason::Decode,
        ),
        (list, FaultKind::Reset, ErrorReason::Connect),
        (list, FaultKind::Hang, ErrorReason::Timeout),
        (
            Some(Endpoint::Auth),
            vault_failure("USERNAME_OR_PASSWORD_INCORRECT"),
            ErrorReason::Auth,
        ),
        (
            Some(Endpoint::Auth),
            vault_failure("USER_LOCKED_OUT"),
            ErrorReason::Auth,
        ),
        (
            Some(Endpoint::Auth),
            vault_failure("PASSWORD_CHANGE_REQUIRED"),
            ErrorReason::Auth,
        ),
        (
            Some(Endpoint::Auth),
            vault_failure("API_LIMIT_EXCEEDED"),
            ErrorReason::RateLimited,
        ),
    ];
    for (endpoint, fault, want) in cases {
        let label = format!("{fault:?}");
        let (got, msg) = failure(endpoint, fault, |t| t.timeout = Duration::from_millis(500)).await;
        assert_eq!(got, want, "{label}: {msg}");
        assert!(
            !msg.contains(FAILURE_TEST_PASSWORD),
            "no secret in error text: {msg}"
        );
    }
}

#[tokio::test]
async fn wrong_password_and_unreachable_host() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).password = upload_session_exporter::secret::Secret::new("wrong-pw-123");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Auth);
    let msg = err.to_string();
    assert!(msg.contains("USERNAME_OR_PASSWORD_INCORRECT"), "{msg}");
    assert!(msg.contains("demo@example.com"), "names the user: {msg}");
    assert!(!msg.contains("wrong-pw-123"), "never the password: {msg}");
    assert_eq!(vault.request_count(Endpoint::Auth), 1);
    // A refused login backs off for minutes, whatever the poll interval.
    let wait = upload_session_exporter::poller::backoff(
        target.poll_interval,
        &err,
        1,
        source.refused_login(&err),
    );
    assert!(wait >= Duration::from_secs(300), "{wait:?}");
    sim.shutdown().await;

    // Nothing listens on a port we just freed.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    target.url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Connect, "{err}");
}

#[tokio::test]
async fn login_into_another_vault_is_refused() {
    let mut spec = vault_spec("main", 1000);
    spec.users[0].login_vault_id_override = Some(3000);
    let sim = sim(vec![spec]).await;
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).vault_id = Some(1000);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Auth);
    assert!(
        err.to_string().contains("not the expected Vault 1000"),
        "{err}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn parts_are_paginated_with_absolute_and_relative_next_page() {
    for absolute in [true, false] {
        let mut spec = vault_spec("main", 1000);
        spec.next_page_absolute = absolute;
        let sim = sim(vec![spec]).await;
        let vault = sim.vault("main").unwrap();
        let now = sim.now();
        let id = vault.insert_session(SessionSeed::new(
            "/u1/f.bin",
            10001400,
            100 * 1024 * 1024,
            now,
        ));
        for _ in 0..5 {
            assert!(vault.add_synthetic_part(&id, 5 * 1024 * 1024));
        }
        let target = vault_target(&sim, "t", "main");
        let v = target.settings::<VaultConfig>().expect("a vault target");
        let mut client = VaultClient::new(&target, v, &RequestLimiter::default()).unwrap();
        let parts = client.list_parts(&id, 2).await.unwrap();
        let numbers: Vec<u64> = parts.iter().map(|p| p.part_number.unwrap()).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5], "absolute={absolute}");
        assert!(parts.iter().all(|p| p.size == Some(5 * 1024 * 1024)));
        assert!(parts
            .iter()
            .all(|p| p.part_content_md5.as_deref().is_some_and(|m| m.len() == 32)));
        assert_eq!(
            vault.request_count(Endpoint::ListParts),
            3,
            "pages of 2, 2 and 1"
        );
        let details = client.session_details(&id).await.unwrap();
        assert_eq!(details.uploaded, Some(25 * 1024 * 1024));
        assert_eq!(details.uploaded_parts, Some(5));
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn ended_and_stalled_sessions() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    let hour_ago = now - time::Duration::hours(1);
    let mut stalled = SessionSeed::new("/u7/stuck.mp4", 7, 100 * 1024 * 1024, hour_ago);
    stalled.uploaded = 10 * 1024 * 1024;
    stalled.uploaded_parts = 2;
    stalled.last_uploaded = hour_ago;
    let stalled_id = vault.insert_session(stalled);
    let mut done = SessionSeed::new("/u7/done.pdf", 7, 6 * 1024 * 1024, now);
    done.uploaded = 6 * 1024 * 1024;
    done.uploaded_parts = 2;
    let done_id = vault.insert_session(done);

    let target = vault_target(&sim, "t", "main");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    let o = &state.owners()["7"];
    assert_eq!((o.stalled, o.awaiting_commit), (1, 1));

    // The stalled upload moves again; the complete one is committed.
    assert!(vault.add_synthetic_part(&stalled_id, 5 * 1024 * 1024));
    assert!(vault.remove_session(&done_id));
    poll_once(&target, &mut source, &mut state).await.unwrap();
    let o = &state.owners()["7"];
    assert_eq!((o.stalled, o.awaiting_commit), (0, 0));
    let publisher = upload_session_exporter::metrics::exposition::PagePublisher::new();
    publisher.publish("t", state.render());
    let text = String::from_utf8(publisher.assemble().plain.to_vec()).unwrap();
    assert_eq!(
        value(
            &text,
            "upload_session_ended_total{target=\"t\",owner_id=\"7\",outcome=\"completed\"}"
        ),
        "1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn non_admin_sees_own_sessions_only() {
    let mut spec = vault_spec("main", 1000);
    let mut user = UserSpec::new(555, "uploader@example.com", "pw");
    user.admin = false;
    spec.users.push(user);
    let sim = sim(vec![spec]).await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    vault.insert_session(SessionSeed::new("/u555/a", 555, 10, now));
    vault.insert_session(SessionSeed::new("/u9/b", 9, 10, now));
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).username = "uploader@example.com".into();
    vault_cfg(&mut target).password = upload_session_exporter::secret::Secret::new("pw");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(state.owners().keys().collect::<Vec<_>>(), vec!["555"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn exporter_serves_over_http_and_a_broken_target_disturbs_nothing() {
    let sim = sim(vec![vault_spec("good", 1000), vault_spec("bad", 2000)]).await;
    let good = sim.vault("good").unwrap();
    let now = sim.now();
    let mut s = SessionSeed::new("/u5/x.bin", 5, 1_000_000_000, now);
    s.uploaded = 123_456_789;
    s.uploaded_parts = 12;
    good.insert_session(s);
    sim.vault("bad").unwrap().inject(FaultRule {
        endpoint: Some(Endpoint::ListSessions),
        kind: FaultKind::MalformedJson,
        times: None,
    });
    let mut cfg = config(vec![
        vault_target(&sim, "good", "good"),
        vault_target(&sim, "bad", "bad"),
    ]);
    for t in &mut cfg.targets {
        t.poll_interval = Duration::from_secs(1);
    }
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start(cfg, None, ServeOptions::loopback(), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", exporter.addr());
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&format!("{base}/-/ready")).await.status() == 200
        })
        .await,
        "ready after the first poll of every target"
    );
    // The publisher runs right after the polls; wait for the page to show both.
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&format!("{base}/metrics")).await.text().await.unwrap();
        if text.contains("target=\"bad\"") && text.contains("target=\"good\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = get(&format!("{base}/metrics")).await;
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"good\",kind=\"vault\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"bad\",kind=\"vault\"}"
        ),
        "0"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_uploaded_bytes{target=\"good\",owner_id=\"5\"}"
        ),
        "123456789"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_size_bytes{target=\"good\",owner_id=\"5\"}"
        ),
        "1000000000"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_uploaded_parts{target=\"good\",owner_id=\"5\"}"
        ),
        "12"
    );
    let bad_decode: u64 = value(
        &text,
        "upload_session_poll_errors_total{target=\"bad\",reason=\"decode\"}",
    )
    .parse()
    .unwrap();
    assert!(bad_decode >= 1, "{bad_decode}");
    assert_eq!(
        value(
            &text,
            "upload_session_poll_errors_total{target=\"good\",reason=\"decode\"}"
        ),
        "0"
    );
    assert!(text.contains("upload_session_exporter_build_info{"));

    // gzip when asked (reqwest here has no gzip feature: read raw bytes).
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let raw = r.bytes().await.unwrap();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut unzipped)
        .unwrap();
    assert!(unzipped.contains("upload_session_target_up{target=\"good\",kind=\"vault\"} 1"));

    assert_eq!(get(&format!("{base}/nope")).await.status(), 404);
    assert!(get(&format!("{base}/"))
        .await
        .text()
        .await
        .unwrap()
        .contains("/metrics"));
    assert_eq!(get(&format!("{base}/-/healthy")).await.status(), 200);

    exporter.stop().await;
    // Graceful shutdown logs out of every Vault it logged in to.
    assert_eq!(good.request_count(Endpoint::Logout), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_are_bounded() {
    // Six targets whose list call takes 500 ms, polled every 200 ms: each
    // always wants a request in flight, so the simulator sees exactly as
    // many at once as the exporter allows, and no more.
    let names = ["a", "b", "c", "d", "e", "f"];
    let sim = sim(names
        .iter()
        .zip(1u64..)
        .map(|(v, id)| vault_spec(v, id))
        .collect())
    .await;
    let mut targets = Vec::new();
    for v in names {
        sim.vault(v).unwrap().inject(FaultRule {
            endpoint: Some(Endpoint::ListSessions),
            kind: FaultKind::Delay(Duration::from_millis(500)),
            times: None,
        });
        let mut t = vault_target(&sim, v, v);
        t.poll_interval = Duration::from_millis(200);
        // Room for waiting behind the others' requests within a poll.
        t.timeout = Duration::from_secs(10);
        // Polls this frequent would otherwise be spaced out to spare the
        // Vault's API budget.
        common::vault_cfg(&mut t).burst_limit_share = 1.0;
        targets.push(t);
    }
    let with_limit = |n: usize| {
        let mut cfg = config(targets.clone());
        cfg.exporter.max_concurrent_requests = n;
        cfg
    };
    let exporter = start_exporter(with_limit(3)).await;
    let window = Duration::from_millis(1500);
    tokio::time::sleep(window).await;
    assert_eq!(sim.max_in_flight(), 3, "the limit is reached, never passed");

    // A reload resizes the limit of the running targets (none restarts).
    let summary = exporter.apply(with_limit(5)).await;
    assert_eq!(summary.unchanged, 6);
    sim.reset_max_in_flight();
    tokio::time::sleep(window).await;
    assert_eq!(sim.max_in_flight(), 5, "grown at once");

    exporter.apply(with_limit(2)).await;
    // Requests in flight end within 500 ms; the permits they free are
    // taken back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    sim.reset_max_in_flight();
    tokio::time::sleep(window).await;
    assert_eq!(
        sim.max_in_flight(),
        2,
        "shrunk once the requests in flight ended"
    );
    let lists: u64 = names
        .iter()
        .map(|v| sim.vault(v).unwrap().request_count(Endpoint::ListSessions))
        .sum();
    assert!(lists >= 12, "the targets kept polling: {lists} lists");
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn owner_names_are_looked_up_once_and_budgeted() {
    let mut spec = vault_spec("main", 1000);
    for (id, first, last) in [
        (501, "Uma", "Uploader"),
        (502, "Bo", "B"),
        (503, "Cy", "C"),
        (504, "Di", "D"),
        (505, "Ed", "E"),
    ] {
        let mut u = UserSpec::new(id, &format!("u{id}@example.com"), "pw");
        u.first_name = first.into();
        u.last_name = last.into();
        spec.users.push(u);
    }
    let sim = sim(vec![spec]).await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    // Seven owners: the demo user, five named users, one unknown to Vault.
    for owner in [10001400, 501, 502, 503, 504, 505, 999] {
        vault.insert_session(SessionSeed::new(format!("/u{owner}/f"), owner, 10, now));
    }
    let mut target = vault_target(&sim, "t", "main");
    vault_cfg(&mut target).resolve_owner_names = true;
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(
        vault.request_count(Endpoint::RetrieveUser),
        5,
        "at most 5 lookups per poll"
    );
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(
        vault.request_count(Endpoint::RetrieveUser),
        7,
        "the other two next poll"
    );
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(
        vault.request_count(Endpoint::RetrieveUser),
        7,
        "names are cached"
    );
    assert!(state.up(), "a failed lookup (999) never fails the poll");
    let publisher = upload_session_exporter::metrics::exposition::PagePublisher::new();
    publisher.publish("t", state.render());
    let text = String::from_utf8(publisher.assemble().plain.to_vec()).unwrap();
    assert_eq!(
        value(&text, "upload_session_owner_info{target=\"t\",owner_id=\"10001400\",owner_name=\"Dana Demo\"}"),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_owner_info{target=\"t\",owner_id=\"501\",owner_name=\"Uma Uploader\"}"
        ),
        "1"
    );
    assert!(
        !text.contains("owner_info{target=\"t\",owner_id=\"999\""),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_api_requests_total{target=\"t\",endpoint=\"retrieve_user\"}"
        ),
        "7"
    );
    sim.shutdown().await;
}

/// `ended_total` counts a session once when it stops being active, whether
/// Vault still lists it (expired, not yet purged) or not (committed, purged).
#[tokio::test]
async fn a_session_ends_once_when_it_stops_being_active() {
    let mut spec = vault_spec("main", 1000);
    spec.purge_after_expiry = Some(Duration::from_secs(10 * 60));
    let sim = sim(vec![spec]).await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    let mut soon = SessionSeed::new("/u8/soon.bin", 8, 100, now);
    soon.expiration = now + time::Duration::milliseconds(1500);
    vault.insert_session(soon);
    let committed = vault.insert_session(SessionSeed::new("/u8/done.bin", 8, 100, now));

    let target = vault_target(&sim, "t", "main");
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let publisher = upload_session_exporter::metrics::exposition::PagePublisher::new();
    let mut poll = async || {
        poll_once(&target, &mut source, &mut state).await.unwrap();
        publisher.publish("t", state.render());
        String::from_utf8(publisher.assemble().plain.to_vec()).unwrap()
    };
    let ended = |text: &str, outcome: &str| {
        value(
            text,
            &format!(
                "upload_session_ended_total{{target=\"t\",owner_id=\"8\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    let expired_listed = |text: &str| {
        samples(text)
            .get("upload_session_sessions{target=\"t\",owner_id=\"8\",state=\"expired\"}")
            .cloned()
    };

    let text = poll().await;
    assert_eq!(
        (ended(&text, "completed"), ended(&text, "expired")),
        ("0".into(), "0".into())
    );
    assert!(
        text.contains("# HELP upload_session_ended_total Sessions that stopped being live"),
        "the HELP text says what is counted"
    );

    // Past its expiry but still listed: it has ended (expired), and the
    // sessions gauge shows it as expired at the same time.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let text = poll().await;
    assert_eq!(ended(&text, "expired"), "1");
    assert_eq!(expired_listed(&text).as_deref(), Some("1"));

    // Committed (gone before its expiry): completed. A session created and
    // expired between two polls was never seen active; it ended all the same.
    assert!(vault.remove_session(&committed));
    let created = sim.now();
    let mut blink = SessionSeed::new("/u8/blink.bin", 8, 100, created);
    blink.expiration = created + time::Duration::milliseconds(1);
    vault.insert_session(blink);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let text = poll().await;
    assert_eq!(
        (ended(&text, "completed"), ended(&text, "expired")),
        ("1".into(), "2".into())
    );
    assert_eq!(expired_listed(&text).as_deref(), Some("2"));

    // Listed again, then purged by Vault: neither counts a second time.
    let text = poll().await;
    assert_eq!(
        (ended(&text, "completed"), ended(&text, "expired")),
        ("1".into(), "2".into())
    );
    sim.advance(Duration::from_secs(11 * 60));
    let text = poll().await;
    assert_eq!(expired_listed(&text), None, "purged");
    assert_eq!(
        (ended(&text, "completed"), ended(&text, "expired")),
        ("1".into(), "2".into())
    );
    sim.shutdown().await;
}

/// Asked for OpenMetrics (as Prometheus asks), the exporter answers with the
/// same samples in OpenMetrics 1.0, plain or gzip, which Prometheus's
/// OpenMetrics parser accepts; without asking, the text format as before.
#[tokio::test]
async fn openmetrics_when_asked_with_the_same_samples() {
    use std::io::Read as _;
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let mut s = SessionSeed::new("/u5/x.bin", 5, 1_000_000_000, sim.now());
    s.uploaded = 123_456_789;
    s.uploaded_parts = 12;
    vault.insert_session(s);
    let cfg = config(vec![vault_target(&sim, "t", "main")]);
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start(cfg, None, ServeOptions::loopback(), shutdown.clone())
        .await
        .unwrap();
    let url = format!("http://{}/metrics", exporter.addr());
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let fetch = |accept: Option<&'static str>, gzip: bool| {
        let url = url.clone();
        async move {
            let mut req = reqwest::Client::new().get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if gzip {
                req = req.header("Accept-Encoding", "gzip");
            }
            let r = req.send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            let ce = r.headers().get("content-encoding").is_some();
            let body = r.bytes().await.unwrap();
            let text = if ce {
                let mut s = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut s)
                    .unwrap();
                s
            } else {
                String::from_utf8(body.to_vec()).unwrap()
            };
            (ct, ce, text)
        }
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            fetch(None, false)
                .await
                .2
                .contains("upload_session_uploaded_bytes")
        })
        .await
    );
    let (ct, _, text) = fetch(None, false).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let (ct, gz, om) = fetch(Some(prometheus_accept), false).await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(!gz);
    let (ct, gz, om_unzipped) = fetch(Some(prometheus_accept), true).await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(gz);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(om_unzipped, om, "one poll, one page");
    assert_eq!(
        value(
            &om,
            "upload_session_uploaded_bytes{target=\"t\",owner_id=\"5\"}"
        ),
        "123456789"
    );
    // The same samples (the exporter's process_* move between two scrapes).
    let stable = |page: &str| {
        let mut s = samples(page);
        s.retain(|k, _| !k.starts_with("process_"));
        s
    };
    assert_eq!(stable(&text), stable(&om));
    assert!(om.contains("# TYPE upload_session_api_requests counter\n"));
    assert!(om.contains("# UNIT upload_session_size_bytes bytes\n"));
    if let Some((ok, msg)) = promtool_check_openmetrics(&om) {
        assert!(
            ok,
            "Prometheus's OpenMetrics parser refused the page:\n{msg}\n{om}"
        );
    }
    if let Some((ok, msg)) = promtool_check(&text) {
        assert!(ok, "promtool check metrics failed:\n{msg}\n{text}");
    }
    exporter.stop().await;
    sim.shutdown().await;
}
