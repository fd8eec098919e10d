//! `--web.config.file`: TLS, mutual TLS and basic auth over real TLS
//! connections, certificate rotation, and refusal of bad files.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, ServeOptions};
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_exporter::web::WebConfigWatcher;

use common::{pki, Pki};

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn install(dir: &Path, p: &Pki) {
    write(dir, "server.crt", &p.server_cert);
    write(dir, "server.key", &p.server_key);
    write(dir, "ca.crt", &p.ca_pem);
}

async fn start(web: &Path) -> Exporter {
    let config = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: vec![],
    };
    let opts = ServeOptions {
        web: Some(Arc::new(WebConfigWatcher::new(web).unwrap())),
        ..ServeOptions::loopback()
    };
    Exporter::start(config, None, opts, CancellationToken::new())
        .await
        .unwrap()
}

fn client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

const PASSWORD: &str = "scrape-pw-7f1e";

#[tokio::test]
async fn tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(&["localhost", "127.0.0.1"]);
    install(dir.path(), &p);
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n\
             basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    );
    let exporter = start(&dir.path().join("web.yml")).await;
    let base = format!("https://localhost:{}", exporter.addr().port());
    let c = client(&p.ca_pem, None);

    let r = c
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "deny");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("upload_session_exporter_build_info{"));

    let r = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"upload_session_exporter\""
    );
    assert!(!r.text().await.unwrap().contains("upload_session"));
    let r = c
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/metrics"))
        .basic_auth("someone", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Probes need no credentials.
    assert_eq!(
        c.get(format!("{base}/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/")).send().await.unwrap().status(),
        401
    );

    // Plain HTTP to the TLS port gets no metrics.
    let mut s = tokio::net::TcpStream::connect(exporter.addr())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400 Bad Request"), "{answer}");
    assert!(answer.contains("Client sent an HTTP request to an HTTPS server."));
    assert!(!answer.contains("upload_session"));

    // A client that does not trust our CA fails the handshake.
    let stranger = client(&pki(&["localhost", "127.0.0.1"]).ca_pem, None);
    assert!(stranger
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .is_err());
    exporter.stop().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(&["localhost", "127.0.0.1"]);
    install(dir.path(), &p);
    write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let exporter = start(&dir.path().join("web.yml")).await;
    let url = format!("https://localhost:{}/metrics", exporter.addr().port());
    assert!(
        client(&p.ca_pem, None).get(&url).send().await.is_err(),
        "no client certificate"
    );
    let other = pki(&["localhost", "127.0.0.1"]);
    assert!(
        client(&p.ca_pem, Some(&other.client_pem))
            .get(&url)
            .send()
            .await
            .is_err(),
        "certificate from another CA"
    );
    let r = client(&p.ca_pem, Some(&p.client_pem))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    exporter.stop().await;
}

#[tokio::test]
async fn certificates_rotate_and_a_broken_change_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki(&["localhost", "127.0.0.1"]);
    install(dir.path(), &first);
    write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let exporter = start(&dir.path().join("web.yml")).await;
    let url = format!("https://localhost:{}/-/healthy", exporter.addr().port());
    assert_eq!(
        client(&first.ca_pem, None)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let second = pki(&["localhost", "127.0.0.1"]);
    // Make sure the modification time moves on coarse file systems.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    install(dir.path(), &second);
    let mut rotated = false;
    for _ in 0..40 {
        if client(&second.ca_pem, None).get(&url).send().await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "new certificate not served");
    assert!(
        client(&first.ca_pem, None).get(&url).send().await.is_err(),
        "old certificate still served"
    );

    // A broken key: logged, and the second certificate stays in use.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write(dir.path(), "server.key", "not a key");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let r = client(&second.ca_pem, None).get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    exporter.stop().await;
}

#[test]
fn bad_web_configs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(&["localhost", "127.0.0.1"]);
    install(dir.path(), &p);
    let cases = [
        ("tls_server_config:\n  cert_file: server.crt\n", "needs both cert_file and key_file"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n", "TLS10 is not supported"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        ("basic_auth_users:\n  prometheus: plaintext\n", "basic_auth_users.prometheus: not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cert_fiel: x\n", "cert_fiel"),
    ];
    for (yaml, want) in cases {
        write(dir.path(), "web.yml", yaml);
        let err = WebConfigWatcher::new(&dir.path().join("web.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("web.yml"), "{err}");
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let missing = WebConfigWatcher::new(&dir.path().join("absent.yml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.yml: cannot read"), "{missing}");
}
