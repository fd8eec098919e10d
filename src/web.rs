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
//! The file and the files it names are checked for changes once a second,
//! off the async runtime (a hung file system stalls the check, not the
//! server); a changed set is loaded and used for new connections
//! (certificates rotate without a restart). If the new set is invalid, the
//! error is logged and the previous one stays in force.
//!
//! Basic auth is built so that failed attempts stay cheap for the server
//! and tell an attacker nothing (see [`AuthShared`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::settings::{read_file_capped, MAX_CONFIG_FILE_BYTES};

/// bcrypt uses the first 72 bytes of a password only; longer ones are
/// refused, as Go's bcrypt (and so the exporter-toolkit) does.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Successful logins remembered (each saves a bcrypt run per scrape).
pub const VERIFIED_CACHE_ENTRIES: usize = 1024;
/// Failed logins a client address may have in a burst before further
/// attempts are refused without running bcrypt...
pub const FAILURE_BURST: f64 = 10.0;
/// ...and how many more it earns per second.
pub const FAILURE_REFILL_PER_SEC: f64 = 1.0;
/// Client addresses tracked for failures at most.
const FAILURE_TRACKED_ADDRESSES: usize = 16 * 1024;

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
    /// Checked for unknown users, so that they cost as much time as a
    /// known user with a wrong password (no user enumeration by timing).
    dummy_hash: String,
    /// Cache and limits shared by every configuration loaded by a watcher.
    auth: Arc<AuthShared>,
    files: Vec<PathBuf>,
}

/// What outlives a reload of the web configuration: the cache of
/// successful logins (keyed by user, hash and password, so an unchanged
/// user entry stays cached and a changed one does not) and the failure
/// accounting.
///
/// bcrypt is slow on purpose; unbounded, failed attempts would take every
/// CPU and queue Prometheus's own login behind them. So:
/// - a client address (an IPv6 /64) may fail [`FAILURE_BURST`] times, then
///   [`FAILURE_REFILL_PER_SEC`] times a second; beyond that its attempts
///   are refused without running bcrypt (cached logins still pass);
/// - clients without recent failures verify in their own lane, so a flood
///   of bad passwords queues behind itself, not in front of a valid login.
pub struct AuthShared {
    /// Keys the cache so that it holds no plain password digest.
    salt: [u8; 32],
    verified: Mutex<Lru>,
    failures: Mutex<HashMap<IpAddr, Bucket>>,
    /// bcrypt runs for clients without recent failures.
    fresh: Semaphore,
    /// bcrypt runs for clients that failed recently.
    suspect: Semaphore,
}

impl Default for AuthShared {
    fn default() -> Self {
        AuthShared {
            salt: rand::random(),
            verified: Mutex::new(Lru::new(VERIFIED_CACHE_ENTRIES)),
            failures: Mutex::new(HashMap::new()),
            fresh: Semaphore::new(2),
            suspect: Semaphore::new(1),
        }
    }
}

impl std::fmt::Debug for AuthShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthShared").finish_non_exhaustive()
    }
}

/// A bounded set that forgets the least recently used entry.
#[derive(Debug)]
pub struct Lru {
    cap: usize,
    tick: u64,
    entries: HashMap<[u8; 32], u64>,
}

impl Lru {
    /// An empty set of at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// True if present (and marks it used).
    pub fn hit(&mut self, key: &[u8; 32]) -> bool {
        self.tick += 1;
        match self.entries.get_mut(key) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Adds `key`, forgetting the least recently used entry if full (a
    /// scan, but only after a successful bcrypt run).
    pub fn insert(&mut self, key: [u8; 32]) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, self.tick);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A client's failure allowance (a token bucket) and attempts in progress.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Last failure, if any.
    failed: Option<Instant>,
    /// Verifications running or queued.
    pending: u32,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            tokens: FAILURE_BURST,
            at: now,
            failed: None,
            pending: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * FAILURE_REFILL_PER_SEC;
        self.tokens = (self.tokens + earned).min(FAILURE_BURST);
        self.at = now;
    }

    /// Nothing to remember: no attempt running, no recent failure.
    fn forgettable(&self, now: Instant) -> bool {
        self.pending == 0
            && self
                .failed
                .is_none_or(|t| now.saturating_duration_since(t) >= SUSPECT_FOR)
    }
}

/// A client that failed within this long verifies in the slow lane.
const SUSPECT_FOR: Duration = Duration::from_secs(60);

/// Where a client's failures are counted: its address, or its /64 for
/// IPv6 (one host usually owns the whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// An attempt in progress; counted until dropped (also when the client
/// goes away while it waits).
struct Pending<'a> {
    auth: &'a AuthShared,
    key: IpAddr,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Ok(mut clients) = self.auth.failures.lock() {
            let now = Instant::now();
            let forget = clients.get_mut(&self.key).is_some_and(|b| {
                b.pending = b.pending.saturating_sub(1);
                b.refill(now);
                b.tokens >= FAILURE_BURST && b.forgettable(now)
            });
            if forget {
                clients.remove(&self.key);
            }
        }
    }
}

/// How an attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// No recent failures.
    Fresh,
    /// Failed recently, allowance left.
    Suspect,
    /// Out of allowance: refused without bcrypt.
    Blocked,
}

impl AuthShared {
    /// Decides how an attempt from `client` proceeds and counts it as
    /// pending until the returned guard is dropped. A client may have no
    /// more attempts in progress than failures left in its allowance, and
    /// only its first in the fresh lane: opening many connections at once
    /// buys no more bcrypt runs.
    fn admit(&self, client: IpAddr) -> (Standing, Option<Pending<'_>>) {
        let Ok(mut clients) = self.failures.lock() else {
            return (Standing::Suspect, None);
        };
        let now = Instant::now();
        let key = client_key(client);
        if !clients.contains_key(&key) && clients.len() >= FAILURE_TRACKED_ADDRESSES {
            clients.retain(|_, b| !b.forgettable(now));
            if clients.len() >= FAILURE_TRACKED_ADDRESSES {
                // Too many clients to tell apart: all in the slow lane.
                return (Standing::Suspect, None);
            }
        }
        let b = clients.entry(key).or_insert_with(|| Bucket::new(now));
        b.refill(now);
        let standing = if b.tokens - f64::from(b.pending) < 1.0 {
            return (Standing::Blocked, None);
        } else if b.pending == 0
            && b.failed
                .is_none_or(|t| now.saturating_duration_since(t) >= SUSPECT_FOR)
        {
            Standing::Fresh
        } else {
            Standing::Suspect
        };
        b.pending += 1;
        (standing, Some(Pending { auth: self, key }))
    }

    #[cfg(test)]
    fn standing(&self, client: IpAddr) -> Standing {
        self.admit(client).0
    }

    fn record_failure(&self, client: IpAddr) {
        let Ok(mut clients) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        let key = client_key(client);
        if !clients.contains_key(&key) && clients.len() >= FAILURE_TRACKED_ADDRESSES {
            clients.retain(|_, b| !b.forgettable(now));
            if clients.len() >= FAILURE_TRACKED_ADDRESSES {
                return;
            }
        }
        let b = clients.entry(key).or_insert_with(|| Bucket::new(now));
        b.refill(now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        b.failed = Some(now);
    }

    fn key(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut d = Sha256::new();
        d.update(self.salt);
        for part in [user, hash, password] {
            d.update((part.len() as u64).to_le_bytes());
            d.update(part.as_bytes());
        }
        d.finalize().into()
    }

    /// Entries in the cache of successful logins.
    pub fn cached_logins(&self) -> usize {
        self.verified.lock().map_or(0, |v| v.len())
    }
}

/// A bcrypt hash of a random password at `cost`, made once per cost.
fn dummy_hash(cost: u32) -> String {
    static HASHES: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    let hashes = HASHES.get_or_init(Default::default);
    if let Some(h) = hashes.lock().ok().and_then(|m| m.get(&cost).cloned()) {
        return h;
    }
    use rand::Rng as _;
    let password: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let h = bcrypt::hash(&password, cost)
        .or_else(|_| bcrypt::hash(&password, bcrypt::DEFAULT_COST))
        .unwrap_or_default();
    if let Ok(mut m) = hashes.lock() {
        m.insert(cost, h.clone());
    }
    h
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
    /// Loads and checks the file and everything it names (blocking IO).
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        Self::load_shared(path, Arc::new(AuthShared::default()))
    }

    /// [`WebConfig::load`] keeping the login cache and failure accounting
    /// of `auth`.
    pub fn load_shared(path: &Path, auth: Arc<AuthShared>) -> Result<WebConfig, WebConfigError> {
        let file = path.display().to_string();
        let err = |message: String| WebConfigError {
            file: file.clone(),
            message,
        };
        if !path.exists() {
            return Err(err("cannot read the web configuration: no such file".into()));
        }
        let bytes =
            read_file_capped(path, MAX_CONFIG_FILE_BYTES, "web configuration").map_err(err)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| err("the web configuration is not UTF-8 text".into()))?;
        let raw: RawWebConfig = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
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
        let mut cost = None;
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                return Err(err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )));
            };
            cost = cost.max(Some(parts.get_cost()));
            users.insert(user, hash);
        }
        // The dearest cost configured: an unknown user never answers
        // faster than a known one.
        let dummy_hash = cost.map(dummy_hash).unwrap_or_default();
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
            dummy_hash,
            auth,
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

    /// Checks an `Authorization` header value from `client`.
    pub async fn check(&self, authorization: Option<&str>, client: IpAddr) -> Auth {
        if self.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Auth::Denied;
        };
        let auth = &self.auth;
        if password.len() > MAX_PASSWORD_BYTES {
            // bcrypt would ignore the rest: any suffix would pass.
            auth.record_failure(client);
            return Auth::Denied;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let key = auth.key(&user, &hash, &password);
        if known && auth.verified.lock().is_ok_and(|mut v| v.hit(&key)) {
            return Auth::Allowed;
        }
        let (standing, _pending) = auth.admit(client);
        let lane = match standing {
            Standing::Fresh => &auth.fresh,
            Standing::Suspect => &auth.suspect,
            Standing::Blocked => {
                tracing::debug!(%client, "basic auth: too many failed attempts from this address; refused without checking");
                return Auth::Denied;
            }
        };
        let Ok(_permit) = lane.acquire().await else {
            return Auth::Denied;
        };
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        drop(_permit);
        if ok {
            if let Ok(mut v) = auth.verified.lock() {
                v.insert(key);
            }
            Auth::Allowed
        } else {
            auth.record_failure(client);
            Auth::Denied
        }
    }

    /// The login cache and failure accounting in use.
    pub fn auth_shared(&self) -> &Arc<AuthShared> {
        &self.auth
    }
}

/// Splits `Basic <base64 user:password>`; the scheme name is
/// case-insensitive (RFC 9110).
fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim_start().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
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
    // Capped reads that refuse FIFOs and devices, like every file read.
    let read = |p: &Path, key: &str| {
        read_file_capped(
            p,
            MAX_CONFIG_FILE_BYTES,
            &format!("tls_server_config.{key}"),
        )
    };
    let cert_pem = read(&cert, "cert_file")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key_pem = read(&key, "key_file")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
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
            let ca_pem = read(&ca, "client_ca_file")?;
            for c in CertificateDer::pem_slice_iter(&ca_pem) {
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
/// file it names changes ([`WebConfigWatcher::run`]).
#[derive(Debug)]
pub struct WebConfigWatcher {
    path: PathBuf,
    auth: Arc<AuthShared>,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    current: Arc<WebConfig>,
    stamps: Vec<Option<SystemTime>>,
}

impl WebConfigWatcher {
    /// Loads the file (blocking IO: call before serving); an error here
    /// stops the start-up.
    pub fn new(path: &Path) -> Result<WebConfigWatcher, WebConfigError> {
        let auth = Arc::new(AuthShared::default());
        let config = WebConfig::load_shared(path, Arc::clone(&auth))?;
        let stamps = stamps(&config.files);
        Ok(WebConfigWatcher {
            path: path.to_path_buf(),
            auth,
            state: Mutex::new(WatchState {
                current: Arc::new(config),
                stamps,
            }),
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Option<Arc<WebConfig>> {
        self.state.lock().ok().map(|st| Arc::clone(&st.current))
    }

    /// Checks the files once a second until `stop`, each check on a
    /// blocking thread; while one hangs (a stuck network file system), no
    /// other starts and the server goes on with the configuration it has.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut check: Option<tokio::task::JoinHandle<()>> = None;
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.cancelled() => return,
            }
            if check.as_ref().is_some_and(|c| !c.is_finished()) {
                if !warned {
                    warned = true;
                    tracing::warn!(file = %self.path.display(), "checking the web configuration files for changes hangs (file system?); the current configuration stays in force");
                }
                continue;
            }
            warned = false;
            let me = Arc::clone(&self);
            check = Some(tokio::task::spawn_blocking(move || me.refresh()));
        }
    }

    /// Loads the files again if any changed (or appeared, or vanished).
    /// Blocking.
    pub fn refresh(&self) {
        let (files, before) = match self.state.lock() {
            Ok(st) => (st.current.files.clone(), st.stamps.clone()),
            Err(_) => return,
        };
        let now = stamps(&files);
        if now == before {
            return;
        }
        let loaded = WebConfig::load_shared(&self.path, Arc::clone(&self.auth));
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match loaded {
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
        // Scheme names are case-insensitive.
        for scheme in ["BASIC", "basic", "bAsIc"] {
            assert_eq!(
                parse_basic(&format!("{scheme} cHJvbWV0aGV1czpzM2NyPXQ=")),
                Some(("prometheus".into(), "s3cr=t".into())),
                "{scheme}"
            );
        }
        assert_eq!(parse_basic("Basically cHJvbWV0aGV1czpzM2NyPXQ="), None);
    }

    #[test]
    fn the_login_cache_is_bounded() {
        let mut lru = Lru::new(8);
        for i in 0..100u8 {
            lru.insert([i; 32]);
            // The first entry stays: it is used all the time.
            assert!(lru.hit(&[0; 32]), "{i}");
        }
        assert_eq!(lru.len(), 8);
        assert!(!lru.hit(&[50; 32]));
        assert!(lru.hit(&[99; 32]));
    }

    #[test]
    fn failures_are_counted_per_address_and_v6_prefix() {
        let a = AuthShared::default();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(a.standing(one), Standing::Fresh);
        a.record_failure(one);
        assert_eq!(a.standing(one), Standing::Suspect);
        for _ in 0..20 {
            a.record_failure(one);
        }
        assert_eq!(a.standing(one), Standing::Blocked);
        assert_eq!(a.standing(other), Standing::Fresh);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        a.record_failure(v6);
        assert_eq!(a.standing(same_64), Standing::Suspect);
        // Attempts in progress: one in the fresh lane, then the slow one,
        // never more than the allowance left.
        let third: IpAddr = "192.0.2.3".parse().unwrap();
        let (first, _a) = a.admit(third);
        assert_eq!(first, Standing::Fresh);
        let mut held = Vec::new();
        for _ in 1..10 {
            let (s, p) = a.admit(third);
            assert_eq!(s, Standing::Suspect);
            held.push(p);
        }
        assert_eq!(a.admit(third).0, Standing::Blocked);
        drop(held);
        assert_eq!(a.admit(third).0, Standing::Suspect);
    }
}
