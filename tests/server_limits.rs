//! Slow, idle or too many clients cannot keep Prometheus from its scrape.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, ServeOptions};
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_exporter::server::Limits;

async fn exporter(limits: Limits) -> Exporter {
    let config = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: vec![],
    };
    let opts = ServeOptions {
        limits,
        ..ServeOptions::loopback()
    };
    Exporter::start(config, None, opts, CancellationToken::new())
        .await
        .unwrap()
}

/// Reads until the peer closes (or 5 s pass); returns what came.
async fn read_to_close(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slowloris_connections_are_cut_and_scrapes_get_through() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 20,
    };
    let e = exporter(limits).await;
    // Fill every slot with requests whose headers never end.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(e.addr()).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("http://{}/metrics", e.addr()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("upload_session_exporter_build_info"));
    // The scrape had to wait for a slot: the limit holds...
    assert!(
        waited >= Duration::from_millis(500),
        "no connection limit? {waited:?}"
    );
    // ...and the header timeout freed the slots quickly.
    assert!(
        waited < Duration::from_secs(5),
        "slow clients held the server: {waited:?}"
    );
    for s in &mut slow {
        assert!(
            read_to_close(s).await.is_some(),
            "a slow connection was not closed"
        );
    }
    e.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let e = exporter(Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 8,
    })
    .await;
    let mut idle = TcpStream::connect(e.addr()).await.unwrap();
    let started = Instant::now();
    let got = read_to_close(&mut idle).await;
    assert!(got.is_some(), "an idle connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
    e.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let e = exporter(Limits::default()).await;
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let huge = "a".repeat(200 * 1024);
    let _ = s
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n").as_bytes())
        .await;
    let answer = read_to_close(&mut s).await.unwrap_or_default();
    assert!(
        !answer.contains("upload_session_exporter_build_info"),
        "served a 200 KiB header"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // The server is fine afterwards.
    let r = reqwest::get(format!("http://{}/metrics", e.addr()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    e.stop().await;
}
