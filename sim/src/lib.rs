//! A simulator of the upstream APIs of resumable upload sessions — Veeva
//! Vault File Staging and deepset Cloud — faithful to the documented wire
//! formats, for tests and demos.
//!
//! One HTTP/1.1 server hosts several simulated Vaults: each is served under
//! `/vaults/{name}` and the first one is also served at the root (`/api/...`).
//! The same server hosts deepset workspaces under `/deepset` (see
//! [`deepset`] for its routes and exact semantics). S3-compatible
//! multipart uploads (see [`s3`]) are served path-style on a listener of
//! their own ([`Simulator::s3_url`]), SigV4-authenticated, and
//! virtual-hosted style too with [`S3Spec::domain`] set.
//! Every Vault answers like the real one: HTTP 200 with `responseStatus`,
//! `errors: [{type, message}]` on `FAILURE`, and the `X-VaultAPI-*` headers.
//! Time is a [simulated clock](Simulator::advance), so tests can cross
//! expiry, purge and idle timeouts instantly; faults can be injected per
//! Vault or workspace and endpoint ([`VaultControl::inject`],
//! [`DeepsetControl::inject`]), in code or — with
//! [`SimOptions::admin`] (`upload_session_sim --admin`) — over HTTP at run
//! time through the [admin API](admin).
//!
//! ```no_run
//! # async fn demo() -> Result<(), upload_session_sim::SimError> {
//! use upload_session_sim::{SimConfig, Simulator};
//! let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let sim = Simulator::start(listen, SimConfig::idle()).await?;
//! let base = sim.vault_url("main"); // Some("http://127.0.0.1:PORT/vaults/main")
//! # let _ = base;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
mod clock;
mod cursor;
pub mod deepset;
mod demo;
mod faults;
mod http;
pub mod s3;
mod vault;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use deepset::{
    DeepsetControl, DeepsetEndpoint, DeepsetFileView, DeepsetSessionSeed, DeepsetSessionView,
    DeepsetSpec, DeepsetUser, FileSeed,
};
pub use faults::{Endpoint, FaultKind, FaultRule};
pub use s3::{
    LifecycleRule, RuleFilter, S3BucketSpec, S3Control, S3Endpoint, S3Identity, S3Spec,
    S3UploadSeed, S3UploadView, S3User, S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};

use clock::SimClock;
use deepset::Deepset;
use vault::Vault;

/// API versions a vault serves unless configured otherwise.
pub const DEFAULT_API_VERSIONS: [&str; 15] = [
    "v20.3", "v21.1", "v21.2", "v21.3", "v22.1", "v22.2", "v22.3", "v23.1", "v23.2", "v23.3",
    "v24.1", "v24.2", "v24.3", "v25.1", "v25.2",
];

/// Login of the demo admin user present in every default vault.
pub const DEMO_USERNAME: &str = "demo@example.com";
/// Password of [`DEMO_USERNAME`].
pub const DEMO_PASSWORD: &str = "demo";
/// Password of the non-admin uploader users of the demo scenario.
pub const UPLOADER_PASSWORD: &str = "upload";

/// Largest file a session may declare: 500 GB (binary units, like the part
/// limits; Vault's docs do not say which).
pub const MAX_FILE_SIZE: u64 = 500 * 1024 * 1024 * 1024;
/// Smallest size of every part but the last (5 MB = 5 MiB, as in the docs'
/// example parts of 5242880 bytes).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part size (50 MB).
pub const MAX_PART_SIZE: u64 = 50 * 1024 * 1024;
/// Highest part number.
pub const MAX_PARTS: u32 = 2000;

/// What the simulator does besides answering requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Background activity: uploads progress, stall, finish, commit, expire.
    Demo,
    /// Nothing happens but what clients do.
    Idle,
}

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Background activity.
    pub scenario: Scenario,
    /// Seed of the demo activity's random choices.
    pub seed: u64,
    /// The simulated vaults; the first is also served at the root.
    pub vaults: Vec<VaultSpec>,
    /// The simulated deepset workspaces (under `/deepset`).
    pub deepset: Vec<DeepsetSpec>,
    /// The S3 side, served on a listener of its own
    /// ([`Simulator::s3_url`]); `None` = no S3 listener.
    pub s3: Option<S3Spec>,
}

impl SimConfig {
    /// [`Scenario::Demo`] with the default vault set: "main" (vault 1000,
    /// the demo admin and four uploaders) and "sitevault" (vault 2000, the
    /// same demo login and three uploaders); and deepset workspace
    /// "default" with the demo user and five more (API keys
    /// `demo-api-key-2` to `demo-api-key-6`); and the S3 side of
    /// [`S3Spec::demo`] (bucket `demo-uploads` with a 1-day abort rule,
    /// three users).
    pub fn demo() -> Self {
        let mut main = VaultSpec::new("main", 1000);
        main.display_name = "Demo Vault".to_owned();
        main.users.extend(uploaders(
            10001401,
            &[
                ("Priya", "Patel"),
                ("Marco", "Rossi"),
                ("Kenji", "Sato"),
                ("Lena", "Fischer"),
            ],
        ));
        let mut site = VaultSpec::new("sitevault", 2000);
        site.display_name = "Demo SiteVault".to_owned();
        site.users = vec![UserSpec {
            user_id: 20001400,
            ..UserSpec::demo()
        }];
        site.users.extend(uploaders(
            20001401,
            &[("Amara", "Okafor"), ("Tomas", "Garcia"), ("Ingrid", "Berg")],
        ));
        let mut default = DeepsetSpec::new("default");
        default.users.extend(deepset_demo_users());
        // Reachable with a published key: what it keeps stays bounded
        // (`max_sessions` too). Ended sessions go after 15 days, past the
        // two weeks of history the demo seeds.
        default.purge_ended_after = Some(Duration::from_secs(15 * 24 * 3600));
        Self {
            scenario: Scenario::Demo,
            seed: 1,
            vaults: vec![main, site],
            deepset: vec![default],
            s3: Some(S3Spec::demo()),
        }
    }

    /// [`Scenario::Idle`] with just the "main" vault (vault 1000, demo user)
    /// and deepset workspace "default" (the demo user); S3 with the demo
    /// user and no bucket ([`S3Spec::new`]).
    pub fn idle() -> Self {
        let mut main = VaultSpec::new("main", 1000);
        main.display_name = "Demo Vault".to_owned();
        Self {
            scenario: Scenario::Idle,
            seed: 1,
            vaults: vec![main],
            deepset: vec![DeepsetSpec::new("default")],
            s3: Some(S3Spec::new()),
        }
    }
}

/// The demo's deepset users besides [`DeepsetUser::demo`].
fn deepset_demo_users() -> Vec<DeepsetUser> {
    [
        ("3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e01", "Noah", "Becker"),
        ("3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e02", "Aiko", "Tanaka"),
        ("3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e03", "Sofia", "Marin"),
        ("3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e04", "Yusuf", "Demir"),
        ("3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e05", "Elena", "Novak"),
    ]
    .iter()
    .zip(2..)
    .map(|(&(id, given, family), n)| {
        DeepsetUser::new(id, given, family, &format!("{}-{n}", deepset::DEMO_API_KEY))
    })
    .collect()
}

/// Non-admin uploader users with consecutive ids and
/// `first.last@example.com` logins (password [`UPLOADER_PASSWORD`]).
fn uploaders(first_id: u64, names: &[(&str, &str)]) -> Vec<UserSpec> {
    names
        .iter()
        .zip(first_id..)
        .map(|(&(first, last), user_id)| UserSpec {
            user_id,
            username: format!("{}.{}@example.com", ascii_lower(first), ascii_lower(last)),
            password: UPLOADER_PASSWORD.to_owned(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            admin: false,
            file_staging: true,
            active: true,
            login_vault_id_override: None,
        })
        .collect()
}

/// Lower-case ASCII letters only (login names must be plain).
fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// One simulated Vault.
#[derive(Debug, Clone)]
pub struct VaultSpec {
    /// Served under `/vaults/{name}`; letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `vaultId` of logins and `X-VaultAPI-VaultId`.
    pub vault_id: u64,
    /// `vaultIds[].name` of logins.
    pub display_name: String,
    /// Who can log in.
    pub users: Vec<UserSpec>,
    /// Versions served (`/api/{version}/...`); any other answers
    /// `INVALID_SESSION_ID` (except `/auth`).
    pub api_versions: Vec<String>,
    /// Calls per fixed 5-minute window before responses are delayed.
    pub burst_limit: u32,
    /// Delay added to each response once the burst limit is exhausted.
    pub response_delay: Duration,
    /// Most upload sessions the vault holds at once (`OPERATION_NOT_ALLOWED`
    /// past it); expired sessions not yet purged count too.
    pub session_limit: usize,
    /// Upload session lifetime from creation.
    pub session_ttl: Duration,
    /// How long an expired session stays listed; `None` = forever.
    pub purge_after_expiry: Option<Duration>,
    /// Login sessions end after this long without a call.
    pub session_idle_timeout: Duration,
    /// `/auth` calls per user per fixed 1-minute window.
    pub auth_limit_per_minute: u32,
    /// Consecutive wrong passwords that lock a user out (0 = never).
    pub lockout_after: u32,
    /// `responseDetails.next_page` as `http://{Host}/...` (true) or as a
    /// path only (false).
    pub next_page_absolute: bool,
}

impl VaultSpec {
    /// A vault with the documented default limits and the demo user.
    pub fn new(name: &str, vault_id: u64) -> Self {
        Self {
            name: name.to_owned(),
            vault_id,
            display_name: format!("Vault {name}"),
            users: vec![UserSpec::demo()],
            api_versions: DEFAULT_API_VERSIONS
                .iter()
                .map(|v| (*v).to_owned())
                .collect(),
            burst_limit: 2000,
            response_delay: Duration::from_millis(500),
            session_limit: 50,
            session_ttl: Duration::from_secs(72 * 3600),
            purge_after_expiry: Some(Duration::from_secs(10 * 60)),
            session_idle_timeout: Duration::from_secs(20 * 60),
            auth_limit_per_minute: 20,
            lockout_after: 5,
            next_page_absolute: true,
        }
    }
}

/// A Vault user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// Numeric id (`userId`, session `owner`).
    pub user_id: u64,
    /// Login name (matched case-insensitively).
    pub username: String,
    /// Password.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Admins see and may act on every upload session.
    pub admin: bool,
    /// "Application: File Staging: Access"; without it every file staging
    /// call answers `INSUFFICIENT_ACCESS`.
    pub file_staging: bool,
    /// Inactive users cannot log in (`INACTIVE_USER`).
    pub active: bool,
    /// Logins answer this `vaultId` instead (the user's *other* Vault).
    pub login_vault_id_override: Option<u64>,
}

impl UserSpec {
    /// `demo@example.com` / `demo`, user 10001400 "Dana Demo", admin.
    pub fn demo() -> Self {
        Self {
            user_id: 10001400,
            username: DEMO_USERNAME.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            first_name: "Dana".to_owned(),
            last_name: "Demo".to_owned(),
            admin: true,
            file_staging: true,
            active: true,
            login_vault_id_override: None,
        }
    }

    /// An active non-admin user with File Staging access.
    pub fn new(user_id: u64, username: &str, password: &str) -> Self {
        Self {
            user_id,
            username: username.to_owned(),
            password: password.to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            admin: false,
            file_staging: true,
            active: true,
            login_vault_id_override: None,
        }
    }
}

/// An upload session to place directly into a vault
/// ([`VaultControl::insert_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSeed {
    /// Session id; `None` = a random one.
    pub id: Option<String>,
    /// Staging path, e.g. `/u10001400/file.mp4`.
    pub path: String,
    /// Owner user id.
    pub owner: u64,
    /// Declared file size in bytes.
    pub size: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Parts uploaded.
    pub uploaded_parts: u32,
    /// `created_date`.
    pub created: OffsetDateTime,
    /// `expiration_date`.
    pub expiration: OffsetDateTime,
    /// `last_uploaded_date`.
    pub last_uploaded: OffsetDateTime,
}

impl SessionSeed {
    /// A fresh session: created `now`, expiring 72 h later, nothing
    /// uploaded, `last_uploaded` = `created`.
    pub fn new(path: impl Into<String>, owner: u64, size: u64, now: OffsetDateTime) -> Self {
        Self {
            id: None,
            path: path.into(),
            owner,
            size,
            uploaded: 0,
            uploaded_parts: 0,
            created: now,
            expiration: clock::add(now, Duration::from_secs(72 * 3600)),
            last_uploaded: now,
        }
    }
}

/// Snapshot of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Staging path.
    pub path: String,
    /// Owner user id.
    pub owner: u64,
    /// Declared size.
    pub size: u64,
    /// Bytes uploaded (as listed).
    pub uploaded: u64,
    /// Parts uploaded (as listed).
    pub uploaded_parts: u32,
    /// Part records `/parts` lists (normally `uploaded_parts`).
    pub part_records: u32,
    /// `created_date`.
    pub created: OffsetDateTime,
    /// `expiration_date`.
    pub expiration: OffsetDateTime,
    /// `last_uploaded_date`.
    pub last_uploaded: OffsetDateTime,
}

/// How a simulator runs, apart from what it simulates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimOptions {
    /// Serve the [admin API](admin) under `/_sim`, to arm and clear faults
    /// at run time. Off by default (those paths answer 404); it has no
    /// authentication, so enable it only on loopback or a test network.
    pub admin: bool,
    /// Where the S3 side listens; `None` = the main listen address's IP
    /// with a free port.
    pub s3_listen: Option<SocketAddr>,
}

impl SimOptions {
    /// The defaults with the admin API enabled.
    pub fn with_admin() -> Self {
        Self {
            admin: true,
            ..Self::default()
        }
    }

    /// These options with the S3 side listening on `addr`.
    pub fn s3_listen(mut self, addr: SocketAddr) -> Self {
        self.s3_listen = Some(addr);
        self
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// A running simulator. Dropping it stops the server too, but
/// [`shutdown`](Self::shutdown) waits for it.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    clock: Arc<SimClock>,
    vaults: Vec<Arc<Vault>>,
    deepset: Arc<Deepset>,
    s3: Option<(SocketAddr, Arc<s3::S3>)>,
    in_flight: Arc<http::InFlight>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Binds `listen` (port 0 picks a free port), starts serving and, for
    /// [`Scenario::Demo`], the background activity. The admin API is off.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> Result<Simulator, SimError> {
        Self::start_with(listen, config, SimOptions::default()).await
    }

    /// [`start`](Self::start) with options, e.g. [`SimOptions::with_admin`].
    pub async fn start_with(
        listen: SocketAddr,
        config: SimConfig,
        options: SimOptions,
    ) -> Result<Simulator, SimError> {
        validate(&config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
        let clock = Arc::new(SimClock::new());
        let vaults: Vec<Arc<Vault>> = config
            .vaults
            .into_iter()
            .map(|spec| Arc::new(Vault::new(spec, Arc::clone(&clock))))
            .collect();
        let deepset = Arc::new(Deepset::new(config.deepset, &clock));
        let s3 = match config.s3 {
            None => None,
            Some(spec) => {
                let s3_listen = options
                    .s3_listen
                    .unwrap_or_else(|| SocketAddr::new(listen.ip(), 0));
                let l = tokio::net::TcpListener::bind(s3_listen)
                    .await
                    .map_err(|source| SimError::Bind {
                        addr: s3_listen,
                        source,
                    })?;
                let a = l.local_addr().map_err(|source| SimError::Bind {
                    addr: s3_listen,
                    source,
                })?;
                Some((l, a, Arc::new(s3::S3::new(spec, Arc::clone(&clock)))))
            }
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let signal = http::ShutdownSignal::new(shutdown_rx);
        let s3_control = s3.as_ref().map(|(_, _, s)| S3Control {
            inner: Arc::clone(s),
        });
        let admin = options
            .admin
            .then(|| admin::Admin::new(&vaults, &deepset, s3_control.clone()));
        let in_flight = Arc::new(http::InFlight::default());
        let server = Arc::new(http::Server::new(
            vaults.clone(),
            Arc::clone(&deepset),
            admin,
            addr,
            signal.clone(),
            Arc::clone(&in_flight),
        ));
        let mut tasks = vec![tokio::spawn(http::run(listener, server))];
        let s3 = match s3 {
            None => None,
            Some((l, a, s)) => {
                let server = Arc::new(s3::S3Server {
                    s3: Arc::clone(&s),
                    shutdown: signal.clone(),
                    in_flight: Arc::clone(&in_flight),
                });
                tasks.push(tokio::spawn(http::run(l, server)));
                Some((a, s))
            }
        };
        if config.scenario == Scenario::Demo {
            if let Some(ctl) = s3_control {
                if ctl.buckets().iter().any(|b| b == s3::demo_bucket()) {
                    tasks.push(tokio::spawn(s3::run_demo(ctl, config.seed, signal.clone())));
                }
            }
            let controls = vaults
                .iter()
                .map(|v| VaultControl {
                    inner: Arc::clone(v),
                })
                .collect();
            tasks.push(tokio::spawn(demo::run(
                controls,
                config.seed,
                signal.clone(),
            )));
            let workspaces = deepset
                .workspaces()
                .iter()
                .filter_map(|w| deepset.control(&w.spec.workspace))
                .collect();
            tasks.push(tokio::spawn(deepset::run_demo(
                workspaces,
                config.seed,
                signal,
            )));
        }
        // Debug: the simulator binary and `--demo` announce themselves, and a
        // log line must not come before the `sessions` table.
        tracing::debug!(%addr, admin = options.admin, "upload session simulator listening");
        Ok(Simulator {
            addr,
            clock,
            vaults,
            deepset,
            s3,
            in_flight,
            shutdown_tx,
            tasks,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/vaults/{name}` (loopback if bound to a wildcard
    /// address), or `None` for an unknown vault.
    pub fn vault_url(&self, name: &str) -> Option<String> {
        self.vaults
            .iter()
            .any(|v| v.spec.name == name)
            .then(|| format!("{}/vaults/{name}", self.base_url()))
    }

    /// `http://{addr}/deepset` (loopback if bound to a wildcard address):
    /// the base of deepset's `/api/v1/...` (in place of
    /// `https://api.cloud.deepset.ai`).
    pub fn deepset_url(&self) -> String {
        format!("{}{}", self.base_url(), deepset::MOUNT)
    }

    /// `http://{s3 addr}` (loopback if bound to a wildcard address): the
    /// S3 endpoint, path-style (`{url}/{bucket}/{key}`); `None` without
    /// an S3 side.
    pub fn s3_url(&self) -> Option<String> {
        self.s3
            .as_ref()
            .map(|(a, _)| format!("http://{}", loopback(*a)))
    }

    /// Control handle of the S3 side.
    pub fn s3(&self) -> Option<S3Control> {
        self.s3.as_ref().map(|(_, s)| S3Control {
            inner: Arc::clone(s),
        })
    }

    /// Control handle of a deepset workspace.
    pub fn deepset(&self, workspace: &str) -> Option<DeepsetControl> {
        self.deepset.control(workspace)
    }

    /// `http://{addr}`, the root where the first vault is also served.
    pub fn base_url(&self) -> String {
        format!("http://{}", loopback(self.addr))
    }

    /// Control handle of a vault.
    pub fn vault(&self, name: &str) -> Option<VaultControl> {
        self.vaults
            .iter()
            .find(|v| v.spec.name == name)
            .map(|v| VaultControl {
                inner: Arc::clone(v),
            })
    }

    /// The most Vault, deepset and S3 requests (all vaults, workspaces
    /// and buckets together; admin requests not counted) that were being served at the
    /// same moment since the start or the last
    /// [`reset_max_in_flight`](Self::reset_max_in_flight). A request counts
    /// from its arrival until its answer is ready (delays and hangs
    /// included).
    pub fn max_in_flight(&self) -> u64 {
        self.in_flight.max()
    }

    /// Starts [`max_in_flight`](Self::max_in_flight) over from the requests
    /// being served now.
    pub fn reset_max_in_flight(&self) {
        self.in_flight.reset_max();
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Current simulated time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Stops accepting, releases hanging requests, lets in-flight ones
    /// finish (at most a few seconds) and ends the background tasks.
    pub async fn shutdown(mut self) {
        self.shutdown_tx.send_replace(true);
        for task in self.tasks.drain(..) {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "simulator task failed");
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Without this, a dropped simulator would keep serving until the
        // runtime ends.
        self.shutdown_tx.send_replace(true);
    }
}

/// `addr` with a wildcard IP replaced by loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Rejects configurations the server cannot route or serve sensibly.
fn validate(config: &SimConfig) -> Result<(), SimError> {
    if let Some(s3) = &config.s3 {
        s3::validate(s3).map_err(SimError::Config)?;
    }
    if config.vaults.is_empty() && config.deepset.is_empty() && config.s3.is_none() {
        return Err(SimError::Config(
            "at least one vault, deepset workspace or the S3 side is needed".to_owned(),
        ));
    }
    deepset::validate(&config.deepset).map_err(SimError::Config)?;
    for (i, v) in config.vaults.iter().enumerate() {
        let name_ok = !v.name.is_empty()
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(SimError::Config(format!(
                "vault name {:?} must be letters, digits, '-', '_' or '.'",
                v.name
            )));
        }
        if config.vaults[..i].iter().any(|o| o.name == v.name) {
            return Err(SimError::Config(format!(
                "duplicate vault name {:?}",
                v.name
            )));
        }
        if let Some(bad) = v.api_versions.iter().find(|s| !vault::is_version(s)) {
            return Err(SimError::Config(format!(
                "vault {:?}: API version {bad:?} is not like v25.2",
                v.name
            )));
        }
        for (j, u) in v.users.iter().enumerate() {
            if v.users[..j]
                .iter()
                .any(|o| o.username.eq_ignore_ascii_case(&u.username))
            {
                return Err(SimError::Config(format!(
                    "vault {:?}: duplicate username {:?}",
                    v.name, u.username
                )));
            }
            if v.users[..j].iter().any(|o| o.user_id == u.user_id) {
                return Err(SimError::Config(format!(
                    "vault {:?}: duplicate user id {}",
                    v.name, u.user_id
                )));
            }
        }
    }
    Ok(())
}

/// Test and demo control of one simulated vault. Changes take effect
/// immediately for subsequent requests.
#[derive(Debug, Clone)]
pub struct VaultControl {
    inner: Arc<Vault>,
}

impl VaultControl {
    /// The vault's configuration.
    pub fn spec(&self) -> &VaultSpec {
        &self.inner.spec
    }

    /// Current simulated time.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.now()
    }

    /// Places an upload session into the vault (ignoring the session limit)
    /// and returns its id (`s.id` if given; an existing session with that id
    /// is replaced). Part records are synthesized to match `uploaded` and
    /// `uploaded_parts`: all parts of one size when `uploaded` divides
    /// evenly into 5–50 MiB parts, else 5 MiB parts and a last one of at
    /// most 50 MiB, else near-equal parts with the remainder on the last.
    /// So `/parts` always lists `uploaded_parts` records summing to
    /// `uploaded`, though with fewer than 5 MiB per part (or `uploaded <
    /// uploaded_parts`, which gives empty parts) they break the size rules.
    pub fn insert_session(&self, s: SessionSeed) -> String {
        self.inner.insert_session(s)
    }

    /// Sets a session's progress as listed, re-synthesizing its part records
    /// (as [`insert_session`](Self::insert_session)); `false` if unknown.
    pub fn set_progress(
        &self,
        id: &str,
        uploaded: u64,
        uploaded_parts: u32,
        last_uploaded: OffsetDateTime,
    ) -> bool {
        self.inner
            .set_progress(id, uploaded, uploaded_parts, last_uploaded)
    }

    /// Appends a part of `size` bytes (its md5 is that of a deterministic
    /// description of the part: no bytes exist) and updates `uploaded`,
    /// `uploaded_parts` and `last_uploaded_date` (= simulated now). `false`
    /// if the session is unknown, `size` is 0 or over 50 MiB, it would
    /// exceed the declared size or 2000 parts, or the listed progress was
    /// set inconsistently with the part records.
    pub fn add_synthetic_part(&self, id: &str, size: u64) -> bool {
        self.inner.add_synthetic_part(id, size)
    }

    /// Removes a session, as a commit does; `false` if unknown.
    pub fn remove_session(&self, id: &str) -> bool {
        self.inner.remove_session(id)
    }

    /// Every listed session (after purging), in list order.
    pub fn sessions(&self) -> Vec<SessionView> {
        self.inner.sessions()
    }

    /// One session, if listed.
    pub fn session(&self, id: &str) -> Option<SessionView> {
        self.inner.session(id)
    }

    /// Ends every login session, as after an inactivity timeout.
    pub fn invalidate_login_sessions(&self) {
        self.inner.invalidate_login_sessions();
    }

    /// The ids of the live login sessions (to check that a client never
    /// shows them).
    pub fn login_session_ids(&self) -> Vec<String> {
        self.inner.login_session_ids()
    }

    /// Unlocks a locked-out user and resets their failure count and `/auth`
    /// rate window.
    pub fn unlock_user(&self, username: &str) {
        self.inner.unlock_user(username);
    }

    /// Arms a fault.
    pub fn inject(&self, rule: FaultRule) {
        self.inner.faults().push(rule);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.inner.faults().clear();
    }

    /// The armed faults, in firing order, with the uses they have left.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.inner.faults().snapshot()
    }

    /// Requests received for `endpoint` (faulted ones included).
    pub fn request_count(&self, endpoint: Endpoint) -> u64 {
        self.inner.request_count(endpoint)
    }

    /// The most requests to this vault that were being served at the same
    /// moment (see [`Simulator::max_in_flight`]).
    pub fn max_in_flight(&self) -> u64 {
        self.inner.in_flight().max()
    }

    /// Last `X-VaultAPI-ClientID` seen, and how many requests lacked one.
    pub fn client_ids(&self) -> (Option<String>, u64) {
        self.inner.client_ids()
    }

    /// Starts a fresh burst window (now) with `remaining` calls left before
    /// responses are delayed. Starting the window now keeps tests from
    /// racing a window boundary.
    pub fn set_burst_remaining(&self, remaining: u32) {
        self.inner.set_burst_remaining(remaining);
    }

    /// Sets the delay added to each response once the burst limit is spent
    /// (and sent as `X-VaultAPI-ResponseDelay`), in place of
    /// [`VaultSpec::response_delay`]. With
    /// [`set_burst_remaining(0)`](Self::set_burst_remaining) it takes effect
    /// at once.
    pub fn set_response_delay(&self, delay: Duration) {
        self.inner.set_response_delay(delay);
    }
}
