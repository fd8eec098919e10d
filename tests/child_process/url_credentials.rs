//! A target `url` with credentials in it (`user:password@`) is refused and
//! never echoed: not by `--check-config`, not in the logs, not in the
//! `/-/reload` answer, whether or not the rest of the URL is valid. Plain
//! `http://` to another host is warned about; a Vault `url` holding the
//! `/api/...` path is refused.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_upload_session_exporter");
const PW: &str = "Sup3rSecretPw";

/// URLs whose userinfo must not be shown, each with the text that says
/// what is wrong.
fn bad_urls() -> Vec<String> {
    vec![
        format!("http://u:{PW}@h:99999"),
        format!("http://u:{PW}@"),
        format!("ftp://u:{PW}@h/"),
        format!("https://u:{PW}@vault.example.com"),
    ]
}

fn toml(url: &str) -> String {
    format!(
        "[[targets]]\nname = \"t1\"\nkind = \"vault\"\nurl = \"{url}\"\nusername = \"u\"\n\
         password_env = \"VAULT_PW\"\ntimeout = \"1s\"\n"
    )
}

fn check_config(dir: &tempfile::TempDir, url: &str) -> (i32, String) {
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, toml(url)).unwrap();
    let out = Command::new(BIN)
        .args(["--config.file", path.to_str().unwrap(), "--check-config"])
        .env("VAULT_PW", "x")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_never_shows_url_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for url in bad_urls() {
        let (code, out) = check_config(&dir, &url);
        assert_eq!(code, 1, "{url}: {out}");
        assert!(!out.contains(PW), "{url}: {out}");
        assert!(
            out.contains("***@") && out.contains("contains credentials"),
            "{url}: {out}"
        );
    }
}

#[test]
fn plain_http_is_warned_about_and_an_api_path_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check_config(&dir, "http://vault.example.com");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("plain http://").count(), 1, "{out}");
    for quiet in ["https://vault.example.com", "http://127.0.0.1:1"] {
        let (code, out) = check_config(&dir, quiet);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("plain http://"), "{quiet}: {out}");
    }
    let (code, out) = check_config(&dir, "https://myvault.veevavault.com/api/v25.2/");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("give the base URL of the Vault, e.g. \"https://myvault.veevavault.com\""),
        "{out}"
    );
}

#[test]
fn reload_errors_and_logs_never_show_url_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    // Nothing listens there: the target just fails, which is fine here.
    std::fs::write(&path, toml("http://127.0.0.1:1")).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--config.file",
            path.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.enable-lifecycle",
        ])
        .env("VAULT_PW", "x")
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    // Stopped however the test ends (a panic must not leave it running).
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let mut addr = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        log.push(line.clone());
        if line.contains("listening") {
            addr = line
                .split("address=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .map(str::to_string);
            break;
        }
    }
    let Some(addr) = addr else {
        panic!("no address announced: {log:?}");
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    for url in bad_urls() {
        std::fs::write(&path, toml(&url)).unwrap();
        let (status, body) = rt.block_on(async {
            let r = client
                .post(format!("http://{addr}/-/reload"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        assert_eq!(status, 500, "{url}: {body}");
        assert!(body.contains("***@"), "{url}: {body}");
        bodies.push(body);
    }
    child.stop();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(log.contains("reload failed"), "{log}");
    assert!(!log.contains(PW), "{log}");
    for b in bodies {
        assert!(!b.contains(PW), "{b}");
    }
}

struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}
