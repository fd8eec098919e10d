//! Wiring: starts one poll task per target, the publisher and the HTTP
//! server, and stops them all on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::exposition::Hub;
use crate::poller::{self, Readiness, Shared, Source, TargetState};
use crate::server::{self, ServerState};

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port? choose another with --web.listen-address)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running exporter.
pub struct Exporter {
    addr: SocketAddr,
    hub: Arc<Hub>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

impl Exporter {
    /// Binds the listener and starts polling and serving.
    pub async fn start(
        config: Config,
        opts: ServeOptions,
        shutdown: CancellationToken,
    ) -> Result<Exporter, AppError> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: opts.listen,
            source,
        })?;
        let hub = Hub::new();
        let readiness = Readiness::new(config.targets.iter().map(|t| t.name.as_str()));
        let shared = Shared {
            hub: Arc::clone(&hub),
            limiter: Arc::new(Semaphore::new(config.exporter.max_concurrent_polls)),
            readiness: Arc::clone(&readiness),
        };
        let mut tasks = JoinSet::new();
        for target in config.targets {
            tasks.spawn(poller::run_target(target, shared.clone(), shutdown.clone()));
        }
        let publisher = tokio::spawn(Arc::clone(&hub).run_publisher());
        let state = Arc::new(ServerState {
            exposition: hub.subscribe(),
            readiness,
            telemetry_path: opts.telemetry_path,
        });
        let server_shutdown = shutdown.clone();
        tasks.spawn(async move {
            server::serve(listener, state, server_shutdown.clone()).await;
            publisher.abort();
        });
        // Serve the exporter's own metrics before the first poll ends.
        hub.flush();
        tracing::info!(address = %addr, "listening");
        Ok(Exporter {
            addr,
            hub,
            tasks,
            shutdown,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub (for tests that read the exposition directly).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Stops everything and waits for the poll tasks to log out.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until shutdown has been requested and everything has stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Polls every target once, concurrently; returns the exposition and the
/// targets that failed with their errors (for `--once`).
pub async fn poll_all_once(config: &Config) -> (String, Vec<(String, String)>) {
    let hub = Hub::new();
    let limiter = Arc::new(Semaphore::new(config.exporter.max_concurrent_polls));
    let mut tasks = JoinSet::new();
    for target in config.targets.clone() {
        let hub = Arc::clone(&hub);
        let limiter = Arc::clone(&limiter);
        tasks.spawn(async move {
            let _permit = limiter.acquire_owned().await;
            let mut state = TargetState::for_target(&target);
            let result = match Source::new(&target) {
                Ok(mut source) => {
                    let r = poller::poll_once(&target, &mut source, &mut state).await;
                    source.close().await;
                    source.account(&mut state);
                    r
                }
                Err(e) => {
                    state.record_failure(&e, crate::model::now_millis(), 0.0);
                    Err(e)
                }
            };
            hub.publish(&target.name, state.render());
            (target.name, result.err().map(|e| e.to_string()))
        });
    }
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((name, Some(err))) => failed.push((name, err)),
            Ok(_) => {}
            Err(e) => failed.push(("?".into(), format!("poll task failed: {e}"))),
        }
    }
    failed.sort();
    let text = String::from_utf8_lossy(&hub.assemble().plain).into_owned();
    (text, failed)
}
