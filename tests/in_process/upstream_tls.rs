//! Upstream TLS: verification on by default, a private CA via `ca_file`,
//! and the lab-only `tls_insecure_skip_verify`. The simulator speaks plain
//! HTTP, so a small TLS-terminating proxy stands in front of it.

use crate::common;

use std::sync::Arc;

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use upload_session_exporter::config::{self, Environment};
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::upstream::{ErrorReason, RequestLimiter};

/// Listens with TLS on a loopback port and forwards every connection to
/// `upstream`. Returns the port and the CA certificate (PEM).
async fn tls_proxy(upstream: std::net::SocketAddr) -> (u16, String) {
    let p = pki(&["localhost"]);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(p.server_cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(p.server_key.as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, p.ca_pem)
}

struct Env;
impl Environment for Env {
    fn var(&self, _: &str) -> Option<String> {
        Some("demo".into())
    }
}

#[tokio::test]
async fn upstream_certificates_are_verified_and_a_private_ca_can_be_added() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let (port, ca_pem) = tls_proxy(sim.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    std::fs::write(dir.path().join("not-a-ca.pem"), "hello").unwrap();
    let toml = |extra: &str| {
        format!(
            "[[targets]]\nname = \"t\"\nkind = \"vault\"\nurl = \"https://localhost:{port}/vaults/main\"\n\
             username = \"demo@example.com\"\npassword_env = \"PW\"\ntimeout = \"3s\"\n{extra}"
        )
    };
    let load = |extra: &str| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml(extra)).unwrap();
        config::load_with_env(&path, &Env)
    };
    let poll = |cfg: config::Config| async move {
        let target = cfg.targets[0].clone();
        let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
        let mut state = TargetState::for_target(&target);
        poll_once(&target, &mut source, &mut state)
            .await
            .map_err(|e| (e.reason(), e.to_string()))
    };

    // Default: the private CA is not trusted.
    let (reason, msg) = poll(load("").unwrap()).await.unwrap_err();
    assert_eq!(reason, ErrorReason::Connect, "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    // ca_file (relative to the configuration file) makes it trusted.
    poll(load("ca_file = \"ca.pem\"\n").unwrap()).await.unwrap();
    // The lab switch works too (and is logged loudly).
    poll(load("tls_insecure_skip_verify = true\n").unwrap())
        .await
        .unwrap();

    let err = load("ca_file = \"not-a-ca.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("targets[0].ca_file:") && err.contains("holds no PEM certificate"),
        "{err}"
    );
    let err = load("ca_file = \"missing.pem\"\n").unwrap_err().to_string();
    assert!(err.contains("targets[0].ca_file: cannot read"), "{err}");
    sim.shutdown().await;
}
