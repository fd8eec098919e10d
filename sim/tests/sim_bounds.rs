//! The simulator is reachable with a published demo key: whatever clients
//! do, what it keeps stays bounded. Sessions created and closed in a loop
//! are capped per workspace (oldest ended ones forgotten first, open ones
//! kept), ended sessions are forgotten after `purge_ended_after`, and a
//! session holds a bounded number of files.

use std::time::Duration;

use upload_session_sim::deepset::{DEMO_API_KEY, MAX_FILES_PER_SESSION};
use upload_session_sim::{DeepsetSessionSeed, DeepsetSpec, SimConfig, Simulator};

/// An idle simulator with just these deepset workspaces.
async fn sim_with(workspaces: Vec<DeepsetSpec>) -> Simulator {
    let mut cfg = SimConfig::idle();
    cfg.vaults = Vec::new();
    cfg.deepset = workspaces;
    Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts")
}

async fn create(client: &reqwest::Client, base: &str) -> (u16, Option<String>) {
    let r = client
        .post(format!("{base}/upload_sessions"))
        .bearer_auth(DEMO_API_KEY)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["session_id"].as_str().map(str::to_string))
}

async fn close(client: &reqwest::Client, base: &str, id: &str) {
    let r = client
        .put(format!("{base}/upload_sessions/{id}"))
        .bearer_auth(DEMO_API_KEY)
        .json(&serde_json::json!({"status": "CLOSED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn sessions_created_and_closed_in_a_loop_stay_bounded() {
    let mut ws = DeepsetSpec::new("default");
    ws.max_sessions = 40;
    ws.purge_ended_after = Some(Duration::from_secs(3600));
    let sim = sim_with(vec![ws]).await;
    let ctl = sim.deepset("default").unwrap();
    let base = format!("{}/api/v1/workspaces/default", sim.deepset_url());
    let client = reqwest::Client::new();
    for _ in 0..150 {
        let (status, id) = create(&client, &base).await;
        assert_eq!(status, 201);
        close(&client, &base, &id.unwrap()).await;
    }
    assert_eq!(ctl.sessions().len(), 40, "capped, oldest ended ones gone");
    // Open sessions are never dropped to make room.
    let mut open = Vec::new();
    for _ in 0..5 {
        let (status, id) = create(&client, &base).await;
        assert_eq!(status, 201);
        open.push(id.unwrap());
    }
    let kept = ctl.sessions();
    assert_eq!(kept.len(), 40);
    for id in &open {
        assert!(
            kept.iter().any(|s| &s.id == id),
            "open session {id} dropped"
        );
    }
    // A workspace full of open sessions refuses one more.
    for i in 0..40 {
        let mut seed = DeepsetSessionSeed::open("someone-else", sim.now());
        seed.id = Some(format!("00000000-0000-4000-8000-{i:012}"));
        ctl.insert_session(seed);
    }
    let (status, _) = create(&client, &base).await;
    assert_eq!(status, 406);

    sim.shutdown().await;
}

#[tokio::test]
async fn ended_sessions_are_forgotten_after_a_while() {
    let mut ws = DeepsetSpec::new("default");
    ws.purge_ended_after = Some(Duration::from_secs(3600));
    let sim = sim_with(vec![ws]).await;
    let ctl = sim.deepset("default").unwrap();
    let base = format!("{}/api/v1/workspaces/default", sim.deepset_url());
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, id) = create(&client, &base).await;
        assert_eq!(status, 201);
        ids.push(id.unwrap());
    }
    close(&client, &base, &ids[0]).await;
    sim.advance(Duration::from_secs(3500));
    assert_eq!(ctl.sessions().len(), 3, "not yet");
    sim.advance(Duration::from_secs(200));
    let kept: Vec<String> = ctl.sessions().into_iter().map(|s| s.id).collect();
    assert_eq!(
        kept,
        ids[1..].to_vec(),
        "the closed one is gone, open ones stay"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_session_holds_a_bounded_number_of_files() {
    let sim = sim_with(vec![DeepsetSpec::new("default")]).await;
    let ctl = sim.deepset("default").unwrap();
    let id = ctl.insert_session(DeepsetSessionSeed::open(
        upload_session_sim::deepset::DEMO_USER_ID,
        sim.now(),
    ));
    for i in 0..MAX_FILES_PER_SESSION {
        assert!(ctl.add_file(&id, &format!("f{i}.txt"), 1));
    }
    assert!(!ctl.add_file(&id, "one-more.txt", 1));
    // Replacing a file that is there still works.
    assert!(ctl.add_file(&id, "f0.txt", 2));
    assert_eq!(ctl.session(&id).unwrap().files.len(), MAX_FILES_PER_SESSION);
    sim.shutdown().await;
}

#[test]
fn the_admin_api_stays_on_loopback_unless_allowed() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const SIM: &str = env!("CARGO_BIN_EXE_upload_session_sim");
    let mut refused = Command::new(SIM)
        .args(["--admin", "--listen", "0.0.0.0:0", "--scenario", "idle"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("simulator runs");
    // It must exit by itself; one that serves is stopped (and fails below).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while refused.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = refused.kill();
    let out = refused.wait_with_output().expect("simulator output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to serve the admin API on 0.0.0.0:0"),
        "{err}"
    );
    // Allowed explicitly, or on loopback: it starts.
    for args in [
        &["--admin", "--admin-allow-remote", "--listen", "0.0.0.0:0"][..],
        &["--admin", "--listen", "127.0.0.1:0"][..],
    ] {
        let mut child = Command::new(SIM)
            .args(args)
            .args(["--scenario", "idle"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("simulator starts");
        let stdout = child.stdout.take().unwrap();
        let first = BufReader::new(stdout).lines().next();
        let _ = child.kill();
        let _ = child.wait();
        let first = first.and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("listening"), "{args:?}: {first}");
    }
}
