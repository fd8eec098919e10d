//! `/sessions` in a real browser: Debian's headless Chromium loads the page
//! of the exporter running `--demo`, the DOM it built is checked (rows,
//! states, filters), and screenshots at 1280 and 390 px are kept under
//! target/test-artifacts/ and checked not to be blank. Without Chromium the
//! tests print SKIPPED, except in CI, where they fail (`.ci/run` installs
//! it).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_sim::SessionSeed;

const HOSTILE_FILE: &str = "/u10001400/<img src=x onerror=alert(1)>.bin";

/// The browser, or `None` (after saying SKIPPED) outside CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
            panic!("chromium is required in CI (apt-get install chromium; .ci/run does it)");
        }
        eprintln!("SKIPPED: chromium not found; install Debian's chromium package");
    }
    found
}

/// Runs headless Chromium with `args` (a fresh profile each time) and
/// returns its stdout; kills it after 90 s.
fn run_chromium(browser: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?}: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn dump_dom(browser: &Path, url: &str) -> String {
    run_chromium(browser, &["--dump-dom".to_string(), url.to_string()])
}

/// Where screenshots are kept: target/test-artifacts/.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width, height and the inflated image data of a PNG.
fn png(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    let mut pos = 8;
    let (mut w, mut h, mut idat) = (0, 0, Vec::new());
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    (w, h, raw)
}

/// Takes a screenshot `width` px wide, keeps it, and checks it shows
/// something: the right size, and pixel data far from uniform.
fn screenshot(browser: &Path, url: &str, width: u32) -> PathBuf {
    let file = artifacts().join(format!("sessions-{width}.png"));
    let _ = std::fs::remove_file(&file);
    run_chromium(
        browser,
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={width},900"),
            url.to_string(),
        ],
    );
    let size = std::fs::metadata(&file).unwrap().len();
    let (w, h, raw) = png(&file);
    assert_eq!((w, h), (width, 900), "{}", file.display());
    // A blank page compresses to a few KB and inflates to scanlines of one
    // repeated value; this one has text, badges and bars.
    assert!(size > 15_000, "{}: only {size} bytes", file.display());
    let mut seen = [false; 256];
    for b in &raw {
        seen[*b as usize] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    let busy = raw.iter().filter(|b| **b != 0).count();
    assert!(
        distinct > 64 && busy * 100 > raw.len(),
        "{} looks blank: {distinct} distinct bytes, {busy} of {} non-zero",
        file.display(),
        raw.len()
    );
    file
}

/// The exporter binary running `--demo`, killed on drop.
struct Demo {
    child: Child,
    port: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upload_session_exporter"))
        .args(["--demo", "--web.listen-address", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exporter starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(port.parse::<u16>().ok());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("the demo says where it listens");
    Demo { child, port }
}

/// The session rows, each from its target's name on (`<tr class="urgent"
/// data-target="...` or `<tr data-target="...`).
fn rows(dom: &str) -> Vec<&str> {
    dom.split("<tr ")
        .skip(1)
        .filter_map(|r| r.split_once("data-target=\"").map(|(_, rest)| rest))
        .collect()
}

#[tokio::test]
async fn the_demo_page_in_a_real_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let demo = start_demo();
    let base = format!("http://127.0.0.1:{}", demo.port);
    let ready = format!("{base}/-/ready");
    assert!(
        eventually(Duration::from_secs(30), || async {
            get(&ready).await.status() == 200
        })
        .await,
        "the demo never got ready"
    );

    let url = format!("{base}/sessions");
    let b = browser.clone();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &url))
        .await
        .unwrap();
    // A header per target, up.
    for t in [
        "demo-vault",
        "demo-sitevault",
        "demo-deepset",
        "demo-s3:demo-uploads",
    ] {
        assert!(
            dom.contains(&format!("<section class=\"target\" data-target=\"{t}\">")),
            "{t} missing:\n{dom}"
        );
        assert!(dom.contains(&format!("<option value=\"{t}\">{t}</option>")));
    }
    assert_eq!(dom.matches("<span class=\"badge up\">up</span>").count(), 4);
    // The demo's sessions: Vault uploads stalled and at risk, deepset
    // sessions open and closed; the most urgent first.
    let all = rows(&dom);
    assert!(all.len() >= 40, "{} rows", all.len());
    let urgent: Vec<bool> = all
        .iter()
        .map(|r| {
            let tag = r.split('>').next().unwrap();
            tag.contains("stalled") || tag.contains("at_risk")
        })
        .collect();
    assert!(urgent[0], "first row: {}", all[0]);
    let calm = urgent.iter().position(|u| !u).unwrap();
    assert!(
        urgent[calm..].iter().all(|u| !u),
        "stalled or at-risk rows after calm ones: {urgent:?}"
    );
    for state in ["stalled", "at_risk", "awaiting_commit", "open", "closed"] {
        assert!(
            all.iter()
                .any(|r| r.split('>').next().unwrap().contains(state)),
            "no {state} row"
        );
    }
    assert!(dom.contains("<span class=\"badge stalled\">stalled</span>"));
    assert!(dom.contains("<progress max=\"1000\""));
    // The filter form.
    assert!(dom.contains("<form class=\"filters\" method=\"get\" action=\"/sessions\">"));
    assert!(dom.contains("<select name=\"state\">"));
    assert!(dom.contains("<input name=\"owner_id\""));

    // Filtered: the stalled sessions of one target, and the form shows it.
    let url = format!("{base}/sessions?target=demo-vault&state=stalled");
    let b = browser.clone();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &url))
        .await
        .unwrap();
    let stalled = rows(&dom);
    assert!(!stalled.is_empty(), "{dom}");
    for r in &stalled {
        let tag = r.split('>').next().unwrap();
        assert!(tag.starts_with("demo-vault\""), "{tag}");
        assert!(tag.contains("stalled"), "{tag}");
    }
    assert!(dom.contains("<option value=\"demo-vault\" selected=\"\">"));
    assert!(dom.contains("<option value=\"stalled\" selected=\"\">"));
    assert!(!dom.contains("data-target=\"demo-deepset\"><td"));

    // Screenshots, kept for people to look at.
    for width in [1280, 390] {
        let url = format!("{base}/sessions");
        let b = browser.clone();
        let file = tokio::task::spawn_blocking(move || screenshot(&b, &url, width))
            .await
            .unwrap();
        eprintln!("screenshot: {}", file.display());
    }
}

#[tokio::test]
async fn hostile_file_names_stay_text_in_a_real_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let vault = sim.vault("main").unwrap();
    vault.insert_session(SessionSeed::new(HOSTILE_FILE, 10001400, 100, sim.now()));
    let cfg = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: vec![vault_target(&sim, "t", "main")],
    };
    let exporter = start_exporter(cfg).await;
    let ready = format!("http://{}/-/ready", exporter.addr());
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&ready).await.status() == 200
        })
        .await
    );
    let url = format!("http://{}/sessions", exporter.addr());
    let dom = tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
        .await
        .unwrap();
    // The browser parsed no element out of the name: it is text.
    assert!(
        dom.contains("/u10001400/&lt;img src=x onerror=alert(1)&gt;.bin"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "{dom}");
    assert_eq!(rows(&dom).len(), 1);
    exporter.stop().await;
    sim.shutdown().await;
}
