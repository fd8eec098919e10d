//! An independent S3 implementation as the upstream: moto's standalone
//! server (`moto[server]` from PyPI, in the venv `.ci/run` makes), seeded by
//! boto3 through `s3_moto.py`; the exporter's figures must match what S3
//! itself lists. Without a Python that has moto the test is skipped loudly,
//! except in CI (`CI` set), where it fails.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use upload_session_exporter::app::poll_all_once;
use upload_session_exporter::config::{parse_str, Environment};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("USE_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env;

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        matches!(name, "MOTO_KEY" | "MOTO_SECRET").then(|| "testing".to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_reads_moto_as_boto3_wrote_it() {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let py = python().filter(|p| {
        Command::new(p)
            .args(["-c", "import boto3, moto.server"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(py) = py else {
        assert!(
            !in_ci,
            "CI: no Python with boto3 and moto[server] (.ci/run makes .venv)"
        );
        eprintln!("SKIPPED: no $USE_PYTHON or .venv/bin/python with boto3 and moto[server]");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let _moto = Kill(
        Command::new(&py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/child_process/s3_moto.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&endpoint)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(listed.len(), 3, "{listed:?}");

    let toml = format!(
        "[[targets]]\nname = \"moto\"\nkind = \"s3\"\nurl = \"{endpoint}\"\nbuckets = [\"uploads\"]\n\
         access_key_id_env = \"MOTO_KEY\"\nsecret_access_key_env = \"MOTO_SECRET\"\n"
    );
    let config = parse_str(&toml, "moto.toml", &Env).expect("valid");
    let (text, failed) = poll_all_once(&config).await;
    assert!(failed.is_empty(), "{failed:?}");

    // What S3 listed, per initiator.
    let mut want: HashMap<String, (u64, u64, u64, i64)> = HashMap::new();
    for u in &listed {
        let e = want
            .entry(u["initiator"].as_str().unwrap().to_string())
            .or_insert((0, 0, 0, i64::MAX));
        e.0 += 1;
        e.1 += u["bytes"].as_u64().unwrap();
        e.2 += u["parts"].as_u64().unwrap();
        e.3 = e.3.min(u["initiated_ms"].as_i64().unwrap());
    }
    assert!(!want.is_empty());
    // The same bucket virtual-hosted (`path_style = false`): the exporter
    // as a child whose HTTP proxy is moto, so `uploads.s3.sim.test` need
    // not resolve; moto takes the bucket from the host of the absolute-form
    // request line (and would take "s3" from a path-style request there).
    let dir = tempfile::tempdir().expect("tempdir");
    let vh_toml = dir.path().join("moto-vh.toml");
    std::fs::write(
        &vh_toml,
        format!(
            "[[targets]]\nname = \"moto-vh\"\nkind = \"s3\"\nurl = \"http://s3.sim.test:{port}\"\n\
             path_style = false\nbuckets = [\"uploads\"]\n\
             access_key_id_env = \"MOTO_KEY\"\nsecret_access_key_env = \"MOTO_SECRET\"\n"
        ),
    )
    .expect("write config");
    let vh_toml = vh_toml.display().to_string();
    let (code, vh_text, err) = tokio::task::spawn_blocking(move || {
        common::run_bin(
            &["--config.file", &vh_toml, "--once"],
            &[
                "http_proxy",
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
                "all_proxy",
                "no_proxy",
                "NO_PROXY",
                "REQUEST_METHOD",
            ],
            &[
                ("HTTP_PROXY", endpoint.as_str()),
                ("MOTO_KEY", "testing"),
                ("MOTO_SECRET", "testing"),
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{vh_text}\n{err}");

    for (text, target) in [(&text, "moto:uploads"), (&vh_text, "moto-vh:uploads")] {
        figures(text, target, &want);
    }
}

/// The exporter's figures of `target` are what moto listed per initiator
/// (sessions, bytes, parts, first initiation).
fn figures(text: &str, target: &str, want: &HashMap<String, (u64, u64, u64, i64)>) {
    let day = 86_400_000;
    for (owner, &(n, bytes, parts, first)) in want {
        let o = |m: &str| {
            common::value(
                text,
                &format!("{m}{{target=\"{target}\",owner_id=\"{owner}\"}}"),
            )
        };
        assert_eq!(
            common::value(
                text,
                &format!("upload_session_sessions{{target=\"{target}\",owner_id=\"{owner}\",state=\"active\"}}")
            ),
            n.to_string()
        );
        assert_eq!(o("upload_session_uploaded_bytes"), bytes.to_string());
        assert_eq!(o("upload_session_uploaded_parts"), parts.to_string());
        assert_eq!(bytes, 10 * 1024 * 1024 + 1300);
        // The 3-day rule, rounded up to midnight UTC, from the first upload.
        let abort = (first + 3 * day).div_euclid(day) * day + day;
        assert_eq!(
            o("upload_session_next_expiry_timestamp_seconds"),
            format!("{}", abort / 1000)
        );
    }
    assert_eq!(
        common::value(
            text,
            &format!("upload_session_abort_after_seconds{{target=\"{target}\"}}")
        ),
        "259200"
    );
    assert_eq!(
        common::value(
            text,
            &format!(
                "upload_session_api_requests_total{{target=\"{target}\",endpoint=\"list_parts\"}}"
            )
        ),
        "3"
    );
}
