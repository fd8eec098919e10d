//! An upstream (or a proxy in front of it) that reflects the request in its
//! error page must not make the exporter print a secret: the simulator's
//! `ReflectRequest` fault echoes the `Authorization` header (Vault session
//! id, deepset API key) and the body (the login form with the password),
//! and neither the logs, nor the errors, nor `--once` / `sessions` output
//! may show them. Every poll below fails on such a page; each check also
//! asserts that the page was seen (a `***` where the secret was).

mod common;

use std::time::Duration;

use common::*;
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::secret::Secret;
use upload_session_sim::{
    DeepsetEndpoint, DeepsetSpec, DeepsetUser, Endpoint, FaultKind, FaultRule, UserSpec,
};

/// Characters that a form, JSON and HTML each encode differently.
const PASSWORD: &str = "Vault Pw&4f9+a/c\"71";
const API_KEY: &str = "ds-key-8b1e77d0";

/// Vaults `login500`, `login200` (reflection at /auth: the password) and
/// `list502`, `list200` (reflection at List Upload Sessions: the session
/// id); workspaces `ws401`, `ws502`, `ws422` (reflection of the key).
async fn reflecting_sim() -> upload_session_sim::Simulator {
    let vaults = ["login500", "login200", "list502", "list200"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut spec = vault_spec(name, 1000 + i as u64);
            let mut user = UserSpec::new(77, "monitor@example.com", PASSWORD);
            user.admin = true;
            spec.users.push(user);
            spec
        })
        .collect();
    let workspaces = ["ws401", "ws502", "ws422"]
        .iter()
        .map(|name| {
            let mut ws = DeepsetSpec::new(name);
            ws.users.push(DeepsetUser::new(
                "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01",
                "Ada",
                "L",
                API_KEY,
            ));
            ws
        })
        .collect();
    let sim = sim_with(vaults, workspaces).await;
    for (vault, endpoint, status) in [
        ("login500", Endpoint::Auth, 500),
        ("login200", Endpoint::Auth, 200),
        ("list502", Endpoint::ListSessions, 502),
        ("list200", Endpoint::ListSessions, 200),
    ] {
        sim.vault(vault).unwrap().inject(FaultRule::always(
            Some(endpoint),
            FaultKind::ReflectRequest { status },
        ));
    }
    for (ws, status) in [("ws401", 401), ("ws502", 502), ("ws422", 422)] {
        sim.deepset(ws).unwrap().inject(FaultRule::always(
            Some(DeepsetEndpoint::ListSessions),
            FaultKind::ReflectRequest { status },
        ));
    }
    sim
}

fn targets(
    sim: &upload_session_sim::Simulator,
) -> Vec<upload_session_exporter::config::TargetConfig> {
    let mut out = Vec::new();
    for name in ["login500", "login200", "list502", "list200"] {
        let mut t = vault_target(sim, name, name);
        vault_cfg(&mut t).username = "monitor@example.com".into();
        vault_cfg(&mut t).password = Secret::new(PASSWORD);
        t.poll_interval = Duration::from_millis(300);
        out.push(t);
    }
    for name in ["ws401", "ws502", "ws422"] {
        let mut t = deepset_target(sim, name, name, Pagination::Cursor);
        common::deepset_cfg(&mut t).api_key = Secret::new(API_KEY);
        t.poll_interval = Duration::from_millis(300);
        out.push(t);
    }
    out
}

/// The ways the secrets can be written in what the exporter prints.
fn leaks(text: &str, secrets: &[String]) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
    let mut all: Vec<String> = secrets.to_vec();
    all.extend([PASSWORD.to_string(), form, API_KEY.to_string()]);
    all.into_iter()
        .filter(|s| text.contains(s.as_str()))
        .collect()
}

#[tokio::test]
async fn reflected_secrets_never_reach_the_logs_or_the_metrics() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();

    let sim = reflecting_sim().await;
    let config = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: targets(&sim),
    };
    let exporter = start_exporter(config).await;
    let url = format!("http://{}/metrics", exporter.addr());
    // Every target has failed at least once.
    let failed_all = eventually(Duration::from_secs(20), || async {
        let text = get(&url).await.text().await.unwrap_or_default();
        [
            "login500", "login200", "list502", "list200", "ws401", "ws502", "ws422",
        ]
        .iter()
        .all(|t| {
            samples(&text).iter().any(|(k, v)| {
                k.starts_with(&format!("upload_session_poll_errors_total{{target=\"{t}\""))
                    && v != "0"
            })
        })
    })
    .await;
    assert!(
        failed_all,
        "not every target failed:\n{}",
        get(&url).await.text().await.unwrap()
    );
    let metrics = get(&url).await.text().await.unwrap();
    // The session ids the exporter holds (before it logs out).
    let mut sessions = sim.vault("list502").unwrap().login_session_ids();
    sessions.extend(sim.vault("list200").unwrap().login_session_ids());
    assert_eq!(sessions.len(), 2, "one login per list vault: {sessions:?}");
    exporter.stop().await;
    sim.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        leaks(&logs, &sessions),
        Vec::<String>::new(),
        "secrets in the logs:\n{logs}"
    );
    assert_eq!(
        leaks(&metrics, &sessions),
        Vec::<String>::new(),
        "{metrics}"
    );
    // The pages were seen, with the secrets masked in them.
    let failures: Vec<&str> = logs.lines().filter(|l| l.contains("poll failed")).collect();
    for (target, want) in [
        (
            "login500",
            "HTTP 500: username=monitor%40example.com&password=*** POST /vaults/login500/api/",
        ),
        ("login500", "password=***"),
        ("login200", "password=***"),
        ("list502", "HTTP 502: Authorization: ***"),
        ("list200", "Authorization: ***"),
        ("ws401", "Invalid token: Authorization: Bearer ***"),
        (
            "ws502",
            "HTTP 502: {\"detail\":\"Invalid token: Authorization: Bearer ***",
        ),
        (
            "ws422",
            "HTTP 422: {\"detail\":\"Invalid token: Authorization: Bearer ***",
        ),
    ] {
        assert!(
            failures
                .iter()
                .any(|l| l.contains(&format!("target={target}")) && l.contains(want)),
            "no failure of {target} showing {want:?}:\n{}",
            failures.join("\n")
        );
    }
    // Bounded: no logged error carries more than the snippet of a page.
    for l in &failures {
        assert!(l.len() < 1500, "{l}");
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_bin(args, &[], env)
}

#[tokio::test]
async fn once_and_sessions_print_no_reflected_secret() {
    let sim = reflecting_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from("[defaults]\ntimeout = \"2s\"\n\n");
    for name in ["login500", "login200", "list502", "list200"] {
        toml.push_str(&format!(
            "[[targets]]\nname = \"{name}\"\nkind = \"vault\"\nurl = \"{}\"\n\
             username = \"monitor@example.com\"\npassword_env = \"VAULT_PW\"\n\n",
            sim.vault_url(name).unwrap()
        ));
    }
    for name in ["ws401", "ws502", "ws422"] {
        toml.push_str(&format!(
            "[[targets]]\nname = \"{name}\"\nkind = \"deepset\"\nurl = \"{}\"\n\
             workspace = \"{name}\"\napi_key_env = \"DS_KEY\"\n\n",
            sim.deepset_url()
        ));
    }
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, toml).unwrap();
    let path = path.display().to_string();
    let env = [("VAULT_PW", PASSWORD), ("DS_KEY", API_KEY)];
    for args in [
        vec![
            "--config.file",
            path.as_str(),
            "--once",
            "--log.level",
            "debug",
        ],
        vec![
            "sessions",
            "--config.file",
            path.as_str(),
            "--log.level",
            "debug",
        ],
    ] {
        let (code, out, err) = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
        })
        .await
        .unwrap();
        assert_eq!(code, 1, "{args:?}: every target fails:\n{out}\n{err}");
        let all = format!("{out}\n{err}");
        assert_eq!(leaks(&all, &[]), Vec::<String>::new(), "{args:?}:\n{all}");
        for want in [
            "password=***",
            "Authorization: ***",
            "Invalid token: Authorization: Bearer ***",
        ] {
            assert!(all.contains(want), "{args:?}: {want:?} not shown:\n{all}");
        }
    }
    sim.shutdown().await;
}
