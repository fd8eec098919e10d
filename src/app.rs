//! Wiring: a supervisor runs one poll task per target (of this replica's
//! shard), the publisher and the HTTP server; a reload applies a new
//! configuration without disturbing targets that did not change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TargetConfig};
use crate::kinds;
use crate::metrics::exposition::PagePublisher;
use crate::poller::{self, Found, Readiness, Shared, Source, TargetState};
use crate::server::{self, ReloadRequest, ServerState};
use crate::shard::Shard;
use crate::upstream::RequestLimiter;

/// Longest a reload may spend reading files before it gives up (a hung
/// network file system); the read goes on in the background.
pub const RELOAD_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the configuration again (for reloads). Blocking: reloads run it
/// on a blocking thread.
pub type Loader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Where and how to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Serve `POST /-/reload` (`--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
    /// Poll only this replica's share of the targets.
    pub shard: Option<Shard>,
    /// TLS and basic auth.
    pub web: Option<Arc<crate::web::WebConfigWatcher>>,
    /// Applies `[exporter] log_level` at start and on reload.
    pub log: Option<crate::logging::LogControl>,
    /// Limits against slow or too many clients.
    pub limits: server::Limits,
    /// Serve `/sessions` and `/api/v1/sessions` (off with
    /// `--web.disable-sessions-page`).
    pub sessions_page: bool,
}

impl ServeOptions {
    /// Loopback, a free port, defaults otherwise (for tests).
    pub fn loopback() -> Self {
        ServeOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            telemetry_path: "/metrics".into(),
            enable_lifecycle: false,
            shard: None,
            web: None,
            log: None,
            limits: server::Limits::default(),
            sessions_page: true,
        }
    }
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

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Targets started.
    pub added: Vec<String>,
    /// Targets stopped.
    pub removed: Vec<String>,
    /// Targets restarted with new settings (state kept).
    pub changed: Vec<String>,
    /// Targets left running as they were.
    pub unchanged: usize,
    /// Targets left to other shards.
    pub other_shards: usize,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "added [{}], removed [{}], changed [{}], {} unchanged, {} on other shards",
            self.added.join(", "),
            self.removed.join(", "),
            self.changed.join(", "),
            self.unchanged,
            self.other_shards
        )
    }
}

struct RunningTarget {
    config: TargetConfig,
    stop: CancellationToken,
    handle: JoinHandle<TargetState>,
}

/// Owns the poll tasks.
struct Supervisor {
    shared: Shared,
    running: BTreeMap<String, RunningTarget>,
    shutdown: CancellationToken,
    shard: Option<Shard>,
    log: Option<crate::logging::LogControl>,
    /// The configured targets this replica polls, by name. Targets that
    /// find their targets at run time are polled by every replica (each
    /// needs the list); what they find is sharded.
    configured: BTreeMap<String, TargetConfig>,
    /// What each of those found last, by its name.
    found: BTreeMap<String, Vec<TargetConfig>>,
}

impl Supervisor {
    async fn apply(&mut self, config: Config) -> ReloadSummary {
        if let Some(log) = &self.log {
            log.set(config.exporter.log_level);
        }
        let mut summary = ReloadSummary::default();
        let mut configured = BTreeMap::new();
        for t in config.targets {
            if kinds::discovers(&t) || self.owns(&t.name) {
                configured.insert(t.name.clone(), t);
            } else {
                summary.other_shards += 1;
            }
        }
        // What a removed finder found goes with it; a changed one's finds
        // keep polling until it reports anew (nothing goes dark meanwhile).
        self.found.retain(|name, _| configured.contains_key(name));
        self.configured = configured;
        self.sync(&mut summary).await;
        // The running clients share the limiter: a new size applies to
        // them too (permits in use are taken back as they are released).
        self.shared
            .limiter
            .resize(config.exporter.max_concurrent_requests);
        summary
    }

    /// Takes in what a finder found: its targets start (or stop) polling.
    async fn take(&mut self, found: Found) {
        let name = found.by.name.clone();
        if self.configured.get(&name) != Some(&found.by) {
            // Found by a finder a reload has since changed or removed.
            let _ = found.taken.send(());
            return;
        }
        if self.found.get(&name) == Some(&found.targets) {
            let _ = found.taken.send(());
            return;
        }
        self.found.insert(name.clone(), found.targets);
        let mut summary = ReloadSummary::default();
        // Registers the new targets with `/-/ready` before answering.
        self.sync_with(&mut summary, Some(found.taken)).await;
        tracing::info!(
            target = %name,
            added = %summary.added.join(", "),
            removed = %summary.removed.join(", "),
            changed = %summary.changed.join(", "),
            "the targets found changed"
        );
    }

    fn owns(&self, name: &str) -> bool {
        self.shard.is_none_or(|s| s.owns(name))
    }

    /// Every target to poll: the configured ones and those found.
    fn wanted(&self) -> BTreeMap<String, TargetConfig> {
        let mut wanted = self.configured.clone();
        for (by, targets) in &self.found {
            for t in targets.iter().filter(|t| self.owns(&t.name)) {
                if wanted.contains_key(&t.name) {
                    tracing::warn!(
                        target = %by,
                        found = %t.name,
                        "a target found has the name of a configured one; the configured one is polled"
                    );
                } else {
                    wanted.insert(t.name.clone(), t.clone());
                }
            }
        }
        wanted
    }

    async fn sync(&mut self, summary: &mut ReloadSummary) {
        self.sync_with(summary, None).await;
    }

    /// Starts, restarts and stops poll tasks until they match
    /// [`wanted`](Self::wanted); answers `registered` once every target to
    /// start is waited for by `/-/ready`.
    async fn sync_with(
        &mut self,
        summary: &mut ReloadSummary,
        registered: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let wanted = self.wanted();
        for name in wanted.keys() {
            if !self.running.contains_key(name) {
                self.shared.readiness.wait_for(name);
            }
        }
        if let Some(r) = registered {
            let _ = r.send(());
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            if !wanted.contains_key(&name) {
                if let Some(r) = self.running.remove(&name) {
                    r.stop.cancel();
                    let _ = r.handle.await;
                }
                self.shared.publisher.remove(&name);
                if let Some(board) = &self.shared.board {
                    board.remove(&name);
                }
                self.shared.readiness.done(&name);
                summary.removed.push(name);
            }
        }
        for (name, target) in wanted {
            let previous = match self.running.remove(&name) {
                Some(r) if r.config == target => {
                    self.running.insert(name, r);
                    summary.unchanged += 1;
                    continue;
                }
                Some(r) => {
                    r.stop.cancel();
                    summary.changed.push(name.clone());
                    r.handle.await.ok()
                }
                None => {
                    summary.added.push(name.clone());
                    None
                }
            };
            let stop = self.shutdown.child_token();
            let handle = tokio::spawn(poller::run_target(
                target.clone(),
                previous,
                self.shared.clone(),
                stop.clone(),
            ));
            self.running.insert(
                name,
                RunningTarget {
                    config: target,
                    stop,
                    handle,
                },
            );
        }
    }

    async fn stop_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.stop.cancel();
            let _ = r.handle.await;
        }
    }
}

/// What reloads need; shared with the reload task.
struct Control {
    supervisor: Mutex<Supervisor>,
    loader: Option<Loader>,
    publisher: Arc<PagePublisher>,
}

impl Control {
    async fn reload(&self) -> Result<ReloadSummary, String> {
        let Some(loader) = &self.loader else {
            return Err("this exporter was started without a configuration file to re-read".into());
        };
        // Reading files off the runtime: a file on a hung file system must
        // not stall the server.
        let read = tokio::task::spawn_blocking({
            let loader = Arc::clone(loader);
            move || loader()
        });
        let loaded = match tokio::time::timeout(RELOAD_READ_TIMEOUT, read).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("reading the configuration failed: {e}")),
            Err(_) => Err(format!(
                "reading the configuration files took longer than {}s (a hung file system?)",
                RELOAD_READ_TIMEOUT.as_secs()
            )),
        };
        match loaded {
            Ok(config) => {
                let summary = self.supervisor.lock().await.apply(config).await;
                self.publisher.set_reload_result(true);
                tracing::info!(%summary, "configuration reloaded");
                Ok(summary)
            }
            Err(e) => {
                self.publisher.set_reload_result(false);
                tracing::error!(error = %e, "reload failed; the running configuration stays in force");
                Err(e)
            }
        }
    }
}

/// A running exporter.
pub struct Exporter {
    addr: SocketAddr,
    readiness: Arc<Readiness>,
    control: Arc<Control>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

impl Exporter {
    /// Binds the listener and starts polling and serving. `loader` re-reads
    /// the configuration on reload (SIGHUP, `POST /-/reload`).
    pub async fn start(
        config: Config,
        loader: Option<Loader>,
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
        let publisher = PagePublisher::new();
        publisher.set_reload_result(true);
        let readiness = Readiness::new(std::iter::empty());
        let board = opts.sessions_page.then(crate::poller::board::Board::new);
        let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Found>();
        let shared = Shared {
            publisher: Arc::clone(&publisher),
            limiter: RequestLimiter::new(config.exporter.max_concurrent_requests),
            readiness: Arc::clone(&readiness),
            board: board.clone(),
            found: Some(found_tx),
        };
        let mut supervisor = Supervisor {
            shared,
            running: BTreeMap::new(),
            shutdown: shutdown.clone(),
            shard: opts.shard,
            log: opts.log.clone(),
            configured: BTreeMap::new(),
            found: BTreeMap::new(),
        };
        let summary = supervisor.apply(config).await;
        if let Some(shard) = opts.shard {
            tracing::info!(%shard, polled = summary.added.len(), other_shards = summary.other_shards, "sharding targets");
        }
        let control = Arc::new(Control {
            supervisor: Mutex::new(supervisor),
            loader,
            publisher: Arc::clone(&publisher),
        });
        let mut tasks = JoinSet::new();
        let finds = Arc::clone(&control);
        let finds_shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    found = found_rx.recv() => match found {
                        Some(f) => finds.supervisor.lock().await.take(f).await,
                        None => break,
                    },
                    _ = finds_shutdown.cancelled() => break,
                }
            }
        });
        let publishing = tokio::spawn(Arc::clone(&publisher).run_publisher());
        let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
        let reloads = Arc::clone(&control);
        let reload_shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    req = reload_rx.recv() => match req {
                        Some(reply) => {
                            let r = reloads.reload().await.map(|s| s.to_string());
                            let _ = reply.send(r);
                        }
                        None => break,
                    },
                    _ = reload_shutdown.cancelled() => break,
                }
            }
        });
        let state = Arc::new(ServerState {
            exposition: publisher.subscribe(),
            readiness: Arc::clone(&readiness),
            telemetry_path: opts.telemetry_path,
            reload: opts.enable_lifecycle.then(|| reload_tx.clone()),
            web: opts.web,
            limits: opts.limits,
            zero_copy_bytes: Default::default(),
            sessions: board,
        });
        if let Some(web) = &state.web {
            tasks.spawn(Arc::clone(web).run(shutdown.clone()));
        }
        let server_shutdown = shutdown.clone();
        tasks.spawn(async move {
            server::serve(listener, state, server_shutdown.clone()).await;
            publishing.abort();
        });
        // Serve the exporter's own metrics before the first poll ends.
        publisher.flush();
        tracing::info!(address = %addr, "listening");
        Ok(Exporter {
            addr,
            readiness,
            control,
            tasks,
            shutdown,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Targets whose first poll is pending (what `/-/ready` names to
    /// authenticated clients only).
    pub fn waiting_targets(&self) -> Vec<String> {
        self.readiness.waiting()
    }

    /// The publisher (for tests that read the exposition directly).
    pub fn publisher(&self) -> &Arc<PagePublisher> {
        &self.control.publisher
    }

    /// Re-reads the configuration and applies it; on error the running
    /// configuration stays in force.
    pub async fn reload(&self) -> Result<ReloadSummary, String> {
        self.control.reload().await
    }

    /// Applies a configuration directly.
    pub async fn apply(&self, config: Config) -> ReloadSummary {
        self.control.supervisor.lock().await.apply(config).await
    }

    /// Stops everything and waits for the poll tasks to log out.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.control.supervisor.lock().await.stop_all().await;
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Polls every target once, concurrently; returns the exposition and the
/// targets that failed with their errors (for `--once`). Targets that find
/// their targets at run time go first; what they find is polled with the
/// rest (only this replica's share of it, with a `shard`).
///
/// Requests in flight are bounded by `max_concurrent_requests` as in the
/// daemon. Polls in progress are bounded by the same number: that keeps
/// every request permit busy (each poll wants at least one), while a poll
/// does not start its deadline until it can make progress. Unbounded, a large
/// fleet would start every poll at once, share the permits evenly, and its
/// long polls could all run past their deadlines together, with no later poll to
/// finish the job.
pub async fn poll_all_once(config: &Config) -> (String, Vec<(String, String)>) {
    poll_all_once_in(config, None).await
}

/// [`poll_all_once`] for one replica of a sharded fleet.
pub async fn poll_all_once_in(
    config: &Config,
    shard: Option<Shard>,
) -> (String, Vec<(String, String)>) {
    let publisher = PagePublisher::new();
    let size = config.exporter.max_concurrent_requests;
    let limiter = RequestLimiter::new(size);
    let polls = Arc::new(Semaphore::new(size));
    let (finders, mut targets): (Vec<TargetConfig>, Vec<TargetConfig>) =
        config.targets.iter().cloned().partition(kinds::discovers);
    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Found>();
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(f) = found_rx.recv().await {
            let _ = f.taken.send(());
            all.extend(f.targets);
        }
        all
    });
    let mut failed = poll_round(finders, &publisher, &limiter, &polls, Some(found_tx)).await;
    for t in collect.await.unwrap_or_default() {
        if shard.is_none_or(|s| s.owns(&t.name)) && !targets.iter().any(|c| c.name == t.name) {
            targets.push(t);
        }
    }
    failed.extend(poll_round(targets, &publisher, &limiter, &polls, None).await);
    failed.sort();
    let text = String::from_utf8_lossy(&publisher.assemble().plain).into_owned();
    (text, failed)
}

/// Polls `targets` once, concurrently, publishing each; the failed ones
/// with their errors. Finders among them send what they find to `found`.
async fn poll_round(
    targets: Vec<TargetConfig>,
    publisher: &Arc<PagePublisher>,
    limiter: &RequestLimiter,
    polls: &Arc<Semaphore>,
    found: Option<mpsc::UnboundedSender<Found>>,
) -> Vec<(String, String)> {
    let mut tasks = JoinSet::new();
    for target in targets {
        let publisher = Arc::clone(publisher);
        let limiter = limiter.clone();
        let polls = Arc::clone(polls);
        let found = found.clone();
        tasks.spawn(async move {
            let _slot = polls.acquire_owned().await;
            let mut state = TargetState::for_target(&target);
            let result = match Source::finding(&target, &limiter, found.as_ref()) {
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
            publisher.publish(&target.name, state.render());
            (target.name, result.err().map(|e| e.to_string()))
        });
    }
    // The senders held by the tasks go with them; this one goes now, so the
    // receiver ends once the round has.
    drop(found);
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((name, Some(err))) => failed.push((name, err)),
            Ok(_) => {}
            Err(e) => failed.push(("?".into(), format!("poll task failed: {e}"))),
        }
    }
    failed
}

/// The configuration with every target that finds its targets at run time
/// replaced by what it finds now (one round of calls), and the finders that
/// failed with their errors (for `sessions`).
pub async fn with_found(config: &Config) -> (Config, Vec<(String, String)>) {
    let limiter = RequestLimiter::new(config.exporter.max_concurrent_requests);
    let mut out = config.clone();
    out.targets.retain(|t| !kinds::discovers(t));
    let mut failed = Vec::new();
    for finder in config.targets.iter().filter(|t| kinds::discovers(t)) {
        let found = match kinds::discoverer_for(finder, &limiter) {
            Ok(mut client) => {
                let deadline = finder.poll_interval.max(finder.timeout);
                match tokio::time::timeout(deadline, client.discover()).await {
                    Ok(r) => r,
                    Err(_) => Err(crate::upstream::FetchError::Timeout {
                        endpoint: "poll",
                        timeout: deadline,
                    }),
                }
            }
            Err(e) => Err(e),
        };
        match found {
            Ok(targets) => {
                for t in targets {
                    if !out.targets.iter().any(|c| c.name == t.name) {
                        out.targets.push(t);
                    }
                }
            }
            Err(e) => failed.push((finder.name.clone(), format!("{e} ({})", e.reason()))),
        }
    }
    (out, failed)
}
