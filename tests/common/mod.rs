//! Helpers shared by the integration tests: a simulator on a loopback port,
//! target configurations pointing at it, the exporter started in-process or
//! run as a binary, a small exposition reader, a raw HTTP/1.1 response
//! reader, a log capture and a throw-away PKI.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::macros::datetime;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, ServeOptions};
use upload_session_exporter::config::{Config, ExporterSettings, TargetConfig};
use upload_session_exporter::kinds::deepset::{DeepsetConfig, Pagination};
use upload_session_exporter::kinds::vault::VaultConfig;
use upload_session_exporter::secret::Secret;
use upload_session_exporter::settings::KindConfig;
use upload_session_sim::{DeepsetSpec, SessionSeed, SimConfig, Simulator, VaultSpec};

/// Starts an idle simulator with the given vaults (the first also at `/`).
pub async fn sim(vaults: Vec<VaultSpec>) -> Simulator {
    let mut cfg = SimConfig::idle();
    cfg.vaults = vaults;
    Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts")
}

/// Starts an idle simulator with the given vaults and deepset workspaces.
pub async fn sim_with(vaults: Vec<VaultSpec>, deepset: Vec<DeepsetSpec>) -> Simulator {
    let mut cfg = SimConfig::idle();
    cfg.vaults = vaults;
    cfg.deepset = deepset;
    Simulator::start(([127, 0, 0, 1], 0).into(), cfg)
        .await
        .expect("simulator starts")
}

/// A target for deepset workspace `workspace` of `sim`, with the demo key.
pub fn deepset_target(
    sim: &Simulator,
    name: &str,
    workspace: &str,
    pagination: Pagination,
) -> TargetConfig {
    base_target(
        name,
        &sim.deepset_url(),
        Box::new(DeepsetConfig {
            pagination,
            ..DeepsetConfig::new(
                workspace,
                Secret::new(upload_session_sim::deepset::DEMO_API_KEY),
            )
        }),
    )
}

/// A vault spec whose expired sessions are never purged (so fixed seed
/// dates stay listed).
pub fn vault_spec(name: &str, id: u64) -> VaultSpec {
    let mut v = VaultSpec::new(name, id);
    v.purge_after_expiry = None;
    v
}

/// A target with test-friendly settings and the given kind.
pub fn base_target(name: &str, url: &str, kind: Box<dyn KindConfig>) -> TargetConfig {
    TargetConfig {
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(2),
        stall_after: Duration::from_secs(30 * 60),
        stale_after: Duration::from_secs(300),
        at_risk_horizon: Duration::from_secs(12 * 3600),
        max_response_bytes: 1024 * 1024,
        ..TargetConfig::with_defaults(name, url.parse().expect("sim url"), kind)
    }
}

/// A target for vault `vault` of `sim`, logging in as the demo user.
pub fn vault_target(sim: &Simulator, name: &str, vault: &str) -> TargetConfig {
    let url = sim.vault_url(vault).expect("vault exists");
    base_target(
        name,
        &url,
        Box::new(VaultConfig {
            client_id: "test-upload-session-exporter".into(),
            ..VaultConfig::new("demo@example.com", Secret::new("demo"))
        }),
    )
}

/// Mutable access to a target's Vault settings.
pub fn vault_cfg(t: &mut TargetConfig) -> &mut VaultConfig {
    t.settings_mut::<VaultConfig>().expect("a vault target")
}

/// Mutable access to a target's deepset settings.
pub fn deepset_cfg(t: &mut TargetConfig) -> &mut DeepsetConfig {
    t.settings_mut::<DeepsetConfig>().expect("a deepset target")
}

/// Samples of an exposition: `name{labels}` (labels as written) → value.
pub fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of one sample, or a panic that shows the exposition.
pub fn value(text: &str, key: &str) -> String {
    samples(text)
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
}

/// GET over real HTTP.
pub async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Polls `f` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `promtool check metrics` on `text`. Returns `None` (and says why)
/// when promtool is missing outside CI; panics when it is missing in CI.
pub fn promtool_check(text: &str) -> Option<(bool, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("promtool is required in CI (.ci/run installs Debian's prometheus package): {e}");
            }
            eprintln!("SKIPPED: promtool not found ({e}); install Debian's `prometheus` package to run this check");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), msg))
}

/// Parses an OpenMetrics page with Prometheus's own OpenMetrics parser
/// (`promtool tsdb create-blocks-from openmetrics`, which wants a timestamp
/// on every sample, so one is appended). `None` when promtool is missing
/// outside CI, as [`promtool_check`].
pub fn promtool_check_openmetrics(page: &str) -> Option<(bool, String)> {
    use std::process::Command;
    let dir = tempfile::tempdir().expect("tempdir");
    let stamped: String = page
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} 1700000000\n")
            }
        })
        .collect();
    let input = dir.path().join("page.om");
    std::fs::write(&input, stamped).expect("write page");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("promtool is required in CI (.ci/run installs Debian's prometheus package): {e}");
            }
            eprintln!("SKIPPED: promtool not found ({e})");
            return None;
        }
    };
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), msg))
}

/// The upload sessions of the vendor's List Upload Sessions example (seed 000):
/// the three sessions of owner 10001400 of seeds 000/001, byte for byte.
pub fn seed_000_sessions() -> Vec<SessionSeed> {
    let mk = |id: &str, path: &str, created, exp, last, parts, size, uploaded| SessionSeed {
        id: Some(id.to_string()),
        path: path.to_string(),
        owner: 10001400,
        size,
        uploaded,
        uploaded_parts: parts,
        created,
        expiration: exp,
        last_uploaded: last,
    };
    vec![
        mk(
            "yYFg7jN_fZBmUD9Tj98RkL2yqtbTdIh17iy02nd5pby62oqVJLXv.R.ea1jSr786rgwpf7Vx3RmmQ--",
            "/u10001400/Gludacta-2021/Gludacta-Flyer.docx",
            datetime!(2020-10-07 18:32:55 UTC),
            datetime!(2020-10-10 18:32:55 UTC),
            datetime!(2020-10-07 19:27:07 UTC),
            1,
            1273267,
            1273267,
        ),
        mk(
            "JEtOyUb9i.DXVbtW7xZT7jWr2rNLWtdWrV7IPCo9aILqd.k8nlNNlG3SbplEVDJulPijrFwnelJw--",
            "/u10001400/Gludacta-2021/GludactaPackageBrochure.pdf",
            datetime!(2020-10-07 19:11:57 UTC),
            datetime!(2020-10-10 19:11:57 UTC),
            datetime!(2020-10-07 19:11:57 UTC),
            0,
            1438827,
            0,
        ),
        mk(
            "TpE_3roGfhpCppmk9ltKaEAbb8.kWbZEe6xDuW3lNa42801RbIEPJaWG07xvwrITJgVmXDw3UVL1w--",
            "/u10001400/cholecap-2021/Cholecap-Commercial-2021.mp4",
            datetime!(2020-10-07 19:30:18 UTC),
            datetime!(2020-10-10 19:30:18 UTC),
            datetime!(2020-10-07 19:38:29 UTC),
            2,
            32862312,
            10485760,
        ),
    ]
}

/// The exporter binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_upload_session_exporter");

/// Runs the exporter binary with `args`, `unset` removed from its
/// environment and then `env` added; returns (exit code, stdout, stderr).
pub fn run_bin(args: &[&str], unset: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args);
    for k in unset {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration with default exporter settings and `targets`.
pub fn config(targets: Vec<TargetConfig>) -> Config {
    Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets,
    }
}

/// Starts the exporter in-process on a loopback port with `config` and the
/// default serve options.
pub async fn start_exporter(config: Config) -> Exporter {
    Exporter::start(
        config,
        None,
        ServeOptions::loopback(),
        CancellationToken::new(),
    )
    .await
    .expect("exporter starts")
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from a raw
/// connection; returns its head (status line and headers, as sent).
pub async fn read_response_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed before the response was complete");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if buf.len() >= end + 4 + len {
                return head.to_string();
            }
        }
    }
}

/// A log writer that keeps everything written to it, for
/// `tracing_subscriber::fmt().with_writer(move || captured.clone())`.
/// Installing the subscriber is process-wide: a test binary that does it
/// holds nothing else (see docs/testing.md).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A throw-away CA, a server certificate it signed and a client one (PEM).
pub struct Pki {
    pub ca_pem: String,
    pub server_cert: String,
    pub server_key: String,
    /// Certificate and key.
    pub client_pem: String,
}

/// A new CA with a server certificate for `server_names` and a client
/// certificate for `prometheus`.
pub fn pki(server_names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let names = server_names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["prometheus".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}
