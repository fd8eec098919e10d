//! The `upload_session_exporter` binary as a user runs it.

use crate::common;

use std::process::Command;

use common::*;
use upload_session_exporter::config::{self, ConfigError, Environment};
use upload_session_sim::SessionSeed;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_bin(args, &["VAULT_PW"], env)
}

fn write_config(dir: &tempfile::TempDir, body: &str) -> String {
    let p = dir.path().join("exporter.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn vault_toml(url: &str) -> String {
    format!(
        "[defaults]\ntimeout = \"2s\"\n\n[[targets]]\nname = \"t1\"\nkind = \"vault\"\nurl = \"{url}\"\n\
         username = \"demo@example.com\"\npassword_env = \"VAULT_PW\"\n"
    )
}

#[test]
fn version_names_the_revision() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "upload_session_exporter {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert!(out.contains("revision"), "{out}");
}

#[test]
fn check_config_accepts_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &vault_toml("https://myvault.veevavault.com"));
    let (code, out, err) = run(
        &["--config.file", &path, "--check-config"],
        &[("VAULT_PW", "x")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{path}: OK: 1 target(s): t1"));

    // Secret missing from the environment, bad duration, unknown key.
    let bad = vault_toml("https://myvault.veevavault.com")
        .replace("timeout = \"2s\"", "timeout = \"2 parsecs\"");
    let path = write_config(&dir, &bad);
    let (code, _, err) = run(&["--config.file", &path, "--check-config"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{path}: defaults.timeout: \"2 parsecs\" is not a duration"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{path}: targets[0].password_env: environment variable VAULT_PW is not set"
        )),
        "{err}"
    );

    let path = write_config(
        &dir,
        &format!("{}colour = \"blue\"\n", vault_toml("https://x.example")),
    );
    let (code, _, err) = run(
        &["--config.file", &path, "--check-config"],
        &[("VAULT_PW", "x")],
    );
    assert_eq!(code, 1);
    assert!(err.contains(&path) && err.contains("colour"), "{err}");

    // An unknown key no longer hides the other problems: all come at once,
    // and a bad default is named once, not once per target.
    let two_targets = format!(
        "{}{}",
        vault_toml("ftp://x.example").replace("timeout = \"2s\"", "timeout = \"60\""),
        "[[targets]]\nname = \"t2\"\nkind = \"vault\"\nurl = \"https://y.example\"\n\
         username = \"u\"\npassword_env = \"VAULT_PW\"\ncolour = \"blue\"\n"
    );
    let path = write_config(&dir, &two_targets);
    let (code, _, err) = run(
        &["--config.file", &path, "--check-config"],
        &[("VAULT_PW", "x")],
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&path)).collect();
    for want in [
        "targets[1].colour: unknown key",
        "targets[0].url: \"ftp://x.example\" has scheme \"ftp\"",
        "defaults.timeout: \"60\" is not a duration",
    ] {
        let want = format!("{path}: {want}");
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "no {want:?} in {err}"
        );
    }
    assert_eq!(lines.len(), 3, "{err}");

    let (code, _, err) = run(
        &["--config.file", "/does/not/exist.toml", "--check-config"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("/does/not/exist.toml: cannot read"), "{err}");
}

#[tokio::test]
async fn once_prints_the_exposition_and_fails_with_a_target() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let mut s = SessionSeed::new("/u3/a.bin", 3, 7_000_000_000, sim.now());
    s.uploaded = 5_000_000_000;
    s.uploaded_parts = 100;
    vault.insert_session(s);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &vault_toml(&sim.vault_url("main").unwrap()));
    let (code, out, err) = tokio::task::spawn_blocking({
        let path = path.clone();
        move || run(&["--config.file", &path, "--once"], &[("VAULT_PW", "demo")])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        value(
            &out,
            "upload_session_uploaded_bytes{target=\"t1\",owner_id=\"3\"}"
        ),
        "5000000000"
    );
    assert_eq!(
        value(
            &out,
            "upload_session_target_up{target=\"t1\",kind=\"vault\"}"
        ),
        "1"
    );
    // --once logs out again.
    assert_eq!(vault.request_count(upload_session_sim_endpoint::LOGOUT), 1);

    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &["--config.file", &path, "--once"],
            &[("VAULT_PW", "wrong-password-xyz")],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert_eq!(
        value(
            &out,
            "upload_session_target_up{target=\"t1\",kind=\"vault\"}"
        ),
        "0"
    );
    assert!(
        err.contains("target t1: auth: login as demo@example.com refused"),
        "{err}"
    );
    assert!(!err.contains("wrong-password-xyz") && !out.contains("wrong-password-xyz"));
    sim.shutdown().await;
}

mod upload_session_sim_endpoint {
    pub use upload_session_sim::Endpoint::Logout as LOGOUT;
}

struct Env(&'static [(&'static str, &'static str)]);
impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn shipped_configs_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = config::load_with_env(
        std::path::Path::new(&format!("{root}/config/demo.toml")),
        &Env(&[
            ("DEMO_VAULT_PASSWORD", "demo"),
            ("DEMO_DEEPSET_API_KEY", "k"),
            ("DEMO_S3_ACCESS_KEY_ID", "k"),
            ("DEMO_S3_SECRET_ACCESS_KEY", "s"),
        ]),
    )
    .unwrap();
    assert_eq!(demo.targets.len(), 4);
    assert_eq!(demo.targets[3].name, "demo-s3:demo-uploads");

    // The example refers to a secret file that exists only on a real host:
    // that must be its only problem.
    let example = config::load_with_env(
        std::path::Path::new(&format!("{root}/config/example.toml")),
        &Env(&[("VAULT_PROD_PASSWORD", "x"), ("DEEPSET_API_KEY", "k")]),
    );
    match example {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, "targets[1].password_file");
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn a_missing_web_config_stops_the_start() {
    let (code, _, err) = run(
        &["--web.config.file", "/etc/nonexistent-web.yml", "--demo"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid --web.config.file: /etc/nonexistent-web.yml: cannot read"),
        "{err}"
    );
}

#[test]
fn demo_serves_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args(["--demo", "--web.listen-address", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
        log.push(line.clone());
        if let Some(u) = line.split("try: curl ").nth(1) {
            url = Some(u.trim().to_string());
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no address announced: {log:?}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = rt.block_on(async {
        for _ in 0..200 {
            let t = get(&url).await.text().await.unwrap();
            if t.contains("upload_session_target_up{target=\"demo-vault\",kind=\"vault\"} 1")
                && t.contains(
                    "upload_session_target_up{target=\"demo-sitevault\",kind=\"vault\"} 1",
                )
                && t.contains(
                    "upload_session_target_up{target=\"demo-s3:demo-uploads\",kind=\"s3\"} 1",
                )
            {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("demo targets never came up");
    });
    assert!(
        text.contains("upload_session_uploaded_bytes{target=\"demo-vault\",owner_id="),
        "{text}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(2)) {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.contains("msg=\"shutting down\"")),
        "{log:?}"
    );
}

#[tokio::test]
async fn sessions_view_shows_what_is_stuck() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    let now = sim.now();
    let hour_ago = now - time::Duration::hours(1);
    let mut stuck = SessionSeed::new("/u1/stuck.mp4", 1, 100 * 1024 * 1024, hour_ago);
    stuck.uploaded = 25 * 1024 * 1024;
    stuck.uploaded_parts = 5;
    stuck.last_uploaded = hour_ago;
    vault.insert_session(stuck);
    let mut done = SessionSeed::new("/u2/done.pdf", 2, 10 * 1024 * 1024, now);
    done.uploaded = 10 * 1024 * 1024;
    done.uploaded_parts = 2;
    vault.insert_session(done);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &vault_toml(&sim.vault_url("main").unwrap()));
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &["sessions", "--config.file", &path, "--target", "t1"],
            &[("VAULT_PW", "demo")],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("t1 (vault): 2 session(s)\n"), "{out}");
    let stuck_line = out.lines().find(|l| l.contains("/u1/stuck.mp4")).unwrap();
    assert!(
        stuck_line.contains("25.0%")
            && stuck_line.contains("25.0 MiB")
            && stuck_line.contains("100.0 MiB"),
        "{stuck_line}"
    );
    assert!(stuck_line.trim_end().ends_with("stalled"), "{stuck_line}");
    let done_line = out.lines().find(|l| l.contains("/u2/done.pdf")).unwrap();
    assert!(
        done_line.contains("100.0%") && done_line.trim_end().ends_with("awaiting commit"),
        "{done_line}"
    );
    // Most urgent first.
    assert!(out.find("/u1/stuck.mp4") < out.find("/u2/done.pdf"));

    let (code, _, err) = run(&["sessions", "--demo", "--target", "nope"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no target named \"nope\"") && err.contains("demo-vault"),
        "{err}"
    );
    sim.shutdown().await;
}

/// `sessions --demo`: nothing is logged before the tables, and every line
/// fits 100 columns (issue 15, item 9).
#[test]
fn demo_sessions_view_is_quiet_and_fits_100_columns() {
    let (code, out, err) = run(&["sessions", "--demo"], &[("COLUMNS", "100")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.trim().is_empty(), "logged before the table: {err}");
    assert!(out.starts_with("demo-vault (vault): "), "{out}");
    for line in out.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} wide: {line}",
            line.chars().count()
        );
    }
    assert!(!out.contains("never"), "{out}");
    // deepset: no negative expiry for closed sessions.
    let deepset = &out[out.find("demo-deepset").unwrap()..];
    assert!(
        !deepset
            .split_whitespace()
            .any(|w| w.starts_with('-') && w.len() > 1),
        "{deepset}"
    );
}

#[test]
fn world_readable_secret_files_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "s3cret-value\n").unwrap();
    let body = vault_toml("https://myvault.veevavault.com")
        .replace("password_env = \"VAULT_PW\"", "password_file = \"pw\"");
    let path = write_config(&dir, &body);
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, _, err) = run(&["--config.file", &path, "--check-config"], &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            err.contains("secret file is readable by every user"),
            warned,
            "mode {mode:o}: {err}"
        );
        assert!(!err.contains("s3cret-value"));
    }
}
