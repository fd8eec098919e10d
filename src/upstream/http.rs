//! HTTP plumbing shared by the upstream clients: the reqwest clients, sending
//! with error classification, and reading a body under a size cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::FetchError;
use crate::settings::TargetConfig;

/// Most bytes reserved up front for a body of announced length.
const PREALLOCATE_MAX: u64 = 4 << 20;

/// `User-Agent` of every upstream request.
pub const USER_AGENT: &str = concat!("upload_session_exporter/", env!("CARGO_PKG_VERSION"));

/// The HTTP clients of an exporter: one per TLS setting (CA bundle,
/// verification) and connect timeout, shared by every target that has it.
/// Sharing saves each target its own TLS configuration, root store and
/// connection pool (about 20 KiB apiece) and lets targets on one host reuse
/// connections. Request timeouts are set per request.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ca_pem: Option<Vec<u8>>,
    insecure: bool,
    connect_timeout: Duration,
}

impl ClientCache {
    /// The client for `target`, built on first use.
    pub fn client_for(&self, target: &TargetConfig) -> Result<reqwest::Client, FetchError> {
        if target.tls_insecure_skip_verify {
            tracing::warn!(
                target = %target.name,
                "TLS CERTIFICATE VERIFICATION IS OFF (tls_insecure_skip_verify): anyone on the network path \
                 can impersonate the upstream and take the credentials. Use only in a lab; prefer ca_file"
            );
        }
        let key = ClientKey {
            ca_pem: target.ca_pem.clone(),
            insecure: target.tls_insecure_skip_verify,
            connect_timeout: target.timeout.min(Duration::from_secs(10)),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = build_client(&key)?;
        clients.insert(key, c.clone());
        Ok(c)
    }
}

/// Builds a client: rustls with the webpki roots plus the `ca_file`, no
/// redirects (a redirect from an API would carry our Authorization header
/// to wherever it points).
fn build_client(key: &ClientKey) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(key.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(pem) = &key.ca_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| FetchError::Connect {
                endpoint: "client",
                detail: format!("ca_file: {e}"),
            })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if key.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| FetchError::Connect {
        endpoint: "client",
        detail: format!("cannot build the HTTP client: {e}"),
    })
}

/// A response whose body has been read completely (under the cap).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Sends `req` and reads the whole body, refusing more than `limit` bytes.
/// Transport failures are classified into [`FetchError`] variants.
pub async fn send(
    req: reqwest::RequestBuilder,
    endpoint: &'static str,
    timeout: Duration,
    limit: u64,
) -> Result<Response, FetchError> {
    let mut resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| classify(e, endpoint, timeout))?;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(FetchError::TooLarge { endpoint, limit });
    }
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    // One allocation for the usual answer: its announced length (capped, as
    // the announcement is the upstream's word; the cap check is below).
    let expected = resp.content_length().unwrap_or(0).min(PREALLOCATE_MAX);
    let mut body = BytesMut::with_capacity(expected as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| classify(e, endpoint, timeout))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(FetchError::TooLarge { endpoint, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body: body.freeze(),
    })
}

fn classify(e: reqwest::Error, endpoint: &'static str, timeout: Duration) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout { endpoint, timeout }
    } else if e.is_decode() {
        FetchError::Decode {
            endpoint,
            detail: error_chain(&e),
        }
    } else {
        // Connect errors, resets, a body cut short: the transport broke.
        FetchError::Connect {
            endpoint,
            detail: error_chain(&e),
        }
    }
}

/// The error and its causes on one line, without the URL (reqwest puts the
/// URL in its messages; ours carry no secrets, but they are noise here).
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(&format!(" for url ({url})"), "");
        }
        s
    }
}

/// The value of a numeric header, if present and a number.
pub fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
