//! Configuration, web configuration and secret files (issue 14): anything
//! but a regular file is refused with its name, sizes are capped, and a
//! reload reads files off the async runtime, so a FIFO (or a hung file
//! system) cannot stall the server.

#![cfg(unix)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, Loader, ServeOptions};
use upload_session_exporter::config;
use upload_session_exporter::web::WebConfigWatcher;

fn target_toml(secret_line: &str) -> String {
    format!(
        "[[targets]]\nname = \"a\"\nkind = \"vault\"\nurl = \"http://127.0.0.1:9\"\n\
         username = \"demo@example.com\"\n{secret_line}\npoll_interval = \"1m\"\ntimeout = \"2s\"\n"
    )
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo failed");
}

fn load_err(path: &Path) -> String {
    config::load(path).unwrap_err().to_string()
}

#[test]
fn secret_files_must_be_small_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    // /dev/zero would be read until memory runs out.
    std::fs::write(&cfg, target_toml("password_file = \"/dev/zero\"")).unwrap();
    let err = load_err(&cfg);
    assert!(err.contains("/dev/zero is not a regular file"), "{err}");

    let big = dir.path().join("big-pw");
    std::fs::write(&big, vec![b'x'; 64 * 1024 + 1]).unwrap();
    std::fs::write(&cfg, target_toml("password_file = \"big-pw\"")).unwrap();
    let err = load_err(&cfg);
    assert!(err.contains("big-pw is larger than 64 KiB"), "{err}");

    // 64 KiB exactly is still a secret.
    std::fs::write(&big, vec![b'x'; 64 * 1024]).unwrap();
    assert!(config::load(&cfg).is_ok());

    let fifo = dir.path().join("pw-fifo");
    mkfifo(&fifo);
    std::fs::write(&cfg, target_toml("password_file = \"pw-fifo\"")).unwrap();
    let t = Instant::now();
    let err = load_err(&cfg);
    assert!(err.contains("pw-fifo is not a regular file"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn configuration_files_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let mut body = target_toml("password_file = \"pw\"");
    std::fs::write(&cfg, &body).unwrap();
    assert!(config::load(&cfg).is_ok());
    // A comment makes it larger than any configuration needs to be.
    body.push('#');
    body.push_str(&"x".repeat(4 * 1024 * 1024));
    std::fs::write(&cfg, &body).unwrap();
    let err = load_err(&cfg);
    assert!(
        err.contains("exporter.toml is larger than 4096 KiB"),
        "{err}"
    );

    // The web configuration and the files it names too.
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
    )
    .unwrap();
    let err = WebConfigWatcher::new(&dir.path().join("web.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cert_file /dev/zero is not a regular file"),
        "{err}"
    );
    std::fs::write(dir.path().join("web.yml"), vec![b'#'; 4 * 1024 * 1024 + 1]).unwrap();
    let err = WebConfigWatcher::new(&dir.path().join("web.yml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than 4096 KiB"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_secret_fails_the_reload_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    std::fs::write(&cfg, target_toml("password_file = \"pw\"")).unwrap();
    let p = cfg.clone();
    let loader: Loader = Arc::new(move || config::load(&p).map_err(|e| e.to_string()));
    let opts = ServeOptions {
        enable_lifecycle: true,
        ..ServeOptions::loopback()
    };
    let e = Exporter::start(
        loader().unwrap(),
        Some(loader),
        opts,
        CancellationToken::new(),
    )
    .await
    .unwrap();

    std::fs::remove_file(&pw).unwrap();
    mkfifo(&pw);
    // Should a reload block on the FIFO anyway, this writer lets it go once
    // the test has failed (with the fix nobody reads: it waits forever,
    // detached).
    let writer = pw.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        let _ = std::fs::write(writer, "secret\n");
    });

    let base = format!("http://{}", e.addr());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let reload = tokio::spawn({
        let c = c.clone();
        let base = base.clone();
        async move {
            let r = c.post(format!("{base}/-/reload")).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        }
    });
    for _ in 0..5 {
        let r = c.get(format!("{base}/-/healthy")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = reload.await.unwrap().expect("the reload answers");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("pw is not a regular file"), "{body}");
    assert!(
        body.contains("running configuration stays in force"),
        "{body}"
    );
    // The page is assembled a moment after the change (the publisher lets
    // a burst of changes settle first), so it is read until it shows.
    let mut shown = String::new();
    for _ in 0..50 {
        shown = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if shown.contains("upload_session_exporter_config_last_reload_successful 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shown.contains("upload_session_exporter_config_last_reload_successful 0"),
        "{shown}"
    );
    e.stop().await;
}
