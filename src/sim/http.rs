//! The HTTP/1.1 server: accepts connections, routes each request to the
//! simulated site that owns its path, and shuts down gracefully.
//!
//! Routing is by path prefix (see [`Server::route`]): Vault under `/api`
//! and `/vaults/{name}`, deepset under `/deepset`. A new simulated API gets
//! a [`Site`] variant and a branch there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
pub(crate) type HttpResponse = Response<Full<Bytes>>;

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
}

/// Everything the request handlers share.
#[derive(Debug)]
pub(crate) struct Server {
    vaults: Vec<Arc<Vault>>,
    deepset: Arc<Deepset>,
    local_addr: SocketAddr,
    shutdown: ShutdownSignal,
}

impl Server {
    pub(crate) fn new(
        vaults: Vec<Arc<Vault>>,
        deepset: Arc<Deepset>,
        local_addr: SocketAddr,
        shutdown: ShutdownSignal,
    ) -> Self {
        Self {
            vaults,
            deepset,
            local_addr,
            shutdown,
        }
    }

    /// Maps a path to its site: `/vaults/{name}/...` to that vault, `/api`
    /// and `/api/...` to the first vault, `/deepset` and `/deepset/...` to
    /// deepset.
    fn route<'a>(&self, path: &'a str) -> Option<Site<'a>> {
        if let Some(rest) = path.strip_prefix(deepset::MOUNT) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(Site::Deepset { rest });
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
        match self.route(&path) {
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
            None => Ok(not_found()),
        }
    }
}

/// Vault-like 404 for paths no site owns.
fn not_found() -> HttpResponse {
    let body = Bytes::from_static(
        br#"{"responseStatus":"FAILURE","errors":[{"type":"MALFORMED_URL","message":"The resource at the requested URL could not be found."}]}"#,
    );
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(vault::JSON_CONTENT_TYPE),
    );
    resp
}

/// Accepts connections until shutdown, then closes idle connections and
/// waits (at most [`GRACE`]) for busy ones.
pub(crate) async fn run(listener: TcpListener, server: Arc<Server>) {
    let graceful = GracefulShutdown::new();
    let shutdown = server.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let server = Arc::clone(&server);
                    let svc = service_fn(move |req| {
                        let server = Arc::clone(&server);
                        async move { server.dispatch(req).await }
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
    use crate::sim::clock::SimClock;
    use crate::sim::VaultSpec;

    fn server(names: &[&str]) -> Server {
        let clock = Arc::new(SimClock::new());
        let vaults = names
            .iter()
            .zip(1u64..)
            .map(|(n, id)| Arc::new(Vault::new(VaultSpec::new(n, id), Arc::clone(&clock))))
            .collect();
        let (_tx, rx) = watch::channel(false);
        Server::new(
            vaults,
            Arc::new(Deepset::new(Vec::new(), &clock)),
            SocketAddr::from(([127, 0, 0, 1], 1)),
            ShutdownSignal::new(rx),
        )
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
