//! The HTTP/1.1 server: accepts connections, routes each request to the
//! simulated site that owns its path, and shuts down gracefully.
//!
//! Routing is by path prefix (see [`Server::route`]): Vault under `/api`
//! and `/vaults/{name}`, deepset under `/deepset`, and the admin API under
//! `/_sim` when it is enabled. A new simulated API gets a [`Site`] variant
//! and a branch there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin::{self, Admin};
use super::deepset::{self, Deepset};
use super::vault::{self, Vault};

/// How long shutdown waits for in-flight requests.
const GRACE: Duration = Duration::from_secs(5);

/// The service's error: makes hyper close the connection without an
/// answer (used on purpose by the `Reset` and `Hang` faults).
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer on purpose")]
pub(crate) struct Aborted;

/// The response type of every handler.
pub(crate) type HttpResponse = Response<SimBody>;

/// Size of the padding chunks of generated bodies.
const PAD_CHUNK: usize = 64 * 1024;
/// Padding, shared by every generated body.
static PAD: [u8; PAD_CHUNK] = [b'x'; PAD_CHUNK];

/// A response body: bytes in memory, or a huge JSON-looking body generated
/// while it is sent (`head`, then `x` padding, then `tail`), so that a
/// fault of hundreds of MiB costs no memory.
#[derive(Debug)]
pub(crate) struct SimBody(BodyState);

#[derive(Debug)]
enum BodyState {
    Whole(Option<Bytes>),
    Padded {
        head: Option<Bytes>,
        pad: u64,
        tail: Option<Bytes>,
        /// No `Content-Length`: sent chunked.
        chunked: bool,
    },
}

impl SimBody {
    /// A body held in memory.
    pub(crate) fn whole(body: Bytes) -> Self {
        Self(BodyState::Whole(Some(body)))
    }

    /// Exactly `len` bytes: `head`, padding, `tail` when `len` is at least
    /// their size, else a prefix of `head` + `tail`. `chunked` leaves the
    /// length unannounced (`Transfer-Encoding: chunked`).
    pub(crate) fn padded(
        head: &'static str,
        tail: &'static str,
        len: usize,
        chunked: bool,
    ) -> Self {
        let (head, tail) = (head.as_bytes(), tail.as_bytes());
        let frame = head.len() + tail.len();
        if len < frame {
            let mut b = Vec::with_capacity(frame);
            b.extend_from_slice(head);
            b.extend_from_slice(tail);
            b.truncate(len);
            return Self(BodyState::Padded {
                head: Some(Bytes::from(b)),
                pad: 0,
                tail: None,
                chunked,
            });
        }
        Self(BodyState::Padded {
            head: Some(Bytes::from_static(head)),
            pad: (len - frame) as u64,
            tail: Some(Bytes::from_static(tail)),
            chunked,
        })
    }

    /// Bytes left to send.
    fn remaining(&self) -> u64 {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        match &self.0 {
            BodyState::Whole(b) => len(b),
            BodyState::Padded {
                head, pad, tail, ..
            } => len(head).saturating_add(*pad).saturating_add(len(tail)),
        }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match &mut self.get_mut().0 {
            BodyState::Whole(b) => b.take(),
            BodyState::Padded {
                head, pad, tail, ..
            } => head.take().or_else(|| {
                if *pad > 0 {
                    let n = usize::try_from(*pad).map_or(PAD_CHUNK, |p| p.min(PAD_CHUNK));
                    *pad -= n as u64;
                    Some(Bytes::from_static(&PAD[..n]))
                } else {
                    tail.take()
                }
            }),
        };
        Poll::Ready(next.filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyState::Padded { chunked: true, .. } => SizeHint::default(),
            _ => SizeHint::with_exact(self.remaining()),
        }
    }
}

/// Requests being served at this moment, and the most served at once since
/// the start or the last [`reset_max`](Self::reset_max): lets tests check
/// how many requests a client keeps in flight.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    now: AtomicU64,
    max: AtomicU64,
}

impl InFlight {
    /// Counts a request until the guard is dropped (its answer is ready,
    /// or the client went away).
    pub(crate) fn enter(&self) -> InFlightGuard<'_> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        InFlightGuard(self)
    }

    /// The most requests served at once.
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }

    /// Starts the maximum over from the requests being served now.
    pub(crate) fn reset_max(&self) {
        self.max
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A request counted by [`InFlight::enter`].
#[derive(Debug)]
pub(crate) struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves when the simulator shuts down.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Waits for shutdown (returns at once if it already began or the
    /// simulator is gone).
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d`, cut short by shutdown.
    pub(crate) async fn sleep(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.wait() => {}
        }
    }
}

/// Where a request path belongs.
#[derive(Debug, PartialEq, Eq)]
enum Site<'a> {
    /// Vault number `index`, mounted at `mount` ("" or `/vaults/{name}`),
    /// with the remaining `rest` of the path.
    Vault {
        index: usize,
        mount: &'a str,
        rest: &'a str,
    },
    /// deepset, with the `rest` of the path after `/deepset`.
    Deepset { rest: &'a str },
    /// The admin API, with the `rest` of the path after `/_sim`.
    Admin { rest: &'a str },
}

/// Everything the request handlers share.
#[derive(Debug)]
pub(crate) struct Server {
    vaults: Vec<Arc<Vault>>,
    deepset: Arc<Deepset>,
    /// The admin API; `None` = not served (404 like any unknown path).
    admin: Option<Admin>,
    local_addr: SocketAddr,
    shutdown: ShutdownSignal,
    /// Vault and deepset requests being served (admin requests are not).
    in_flight: Arc<InFlight>,
}

impl Server {
    pub(crate) fn new(
        vaults: Vec<Arc<Vault>>,
        deepset: Arc<Deepset>,
        admin: Option<Admin>,
        local_addr: SocketAddr,
        shutdown: ShutdownSignal,
        in_flight: Arc<InFlight>,
    ) -> Self {
        Self {
            vaults,
            deepset,
            admin,
            local_addr,
            shutdown,
            in_flight,
        }
    }

    /// Maps a path to its site: `/vaults/{name}/...` to that vault, `/api`
    /// and `/api/...` to the first vault, `/deepset` and `/deepset/...` to
    /// deepset, `/_sim` and `/_sim/...` to the admin API if it is enabled.
    fn route<'a>(&self, path: &'a str) -> Option<Site<'a>> {
        if let Some(rest) = path.strip_prefix(deepset::MOUNT) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(Site::Deepset { rest });
            }
        }
        if let Some(rest) = path.strip_prefix(admin::MOUNT) {
            if self.admin.is_some() && (rest.is_empty() || rest.starts_with('/')) {
                return Some(Site::Admin { rest });
            }
        }
        if path == "/api" || path.starts_with("/api/") {
            return (!self.vaults.is_empty()).then_some(Site::Vault {
                index: 0,
                mount: "",
                rest: path,
            });
        }
        if let Some(after) = path.strip_prefix("/vaults/") {
            let name = after.split('/').next().unwrap_or(after);
            let index = self.vaults.iter().position(|v| v.spec.name == name)?;
            let (mount, rest) = path.split_at("/vaults/".len() + name.len());
            return Some(Site::Vault { index, mount, rest });
        }
        None
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<HttpResponse, Aborted> {
        let path = req.uri().path().to_owned();
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .map_or_else(|| self.local_addr.to_string(), str::to_owned);
        let route = self.route(&path);
        let _counted = matches!(route, Some(Site::Vault { .. } | Site::Deepset { .. }))
            .then(|| self.in_flight.enter());
        match route {
            Some(Site::Vault { index, mount, rest }) => {
                let ctx = vault::Ctx {
                    mount,
                    host: &host,
                    peers: &self.vaults,
                    shutdown: &self.shutdown,
                };
                match self.vaults.get(index) {
                    Some(v) => v.serve(req, rest, &ctx).await,
                    None => Ok(not_found()),
                }
            }
            Some(Site::Deepset { rest }) => {
                let ctx = deepset::Ctx {
                    host: &host,
                    shutdown: &self.shutdown,
                };
                self.deepset.serve(req, rest, &ctx).await
            }
            Some(Site::Admin { rest }) => match &self.admin {
                Some(admin) => Ok(admin.serve(req, rest).await),
                None => Ok(not_found()),
            },
            None => Ok(not_found()),
        }
    }
}

/// Vault-like 404 for paths no site owns.
fn not_found() -> HttpResponse {
    let body = Bytes::from_static(
        br#"{"responseStatus":"FAILURE","errors":[{"type":"MALFORMED_URL","message":"The resource at the requested URL could not be found."}]}"#,
    );
    let mut resp = Response::new(SimBody::whole(body));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(vault::JSON_CONTENT_TYPE),
    );
    resp
}

/// What a listener serves: the main [`Server`], or the S3 side on a
/// listener of its own.
pub(crate) trait Service: Send + Sync + 'static {
    /// Answers one request.
    fn dispatch(
        &self,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Result<HttpResponse, Aborted>> + Send;

    /// Resolves when the simulator shuts down.
    fn shutdown_signal(&self) -> &ShutdownSignal;
}

impl Service for Server {
    fn dispatch(
        &self,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Result<HttpResponse, Aborted>> + Send {
        Server::dispatch(self, req)
    }

    fn shutdown_signal(&self) -> &ShutdownSignal {
        &self.shutdown
    }
}

/// Accepts connections until shutdown, then closes idle connections and
/// waits (at most [`GRACE`]) for busy ones.
pub(crate) async fn run<S: Service>(listener: TcpListener, server: Arc<S>) {
    let graceful = GracefulShutdown::new();
    let shutdown = server.shutdown_signal().clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let server = Arc::clone(&server);
                    let svc = service_fn(move |req| {
                        let server = Arc::clone(&server);
                        async move { Service::dispatch(&*server, req).await }
                    });
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.wait() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy after the shutdown grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::VaultSpec;

    fn server_with(names: &[&str], with_admin: bool) -> Server {
        let clock = Arc::new(SimClock::new());
        let vaults: Vec<Arc<Vault>> = names
            .iter()
            .zip(1u64..)
            .map(|(n, id)| Arc::new(Vault::new(VaultSpec::new(n, id), Arc::clone(&clock))))
            .collect();
        let deepset = Arc::new(Deepset::new(Vec::new(), &clock));
        let (_tx, rx) = watch::channel(false);
        let admin = with_admin.then(|| Admin::new(&vaults, &deepset, None));
        Server::new(
            vaults,
            deepset,
            admin,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            ShutdownSignal::new(rx),
            Arc::default(),
        )
    }

    #[test]
    fn in_flight_keeps_the_most_at_once() {
        let g = InFlight::default();
        let a = g.enter();
        let b = g.enter();
        drop(a);
        let c = g.enter();
        assert_eq!(g.max(), 2);
        drop(b);
        drop(c);
        assert_eq!(g.max(), 2, "the maximum stays");
        let _d = g.enter();
        g.reset_max();
        assert_eq!(g.max(), 1, "reset to what is in flight now");
    }

    fn server(names: &[&str]) -> Server {
        server_with(names, false)
    }

    async fn collect(body: SimBody) -> (Vec<u8>, usize) {
        use http_body_util::BodyExt;
        let mut body = body;
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                frames += 1;
                out.extend_from_slice(&data);
            }
        }
        (out, frames)
    }

    #[tokio::test]
    async fn padded_bodies_are_exact_and_streamed() {
        for (len, chunked) in [
            (0, false),
            (3, true),
            (12, false),
            (13, false),
            (200_000, true),
        ] {
            let body = SimBody::padded("{\"p\":\"", "\"}", len, chunked);
            let hint = body.size_hint().exact();
            assert_eq!(hint, (!chunked).then_some(len as u64), "{len}");
            let (bytes, _) = collect(body).await;
            assert_eq!(bytes.len(), len);
            if len >= 7 {
                assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
            }
        }
        // Hundreds of MiB are sent in small frames from one static buffer.
        let body = SimBody::padded("[", "]", 10 * PAD_CHUNK + 2, false);
        assert_eq!(body.size_hint().exact(), Some(10 * PAD_CHUNK as u64 + 2));
        let (bytes, frames) = collect(body).await;
        assert_eq!((bytes.len(), frames), (10 * PAD_CHUNK + 2, 12));
        let (whole, _) = collect(SimBody::whole(Bytes::from_static(b"abc"))).await;
        assert_eq!(whole, b"abc");
    }

    #[test]
    fn admin_is_routed_only_when_enabled() {
        assert_eq!(server(&["main"]).route("/_sim/faults"), None);
        let s = server_with(&["main"], true);
        assert_eq!(
            s.route("/_sim/faults"),
            Some(Site::Admin { rest: "/faults" })
        );
        assert_eq!(s.route("/_sim"), Some(Site::Admin { rest: "" }));
        assert_eq!(s.route("/_simx"), None);
    }

    #[test]
    fn routes_by_prefix() {
        let s = server(&["main", "site"]);
        assert_eq!(
            s.route("/api/v25.2/auth"),
            Some(Site::Vault {
                index: 0,
                mount: "",
                rest: "/api/v25.2/auth"
            })
        );
        assert_eq!(
            s.route("/vaults/site/api/"),
            Some(Site::Vault {
                index: 1,
                mount: "/vaults/site",
                rest: "/api/"
            })
        );
        assert_eq!(
            s.route("/vaults/site"),
            Some(Site::Vault {
                index: 1,
                mount: "/vaults/site",
                rest: ""
            })
        );
        assert_eq!(s.route("/vaults/nope/api/"), None);
        assert_eq!(s.route("/apix"), None);
        assert_eq!(s.route("/"), None);
        assert_eq!(s.route("/vaults/"), None);
        assert_eq!(
            s.route("/deepset/api/v1/workspaces"),
            Some(Site::Deepset {
                rest: "/api/v1/workspaces"
            })
        );
        assert_eq!(s.route("/deepset"), Some(Site::Deepset { rest: "" }));
        assert_eq!(s.route("/deepsets/api"), None);
    }
}
