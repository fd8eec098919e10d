//! `--web.config.file`: TLS and basic auth for the HTTP server, in the YAML
//! format of the Prometheus exporter-toolkit, so the same file works for
//! node_exporter and this exporter.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: relative to this file
//!   key_file: server.key
//!   client_ca_file: ca.crt         # optional: mutual TLS
//!   client_auth_type: RequireAndVerifyClientCert
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! The file and the files it names are checked for changes at most once a
//! second, when a connection arrives; a changed set is loaded and used for
//! new connections (certificates rotate without a restart). If the new set
//! is invalid, the error is logged and the previous one stays in force.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Why a web configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct WebConfigError {
    /// The web configuration file.
    pub file: String,
    /// What is wrong and what to do.
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted for compatibility; rustls picks its own secure suites.
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A loaded web configuration.
pub struct WebConfig {
    tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// Successful (user, SHA-256 of password) pairs: bcrypt is slow on
    /// purpose, and Prometheus sends the same credentials every scrape.
    verified: Mutex<HashSet<(String, [u8; 32])>>,
    /// Bounds concurrent bcrypt checks so bad passwords cannot eat the CPU.
    checks: Semaphore,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No users configured, or the credentials are right.
    Allowed,
    /// Missing or wrong credentials.
    Denied,
}

impl WebConfig {
    /// Loads and checks the file and everything it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let file = path.display().to_string();
        let err = |message: String| WebConfigError {
            file: file.clone(),
            message,
        };
        if !path.is_file() {
            return Err(err("cannot read the web configuration: no such file".into()));
        }
        let raw: RawWebConfig = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| err(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = vec![path.to_path_buf()];
        let tls = match raw.tls_server_config {
            Some(t) => Some(build_tls(t, dir, &mut files).map_err(err)?),
            None => None,
        };
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )));
            }
            users.insert(user, hash);
        }
        let mut headers = Vec::new();
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                tracing::debug!(
                    "http_server_config.http2 is ignored: the exporter serves HTTP/1.1"
                );
            }
            for (k, v) in http.headers.unwrap_or_default() {
                let name = hyper::header::HeaderName::try_from(k.as_str()).map_err(|_| {
                    err(format!(
                        "http_server_config.headers: {k:?} is not a header name"
                    ))
                })?;
                let value = hyper::header::HeaderValue::try_from(v.as_str()).map_err(|_| {
                    err(format!(
                        "http_server_config.headers.{k}: not a valid header value"
                    ))
                })?;
                headers.push((name, value));
            }
        }
        Ok(WebConfig {
            tls,
            users,
            headers,
            verified: Mutex::new(HashSet::new()),
            checks: Semaphore::new(2),
            files,
        })
    }

    /// The TLS acceptor, if TLS is configured.
    pub fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// True if basic auth is required.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&str>) -> Auth {
        if self.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Auth::Denied;
        };
        let Some(hash) = self.users.get(&user) else {
            return Auth::Denied;
        };
        let key = (user, Sha256::digest(password.as_bytes()).into());
        if self.verified.lock().is_ok_and(|v| v.contains(&key)) {
            return Auth::Allowed;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return Auth::Denied;
        };
        let hash = hash.clone();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                v.insert(key);
            }
            Auth::Allowed
        } else {
            Auth::Denied
        }
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, password))
}

fn build_tls(t: RawTls, dir: &Path, files: &mut Vec<PathBuf>) -> Result<TlsAcceptor, String> {
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_relative() {
            dir.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let (Some(cert), Some(key)) = (t.cert_file.as_deref(), t.key_file.as_deref()) else {
        return Err("tls_server_config needs both cert_file and key_file".into());
    };
    let (cert, key) = (resolve(cert), resolve(key));
    files.push(cert.clone());
    files.push(key.clone());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key.display()))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let v = |s: &Option<String>, default: u8| -> Result<u8, String> {
            match s.as_deref() {
                None => Ok(default),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some(other @ ("TLS10" | "TLS11")) => Err(format!(
                    "{other} is not supported (insecure); use TLS12 or TLS13"
                )),
                Some(other) => Err(format!(
                    "{other:?} is not a TLS version; use TLS12 or TLS13"
                )),
            }
        };
        let min =
            v(&t.min_version, 12).map_err(|e| format!("tls_server_config.min_version: {e}"))?;
        let max =
            v(&t.max_version, 13).map_err(|e| format!("tls_server_config.max_version: {e}"))?;
        if min > max {
            return Err("tls_server_config: min_version is above max_version".into());
        }
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(n, _)| (min..=max).contains(n))
            .map(|(_, v)| v)
            .collect()
    };
    if t.cipher_suites.is_some()
        || t.curve_preferences.is_some()
        || t.prefer_server_cipher_suites.is_some()
    {
        tracing::info!("tls_server_config: cipher_suites, curve_preferences and prefer_server_cipher_suites are ignored; rustls uses its own secure defaults");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth_type = t
        .client_auth_type
        .as_deref()
        .unwrap_or(if t.client_ca_file.is_some() {
            "RequireAndVerifyClientCert"
        } else {
            "NoClientCert"
        });
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let Some(ca) = t.client_ca_file.as_deref() else {
                return Err(format!(
                    "tls_server_config.client_auth_type {auth_type} needs client_ca_file"
                ));
            };
            let ca = resolve(ca);
            files.push(ca.clone());
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
                roots.add(c).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth_type == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            let verifier = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type {other:?} is not supported; use NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("tls_server_config: certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Keeps the web configuration current: re-reads it when the file or any
/// file it names changes.
#[derive(Debug)]
pub struct WebConfigWatcher {
    path: PathBuf,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    current: Arc<WebConfig>,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl WebConfigWatcher {
    /// Loads the file; an error here stops the start-up.
    pub fn new(path: &Path) -> Result<WebConfigWatcher, WebConfigError> {
        let config = WebConfig::load(path)?;
        let stamps = stamps(&config.files);
        Ok(WebConfigWatcher {
            path: path.to_path_buf(),
            state: Mutex::new(WatchState {
                current: Arc::new(config),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Option<Arc<WebConfig>> {
        let mut st = self.state.lock().ok()?;
        if st.checked.elapsed() >= Duration::from_secs(1) {
            st.checked = Instant::now();
            let now = stamps(&st.current.files);
            // Any of the files changed (or appeared, or vanished): load.
            if now != st.stamps {
                match WebConfig::load(&self.path) {
                    Ok(c) => {
                        st.stamps = stamps(&c.files);
                        st.current = Arc::new(c);
                        tracing::info!(file = %self.path.display(), "web configuration reloaded");
                    }
                    Err(e) => {
                        // Do not retry a broken set every second.
                        st.stamps = now;
                        tracing::error!(error = %e, "web configuration not reloaded; the previous one stays in force");
                    }
                }
            }
        }
        Some(Arc::clone(&st.current))
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        // "prometheus:s3cr=t" in base64.
        assert_eq!(
            parse_basic("Basic cHJvbWV0aGV1czpzM2NyPXQ="),
            Some(("prometheus".into(), "s3cr=t".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
