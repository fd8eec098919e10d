//! boto3 as a real client of the S3 side: runs `s3_boto3.py` against a
//! simulator on 127.0.0.1:0, path-style and virtual-hosted. Python comes from `$USE_PYTHON`, else
//! `.venv/bin/python` at the workspace root (`.ci/run` makes it). Without
//! a Python that has boto3 the test is skipped loudly, except in CI (`CI`
//! set), where it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use upload_session_sim::{
    S3Spec, S3User, Scenario, SimConfig, Simulator, S3_DEMO_ACCESS_KEY_ID,
    S3_DEMO_SECRET_ACCESS_KEY,
};

/// The simulator's virtual-hosted domain; `.test` names never resolve, so
/// the script reaches them through the simulator as its HTTP proxy.
const DOMAIN: &str = "s3.sim.test";

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("USE_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    venv.exists().then_some(venv)
}

fn has_boto3(py: &Path) -> bool {
    Command::new(py)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_multipart_uploads_paging_lifecycle_and_errors() {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let py = match python() {
        Some(p) if has_boto3(&p) => p,
        other => {
            let why = match other {
                Some(p) => format!("{} cannot import boto3", p.display()),
                None => "no $USE_PYTHON and no .venv/bin/python at the workspace root".to_owned(),
            };
            assert!(!in_ci, "boto3 test cannot run in CI: {why}");
            eprintln!(
                "\n!!!!! SKIPPED boto3_drives_multipart_uploads_paging_lifecycle_and_errors: {why}.\n\
                 !!!!! Run `python3 -m venv .venv && .venv/bin/pip install boto3` (see .ci/run) \
                 or set USE_PYTHON.\n"
            );
            return;
        }
    };
    let mut s3 = S3Spec::new();
    s3.domain = Some(DOMAIN.to_owned());
    let config = SimConfig {
        scenario: Scenario::Idle,
        seed: 1,
        vaults: Vec::new(),
        deepset: Vec::new(),
        s3: Some(s3),
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("simulator starts");
    let endpoint = sim.s3_url().expect("S3 side");
    let arn = S3User::demo().identity.id;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_boto3.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(script)
            .args([
                endpoint.as_str(),
                S3_DEMO_ACCESS_KEY_ID,
                S3_DEMO_SECRET_ACCESS_KEY,
                arn.as_str(),
                DOMAIN,
            ])
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "s3_boto3.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all boto3 checks passed"), "{stdout}");
    // The script's ten requests to bucket hosts reached the simulator as such.
    let ctl = sim.s3().expect("S3 side");
    assert_eq!(ctl.virtual_hosted_requests(), 10);
    sim.shutdown().await;
}
