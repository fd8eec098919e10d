//! The `upload_session_sim` binary as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_upload_session_sim");

/// One HTTP/1.1 request with `Connection: close`; the status code.
fn status(addr: &str, method: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// Starts the binary on a free port and returns it with its `host:port`.
fn start(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--scenario", "idle", "--listen", "127.0.0.1:0"])
        .args(extra)
        .args(["--log.level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("upload_session_sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .trim_end_matches('/')
        .to_string();
    (child, addr)
}

/// `--admin` serves the admin API (a fault armed over it takes effect);
/// without the flag there is none.
#[test]
fn admin_flag_serves_the_admin_api() {
    let fault = r#"{"api":"vault","vault":"main","endpoint":"api_versions","kind":"http_status","status":503}"#;
    for admin in [true, false] {
        let (mut child, addr) = start(if admin { &["--admin"] } else { &[] });
        let armed = status(&addr, "POST", "/_sim/faults", fault);
        let api = status(&addr, "GET", "/api/", "");
        child.kill().ok();
        child.wait().ok();
        if admin {
            assert_eq!((armed, api), (201, 503));
        } else {
            assert_eq!((armed, api), (404, 200));
        }
    }
}

fn output(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// It introduces itself as the simulator, not as the exporter.
#[test]
fn the_simulator_says_what_it_is() {
    let (code, help, _) = output(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.starts_with("Simulator of"), "{help}");
    assert!(!help.contains("Prometheus exporter"), "{help}");
    assert!(help.contains("Usage: upload_session_sim"), "{help}");
    let (code, version, _) = output(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        version.trim(),
        format!("upload_session_sim {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The lines of a pipe, read on a thread.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A child process that is killed when the test ends, even by a panic.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGTERM, then the exit code (within 10 s).
fn stop(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// stdout is the banner (addresses, logins) and nothing else; logs go to
/// stderr, without ANSI colours when stderr is a pipe; `--log.format json`
/// makes them JSON.
#[test]
fn the_simulator_logs_to_stderr_without_colours() {
    for format in ["logfmt", "json"] {
        let child = Command::new(BIN)
            .args([
                "--scenario",
                "idle",
                "--listen",
                "127.0.0.1:0",
                "--log.format",
                format,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("upload_session_sim starts");
        let mut child = Reap(child);
        let out = lines_of(child.0.stdout.take().unwrap());
        let err = lines_of(child.0.stderr.take().unwrap());
        let first = out
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_default();
        assert!(
            first.contains("listening on http://127.0.0.1:"),
            "{first:?}"
        );
        assert_eq!(stop(&mut child.0), Some(0));
        let mut stdout = vec![first];
        while let Ok(l) = out.recv_timeout(Duration::from_secs(2)) {
            stdout.push(l);
        }
        let mut stderr = Vec::new();
        while let Ok(l) = err.recv_timeout(Duration::from_secs(2)) {
            stderr.push(l);
        }
        let shutdown = stderr
            .iter()
            .find(|l| l.contains("shutting down"))
            .unwrap_or_else(|| panic!("no shutdown line on stderr: {stderr:?}"));
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(shutdown).expect("a JSON line");
            assert_eq!(v["level"], "INFO", "{v}");
        } else {
            assert!(shutdown.contains("INFO"), "{shutdown}");
        }
        for l in stdout.iter().chain(&stderr) {
            assert!(!l.contains('\u{1b}'), "ANSI escape in {l:?}");
        }
        assert!(
            !stdout.iter().any(|l| l.contains("shutting down")),
            "{stdout:?}"
        );
    }
}
