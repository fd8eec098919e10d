//! The exporter against the deepset simulator, over real HTTP.

use crate::common;

use std::time::Duration;

use common::*;
use time::OffsetDateTime;
use upload_session_exporter::app::{poll_all_once, Exporter};
use upload_session_exporter::config::TargetConfig;
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::kinds::deepset::SESSION_FETCHES_AT_ONCE;
use upload_session_exporter::poller::{backoff, poll_once, Source, TargetState};
use upload_session_exporter::upstream::{ErrorReason, RequestLimiter};
use upload_session_sim::deepset::{DeepsetEndpoint, DEMO_USER_ID};
use upload_session_sim::{
    DeepsetSessionSeed, DeepsetSpec, DeepsetUser, FaultKind, FaultRule, FileSeed, Simulator,
};

const ADA: &str = "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01";

fn workspace() -> DeepsetSpec {
    let mut ws = DeepsetSpec::new("default");
    ws.users
        .push(DeepsetUser::new(ADA, "Ada", "Lovelace", "ada-key"));
    ws.ingestion_delay = Duration::ZERO;
    ws
}

async fn deepset_sim() -> Simulator {
    sim_with(vec![vault_spec("main", 1000)], vec![workspace()]).await
}

/// Calls the workspace has answered: [list sessions, status, list files].
fn calls(ws: &upload_session_sim::DeepsetControl) -> [u64; 3] {
    [
        DeepsetEndpoint::ListSessions,
        DeepsetEndpoint::SessionStatus,
        DeepsetEndpoint::ListFiles,
    ]
    .map(|e| ws.request_count(e))
}

fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

fn closed(user: &str, now: OffsetDateTime, files: Vec<FileSeed>) -> DeepsetSessionSeed {
    DeepsetSessionSeed {
        status: "CLOSED".into(),
        files,
        ..DeepsetSessionSeed::open(user, now - hours(1))
    }
}

#[tokio::test]
async fn owner_figures_are_exact() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    let mut open = DeepsetSessionSeed::open(ADA, now - hours(22));
    open.files = vec![
        FileSeed::pending("a.pdf", 10),
        FileSeed::pending("b.pdf", 10),
        FileSeed::pending("c.pdf", 10),
    ];
    let open_expiry = open.expires_at.unwrap();
    ws.insert_session(open);
    ws.insert_session(closed(
        ADA,
        now,
        vec![
            FileSeed::ingested("1.pdf", 5),
            FileSeed::ingested("2.txt", 5),
            FileSeed::ingested("3.md", 5),
            FileSeed::ingested("4.csv", 5),
            FileSeed::ingested("tool.exe", 5),
        ],
    ));
    ws.insert_session(DeepsetSessionSeed {
        status: "EXPIRED".into(),
        expires_at: Some(now - hours(1)),
        ..DeepsetSessionSeed::open(DEMO_USER_ID, now - hours(25))
    });
    ws.insert_session(DeepsetSessionSeed::open(DEMO_USER_ID, now));
    // Expired three days ago: outside the 24 h window, not listed.
    ws.insert_session(DeepsetSessionSeed {
        expires_at: Some(now - hours(72)),
        ..closed(DEMO_USER_ID, now - hours(96), vec![])
    });

    let (text, failed) = poll_all_once(&config(vec![deepset_target(
        &sim,
        "ds",
        "default",
        Pagination::Cursor,
    )]))
    .await;
    assert!(failed.is_empty(), "{failed:?}");
    let v = |m: &str, owner: &str, extra: &str| {
        value(
            &text,
            &format!("{m}{{target=\"ds\",owner_id=\"{owner}\"{extra}}}"),
        )
    };
    assert_eq!(v("upload_session_sessions", ADA, ",state=\"open\""), "1");
    assert_eq!(v("upload_session_sessions", ADA, ",state=\"closed\""), "1");
    assert_eq!(
        v("upload_session_sessions", DEMO_USER_ID, ",state=\"open\""),
        "1"
    );
    assert_eq!(
        v(
            "upload_session_sessions",
            DEMO_USER_ID,
            ",state=\"expired\""
        ),
        "1"
    );
    assert!(
        !text.contains(&format!("owner_id=\"{DEMO_USER_ID}\",state=\"closed\"")),
        "old session outside the window"
    );
    assert_eq!(
        v("upload_session_ingested_files", ADA, ",result=\"finished\""),
        "4"
    );
    assert_eq!(
        v("upload_session_ingested_files", ADA, ",result=\"failed\""),
        "1"
    );
    assert_eq!(
        v("upload_session_ingested_files", ADA, ",result=\"pending\""),
        "3"
    );
    assert_eq!(
        v(
            "upload_session_owner_info",
            ADA,
            ",owner_name=\"Ada Lovelace\""
        ),
        "1"
    );
    assert_eq!(
        v(
            "upload_session_owner_info",
            DEMO_USER_ID,
            ",owner_name=\"Dana Demo\""
        ),
        "1"
    );
    let next: f64 = v("upload_session_next_expiry_timestamp_seconds", ADA, "")
        .parse()
        .unwrap();
    assert_eq!(
        next,
        (open_expiry.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"ds\",kind=\"deepset\"}"
        ),
        "1"
    );
    assert!(
        !text.contains("upload_session_uploaded_bytes{target=\"ds\""),
        "no byte figures for deepset"
    );
    if let Some((ok, msg)) = promtool_check(&text) {
        assert!(ok, "promtool check metrics failed:\n{msg}\n{text}");
    }
    sim.shutdown().await;
}

/// Polls once and returns (sessions seen, list requests made).
async fn poll_count(sim: &Simulator, pagination: Pagination) -> (Vec<String>, u64) {
    let ws = sim.deepset("default").unwrap();
    let before = ws.request_count(DeepsetEndpoint::ListSessions);
    let target = deepset_target(sim, "ds", "default", pagination);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let sessions = source
        .fetch(upload_session_exporter::model::now_millis())
        .await
        .unwrap();
    let mut ids: Vec<String> = sessions.into_iter().map(|s| s.id).collect();
    ids.sort();
    (
        ids,
        ws.request_count(DeepsetEndpoint::ListSessions) - before,
    )
}

fn expected_ids(sim: &Simulator) -> Vec<String> {
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    let mut ids: Vec<String> = ws
        .sessions()
        .into_iter()
        .filter(|s| s.expires_at.is_none_or(|e| e > now - hours(24)))
        .map(|s| s.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn hundreds_of_sessions_in_both_pagination_styles() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    for i in 0..260 {
        let user = if i % 2 == 0 { ADA } else { DEMO_USER_ID };
        ws.insert_session(DeepsetSessionSeed::open(
            user,
            now - time::Duration::seconds(i),
        ));
    }
    for pagination in [Pagination::Cursor, Pagination::Page] {
        let (ids, lists) = poll_count(&sim, pagination).await;
        assert_eq!(ids.len(), 260, "{pagination:?}");
        assert_eq!(ids, expected_ids(&sim), "{pagination:?}");
        // 3 pages of unexpired sessions, 1 of expired ones.
        assert_eq!(lists, 4, "{pagination:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_list_changing_between_pages_loses_and_doubles_nothing() {
    for pagination in [Pagination::Cursor, Pagination::Page] {
        let sim = deepset_sim().await;
        let ws = sim.deepset("default").unwrap();
        let now = ws.now();
        let mut ids = Vec::new();
        for i in 0..250 {
            ids.push(ws.insert_session(DeepsetSessionSeed::open(
                ADA,
                now - hours(20) + time::Duration::seconds(i),
            )));
        }
        // After the first page: 5 new sessions, 3 closed and 2 expired on
        // the first page (the oldest), which shifts later pages backwards.
        let (first, closing) = (ids[0..2].to_vec(), ids[10..13].to_vec());
        ws.after_list_request(1, move |ws| {
            let now = ws.now();
            for _ in 0..5 {
                ws.insert_session(DeepsetSessionSeed::open(DEMO_USER_ID, now));
            }
            for id in &closing {
                ws.close_session(id);
            }
            for id in &first {
                ws.set_expires_at(id, Some(now - time::Duration::minutes(1)));
            }
        });
        let (seen, _) = poll_count(&sim, pagination).await;
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{pagination:?}: duplicates");
        assert_eq!(
            seen,
            expected_ids(&sim),
            "{pagination:?}: every session once"
        );
        assert_eq!(seen.len(), 255);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn calls_stay_bounded_as_closed_sessions_pile_up() {
    let mut ws = workspace();
    ws.ingestion_delay = Duration::from_secs(3600);
    let sim = sim_with(vec![vault_spec("main", 1000)], vec![ws]).await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    for i in 0..150 {
        ws.insert_session(closed(
            ADA,
            now - time::Duration::minutes(i),
            vec![FileSeed::ingested(&format!("{i}.pdf"), 10)],
        ));
    }
    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    // First sight: status and file count once per closed session.
    assert_eq!(calls(&ws), [3, 150, 150]);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    // Final counts are cached: only the list pages.
    assert_eq!(calls(&ws), [6, 150, 150]);
    // An open session costs one file count per poll; a closed one whose
    // ingestion is pending costs two until it is done.
    ws.insert_session(DeepsetSessionSeed::open(ADA, now));
    ws.insert_session(closed(ADA, now, vec![FileSeed::pending("late.pdf", 10)]));
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(calls(&ws), [9, 151, 152]);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(calls(&ws), [12, 152, 154]);
    assert_eq!(state.owners()[ADA].files.unwrap().total, 151);
    assert_eq!(state.owners()[ADA].files.unwrap().pending(), 1);
    // Once ingested, the late session is final too: one last look, then none.
    ws.ingest_now();
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(calls(&ws), [15, 153, 156]);
    assert_eq!(state.owners()[ADA].files.unwrap().pending(), 0);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(calls(&ws), [18, 153, 157]);
    sim.shutdown().await;
}

/// One poll with `fault` on the list endpoint; returns the error reason.
async fn failing(
    fault: FaultKind,
    times: Option<u32>,
    key: &str,
    workspace: &str,
) -> (Result<(), ErrorReason>, u64, Option<Duration>) {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    ws.inject(FaultRule {
        endpoint: Some(DeepsetEndpoint::ListSessions),
        kind: fault,
        times,
    });
    let mut target = deepset_target(&sim, "ds", workspace, Pagination::Cursor);
    common::deepset_cfg(&mut target).api_key = upload_session_exporter::secret::Secret::new(key);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let r = poll_once(&target, &mut source, &mut state).await;
    let wait = r
        .as_ref()
        .err()
        .map(|e| backoff(target.poll_interval, e, 1, source.refused_login(e)));
    let lists = ws.request_count(DeepsetEndpoint::ListSessions);
    sim.shutdown().await;
    (r.map_err(|e| e.reason()), lists, wait)
}

#[tokio::test]
async fn each_error_class_has_its_reason() {
    let key = upload_session_sim::deepset::DEMO_API_KEY;
    let none = FaultKind::Delay(Duration::ZERO);
    assert_eq!(
        failing(none.clone(), None, "wrong-key", "default").await.0,
        Err(ErrorReason::Auth)
    );
    assert_eq!(
        failing(none.clone(), None, key, "no-such-workspace")
            .await
            .0,
        Err(ErrorReason::HttpStatus)
    );
    assert_eq!(
        failing(FaultKind::unauthorized(), None, key, "default")
            .await
            .0,
        Err(ErrorReason::Auth)
    );
    assert_eq!(
        failing(FaultKind::validation(), None, key, "default")
            .await
            .0,
        Err(ErrorReason::HttpStatus)
    );
    let (r, _, wait) = failing(
        FaultKind::TooManyRequests { retry_after: 120 },
        None,
        key,
        "default",
    )
    .await;
    assert_eq!(r, Err(ErrorReason::RateLimited));
    assert_eq!(
        wait,
        Some(Duration::from_secs(120)),
        "Retry-After is honoured"
    );
    // A 502 under load is retried within the poll...
    let (r, lists, _) = failing(FaultKind::bad_gateway(), Some(1), key, "default").await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        lists, 3,
        "one retry of the first page, then the expired listing"
    );
    // ...but not for ever.
    let (r, lists, _) = failing(FaultKind::bad_gateway(), None, key, "default").await;
    assert_eq!(r, Err(ErrorReason::HttpStatus));
    assert_eq!(lists, 3, "three attempts");
    assert_eq!(
        failing(FaultKind::MalformedJson, None, key, "default")
            .await
            .0,
        Err(ErrorReason::Decode)
    );
    assert_eq!(
        failing(FaultKind::Reset, None, key, "default").await.0,
        Err(ErrorReason::Connect)
    );
}

#[tokio::test]
async fn a_failing_deepset_target_leaves_the_vault_alone() {
    let sim = deepset_sim().await;
    let mut s = upload_session_sim::SessionSeed::new("/u9/f.bin", 9, 5_000_000_000, sim.now());
    s.uploaded = 4_294_967_296;
    s.uploaded_parts = 410;
    sim.vault("main").unwrap().insert_session(s);
    sim.deepset("default").unwrap().inject(FaultRule {
        endpoint: None,
        kind: FaultKind::bad_gateway(),
        times: None,
    });
    let mut targets = vec![
        vault_target(&sim, "vault", "main"),
        deepset_target(&sim, "ds", "default", Pagination::Cursor),
    ];
    for t in &mut targets {
        t.poll_interval = Duration::from_secs(1);
    }
    let exporter = start_exporter(config(targets)).await;
    let url = format!("http://{}/metrics", exporter.addr());
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&url).await.text().await.unwrap();
        if text.contains("upload_session_target_up{target=\"ds\"")
            && text.contains("upload_session_target_up{target=\"vault\"")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"ds\",kind=\"deepset\"}"
        ),
        "0"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_poll_errors_total{target=\"ds\",reason=\"http_status\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_target_up{target=\"vault\",kind=\"vault\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_uploaded_bytes{target=\"vault\",owner_id=\"9\"}"
        ),
        "4294967296"
    );
    assert_eq!(
        value(
            &text,
            "upload_session_uploaded_parts{target=\"vault\",owner_id=\"9\"}"
        ),
        "410"
    );
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_session_vanishing_before_its_status_is_skipped_not_fatal() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    ws.insert_session(closed(ADA, now, vec![FileSeed::ingested("a.pdf", 1)]));
    ws.insert_session(DeepsetSessionSeed::open(DEMO_USER_ID, now));
    // The status call answers 404 as for a session deleted meanwhile.
    ws.inject(FaultRule {
        endpoint: Some(DeepsetEndpoint::SessionStatus),
        kind: FaultKind::HttpStatus {
            status: 404,
            content_type: "application/json".into(),
            body: "{\"detail\":\"Session not found\"}".into(),
        },
        times: Some(1),
    });
    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert!(state.up());
    assert_eq!(
        state.owners()[ADA].files,
        None,
        "no counts for the vanished session"
    );
    assert_eq!(state.owners()[ADA].sessions.values().sum::<u64>(), 1);
    // Next poll: the status is there again and counted.
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(state.owners()[ADA].files.unwrap().finished, 1);
    sim.shutdown().await;
}

/// The targets `/-/ready` still waits for (empty once ready).
async fn waiting_for(exporter: &Exporter) -> Vec<String> {
    // /-/ready names no target to an unauthenticated client: ask the
    // exporter.
    exporter.waiting_targets()
}

#[tokio::test]
async fn a_long_deepset_poll_does_not_hold_up_the_vaults() {
    // Two workspaces whose first poll makes 122 calls each (2 list pages,
    // then status and file count of 60 closed sessions), six Vaults with 2
    // calls each, 50 ms per call, at most 2 requests in flight. The deepset
    // polls need at least 2 × 122 × 50 ms / 2 = 6.1 s whatever the order.
    // Bounded per request, a Vault call waits behind at most the 2 × 4
    // deepset requests and the 12 Vault requests ahead of it: about
    // (8 + 12) / 2 × 50 ms = 0.5 s per call, so the Vaults are done within
    // about a second. Bounded per poll, the two deepset polls would hold
    // both permits for their whole 6 s and the Vaults would wait for them.
    const LATENCY: Duration = Duration::from_millis(50);
    let vaults = ["v0", "v1", "v2", "v3", "v4", "v5"];
    let workspaces = ["ws1", "ws2"];
    let sim = sim_with(
        vaults
            .iter()
            .zip(1u64..)
            .map(|(v, id)| vault_spec(v, id))
            .collect(),
        workspaces
            .iter()
            .map(|w| DeepsetSpec {
                workspace: w.to_string(),
                ..workspace()
            })
            .collect(),
    )
    .await;
    let mut deepset_targets = Vec::new();
    for w in workspaces {
        let ws = sim.deepset(w).unwrap();
        let now = ws.now();
        for i in 0..60 {
            ws.insert_session(closed(
                ADA,
                now - time::Duration::minutes(i),
                vec![FileSeed::ingested(&format!("{i}.pdf"), 10)],
            ));
        }
        ws.inject(FaultRule::always(None, FaultKind::Delay(LATENCY)));
        let mut t = deepset_target(&sim, &format!("ds-{w}"), w, Pagination::Cursor);
        t.timeout = Duration::from_secs(10);
        deepset_targets.push(t);
    }
    let mut all_targets = deepset_targets.clone();
    for v in vaults {
        sim.vault(v)
            .unwrap()
            .inject(FaultRule::always(None, FaultKind::Delay(LATENCY)));
        let mut t = vault_target(&sim, &format!("vault-{v}"), v);
        // A short interval for a short first-poll spread (a tenth of it).
        t.poll_interval = Duration::from_secs(2);
        t.timeout = Duration::from_secs(10);
        all_targets.push(t);
    }
    let with_limit = |targets: Vec<TargetConfig>| {
        let mut cfg = config(targets);
        cfg.exporter.max_concurrent_requests = 2;
        cfg
    };
    let exporter = start_exporter(with_limit(deepset_targets)).await;
    // The deepset polls are busy with their per-session calls...
    assert!(
        eventually(Duration::from_secs(10), || async {
            workspaces.iter().all(|w| {
                sim.deepset(w)
                    .unwrap()
                    .request_count(DeepsetEndpoint::SessionStatus)
                    > 0
            })
        })
        .await
    );
    // ...when the Vaults are added.
    let added = std::time::Instant::now();
    let summary = exporter.apply(with_limit(all_targets)).await;
    assert_eq!((summary.added.len(), summary.unchanged), (6, 2));
    let mut vaults_done = None;
    let deadline = added + Duration::from_secs(60);
    loop {
        let waiting = waiting_for(&exporter).await;
        if vaults_done.is_none() && !waiting.iter().any(|t| t.starts_with("vault-")) {
            vaults_done = Some((added.elapsed(), waiting.clone()));
        }
        if waiting.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_done = added.elapsed();
    let (vault_time, still_waiting) = vaults_done.unwrap();
    assert_eq!(
        still_waiting,
        ["ds-ws1", "ds-ws2"],
        "the Vaults finished their first poll before the deepset workspaces \
         (Vaults after {vault_time:?}, all after {all_done:?})"
    );
    assert!(
        vault_time < Duration::from_secs(3),
        "the Vaults took {vault_time:?} (about 1 s expected)"
    );
    // Every first poll succeeded (readiness counts failed polls too).
    let metrics = format!("http://{}/metrics", exporter.addr());
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&metrics).await.text().await.unwrap();
        if text.matches("upload_session_target_up{").count() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for v in vaults {
        assert_eq!(
            value(
                &text,
                &format!("upload_session_target_up{{target=\"vault-{v}\",kind=\"vault\"}}")
            ),
            "1"
        );
    }
    for w in workspaces {
        assert_eq!(
            value(
                &text,
                &format!("upload_session_target_up{{target=\"ds-{w}\",kind=\"deepset\"}}")
            ),
            "1"
        );
    }
    exporter.stop().await;
    sim.shutdown().await;
}

/// A seeded file whose ingestion failed.
fn failed_file(name: &str) -> FileSeed {
    FileSeed {
        status: "FAILED".into(),
        ..FileSeed::pending(name, 10)
    }
}

#[tokio::test]
async fn session_counts_are_fetched_a_few_at_a_time() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    // 30 closed sessions with 0–2 finished, 0–1 failed and, for six of
    // them, one pending file; 6 open sessions with 0–3 files.
    let (mut total, mut finished, mut failed) = (0u64, 0u64, 0u64);
    for i in 0..30u64 {
        let mut files = Vec::new();
        for f in 0..i % 3 {
            files.push(FileSeed {
                status: "FINISHED".into(),
                ..FileSeed::pending(&format!("{i}-{f}.pdf"), 10)
            });
        }
        if i % 2 == 1 {
            files.push(failed_file(&format!("{i}-x.pdf")));
        }
        if i % 5 == 0 {
            files.push(FileSeed::pending(&format!("{i}-p.pdf"), 10));
        }
        total += files.len() as u64;
        finished += i % 3;
        failed += i % 2;
        ws.insert_session(closed(ADA, now - time::Duration::minutes(i as i64), files));
    }
    for i in 0..6u64 {
        let mut s = DeepsetSessionSeed::open(ADA, now - time::Duration::minutes(i as i64));
        s.files = (0..i % 4)
            .map(|f| FileSeed::pending(&format!("o{i}-{f}.pdf"), 10))
            .collect();
        total += i % 4;
        ws.insert_session(s);
    }
    // Slow per-session calls: one at a time they would take 6.6 s.
    for e in [DeepsetEndpoint::SessionStatus, DeepsetEndpoint::ListFiles] {
        ws.inject(FaultRule::always(
            Some(e),
            FaultKind::Delay(Duration::from_millis(100)),
        ));
    }
    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    // Plenty of room overall: the per-workspace bound is what limits.
    let mut source = Source::new(&target, &RequestLimiter::new(64)).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    let max = ws.max_in_flight();
    assert!(max > 1, "counts fetched concurrently: {max} at most");
    assert_eq!(
        max, SESSION_FETCHES_AT_ONCE as u64,
        "the bound is reached, never passed"
    );
    // Exactly the calls made one at a time: two list pages, status and
    // file count per closed session, file count per open one.
    assert_eq!(calls(&ws), [2, 30, 36]);
    assert_eq!(state.last_poll_calls(), 68, "each call counted once");
    let files = state.owners()[ADA].files.unwrap();
    assert_eq!(
        (files.total, files.finished, files.failed, files.pending()),
        (total, finished, failed, total - finished - failed)
    );
    assert_eq!(files.pending(), 6 + 7, "6 closed, 0+1+2+3+0+1 open");

    // Final counts are cached: the six closed sessions with a pending file
    // and the open ones are asked again, nothing else.
    sim.reset_max_in_flight();
    poll_once(&target, &mut source, &mut state).await.unwrap();
    assert_eq!(calls(&ws), [4, 36, 48]);
    assert_eq!(state.last_poll_calls(), 2 + 6 + 12);
    assert_eq!(state.owners()[ADA].files.unwrap(), files);
    assert_eq!(ws.max_in_flight(), SESSION_FETCHES_AT_ONCE as u64);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_first_failing_count_call_ends_the_poll() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    for i in 0..30 {
        ws.insert_session(closed(
            ADA,
            now - time::Duration::minutes(i),
            vec![FileSeed::ingested(&format!("{i}.pdf"), 10)],
        ));
    }
    // The 9th status call is refused with a Retry-After; the others are
    // slow, so that several are in flight when it fails.
    ws.after_list_request(2, |ws| {
        ws.inject(FaultRule {
            endpoint: Some(DeepsetEndpoint::SessionStatus),
            kind: FaultKind::Delay(Duration::from_millis(100)),
            times: Some(8),
        });
        ws.inject(FaultRule {
            endpoint: Some(DeepsetEndpoint::SessionStatus),
            kind: FaultKind::TooManyRequests { retry_after: 30 },
            times: Some(1),
        });
    });
    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let err = poll_once(&target, &mut source, &mut state)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    // No session was started after the failure: at most the ones in flight
    // with it (the 9th and three more).
    let status_calls = ws.request_count(DeepsetEndpoint::SessionStatus);
    assert!(
        (9..=9 + SESSION_FETCHES_AT_ONCE as u64 - 1).contains(&status_calls),
        "{status_calls} status calls"
    );
    // The next poll asks only for what was not cached yet.
    let before = ws.request_count(DeepsetEndpoint::ListFiles);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    let cached_before = 30 - (ws.request_count(DeepsetEndpoint::SessionStatus) - status_calls);
    // Session 9's status call went out once five sessions had ended.
    assert!(
        cached_before >= 5,
        "counts that arrived before the failure were cached ({cached_before})"
    );
    assert_eq!(state.owners()[ADA].files.unwrap().total, 30);
    assert!(ws.request_count(DeepsetEndpoint::ListFiles) > before);
    sim.shutdown().await;
}

/// `ended_total` counts a session once when it stops being open: closed is
/// completed, past its expiry is expired, whether or not it is still listed.
#[tokio::test]
async fn a_session_ends_once_when_it_stops_being_open() {
    let sim = deepset_sim().await;
    let ws = sim.deepset("default").unwrap();
    let now = ws.now();
    let closing = ws.insert_session(DeepsetSessionSeed::open(ADA, now - hours(1)));
    let expiring = ws.insert_session(DeepsetSessionSeed::open(ADA, now - hours(1)));
    ws.insert_session(DeepsetSessionSeed::open(ADA, now - hours(1)));

    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    let publisher = upload_session_exporter::metrics::exposition::PagePublisher::new();
    let mut poll = async || {
        poll_once(&target, &mut source, &mut state).await.unwrap();
        publisher.publish("ds", state.render());
        String::from_utf8(publisher.assemble().plain.to_vec()).unwrap()
    };
    let v = |text: &str, m: &str, label: &str| {
        value(
            text,
            &format!("upload_session_{m}{{target=\"ds\",owner_id=\"{ADA}\",{label}}}"),
        )
    };
    let ended = |text: &str| {
        (
            v(text, "ended_total", "outcome=\"completed\""),
            v(text, "ended_total", "outcome=\"expired\""),
        )
    };
    let counts = |c: &str, e: &str| (c.to_string(), e.to_string());

    let text = poll().await;
    assert_eq!(ended(&text), counts("0", "0"));

    // One closes, one passes its expiry (still listed, as EXPIRED); one is
    // created and closed between two polls (a small upload takes seconds).
    // An old closed session showing up late was not created since the last
    // poll: it is not counted (it may have been counted before).
    assert!(ws.close_session(&closing));
    assert!(ws.set_expires_at(&expiring, Some(now - time::Duration::seconds(1))));
    ws.insert_session(DeepsetSessionSeed {
        status: "CLOSED".into(),
        ..DeepsetSessionSeed::open(ADA, ws.now())
    });
    ws.insert_session(closed(ADA, now - hours(2), vec![]));
    let text = poll().await;
    assert_eq!(ended(&text), counts("2", "1"));
    assert_eq!(v(&text, "sessions", "state=\"expired\""), "1");
    assert_eq!(v(&text, "sessions", "state=\"closed\""), "3");
    assert_eq!(v(&text, "sessions", "state=\"open\""), "1");

    // Still listed closed and expired: never counted a second time.
    for _ in 0..2 {
        let text = poll().await;
        assert_eq!(ended(&text), counts("2", "1"));
    }
    sim.shutdown().await;
}
