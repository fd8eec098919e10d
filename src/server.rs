//! The HTTP server: `/metrics` from prepared bytes, a landing page, health
//! and readiness, 404 elsewhere. Serving does no work beyond picking the
//! encoding: everything was rendered by the poll.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::exposition::{Exposition, VERSION};
use crate::readiness::Readiness;
use crate::web::{Auth, WebConfig, WebConfigWatcher};

mod guard;
pub mod negotiate;
pub mod sendfile;

use guard::{ConnState, Connections, Guarded};
use sendfile::ZeroCopy;

/// The content type Prometheus expects for the text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Slow clients get this long to send their request headers (default).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection may go this long without a byte moving between
/// requests, or while its response is being written (default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections at most (default).
pub const MAX_CONNECTIONS: usize = 1024;
/// Request headers larger than this are refused (hyper answers 431).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A reload asked for over HTTP; the reply says what changed or why not.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// What the handlers read.
pub struct ServerState {
    /// The latest exposition.
    pub exposition: watch::Receiver<Arc<Exposition>>,
    /// First-poll status.
    pub readiness: Arc<Readiness>,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Where `POST /-/reload` goes; `None` unless `--web.enable-lifecycle`.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// TLS and basic auth (`--web.config.file`).
    pub web: Option<Arc<WebConfigWatcher>>,
    /// Limits against slow or too many clients.
    pub limits: Limits,
    /// Bytes of gzip pages sent with `sendfile` (see [`sendfile`]).
    pub zero_copy_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// The sessions of the last polls for `/sessions` and
    /// `/api/v1/sessions`; `None` when `--web.disable-sessions-page`.
    pub sessions: Option<Arc<crate::poller::board::Board>>,
}

/// Protection against slow, idle or too many clients (slowloris): a
/// request's headers must arrive within `header_read_timeout` of its first
/// byte (of the accept, for a connection's first request, and the TLS
/// handshake counts against the same deadline), a connection with nothing
/// moving for `idle_timeout` is closed, and at most `max_connections` are
/// open. When all are taken and a client waits, the connection idle the
/// longest between requests is closed to make room; if none is idle,
/// further clients wait in the kernel's backlog until a slot frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send request headers (also bounds the TLS handshake).
    pub header_read_timeout: Duration,
    /// Keep-alive pause between requests, or stall of a client that stopped
    /// reading its response, after which the connection is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Parses a listen address; `:10157` means every interface, as in the Go
/// exporters.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let candidate = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    candidate.parse().map_err(|_| {
        format!("--web.listen-address {s:?} is not an address; write it like \":10157\" or \"127.0.0.1:10157\"")
    })
}

/// Serves until `shutdown`, then lets open requests finish (up to 5 s).
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    let max = state.limits.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let connections = Arc::new(Connections::default());
    'accept: loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait and go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(s) => s,
            // Every slot taken and a client waiting: close idle keep-alive
            // connections, the longest idle first, until one frees.
            Err(_) => loop {
                connections.evict_oldest_idle();
                tokio::select! {
                    s = Arc::clone(&slots).acquire_owned() => match s {
                        Ok(s) => break s,
                        Err(_) => break 'accept,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = shutdown.cancelled() => break 'accept,
                }
            },
        };
        // The deadline for the first request starts once a slot is there.
        let accepted = tokio::time::Instant::now();
        // As Go's net/http and nginx do: a response's last segment goes out
        // at once instead of waiting for the client's (delayed) ACK.
        let _ = stream.set_nodelay(true);
        let web = state.web.as_ref().and_then(|w| w.current());
        let state = Arc::clone(&state);
        let registered = connections.register();
        let shutdown = shutdown.clone();
        // The handshake runs in the connection's own task, so a slow or
        // silent client cannot hold up the accept loop.
        let limits = state.limits;
        tokio::spawn(async move {
            let _slot = slot;
            let conn = Arc::clone(&registered.state);
            let timeout = limits.header_read_timeout;
            let deadline = accepted + timeout;
            let ctx = ConnCtx {
                conn: Arc::clone(&conn),
                peer: peer.ip(),
                state,
                web,
                shutdown,
            };
            match ctx.web.as_ref().and_then(|w| w.tls().cloned()) {
                Some(acceptor) => {
                    // One deadline for the peek, the handshake and the first
                    // request head, as documented.
                    if looks_like_plain_http(&stream, deadline).await {
                        let _ = reject_plain_http(stream).await;
                        return;
                    }
                    let stream = Guarded::new(stream, accepted, timeout, limits.idle_timeout, conn);
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, ctx).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
                None => {
                    let zero_copy = ZeroCopy::new(
                        ctx.state.exposition.clone(),
                        Arc::clone(&ctx.state.zero_copy_bytes),
                    );
                    let stream = Guarded::new(stream, accepted, timeout, limits.idle_timeout, conn)
                        .with_zero_copy(zero_copy);
                    serve_connection(stream, ctx).await
                }
            }
            drop(registered);
        });
    }
    // Every slot back means every connection has ended.
    if tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(max as u32))
        .await
        .is_err()
    {
        tracing::debug!("some connections were still open at shutdown");
    }
}

/// What a connection's requests need.
struct ConnCtx {
    conn: Arc<ConnState>,
    peer: IpAddr,
    state: Arc<ServerState>,
    web: Option<Arc<WebConfig>>,
    shutdown: CancellationToken,
}

/// Serves one connection. Its deadlines live in [`Guarded`] (hyper's own
/// header timeout is off: it would count keep-alive pauses); the service
/// tells the guard when a request head is complete. Shutdown, or the
/// accept loop needing the slot, closes it gracefully: a request in
/// progress is answered first.
async fn serve_connection<I>(io: I, ctx: ConnCtx)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ConnCtx {
        conn: conn_state,
        peer,
        state,
        web,
        shutdown,
    } = ctx;
    let head = Arc::clone(&conn_state);
    let service = service_fn(move |req: Request<Incoming>| {
        head.mark();
        let state = Arc::clone(&state);
        let web = web.clone();
        async move { Ok::<_, Infallible>(handle(req, &state, web.as_deref(), peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = conn_state.evict.notified(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Basic auth (except for the probes), then routing, then extra headers.
async fn handle(
    req: Request<Incoming>,
    state: &ServerState,
    web: Option<&WebConfig>,
    peer: IpAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    // Probes stay open so that orchestrators need no credentials; they
    // reveal nothing but "up", "ready" and a count.
    let probe = matches!(path, "/-/healthy" | "/-/ready");
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Credentials sent to /-/ready are checked: they may see names.
    let wants_names = path == "/-/ready" && header.is_some();
    let mut authenticated = false;
    if let Some(w) = web {
        if w.requires_auth() && (!probe || wants_names) {
            authenticated = w.check(header, peer).await == Auth::Allowed;
            if !authenticated && !probe {
                let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                let h = r.headers_mut();
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"upload_session_exporter\""),
                );
                // An unauthenticated client does not keep a slot.
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        }
    }
    let mut r = if path == "/-/reload" {
        reload(&req, state).await
    } else if path == "/-/ready" && authenticated && req.method() == Method::GET {
        // Valid credentials may see which targets are pending.
        ready(state, true)
    } else {
        route(&req, state)
    };
    if let Some(w) = web {
        for (k, v) in &w.headers {
            r.headers_mut().insert(k.clone(), v.clone());
        }
    }
    r
}

/// `/-/ready`: the names of pending targets only for `show_names` (an
/// authenticated request); otherwise a count, the names go to the log.
fn ready(state: &ServerState, show_names: bool) -> Response<Full<Bytes>> {
    let waiting = state.readiness.waiting();
    if waiting.is_empty() {
        return text(StatusCode::OK, "Ready.\n");
    }
    let body = if show_names {
        format!(
            "Not ready: waiting for the first poll of {}.\n",
            waiting.join(", ")
        )
    } else {
        log_waiting(&waiting);
        format!(
            "Not ready: waiting for the first poll of {} target(s).\n",
            waiting.len()
        )
    };
    text(StatusCode::SERVICE_UNAVAILABLE, &body)
}

/// Logs the pending targets at most every 30 s (probes come often).
fn log_waiting(waiting: &[String]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::model::now_millis().max(0) as u64;
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 30_000
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::info!(targets = %waiting.join(", "), "not ready: waiting for the first poll");
    }
}

/// True if the first bytes on a TLS port are an HTTP request line.
async fn looks_like_plain_http(
    stream: &tokio::net::TcpStream,
    deadline: tokio::time::Instant,
) -> bool {
    let mut buf = [0u8; 8];
    match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
        Ok(Ok(n)) => {
            let start = &buf[..n];
            ["GET ", "HEAD", "POST", "PUT ", "DELE", "OPTI", "PATC"]
                .iter()
                .any(|m| start.starts_with(m.as_bytes()))
        }
        _ => false,
    }
}

/// What Go servers answer to plain HTTP on a TLS port.
async fn reject_plain_http(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
        .await?;
    stream.shutdown().await
}

/// `POST /-/reload`, as Prometheus has it: 403 unless enabled.
pub async fn reload<B>(req: &Request<B>, state: &ServerState) -> Response<Full<Bytes>> {
    let Some(tx) = &state.reload else {
        return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n");
    };
    if req.method() != Method::POST && req.method() != Method::PUT {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Use POST to reload.\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
        return r;
    }
    let (reply, answer) = oneshot::channel();
    if tx.send(reply).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down.\n");
    }
    match answer.await {
        Ok(Ok(summary)) => text(StatusCode::OK, &format!("Reloaded: {summary}.\n")),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Reload failed; the running configuration stays in force:\n{e}\n"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down.\n"),
    }
}

/// Answers one request.
pub fn route<B>(req: &Request<B>, state: &ServerState) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let sessions_page = state.sessions.is_some()
        && matches!(
            path,
            crate::sessions::http::PAGE_PATH | crate::sessions::http::API_PATH
        );
    let known = path == state.telemetry_path
        || sessions_page
        || matches!(path, "/" | "/-/healthy" | "/-/ready");
    if !known {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET and HEAD are allowed.\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == state.telemetry_path {
        return metrics(req, state);
    }
    if let (true, Some(board)) = (sessions_page, &state.sessions) {
        return crate::sessions::http::respond(req, board);
    }
    match path {
        "/-/healthy" => text(StatusCode::OK, "Healthy.\n"),
        "/-/ready" => ready(state, false),
        _ => landing(&state.telemetry_path, state.sessions.is_some()),
    }
}

fn metrics<B>(req: &Request<B>, state: &ServerState) -> Response<Full<Bytes>> {
    let exposition = state.exposition.borrow().clone();
    let accept = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    // Both formats are prepared: this only picks one (before the first
    // assembly there is no OpenMetrics page yet: the empty text one).
    let (plain, compressed, content_type) = match negotiate::format(accept) {
        negotiate::Format::OpenMetrics if !exposition.openmetrics.is_empty() => (
            &exposition.openmetrics,
            &exposition.openmetrics_gzip,
            crate::metrics::openmetrics::CONTENT_TYPE,
        ),
        _ => (&exposition.plain, &exposition.gzip, METRICS_CONTENT_TYPE),
    };
    let gzip = accepts_gzip(req) && !compressed.is_empty();
    let body = if gzip {
        compressed.clone()
    } else {
        plain.clone()
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// True if `Accept-Encoding` makes gzip acceptable (RFC 9110 12.5.3):
/// gzip's own quality if listed, else that of `*`; not listed at all means
/// identity. A quality that does not parse counts as 0.
fn accepts_gzip<B>(req: &Request<B>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| q.is_finite())
                        .unwrap_or(0.0);
                }
            }
        }
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // Listed twice: the higher quality wins.
        *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn landing(telemetry_path: &str, sessions: bool) -> Response<Full<Bytes>> {
    let path = html_escape(telemetry_path);
    let sessions = if sessions {
        "<li><a href=\"/sessions\">Upload sessions</a> (what is stuck, per target; also as <a href=\"/api/v1/sessions\">JSON</a>)</li>\n"
    } else {
        ""
    };
    let body = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Upload Session Exporter</title></head>\n\
         <body>\n<h1>Upload Session Exporter</h1>\n\
         <p>Prometheus exporter for resumable upload sessions (Veeva Vault File Staging, deepset Cloud). Version {VERSION}.</p>\n\
         <ul>\n<li><a href=\"{path}\">Metrics</a></li>\n{sessions}<li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n</ul>\n\
         </body>\n</html>\n"
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Handy for tests: the body of a routed response.
pub async fn body_bytes(r: Response<Full<Bytes>>) -> Bytes {
    use http_body_util::BodyExt;
    match r.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    }
}

/// The type of requests the server receives (re-exported for tests).
pub type IncomingRequest = Request<Incoming>;

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ready: &[&str]) -> ServerState {
        let (tx, rx) = watch::channel(Arc::new(Exposition {
            plain: Bytes::from_static(b"plain"),
            gzip: Bytes::from_static(b"gz"),
            gzip_file: None,
            openmetrics: Bytes::from_static(b"om"),
            openmetrics_gzip: Bytes::from_static(b"om-gz"),
            openmetrics_gzip_file: None,
        }));
        std::mem::forget(tx);
        ServerState {
            exposition: rx,
            readiness: Readiness::new(ready.iter().copied()),
            telemetry_path: "/metrics".into(),
            reload: None,
            web: None,
            limits: Limits::default(),
            zero_copy_bytes: Default::default(),
            sessions: None,
        }
    }

    fn get(path: &str, enc: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(path);
        if let Some(e) = enc {
            b = b.header("Accept-Encoding", e);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn metrics_negotiates_gzip() {
        let s = state(&[]);
        let r = route(&get("/metrics", None), &s);
        assert_eq!(r.headers()[header::CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body_bytes(r).await, "plain");
        let r = route(&get("/metrics", Some("deflate, gzip;q=0.8")), &s);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(body_bytes(r).await, "gz");
        let r = route(&get("/metrics", Some("gzip;q=0")), &s);
        assert_eq!(body_bytes(r).await, "plain");
    }

    #[test]
    fn accept_encoding_qualities() {
        let gz = |v: &str| accepts_gzip(&get("/metrics", Some(v)));
        // gzip's own quality beats the wildcard, in either order.
        assert!(!gz("gzip;q=0, *"));
        assert!(!gz("*, gzip;q=0"));
        assert!(!gz("gzip; Q=0.000"));
        assert!(gz("*"));
        assert!(!gz("*;q=0"));
        assert!(!gz("identity"));
        assert!(!gz("br, deflate"));
        assert!(gz("GZIP;q=0.5"));
        assert!(gz("br;q=1, gzip;q=0.001"));
        assert!(!gz("gzip;q=nope"));
        assert!(gz("gzip;q=0, gzip"));
        assert!(!gz(""));
    }

    #[tokio::test]
    async fn metrics_negotiates_openmetrics() {
        let s = state(&[]);
        let req = |accept: &str, enc: Option<&str>| {
            let mut r = get("/metrics", enc);
            r.headers_mut()
                .insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            route(&r, &s)
        };
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let r = req(prometheus, None);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(r.headers()[header::VARY], "Accept, Accept-Encoding");
        assert_eq!(body_bytes(r).await, "om");
        let r = req(prometheus, Some("gzip"));
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(body_bytes(r).await, "om-gz");
        let r = req("text/plain;version=0.0.4", Some("gzip"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert_eq!(body_bytes(r).await, "gz");
        let head = Request::builder()
            .method("HEAD")
            .uri("/metrics")
            .header(header::ACCEPT, prometheus)
            .body(())
            .unwrap();
        assert_eq!(
            route(&head, &s).headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn other_routes() {
        let s = state(&["vault-b", "vault-a"]);
        assert_eq!(
            route(&get("/nope", None), &s).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(route(&get("/-/healthy", None), &s).status(), StatusCode::OK);
        let r = route(&get("/-/ready", None), &s);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Without credentials: a count, no names.
        assert_eq!(
            body_bytes(r).await,
            "Not ready: waiting for the first poll of 2 target(s).\n"
        );
        assert_eq!(
            body_bytes(ready(&s, true)).await,
            "Not ready: waiting for the first poll of vault-a, vault-b.\n"
        );
        s.readiness.done("vault-a");
        s.readiness.done("vault-b");
        assert_eq!(route(&get("/-/ready", None), &s).status(), StatusCode::OK);
        let r = route(&get("/", None), &s);
        assert!(String::from_utf8(body_bytes(r).await.to_vec())
            .unwrap()
            .contains("href=\"/metrics\""));
        let post = Request::builder()
            .method("POST")
            .uri("/metrics")
            .body(())
            .unwrap();
        assert_eq!(route(&post, &s).status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_address(":10157").unwrap().to_string(),
            "0.0.0.0:10157"
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(
            parse_listen_address("[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
        assert!(parse_listen_address("localhost").is_err());
    }
}
