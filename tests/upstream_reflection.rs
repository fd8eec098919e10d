//! An upstream (or a proxy in front of it) that reflects the request in its
//! error page must not make the exporter print a secret: the simulator's
//! `ReflectRequest` fault echoes the `Authorization` header (Vault session
//! id, deepset API key, S3 access key id) and the body (the login form with
//! the password); on S3, as a hostile store could, also the secret access
//! key and the session token. Neither the logs, nor the errors, nor
//! `--once` / `sessions` output may show them. Every poll below fails on
//! such a page; each check also asserts that the page was seen (a `***`
//! where the secret was).

mod common;

use std::time::Duration;

use common::*;
use upload_session_exporter::config::{parse_str, Config, Environment, ExporterSettings};
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::secret::Secret;
use upload_session_sim::{
    DeepsetEndpoint, DeepsetSpec, DeepsetUser, Endpoint, FaultKind, FaultRule, S3BucketSpec,
    S3Endpoint, S3Spec, S3User, SimConfig, Simulator, UserSpec,
};

/// Characters that a form, JSON and HTML each encode differently.
const PASSWORD: &str = "Vault Pw&4f9+a/c\"71";
const API_KEY: &str = "ds-key-8b1e77d0";
/// Temporary S3 credentials: key id, secret (`/` and `+` are encoded in a
/// form or URL) and session token.
const S3_KEY_ID: &str = "ASIAREFLECTTEST00001";
const S3_SECRET: &str = "Refl3ct/Secret+Key=8c2e";
const S3_TOKEN: &str = "reflect-session-token-6d1f";
/// The bucket whose listing reflects (HTTP 403, S3's `AccessDenied`).
const S3_BUCKET: &str = "refl-403";

/// The S3 credentials by environment variable name.
struct S3Env;

impl Environment for S3Env {
    fn var(&self, name: &str) -> Option<String> {
        S3_ENV
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

const S3_ENV: [(&str, &str); 3] = [
    ("S3_KEY_ID", S3_KEY_ID),
    ("S3_SECRET", S3_SECRET),
    ("S3_TOKEN", S3_TOKEN),
];

/// The `[[targets]]` table of the S3 target `s3r` (one bucket).
fn s3_toml(sim: &Simulator) -> String {
    format!(
        "[[targets]]\nname = \"s3r\"\nkind = \"s3\"\nurl = \"{}\"\nbuckets = [\"{S3_BUCKET}\"]\n\
         access_key_id_env = \"S3_KEY_ID\"\nsecret_access_key_env = \"S3_SECRET\"\n\
         session_token_env = \"S3_TOKEN\"\n\n",
        sim.s3_url().expect("S3 side")
    )
}

/// Vaults `login500`, `login200` (reflection at /auth: the password) and
/// `list502`, `list200` (reflection at List Upload Sessions: the session
/// id); workspaces `ws401`, `ws502`, `ws422` (reflection of the key); S3
/// bucket `refl-403` (reflection at ListMultipartUploads: the key id, the
/// secret key and the session token).
async fn reflecting_sim() -> Simulator {
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
    let mut s3 = S3Spec::new();
    let mut user = S3User::new(
        S3_KEY_ID,
        S3_SECRET,
        "arn:aws:sts::111122223333:assumed-role/monitor/exporter",
        "monitor/exporter",
    );
    user.session_token = Some(S3_TOKEN.to_owned());
    s3.users.push(user);
    s3.buckets.push(S3BucketSpec::new(S3_BUCKET));
    let mut cfg = SimConfig::idle();
    cfg.vaults = vaults;
    cfg.deepset = workspaces;
    cfg.s3 = Some(s3);
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts");
    assert!(sim.s3().expect("S3 side").inject(
        Some(S3_BUCKET),
        FaultRule::always(
            Some(S3Endpoint::ListMultipartUploads),
            FaultKind::ReflectRequest { status: 403 },
        ),
    ));
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

fn targets(sim: &Simulator) -> Vec<upload_session_exporter::config::TargetConfig> {
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
    let s3 = parse_str(&s3_toml(sim), "s3.toml", &S3Env).expect("valid S3 target");
    for mut t in s3.targets {
        t.poll_interval = Duration::from_millis(300);
        out.push(t);
    }
    out
}

/// The ways the secrets can be written in what the exporter prints.
fn leaks(text: &str, secrets: &[String]) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
    let s3_form: String = url::form_urlencoded::byte_serialize(S3_SECRET.as_bytes()).collect();
    let mut all: Vec<String> = secrets.to_vec();
    all.extend([PASSWORD.to_string(), form, API_KEY.to_string()]);
    all.extend([S3_KEY_ID, S3_SECRET, S3_TOKEN].map(String::from));
    all.push(s3_form);
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
            "login500",
            "login200",
            "list502",
            "list200",
            "ws401",
            "ws502",
            "ws422",
            "s3r:refl-403",
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
    // S3's `AccessDenied` is still read as what it is.
    assert_ne!(
        value(
            &metrics,
            "upload_session_poll_errors_total{target=\"s3r:refl-403\",reason=\"auth\"}"
        ),
        "0",
        "{metrics}"
    );
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
        ("s3r:refl-403", S3_SEEN),
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

/// How the exporter shows the reflecting S3 page: the error's code, then
/// the secret key, the token and the key id in the `Authorization` header
/// masked.
const S3_SEEN: &str = "AccessDenied: Invalid request: secret access key: *** x-amz-security-token: *** Authorization: AWS4-HMAC-SHA256 Credential=***/";

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
    toml.push_str(&s3_toml(&sim));
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, toml).unwrap();
    let path = path.display().to_string();
    let env = [
        ("VAULT_PW", PASSWORD),
        ("DS_KEY", API_KEY),
        S3_ENV[0],
        S3_ENV[1],
        S3_ENV[2],
    ];
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
            S3_SEEN,
        ] {
            assert!(all.contains(want), "{args:?}: {want:?} not shown:\n{all}");
        }
    }
    sim.shutdown().await;
}
