//! The fleet benchmark: the simulator with a CRO-sized fleet, the real
//! exporter binary polling it, nginx serving the very same exposition bytes
//! as a static file, and `wrk` against both. Prints one table.
//!
//! Run it through `bench/run.sh` (it installs nginx and wrk, builds once and
//! raises the open-files limit); see BENCHMARKS.md for what each figure
//! means and how it is measured.
//!
//! Phases:
//! 1. fleet at the production interval (60 s): first full cycle, idle CPU
//!    between polls, resident memory, API calls per poll, serving throughput
//!    against nginx (64 connections), 1000 concurrent connections;
//! 2. stress (5 s interval) soak with session churn: memory over time and
//!    its slope, CPU per cycle of the whole fleet;
//! 3. scale: 10, 200 and 1,000 Vault targets at 5 s: CPU per full cycle,
//!    first cycle, memory, page size;
//! 4. s3: one bucket of 10,000 and one of 100,000 open uploads (a
//!    simulator of its own, every S3 call delayed): first poll, polls until
//!    every upload is known, calls per steady-state poll against the cost
//!    guard's formula, exact per-owner sums, CPU (and instructions under
//!    callgrind) per poll against a Vault target holding as many sessions,
//!    memory, every poll's duration, `/metrics` latency during polls.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use upload_session_sim::{
    DeepsetControl, DeepsetSessionSeed, DeepsetSpec, DeepsetUser, FaultKind, FaultRule, FileSeed,
    S3BucketSpec, S3Control, S3Identity, S3Spec, S3UploadSeed, Scenario, SessionSeed, SimConfig,
    Simulator, VaultControl, VaultSpec, S3_DEMO_ACCESS_KEY_ID, S3_DEMO_SECRET_ACCESS_KEY,
};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const MB: u64 = 1_000_000;
const DEEPSET_KEY: &str = "demo-api-key";
const VAULT_PASSWORD: &str = "demo";

/// Command-line options (`--name value`).
#[derive(Debug, Clone)]
struct Opts {
    vaults: usize,
    sessions_per_vault: usize,
    owners_per_vault: usize,
    workspaces: usize,
    sessions_per_workspace: usize,
    latency_ms: u64,
    soak_secs: u64,
    /// CPU window of each scale run.
    scale_secs: u64,
    wrk_secs: u64,
    serve_rounds: usize,
    load_secs: u64,
    load_connections: usize,
    scale: Vec<usize>,
    max_concurrent_requests: usize,
    out: Option<PathBuf>,
    work: PathBuf,
    exporter: Option<PathBuf>,
    skip: Vec<String>,
    /// Open uploads of each S3 run (one bucket each).
    s3_uploads: Vec<usize>,
    s3_owners: usize,
    s3_latency_ms: u64,
    /// Poll interval of the S3 runs; stall_after and dormant_refresh scale
    /// with it (30 and 60 intervals, as 30 min and 1 h are at 60 s).
    s3_poll_secs: u64,
    /// Share of the uploads that get a part between two polls, in percent.
    s3_active_percent: f64,
    /// Steady-state polls measured (calls, CPU).
    s3_steady_polls: usize,
    /// Polls measured in runs too big to wait for full coverage.
    s3_window_polls: usize,
    /// Runs whose coverage takes more polls than this are measured over a
    /// window instead (no coverage, no steady state).
    s3_coverage_max_polls: usize,
    /// Polls during which /metrics is fetched every 50 ms.
    s3_probe_polls: usize,
}

impl Opts {
    fn parse() -> Res<Opts> {
        let mut o = Opts {
            vaults: 200,
            sessions_per_vault: 50,
            owners_per_vault: 5,
            workspaces: 50,
            sessions_per_workspace: 200,
            latency_ms: 50,
            soak_secs: 600,
            scale_secs: 120,
            wrk_secs: 8,
            serve_rounds: 3,
            load_secs: 30,
            load_connections: 1000,
            scale: vec![10, 200, 1000],
            max_concurrent_requests: 32,
            out: None,
            exporter: None,
            work: std::env::temp_dir().join(format!("fleet_bench.{}", std::process::id())),
            skip: Vec::new(),
            s3_uploads: vec![10_000, 100_000],
            s3_owners: 50,
            s3_latency_ms: 20,
            s3_poll_secs: 10,
            s3_active_percent: 1.0,
            s3_steady_polls: 10,
            s3_window_polls: 12,
            s3_coverage_max_polls: 20,
            s3_probe_polls: 3,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || -> Res<String> {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value").into())
            };
            match a.as_str() {
                "--vaults" => o.vaults = val()?.parse()?,
                "--sessions-per-vault" => o.sessions_per_vault = val()?.parse()?,
                "--owners-per-vault" => o.owners_per_vault = val()?.parse()?,
                "--workspaces" => o.workspaces = val()?.parse()?,
                "--sessions-per-workspace" => o.sessions_per_workspace = val()?.parse()?,
                "--latency-ms" => o.latency_ms = val()?.parse()?,
                "--soak-secs" => o.soak_secs = val()?.parse()?,
                "--scale-secs" => o.scale_secs = val()?.parse::<u64>()?.max(10),
                "--wrk-secs" => o.wrk_secs = val()?.parse()?,
                "--serve-rounds" => o.serve_rounds = val()?.parse::<usize>()?.max(1),
                "--load-secs" => o.load_secs = val()?.parse()?,
                "--load-connections" => o.load_connections = val()?.parse()?,
                "--max-concurrent-requests" => o.max_concurrent_requests = val()?.parse()?,
                "--scale" => {
                    o.scale = val()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--skip" => o.skip = val()?.split(',').map(str::to_string).collect(),
                "--only" => {
                    let only: Vec<String> = val()?.split(',').map(str::to_string).collect();
                    // A phase's own sub-phases (s3-callgrind) come with it.
                    o.skip = PHASES
                        .iter()
                        .filter(|p| {
                            !only.iter().any(|w| {
                                w == *p
                                    || p.strip_prefix(w.as_str())
                                        .is_some_and(|r| r.starts_with('-'))
                            })
                        })
                        .map(|p| p.to_string())
                        .collect();
                }
                "--s3-uploads" => {
                    o.s3_uploads = val()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--s3-owners" => o.s3_owners = val()?.parse::<usize>()?.max(1),
                "--s3-latency-ms" => o.s3_latency_ms = val()?.parse()?,
                "--s3-poll-secs" => o.s3_poll_secs = val()?.parse::<u64>()?.max(1),
                "--s3-active-percent" => o.s3_active_percent = val()?.parse()?,
                "--s3-steady-polls" => o.s3_steady_polls = val()?.parse::<usize>()?.max(1),
                "--s3-window-polls" => o.s3_window_polls = val()?.parse::<usize>()?.max(1),
                "--s3-coverage-max-polls" => o.s3_coverage_max_polls = val()?.parse()?,
                "--s3-probe-polls" => o.s3_probe_polls = val()?.parse::<usize>()?.max(1),
                "--out" => o.out = Some(PathBuf::from(val()?)),
                "--work" => o.work = PathBuf::from(val()?),
                "--exporter" => o.exporter = Some(PathBuf::from(val()?)),
                "--quick" => {
                    o.soak_secs = 120;
                    o.scale_secs = 40;
                    o.wrk_secs = 5;
                    o.load_secs = 15;
                }
                "-h" | "--help" => {
                    println!("{}", HELP);
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other}; see --help").into()),
            }
        }
        Ok(o)
    }

    fn skips(&self, phase: &str) -> bool {
        self.skip.iter().any(|s| s == phase)
    }
}

/// The phases, for `--skip` and `--only`.
const PHASES: [&str; 8] = [
    "vaults",
    "production",
    "serve",
    "load",
    "soak",
    "scale",
    "s3",
    "s3-callgrind",
];

const HELP: &str = "fleet_bench [--quick] [--soak-secs N] [--latency-ms N] [--vaults N] \
[--workspaces N] [--scale 10,200,1000] [--scale-secs N] [--skip vaults,production,serve,load,soak,scale,s3,s3-callgrind] [--only s3] [--out FILE.md]\n\
[--s3-uploads 10000,100000] [--s3-owners 50] [--s3-latency-ms 20] [--s3-poll-secs 10] [--s3-active-percent 1]\n\
[--s3-steady-polls 10] [--s3-window-polls 12] [--s3-coverage-max-polls 20] [--s3-probe-polls 3]\n\
[--exporter PATH (another build of the exporter, e.g. to compare before/after)]\n\
[--wrk-secs 8] [--serve-rounds 3] [--load-secs 30] [--load-connections 1000] [--max-concurrent-requests 32]\n\
Normally run through bench/run.sh.";

// ---------------------------------------------------------------- the fleet

/// Owner ids of vault `v`.
fn owner_id(v: usize, k: usize) -> u64 {
    20_000_000 + (v as u64) * 100 + k as u64
}

fn vault_name(v: usize) -> String {
    format!("v{v:04}")
}

fn workspace_name(w: usize) -> String {
    format!("ws{w:03}")
}

fn deepset_user_id(w: usize, u: usize) -> String {
    format!("00000000-0000-4000-8000-{:012x}", w * 100 + u)
}

const USERS_PER_WORKSPACE: usize = 10;

fn random_vault_session(rng: &mut StdRng, v: usize, o: &Opts, now: OffsetDateTime) -> SessionSeed {
    let k = rng.random_range(0..o.owners_per_vault);
    let size = rng.random_range(100 * MB..40_000 * MB);
    let created = now - time::Duration::minutes(rng.random_range(1..48 * 60));
    let roll: f64 = rng.random();
    // A few complete (awaiting commit), a few stalled for hours, the rest
    // moving.
    let uploaded = if roll < 0.05 {
        size
    } else {
        (size as f64 * rng.random_range(0.0..0.95)) as u64
    };
    let last = if roll > 0.9 {
        now - time::Duration::hours(rng.random_range(2..10))
    } else {
        now - time::Duration::seconds(rng.random_range(0..300))
    };
    let mut s = SessionSeed::new(
        format!(
            "/u{}/batch-{}/file-{}.zip",
            owner_id(v, k),
            rng.random_range(0..100),
            rng.random::<u32>()
        ),
        owner_id(v, k),
        size,
        now,
    );
    s.uploaded = uploaded;
    s.uploaded_parts = u32::try_from(uploaded.div_ceil(50 * 1024 * 1024))
        .unwrap_or(2000)
        .min(2000);
    s.created = created;
    s.expiration = created + time::Duration::hours(72);
    s.last_uploaded = last.max(created);
    s
}

fn seed_vault(c: &VaultControl, v: usize, o: &Opts, rng: &mut StdRng) {
    let now = c.now();
    for _ in 0..o.sessions_per_vault {
        c.insert_session(random_vault_session(rng, v, o, now));
    }
}

fn files(rng: &mut StdRng, n: usize, ingested: bool) -> Vec<FileSeed> {
    (0..n)
        .map(|i| {
            let name = format!("doc-{i}-{}.pdf", rng.random::<u16>());
            if ingested {
                FileSeed::ingested(&name, rng.random_range(1_000..5_000_000))
            } else {
                FileSeed::pending(&name, rng.random_range(1_000..5_000_000))
            }
        })
        .collect()
}

/// About `sessions_per_workspace` sessions: per user 2 open, 1 expired
/// within the window, one in two users a closed session whose ingestion is
/// stuck, and the rest closed and fully ingested.
fn seed_workspace(c: &DeepsetControl, w: usize, o: &Opts, rng: &mut StdRng) {
    let now = c.now();
    let per_user = o.sessions_per_workspace / USERS_PER_WORKSPACE;
    for u in 0..USERS_PER_WORKSPACE {
        let user = deepset_user_id(w, u);
        for i in 0..per_user {
            let created = now - time::Duration::minutes(rng.random_range(1..20 * 60));
            let mut s = DeepsetSessionSeed::open(&user, created);
            s.expires_at = Some(created + time::Duration::hours(24));
            match i {
                0 | 1 => {
                    let n = rng.random_range(0..6);
                    s.files = files(rng, n, false);
                }
                2 => {
                    s.status = "EXPIRED".into();
                    s.expires_at = Some(now - time::Duration::hours(rng.random_range(1..20)));
                }
                3 if u % 2 == 0 => {
                    s.status = "CLOSED".into();
                    s.files = files(rng, 3, false);
                }
                _ => {
                    s.status = "CLOSED".into();
                    let n = rng.random_range(1..4);
                    s.files = files(rng, n, true);
                }
            }
            c.insert_session(s);
        }
    }
}

struct Fleet {
    sim: Simulator,
    vaults: Vec<VaultControl>,
    workspaces: Vec<DeepsetControl>,
}

async fn start_fleet(o: &Opts) -> Res<Fleet> {
    let max_vaults = o.vaults.max(o.scale.iter().copied().max().unwrap_or(0));
    let mut vaults = Vec::with_capacity(max_vaults);
    for v in 0..max_vaults {
        let mut spec = VaultSpec::new(&vault_name(v), 100_000 + v as u64);
        // Seeded sessions ignore the limit; keep it as Vault's.
        spec.session_limit = o.sessions_per_vault.max(50);
        vaults.push(spec);
    }
    let mut workspaces = Vec::with_capacity(o.workspaces);
    for w in 0..o.workspaces {
        let mut spec = DeepsetSpec::new(&workspace_name(w));
        for u in 0..USERS_PER_WORKSPACE {
            spec.users.push(DeepsetUser::new(
                &deepset_user_id(w, u),
                &format!("Given{u}"),
                &format!("Family{w}"),
                &format!("key-{w}-{u}"),
            ));
        }
        workspaces.push(spec);
    }
    let config = SimConfig {
        scenario: Scenario::Idle,
        seed: 7,
        vaults,
        deepset: workspaces,
        s3: None,
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?;
    let mut rng = StdRng::seed_from_u64(42);
    let latency = Duration::from_millis(o.latency_ms);
    let mut vcs = Vec::new();
    for v in 0..max_vaults {
        let c = sim.vault(&vault_name(v)).ok_or("vault missing")?;
        seed_vault(&c, v, o, &mut rng);
        if !latency.is_zero() {
            c.inject(FaultRule::always(None, FaultKind::Delay(latency)));
        }
        vcs.push(c);
    }
    let mut wcs = Vec::new();
    for w in 0..o.workspaces {
        let c = sim.deepset(&workspace_name(w)).ok_or("workspace missing")?;
        seed_workspace(&c, w, o, &mut rng);
        if !latency.is_zero() {
            c.inject(FaultRule::always(None, FaultKind::Delay(latency)));
        }
        wcs.push(c);
    }
    Ok(Fleet {
        sim,
        vaults: vcs,
        workspaces: wcs,
    })
}

/// Session churn: every second, about a fifth of the polled vaults see an
/// upload progress or a session replaced (committed, a new one opened), and
/// a few workspaces open, close and age out a session. The numbers of
/// sessions and owners stay about constant; their ids do not.
fn spawn_churn(
    fleet: &Fleet,
    o: &Opts,
    vaults: usize,
    with_deepset: bool,
) -> tokio::task::JoinHandle<()> {
    let vcs: Vec<VaultControl> = fleet.vaults.iter().take(vaults).cloned().collect();
    let wcs: Vec<DeepsetControl> = if with_deepset {
        fleet.workspaces.clone()
    } else {
        Vec::new()
    };
    let o = o.clone();
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(99);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for _ in 0..(vcs.len() / 5).max(1) {
                let v = rng.random_range(0..vcs.len());
                let c = &vcs[v];
                let sessions = c.sessions();
                if sessions.is_empty() {
                    continue;
                }
                let s = &sessions[rng.random_range(0..sessions.len())];
                let now = c.now();
                if rng.random_bool(0.3) || s.uploaded >= s.size {
                    c.remove_session(&s.id);
                    c.insert_session(random_vault_session(&mut rng, v, &o, now));
                } else {
                    let up = (s.uploaded + rng.random_range(5 * MB..500 * MB)).min(s.size);
                    let parts = u32::try_from(up.div_ceil(50 * 1024 * 1024))
                        .unwrap_or(2000)
                        .min(2000);
                    c.set_progress(&s.id, up, parts, now);
                }
            }
            for _ in 0..(wcs.len() / 10).max(usize::from(!wcs.is_empty())) {
                let w = rng.random_range(0..wcs.len());
                let c = &wcs[w];
                let now = c.now();
                let sessions = c.sessions();
                let open: Vec<_> = sessions.iter().filter(|s| s.status == "OPEN").collect();
                let done: Vec<_> = sessions
                    .iter()
                    .filter(|s| {
                        s.status == "CLOSED"
                            && s.files.iter().all(|f| f.status != "PENDING")
                            && s.expires_at.is_some_and(|e| e > now)
                    })
                    .collect();
                if let Some(s) = open.first() {
                    c.close_session(&s.id);
                }
                if let Some(s) = done.get(rng.random_range(0..done.len().max(1))) {
                    // Ages out of the 24 h window: no longer listed.
                    c.set_expires_at(&s.id, Some(now - time::Duration::days(3)));
                }
                let u = rng.random_range(0..USERS_PER_WORKSPACE);
                let mut seed = DeepsetSessionSeed::open(&deepset_user_id(w, u), now);
                let n = rng.random_range(0..4);
                seed.files = files(&mut rng, n, false);
                c.insert_session(seed);
            }
        }
    })
}

// ------------------------------------------------------------ the exporter

fn exporter_config(
    fleet: &Fleet,
    o: &Opts,
    vaults: usize,
    workspaces: usize,
    interval: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[exporter]\nmax_concurrent_requests = {}\n\n[defaults]\npoll_interval = \"{interval}\"\ntimeout = \"15s\"\n",
        o.max_concurrent_requests
    );
    for v in 0..vaults {
        let name = vault_name(v);
        let url = fleet.sim.vault_url(&name).unwrap_or_default();
        let _ = writeln!(
            s,
            "[[targets]]\nname = \"vault-{name}\"\nkind = \"vault\"\nurl = \"{url}\"\nusername = \"demo@example.com\"\npassword_env = \"BENCH_VAULT_PASSWORD\"\n"
        );
    }
    for w in 0..workspaces {
        let name = workspace_name(w);
        let _ = writeln!(
            s,
            "[[targets]]\nname = \"deepset-{name}\"\nkind = \"deepset\"\nurl = \"{}\"\nworkspace = \"{name}\"\napi_key_env = \"BENCH_DEEPSET_KEY\"\n",
            fleet.sim.deepset_url()
        );
    }
    s
}

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn exporter_binary(o: &Opts) -> Res<PathBuf> {
    if let Some(p) = &o.exporter {
        return Ok(p.clone());
    }
    // target/release/examples/fleet_bench -> target/release/upload_session_exporter
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let bin = dir.join("upload_session_exporter");
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build it first (cargo build --release --bins)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

struct Exporter {
    child: Child,
    port: u16,
    started: Instant,
}

impl Exporter {
    fn spawn(o: &Opts, tag: &str, config: &str) -> Res<Exporter> {
        Self::spawn_under(o, tag, config, &[])
    }

    /// [`spawn`](Self::spawn) under a wrapper command (e.g. valgrind):
    /// `wrapper[0] wrapper[1..] exporter ...`.
    fn spawn_under(o: &Opts, tag: &str, config: &str, wrapper: &[String]) -> Res<Exporter> {
        let work = &o.work;
        let path = work.join(format!("exporter-{tag}.toml"));
        std::fs::write(&path, config)?;
        let port = free_port()?;
        let log = std::fs::File::create(work.join(format!("exporter-{tag}.log")))?;
        let started = Instant::now();
        let bin = exporter_binary(o)?;
        let mut cmd = match wrapper.split_first() {
            Some((w, args)) => {
                let mut c = Command::new(w);
                c.args(args).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("--config.file")
            .arg(&path)
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--log.level")
            .arg("warn")
            .env("BENCH_VAULT_PASSWORD", VAULT_PASSWORD)
            .env("BENCH_DEEPSET_KEY", DEEPSET_KEY)
            .env("BENCH_S3_KEY", S3_DEMO_ACCESS_KEY_ID)
            .env("BENCH_S3_SECRET", S3_DEMO_SECRET_ACCESS_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Exporter {
            child,
            port,
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stop(self) {
        // Dropping kills it (below).
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // SIGTERM would be kinder, but the process only logs out of
        // simulated Vaults: kill is fine and quicker, and a failed phase
        // must not leave it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until no target whose name starts with `prefix` is waiting for its
/// first poll (`/-/ready` names them); returns the time since start.
async fn wait_first_cycle(
    http: &reqwest::Client,
    e: &Exporter,
    prefix: &str,
    limit: Duration,
) -> Res<Duration> {
    let deadline = Instant::now() + limit;
    loop {
        if Instant::now() > deadline {
            return Err(format!("targets {prefix}* not polled within {limit:?}").into());
        }
        if let Ok(r) = http.get(e.url("/-/ready")).send().await {
            let ok = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            let waiting = body
                .split(['\n', ',', ' '])
                .any(|w| w.trim_end_matches('.').starts_with(prefix));
            if ok || (body.starts_with("Not ready") && !waiting) {
                return Ok(e.started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ----------------------------------------------------------------- /proc

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    100.0
}

/// User + system CPU seconds of a process (dead threads included).
fn cpu_seconds(pid: u32) -> Res<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, a)| a).ok_or("bad stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3; utime 14, stime 15 (1-based).
    let utime: f64 = f.get(11).ok_or("bad stat")?.parse()?;
    let stime: f64 = f.get(12).ok_or("bad stat")?.parse()?;
    Ok((utime + stime) / clock_ticks())
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib(pid: u32) -> Res<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

// ------------------------------------------------------------- the page

struct Page {
    plain: Vec<u8>,
    gzip: Vec<u8>,
    /// api_requests_total by (target, endpoint).
    calls: BTreeMap<(String, String), f64>,
    /// last_success_timestamp_seconds by target.
    last_success: BTreeMap<String, f64>,
    /// poll_duration_seconds by target.
    durations: BTreeMap<String, f64>,
    /// poll_errors_total by target (all reasons).
    errors: BTreeMap<String, f64>,
}

fn label(series: &str, k: &str) -> String {
    series
        .split(&format!("{k}=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string()
}

fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The exporter's page (gzip, decoded and parsed); one retry, since an idle
/// keep-alive connection may be closed by the server just as it is reused.
async fn fetch_page(http: &reqwest::Client, e: &Exporter) -> Res<Page> {
    match fetch_page_once(http, e).await {
        Ok(p) => Ok(p),
        Err(_) => fetch_page_once(http, e).await,
    }
}

async fn fetch_page_once(http: &reqwest::Client, e: &Exporter) -> Res<Page> {
    let gzip = http
        .get(e.url("/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await?
        .bytes()
        .await?
        .to_vec();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..]).read_to_end(&mut plain)?;
    let text = String::from_utf8_lossy(&plain);
    let mut calls = BTreeMap::new();
    let mut last_success = BTreeMap::new();
    let mut durations = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("upload_session_api_requests_total{") {
            *calls
                .entry((label(rest, "target"), label(rest, "endpoint")))
                .or_default() += sample_value(line);
        } else if let Some(rest) =
            line.strip_prefix("upload_session_last_success_timestamp_seconds{")
        {
            last_success.insert(label(rest, "target"), sample_value(line));
        } else if let Some(rest) = line.strip_prefix("upload_session_poll_duration_seconds{") {
            durations.insert(label(rest, "target"), sample_value(line));
        } else if let Some(rest) = line.strip_prefix("upload_session_poll_errors_total{") {
            *errors.entry(label(rest, "target")).or_default() += sample_value(line);
        }
    }
    Ok(Page {
        plain,
        gzip,
        calls,
        last_success,
        durations,
        errors,
    })
}

/// Calls of targets named `{kind}-...`, for one endpoint or all.
fn calls(p: &Page, kind: &str, endpoint: Option<&str>) -> f64 {
    p.calls
        .iter()
        .filter(|((t, e), _)| {
            t.split('-').next() == Some(kind) && endpoint.is_none_or(|want| e == want)
        })
        .map(|(_, v)| v)
        .sum()
}

fn target_calls(p: &Page, target: &str) -> BTreeMap<String, f64> {
    p.calls
        .iter()
        .filter(|((t, _), _)| t == target)
        .map(|((_, e), v)| (e.clone(), *v))
        .collect()
}

/// Calls made by one steady-state poll of each target: samples the page
/// every 5 s until every target's last_success moved once after `first`
/// (one poll: the interval is far longer than the sampling), and takes the
/// difference of its counters. Returns per-kind averages by endpoint and
/// the number of targets seen.
async fn steady_poll_calls(
    http: &reqwest::Client,
    e: &Exporter,
    limit: Duration,
) -> Res<BTreeMap<String, (usize, BTreeMap<String, f64>)>> {
    let mut prev = fetch_page(http, e).await?;
    let mut done: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    while done.len() < prev.last_success.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let cur = fetch_page(http, e).await?;
        for (t, ls) in &cur.last_success {
            if done.contains_key(t) {
                continue;
            }
            if prev
                .last_success
                .get(t)
                .is_some_and(|p| p != ls && *p > 0.0)
            {
                let before = target_calls(&prev, t);
                let delta = target_calls(&cur, t)
                    .into_iter()
                    .map(|(ep, n)| {
                        let d = n - before.get(&ep).copied().unwrap_or(0.0);
                        (ep, d)
                    })
                    .collect();
                done.insert(t.clone(), delta);
            }
        }
        prev = cur;
    }
    let mut by_kind: BTreeMap<String, (usize, BTreeMap<String, f64>)> = BTreeMap::new();
    for (t, delta) in done {
        let kind = t.split('-').next().unwrap_or("").to_string();
        let entry = by_kind.entry(kind).or_default();
        entry.0 += 1;
        for (ep, d) in delta {
            *entry.1.entry(ep).or_default() += d;
        }
    }
    for (n, eps) in by_kind.values_mut() {
        for v in eps.values_mut() {
            *v /= *n as f64;
        }
    }
    Ok(by_kind)
}

// ----------------------------------------------------------------- nginx

struct Nginx {
    child: Child,
    port: u16,
}

fn start_nginx(work: &Path, page: &Page) -> Res<Nginx> {
    let dir = work.join("nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::write(www.join("metrics.txt"), &page.plain)?;
    std::fs::write(www.join("metrics.txt.gz"), &page.gzip)?;
    let port = free_port()?;
    let conf = format!(
        r#"worker_processes auto;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120;
    keepalive_requests 100000000;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /metrics {{
            default_type "text/plain; version=0.0.4; charset=utf-8";
            alias {w}/metrics.txt;
        }}
        location = /metrics.gz {{
            default_type "text/plain; version=0.0.4; charset=utf-8";
            add_header Content-Encoding gzip;
            add_header Vary Accept-Encoding;
            alias {w}/metrics.txt.gz;
        }}
    }}
}}
"#,
        d = dir.display(),
        w = www.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx ({e}); bench/run.sh installs it"))?;
    Ok(Nginx { child, port })
}

impl Nginx {
    fn stop(self) {
        // Dropping stops it (below).
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: it stops its workers too (SIGKILL would
        // leave them running).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------- wrk

#[derive(Debug, Default, Clone)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
    non_2xx: u64,
    mb_per_s: f64,
}

fn parse_duration_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

fn run_wrk(url: &str, gzip: bool, connections: usize, secs: u64) -> Res<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("--timeout")
        .arg("30s");
    if gzip {
        cmd.arg("-H").arg("Accept-Encoding: gzip");
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk ({e}); bench/run.sh installs it"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = Wrk::default();
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        if t.starts_with("Requests/sec:") {
            w.rps = words.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        } else if t.starts_with("Transfer/sec:") {
            let v = words.get(1).copied().unwrap_or("0");
            let (n, m) = if let Some(n) = v.strip_suffix("GB") {
                (n, 1024.0)
            } else if let Some(n) = v.strip_suffix("MB") {
                (n, 1.0)
            } else if let Some(n) = v.strip_suffix("KB") {
                (n, 1.0 / 1024.0)
            } else {
                (v.trim_end_matches('B'), 1.0 / (1024.0 * 1024.0))
            };
            w.mb_per_s = n.parse::<f64>().unwrap_or(0.0) * m;
        } else if words.first() == Some(&"50%") {
            w.p50_ms = parse_duration_ms(words.get(1).copied().unwrap_or(""));
        } else if words.first() == Some(&"99%") {
            w.p99_ms = parse_duration_ms(words.get(1).copied().unwrap_or(""));
        } else if t.contains("requests in") {
            w.requests = words.first().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if t.starts_with("Socket errors:") {
            // Socket errors: connect 0, read 0, write 0, timeout 0
            w.errors = t
                .split([',', ':'])
                .filter_map(|p| p.split_whitespace().last())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
        } else if t.starts_with("Non-2xx or 3xx responses:") {
            w.non_2xx = words.last().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    if w.errors + w.non_2xx > 0 {
        eprintln!("   wrk {url} (gzip {gzip}, {connections} connections) reported errors:\n{text}");
    }
    if w.requests == 0 {
        return Err(format!(
            "wrk gave no result for {url}: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(w)
}

// ----------------------------------------------------------------- table

struct Row {
    figure: String,
    exporter: String,
    baseline: String,
    ratio: String,
    target: String,
    pass: Option<bool>,
}

fn row(
    figure: impl Into<String>,
    exporter: impl Into<String>,
    baseline: impl Into<String>,
    ratio: impl Into<String>,
    target: impl Into<String>,
    pass: Option<bool>,
) -> Row {
    Row {
        figure: figure.into(),
        exporter: exporter.into(),
        baseline: baseline.into(),
        ratio: ratio.into(),
        target: target.into(),
        pass,
    }
}

fn render_table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| figure | exporter | baseline | ratio | target | result |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.exporter,
            r.baseline,
            r.ratio,
            r.target,
            match r.pass {
                Some(true) => "pass",
                Some(false) => "**FAIL**",
                None => "info",
            }
        );
    }
    s
}

/// The machine; `tools`: the versions of nginx and wrk too.
fn machine(tools: bool) -> String {
    let sh = |c: &str| -> String {
        Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut s = format!(
        "- CPU: {} ({} cores, `nproc`)\n- memory (`free -h`):\n\n```\n{}\n```\n- kernel: {}\n- load average at start: {}\n",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'"),
        sh("nproc"),
        sh("free -h"),
        sh("uname -r"),
        sh("cut -d' ' -f1-3 /proc/loadavg"),
    );
    if tools {
        s.push_str(&format!(
            "- nginx: {}; wrk: {}\n",
            sh("nginx -v 2>&1 | sed 's/.*: //'"),
            sh("wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"),
        ));
    }
    s
}

fn linear_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

// ----------------------------------------------------------------- phases

struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    scale: Vec<String>,
    load: Vec<String>,
    soak: Vec<String>,
    /// Per-poll tables of the S3 runs.
    s3: Vec<String>,
    /// Assertions that failed (the run exits non-zero).
    failures: Vec<String>,
}

/// Phase 1a: the Vault fleet alone at the production interval: the first
/// full cycle, then the idle window until the second cycle is due.
async fn phase_vaults(
    fleet: &Fleet,
    o: &Opts,
    http: &reqwest::Client,
    report: &mut Report,
) -> Res<()> {
    eprintln!("== phase 1a: {} Vaults at 60 s", o.vaults);
    let cfg = exporter_config(fleet, o, o.vaults, 0, "60s");
    let e = Exporter::spawn(o, "vaults", &cfg)?;
    let first = wait_first_cycle(http, &e, "vault-", Duration::from_secs(120)).await?;
    eprintln!("   first cycle {first:?}");
    // Ideal: two calls (login, list) per Vault at the configured latency,
    // max_concurrent_requests at a time.
    let ideal =
        (o.vaults as f64 * 2.0 * o.latency_ms as f64 / 1000.0) / o.max_concurrent_requests as f64;
    report.rows.push(row(
        format!(
            "first full cycle, {} Vault targets, {} ms per call",
            o.vaults, o.latency_ms
        ),
        format!("{:.2} s", first.as_secs_f64()),
        format!("{ideal:.2} s (ideal)"),
        format!("{:.2}×", first.as_secs_f64() / ideal),
        "< 5 s",
        Some(first < Duration::from_secs(5)),
    ));
    // Let the last publication finish; no poll is due until 54 s after the
    // start (60 s less 10 % jitter).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_start = Instant::now();
    let cpu0 = cpu_seconds(e.pid())?;
    let idle_end = (e.started + Duration::from_secs(50)).max(idle_start + Duration::from_secs(10));
    tokio::time::sleep_until(idle_end.into()).await;
    let idle_cpu = cpu_seconds(e.pid())? - cpu0;
    let idle_secs = idle_start.elapsed().as_secs_f64();
    let idle_pct = idle_cpu / idle_secs * 100.0;
    report.rows.push(row(
        format!(
            "idle CPU between polls, {} Vaults ({idle_secs:.0} s window, no scrapes)",
            o.vaults
        ),
        format!("{idle_pct:.3} % of a core"),
        "",
        "",
        "< 0.5 % of a core",
        Some(idle_pct < 0.5),
    ));
    let (rss, _) = rss_mib(e.pid())?;
    report.notes.push(format!(
        "{} Vaults alone ({} sessions): {rss:.1} MiB resident after the first cycle.",
        o.vaults,
        o.vaults * o.sessions_per_vault
    ));
    e.stop();
    Ok(())
}

/// Phase 1b: the whole fleet at the production interval: first cycle,
/// memory, API calls per poll, serving against nginx, 1000 connections.
async fn phase_production(
    fleet: &Fleet,
    o: &Opts,
    http: &reqwest::Client,
    report: &mut Report,
) -> Res<()> {
    eprintln!(
        "== phase 1b: {} Vaults + {} workspaces at 60 s",
        o.vaults, o.workspaces
    );
    let cfg = exporter_config(fleet, o, o.vaults, o.workspaces, "60s");
    let e = Exporter::spawn(o, "production", &cfg)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_start, _) = rss_mib(e.pid())?;
    let vault_cycle = wait_first_cycle(http, &e, "vault-", Duration::from_secs(240)).await?;
    let all_cycle = wait_first_cycle(http, &e, "", Duration::from_secs(240)).await?;
    eprintln!("   first cycle: vaults {vault_cycle:?}, all {all_cycle:?}");
    report.rows.push(row(
        format!(
            "first full cycle of the {} Vaults polled beside {} deepset workspaces",
            o.vaults, o.workspaces
        ),
        format!("{:.2} s", vault_cycle.as_secs_f64()),
        format!("{:.2} s (whole fleet)", all_cycle.as_secs_f64()),
        "",
        "< 5 s (no head-of-line blocking)",
        Some(vault_cycle < Duration::from_secs(5)),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, _) = rss_mib(e.pid())?;
    report.rows.push(row(
        format!(
            "resident memory after the first cycle ({} sessions, {} targets)",
            o.vaults * o.sessions_per_vault + o.workspaces * o.sessions_per_workspace,
            o.vaults + o.workspaces
        ),
        format!("{rss:.1} MiB"),
        format!("{rss_start:.1} MiB (at start)"),
        format!("{:.2}×", rss / rss_start.max(0.1)),
        "< 64 MiB",
        Some(rss < 64.0),
    ));

    // API footprint of a steady-state poll, per target; and the CPU of the
    // polling meanwhile (cycles counted by Vault list calls).
    let cpu0 = cpu_seconds(e.pid())?;
    let lists0 = calls(
        &fetch_page(http, &e).await?,
        "vault",
        Some("list_upload_sessions"),
    );
    let t0 = Instant::now();
    let per_kind = steady_poll_calls(http, &e, Duration::from_secs(90)).await?;
    let cpu = cpu_seconds(e.pid())? - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    let cycles = (calls(
        &fetch_page(http, &e).await?,
        "vault",
        Some("list_upload_sessions"),
    ) - lists0)
        / o.vaults as f64;
    report.rows.push(row(
        format!(
            "CPU per full poll cycle of the whole fleet at 60 s ({} targets; HTTP, decode, analytics, render, gzip; page fetched every 5 s)",
            o.vaults + o.workspaces
        ),
        format!("{:.0} ms", cpu / cycles.max(1e-9) * 1000.0),
        format!("{cycles:.2} cycles in {secs:.0} s"),
        format!("{:.2} % of a core", cpu / secs * 100.0),
        "",
        None,
    ));
    if let Some((n, eps)) = per_kind.get("vault") {
        let per_poll: f64 = eps.values().sum();
        let per_window = per_poll * 5.0;
        report.rows.push(row(
            format!("Vault API calls per target per poll, steady state ({n} targets)"),
            format!("{per_poll:.2}"),
            "1 (list only)",
            format!("{per_poll:.2}×"),
            "1 per poll + logins",
            Some(per_poll < 1.05),
        ));
        report.rows.push(row(
            "Vault API calls per target per hour at 60 s (per 5-min burst window)",
            format!("{:.0} ({per_window:.1})", per_poll * 60.0),
            "2000 per 5 min (burst limit)",
            format!("{:.2} %", per_window / 2000.0 * 100.0),
            "≤ 5 % (burst_limit_share)",
            Some(per_window / 2000.0 <= 0.05),
        ));
    }
    if let Some((n, eps)) = per_kind.get("deepset") {
        let per_poll: f64 = eps.values().sum();
        let by_ep = eps
            .iter()
            .map(|(ep, v)| format!("{ep} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Expected: 3 list pages (2 live + 1 expired), one file count per
        // open session, two calls per closed session with pending files.
        let expected =
            3.0 + 2.0 * USERS_PER_WORKSPACE as f64 + 2.0 * (USERS_PER_WORKSPACE / 2) as f64;
        report.rows.push(row(
            format!(
                "deepset calls per workspace per poll, steady state ({n} workspaces: ~{} sessions, {} open, {} closed with ingestion pending)",
                o.sessions_per_workspace,
                2 * USERS_PER_WORKSPACE,
                USERS_PER_WORKSPACE / 2
            ),
            format!("{per_poll:.1} ({:.0}/h at 60 s)", per_poll * 60.0),
            format!("{expected:.0} (pages + 1 per open + 2 per pending)"),
            format!("{:.2}×", per_poll / expected),
            "as documented",
            Some(per_poll <= expected + 0.5),
        ));
        report.notes.push(format!(
            "deepset calls per workspace per steady-state poll: {by_ep}."
        ));
    }

    let first = fetch_page(http, &e).await?;
    report.notes.push(format!(
        "Exposition of the fleet: {} bytes plain, {} bytes gzip ({:.1}×), {} lines.",
        first.plain.len(),
        first.gzip.len(),
        first.plain.len() as f64 / first.gzip.len().max(1) as f64,
        first.plain.iter().filter(|b| **b == b'\n').count()
    ));

    // Serving, against nginx with the same bytes.
    if !o.skips("serve") {
        let nginx = start_nginx(&o.work, &first)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for gzip in [false, true] {
            // Paired rounds, alternating which goes first; the round with
            // the median ratio is reported (robust to other work on the
            // machine drifting during the run).
            let path = if gzip { "/metrics.gz" } else { "/metrics" };
            let nginx_url = format!("http://127.0.0.1:{}{path}", nginx.port);
            let mut pairs = Vec::new();
            for round in 0..o.serve_rounds {
                let (we, wn) = if round % 2 == 0 {
                    let we = run_wrk(&e.url("/metrics"), gzip, 64, o.wrk_secs)?;
                    (we, run_wrk(&nginx_url, gzip, 64, o.wrk_secs)?)
                } else {
                    let wn = run_wrk(&nginx_url, gzip, 64, o.wrk_secs)?;
                    (run_wrk(&e.url("/metrics"), gzip, 64, o.wrk_secs)?, wn)
                };
                eprintln!(
                    "   serve gzip={gzip}: exporter {:.0} req/s p99 {:.1} ms; nginx {:.0} req/s p99 {:.1} ms",
                    we.rps, we.p99_ms, wn.rps, wn.p99_ms
                );
                pairs.push((we.rps / wn.rps.max(1e-9), we, wn));
            }
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let ratios = pairs
                .iter()
                .map(|p| format!("{:.2}", p.0))
                .collect::<Vec<_>>()
                .join(", ");
            let Some((_, best_e, best_n)) = pairs.get(pairs.len() / 2).cloned() else {
                continue;
            };
            report.notes.push(format!(
                "serving {} rounds, exporter/nginx ratio per round (sorted): {ratios}",
                if gzip { "gzip" } else { "identity" }
            ));
            let enc = if gzip { "gzip" } else { "identity" };
            let ratio = best_e.rps / best_n.rps.max(1e-9);
            report.rows.push(row(
                format!(
                    "serving /metrics {enc}, 64 connections (req/s, median of {} paired rounds)",
                    o.serve_rounds
                ),
                format!("{:.0} req/s", best_e.rps),
                format!("{:.0} req/s (nginx)", best_n.rps),
                format!("{ratio:.2}×"),
                "≥ 0.9× nginx",
                Some(ratio >= 0.9),
            ));
            report.rows.push(row(
                format!("serving /metrics {enc}: p50 / p99 latency"),
                format!("{:.2} / {:.2} ms", best_e.p50_ms, best_e.p99_ms),
                format!("{:.2} / {:.2} ms (nginx)", best_n.p50_ms, best_n.p99_ms),
                format!("{:.2}×", best_e.p99_ms / best_n.p99_ms.max(1e-9)),
                "reported",
                None,
            ));
            if best_e.errors + best_e.non_2xx > 0 {
                report.notes.push(format!(
                    "serving {enc}: {} socket errors, {} non-2xx",
                    best_e.errors, best_e.non_2xx
                ));
            }
        }
        nginx.stop();
    }

    // 1000 concurrent connections.
    if !o.skips("load") {
        let conns = o.load_connections;
        // The fleet's budget plus 32 KiB per connection (socket and
        // HTTP buffers).
        let bound = 64.0 + conns as f64 * 32.0 / 1024.0;
        for gzip in [true, false] {
            let enc = if gzip { "gzip" } else { "identity" };
            let pid = e.pid();
            let cpu0 = cpu_seconds(pid)?;
            let (rss0, _) = rss_mib(pid)?;
            let sampler = tokio::spawn(async move {
                let mut max = 0.0f64;
                while let Ok((r, _)) = rss_mib(pid) {
                    max = max.max(r);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                max
            });
            let url = e.url("/metrics");
            let secs = o.load_secs;
            let w = tokio::task::spawn_blocking(move || run_wrk(&url, gzip, conns, secs)).await??;
            let (rss1, _) = rss_mib(pid)?;
            let cpu = cpu_seconds(pid)? - cpu0;
            sampler.abort();
            let peak = match sampler.await {
                Ok(m) => m.max(rss1),
                Err(_) => rss1,
            };
            report.load.push(format!(
                "| {conns} | {enc} | {secs} s | {} | {:.0} | {:.1} | {:.1} / {:.1} ms | {} | {} | {rss0:.1} → {rss1:.1} MiB | {:.0} % |",
                w.requests,
                w.rps,
                w.mb_per_s,
                w.p50_ms,
                w.p99_ms,
                w.errors,
                w.non_2xx,
                cpu / secs as f64 * 100.0,
            ));
            eprintln!(
                "   load {conns} {enc}: {:.0} req/s, errors {} non-2xx {}, RSS {rss0:.1} -> {rss1:.1} (peak {peak:.1})",
                w.rps, w.errors, w.non_2xx
            );
            report.rows.push(row(
                format!("{conns} concurrent connections, {enc}, {secs} s: errors; RSS at the end"),
                format!("{} errors; {rss1:.1} MiB", w.errors + w.non_2xx),
                format!("{rss0:.1} MiB (before)"),
                format!("{:.2}×", rss1 / rss0.max(0.1)),
                format!("0 errors; < {bound:.0} MiB"),
                Some(w.errors + w.non_2xx == 0 && rss1 < bound),
            ));
        }
    }
    e.stop();
    Ok(())
}

/// Samples (seconds since start, RSS MiB) and CPU while the exporter polls
/// at 5 s with churn.
async fn phase_soak(
    fleet: &Fleet,
    o: &Opts,
    http: &reqwest::Client,
    report: &mut Report,
) -> Res<()> {
    eprintln!("== phase 2: soak at 5 s with churn for {} s", o.soak_secs);
    let churn = spawn_churn(fleet, o, o.vaults, true);
    let cfg = exporter_config(fleet, o, o.vaults, o.workspaces, "5s");
    let e = Exporter::spawn(o, "soak", &cfg)?;
    wait_first_cycle(http, &e, "", Duration::from_secs(180)).await?;
    let warmup = Duration::from_secs(30);
    tokio::time::sleep(warmup).await;
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(e.pid())?;
    let p0 = fetch_page(http, &e).await?;
    let mut points = Vec::new();
    let mut max_rss = 0.0f64;
    let every = Duration::from_secs(10);
    while t0.elapsed() < Duration::from_secs(o.soak_secs) {
        let (rss, _) = rss_mib(e.pid())?;
        max_rss = max_rss.max(rss);
        points.push((t0.elapsed().as_secs_f64(), rss));
        tokio::time::sleep(every).await;
    }
    let (rss, hwm) = rss_mib(e.pid())?;
    points.push((t0.elapsed().as_secs_f64(), rss));
    max_rss = max_rss.max(rss);
    let cpu = cpu_seconds(e.pid())? - cpu0;
    let p1 = fetch_page(http, &e).await?;
    let secs = t0.elapsed().as_secs_f64();
    churn.abort();
    e.stop();
    let vault_cycles = (calls(&p1, "vault", Some("list_upload_sessions"))
        - calls(&p0, "vault", Some("list_upload_sessions")))
        / o.vaults as f64;
    let slope_all_h = linear_slope(&points) * 3600.0;
    // The allocator's arenas and the caches fill during the first minutes
    // (a step, not a trend): the flatness is judged on what follows, the
    // first sixth of the soak (at least 2 min) being the warm-up. Both
    // slopes are printed.
    let warm = (o.soak_secs as f64 / 6.0).max(120.0);
    let steady: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= warm).collect();
    let steady = if steady.len() >= 6 {
        steady
    } else {
        points.clone()
    };
    let slope_h = linear_slope(&steady) * 3600.0;
    // jemalloc's resident memory climbs for the first ~15 minutes before it
    // levels off (BENCHMARKS.md, the hour-long soak): a shorter soak sees
    // only that climb, so its slope is printed but not judged.
    let judge_flatness = o.soak_secs >= 1800;
    // Compare the first and last fifth too: less sensitive to one outlier.
    let fifth = (steady.len() / 5).max(1);
    let avg = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len().max(1) as f64;
    let (head, tail) = (avg(&steady[..fifth]), avg(&steady[steady.len() - fifth..]));
    report.rows.push(row(
        format!(
            "resident memory, {:.0}-min soak at 5 s with churn: max; slope after the {:.0}-min warm-up (whole run)",
            secs / 60.0,
            warm / 60.0
        ),
        format!("{max_rss:.1} MiB; {slope_h:+.2} MiB/h ({slope_all_h:+.2})"),
        format!("{head:.1} → {tail:.1} MiB (first → last fifth after warm-up)"),
        format!("{:.2}×", tail / head.max(0.1)),
        if judge_flatness {
            "< 64 MiB; flat (abs(slope) < 3.2 MiB/h)"
        } else {
            "< 64 MiB (flatness is judged on soaks of 30 min or more: --soak-secs 3600)"
        },
        Some(max_rss < 64.0 && (!judge_flatness || slope_h.abs() < 3.2)),
    ));
    report.rows.push(row(
        "CPU per cycle of the whole fleet incl. deepset, 5 s, churn (soak)",
        format!("{:.0} ms", cpu / vault_cycles.max(1e-9) * 1000.0),
        format!("{vault_cycles:.0} cycles in {secs:.0} s"),
        format!("{:.1} % of a core", cpu / secs * 100.0),
        "",
        None,
    ));
    let mut s = String::new();
    // At most ~60 printed samples, however long the soak.
    let stride = points.len().div_ceil(60).max(1);
    for (t, r) in points.iter().step_by(stride) {
        let _ = write!(s, "{:.0}s {r:.1}; ", t);
    }
    report
        .soak
        .push(format!("RSS samples (MiB, every {} s): {s}", 10 * stride));
    report.soak.push(format!("VmHWM at the end: {hwm:.1} MiB"));
    Ok(())
}

async fn phase_scale(
    fleet: &Fleet,
    o: &Opts,
    http: &reqwest::Client,
    report: &mut Report,
) -> Res<()> {
    for &n in &o.scale {
        eprintln!("== phase 3: {n} Vault targets at 5 s");
        let churn = spawn_churn(fleet, o, n, false);
        let cfg = exporter_config(fleet, o, n, 0, "5s");
        let e = Exporter::spawn(o, &format!("scale-{n}"), &cfg)?;
        let first = wait_first_cycle(http, &e, "vault-", Duration::from_secs(300)).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cpu0 = cpu_seconds(e.pid())?;
        let p0 = fetch_page(http, &e).await?;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(o.scale_secs)).await;
        let cpu = cpu_seconds(e.pid())? - cpu0;
        let p1 = fetch_page(http, &e).await?;
        let secs = t0.elapsed().as_secs_f64();
        let (rss, _) = rss_mib(e.pid())?;
        churn.abort();
        e.stop();
        let cycles = (calls(&p1, "vault", Some("list_upload_sessions"))
            - calls(&p0, "vault", Some("list_upload_sessions")))
            / n as f64;
        let per_cycle_ms = cpu / cycles.max(1e-9) * 1000.0;
        report.scale.push(format!(
            "| {n} | {} | {:.2} s | {per_cycle_ms:.1} ms | {:.1} | {:.1} % | {rss:.1} MiB | {:.0} KiB | {:.0} KiB |",
            n * o.sessions_per_vault,
            first.as_secs_f64(),
            cycles,
            cpu / secs * 100.0,
            p1.plain.len() as f64 / 1024.0,
            p1.gzip.len() as f64 / 1024.0,
        ));
        if n == o.vaults {
            report.rows.push(row(
                format!(
                    "CPU per full poll cycle, {} sessions ({n} Vaults at 5 s, churn; HTTP + decode + analytics + render + gzip)",
                    n * o.sessions_per_vault
                ),
                format!("{per_cycle_ms:.1} ms"),
                "100 ms (budget)",
                format!("{:.2}×", per_cycle_ms / 100.0),
                "< 100 ms",
                Some(per_cycle_ms < 100.0),
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------ S3 buckets

const S3_BUCKET: &str = "bench-uploads";
/// Published as `s3bench:bench-uploads`.
const S3_TARGET: &str = "s3bench";
const MIB: u64 = 1024 * 1024;
/// The exporter's defaults: `max_list_parts_per_poll`, and uploads per
/// `ListMultipartUploads` page.
const S3_CAP: usize = 1000;
const S3_PAGE: usize = 1000;
/// `ListParts` in flight per bucket (the exporter's `PARTS_AT_ONCE`).
const S3_PARTS_AT_ONCE: usize = 8;
/// stall_after and dormant_refresh in poll intervals: 30 min and 1 h at the
/// production interval of 60 s.
const S3_STALL_POLLS: u64 = 30;
const S3_DORMANT_POLLS: u64 = 60;
/// Above this many uploads no Vault baseline is run (a Vault holds tens of
/// sessions; 10,000 in one is already generous).
const S3_BASELINE_MAX: usize = 20_000;

fn s3_owner(k: usize) -> S3Identity {
    S3Identity::new(
        &format!("arn:aws:iam::111122223333:user/uploader-{k:02}"),
        &format!("uploader-{k:02}"),
    )
}

/// One open upload: an owner, a key under the owner's prefix, one of the
/// usual client part sizes and 1 to 8 parts of it, initiated in the last
/// week (parts last modified minutes after that: none moves by itself).
fn s3_upload(rng: &mut StdRng, owners: usize, now: OffsetDateTime) -> (S3UploadSeed, u64) {
    let k = rng.random_range(0..owners);
    let chunk = [8, 16, 64, 100][rng.random_range(0..4)] * MIB;
    let parts = rng.random_range(1..=8u32);
    let initiated = now - time::Duration::minutes(rng.random_range(10..7 * 24 * 60));
    let mut s = S3UploadSeed::new(
        &format!(
            "incoming/uploader-{k:02}/batch-{:03}/file-{:08x}.bin",
            rng.random_range(0..200),
            rng.random::<u32>()
        ),
        s3_owner(k),
        initiated,
    );
    s.parts = (1..=parts).map(|n| (n, chunk)).collect();
    (s, chunk)
}

/// Per owner: (sessions, bytes, parts).
type OwnerFigures = BTreeMap<String, (u64, u64, u64)>;

/// What the simulator holds, per initiator.
fn s3_truth(ctl: &S3Control) -> OwnerFigures {
    let mut m = OwnerFigures::new();
    for u in ctl.uploads(S3_BUCKET) {
        let e = m.entry(u.initiator.id.clone()).or_default();
        e.0 += 1;
        e.1 += u.parts.iter().map(|p| p.1).sum::<u64>();
        e.2 += u.parts.len() as u64;
    }
    m
}

/// What the exporter's page says, per owner of `target`.
fn exported_figures(p: &Page, target: &str) -> OwnerFigures {
    let text = String::from_utf8_lossy(&p.plain);
    let mut m = OwnerFigures::new();
    for line in text.lines() {
        let (fam, rest) = match line.split_once('{') {
            Some(x) => x,
            None => continue,
        };
        if label(rest, "target") != target {
            continue;
        }
        let owner = label(rest, "owner_id");
        let v = sample_value(line) as u64;
        match fam {
            "upload_session_sessions" => m.entry(owner).or_default().0 += v,
            "upload_session_uploaded_bytes" => m.entry(owner).or_default().1 += v,
            "upload_session_uploaded_parts" => m.entry(owner).or_default().2 += v,
            _ => {}
        }
    }
    m
}

/// The owners whose exported figures differ from the simulator's (at most
/// five described), and the total number of such owners.
fn figure_differences(exported: &OwnerFigures, truth: &OwnerFigures) -> (usize, Vec<String>) {
    let mut diffs = Vec::new();
    let owners: std::collections::BTreeSet<&String> = exported.keys().chain(truth.keys()).collect();
    for o in owners {
        let e = exported.get(o).copied().unwrap_or_default();
        let t = truth.get(o).copied().unwrap_or_default();
        if e != t {
            diffs.push(format!(
                "{o}: exported (sessions, bytes, parts) {e:?}, simulator {t:?}"
            ));
        }
    }
    let n = diffs.len();
    diffs.truncate(5);
    (n, diffs)
}

fn sum_figures(m: &OwnerFigures) -> (u64, u64, u64) {
    m.values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2))
}

fn s3_exporter_config(o: &Opts, url: &str) -> String {
    let p = o.s3_poll_secs;
    format!(
        "[exporter]\nmax_concurrent_requests = {}\n\n[defaults]\npoll_interval = \"{p}s\"\ntimeout = \"15s\"\nstall_after = \"{}s\"\n\n\
         [[targets]]\nname = \"{S3_TARGET}\"\nkind = \"s3\"\nurl = \"{url}\"\nbuckets = [\"{S3_BUCKET}\"]\npath_style = true\n\
         access_key_id_env = \"BENCH_S3_KEY\"\nsecret_access_key_env = \"BENCH_S3_SECRET\"\ndormant_refresh = \"{}s\"\n",
        o.max_concurrent_requests,
        p * S3_STALL_POLLS,
        p * S3_DORMANT_POLLS,
    )
}

fn vault_baseline_config(o: &Opts, url: &str) -> String {
    format!(
        "[exporter]\nmax_concurrent_requests = {}\n\n[defaults]\npoll_interval = \"{}s\"\ntimeout = \"15s\"\nstall_after = \"{}s\"\n\n\
         [[targets]]\nname = \"vault-base\"\nkind = \"vault\"\nurl = \"{url}\"\nusername = \"demo@example.com\"\npassword_env = \"BENCH_VAULT_PASSWORD\"\n",
        o.max_concurrent_requests,
        o.s3_poll_secs,
        o.s3_poll_secs * S3_STALL_POLLS,
    )
}

/// One poll of a target as the exporter's page told it.
#[derive(Debug, Clone)]
struct PollRec {
    /// Poll start, Unix seconds (last_success_timestamp_seconds: the time
    /// the poll started); NaN for a failed poll.
    start: f64,
    /// poll_duration_seconds.
    duration: f64,
    failed: bool,
    /// This poll's upstream calls by endpoint.
    calls: BTreeMap<String, f64>,
    /// Exporter CPU seconds when the poll was seen on the page.
    cpu: f64,
    /// VmRSS (MiB) then.
    rss: f64,
    /// Seconds since the exporter started, when seen.
    seen: f64,
}

/// Watches one target's polls through the page (every second: a poll every
/// few seconds is never missed).
struct Monitor {
    target: String,
    last_start: f64,
    last_errors: f64,
    last_calls: BTreeMap<String, f64>,
    polls: Vec<PollRec>,
    max_rss: f64,
    page: Option<Page>,
}

impl Monitor {
    fn new(target: &str) -> Self {
        Monitor {
            target: target.to_string(),
            last_start: 0.0,
            last_errors: 0.0,
            last_calls: BTreeMap::new(),
            polls: Vec::new(),
            max_rss: 0.0,
            page: None,
        }
    }

    /// Waits for the next poll of the target to appear on the page.
    async fn next_poll(
        &mut self,
        http: &reqwest::Client,
        e: &Exporter,
        limit: Duration,
    ) -> Res<PollRec> {
        let deadline = Instant::now() + limit;
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "no poll of {} within {limit:?} (after poll {})",
                    self.target,
                    self.polls.len()
                )
                .into());
            }
            let p = fetch_page(http, e).await?;
            let (rss, _) = rss_mib(e.pid())?;
            self.max_rss = self.max_rss.max(rss);
            let start = p.last_success.get(&self.target).copied().unwrap_or(0.0);
            let errors = p.errors.get(&self.target).copied().unwrap_or(0.0);
            let new_success = start > 0.0 && start != self.last_start;
            if new_success || errors != self.last_errors {
                let cum = target_calls(&p, &self.target);
                let calls = cum
                    .iter()
                    .map(|(ep, n)| {
                        let before = self.last_calls.get(ep).copied().unwrap_or(0.0);
                        (ep.clone(), n - before)
                    })
                    .collect();
                let rec = PollRec {
                    start: if new_success { start } else { f64::NAN },
                    duration: p.durations.get(&self.target).copied().unwrap_or(f64::NAN),
                    failed: !new_success,
                    calls,
                    cpu: cpu_seconds(e.pid())?,
                    rss,
                    seen: e.started.elapsed().as_secs_f64(),
                };
                self.last_calls = cum;
                self.last_errors = errors;
                if new_success {
                    self.last_start = start;
                }
                self.polls.push(rec.clone());
                self.page = Some(p);
                return Ok(rec);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn page(&self) -> Res<&Page> {
        self.page.as_ref().ok_or_else(|| "no page yet".into())
    }
}

fn calls_of(r: &PollRec, ep: &str) -> f64 {
    r.calls.get(ep).copied().unwrap_or(0.0)
}

/// The uploads in progress: (upload id, next part number, part size).
type Active = Arc<std::sync::Mutex<Vec<(String, u32, u64)>>>;

/// Adds a part (of the upload's own part size) to every active upload once
/// per poll interval while `on`.
fn spawn_s3_churn(
    ctl: S3Control,
    active: Active,
    every: Duration,
    on: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if !on.load(Ordering::SeqCst) {
                continue;
            }
            let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
            for (id, next, chunk) in active.iter_mut() {
                if ctl.put_part(S3_BUCKET, id, *next, *chunk) {
                    *next += 1;
                }
            }
        }
    })
}

/// Runs `callgrind_control ARGS PID`.
async fn callgrind_control(pid: u32, args: &[&str]) -> Res<()> {
    let mut cmd = Command::new("callgrind_control");
    cmd.args(args).arg(pid.to_string());
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// The instructions (`summary:`) of the newest dump of `base` (callgrind
/// names dumps `base.1`, `base.2`...).
fn callgrind_dump_total(base: &Path) -> Res<u64> {
    let dir = base.parent().ok_or("no directory")?;
    let name = base
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad name")?
        .to_string();
    let mut newest: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(k) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&format!("{name}.")))
            .and_then(|k| k.parse::<u32>().ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(m, _)| k > *m) {
            newest = Some((k, path));
        }
    }
    let (_, path) = newest.ok_or("no callgrind dump")?;
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no summary in {}", path.display()).into())
}

/// Instructions of `polls` consecutive polls of `target` from poll `from`
/// on, the exporter running under callgrind with instrumentation switched
/// on only for them; returns (instructions per poll, the polls measured).
async fn callgrind_polls(
    o: &Opts,
    tag: &str,
    config: &str,
    target: &str,
    http: &reqwest::Client,
    from: usize,
    polls: usize,
) -> Res<(f64, Vec<PollRec>)> {
    let base = o.work.join(format!("callgrind-{tag}.out"));
    let wrapper: Vec<String> = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        format!("--callgrind-out-file={}", base.display()),
    ];
    let e = Exporter::spawn_under(o, tag, config, &wrapper)?;
    wait_first_cycle(http, &e, "", Duration::from_secs(600)).await?;
    let mut mon = Monitor::new(target);
    let limit = Duration::from_secs(o.s3_poll_secs * 3 + 60);
    while mon.polls.len() < from - 1 {
        mon.next_poll(http, &e, limit).await?;
    }
    callgrind_control(e.pid(), &["-z"]).await?;
    callgrind_control(e.pid(), &["-i", "on"]).await?;
    for _ in 0..polls {
        mon.next_poll(http, &e, limit).await?;
    }
    callgrind_control(e.pid(), &["-d"]).await?;
    callgrind_control(e.pid(), &["-i", "off"]).await?;
    let total = callgrind_dump_total(&base)?;
    let measured = mon.polls[from - 1..].to_vec();
    if mon.polls.iter().any(|r| r.failed) {
        return Err(format!("a poll of {target} failed under callgrind").into());
    }
    e.stop();
    Ok((total as f64 / polls as f64, measured))
}

/// One fetch of `/metrics` (gzip, as Prometheus asks): its start (Unix
/// seconds) and latency (ms).
#[derive(Debug, Clone, Copy)]
struct Probe {
    at: f64,
    ms: f64,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// GET /metrics with gzip on a kept-alive connection (reconnecting when
/// needed); the body's length.
fn probe_once(conn: &mut Option<std::net::TcpStream>, port: u16) -> std::io::Result<usize> {
    use std::io::Write as _;
    let bad = |m: &str| std::io::Error::other(m.to_string());
    if conn.is_none() {
        let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        *conn = Some(s);
    }
    let Some(s) = conn.as_mut() else {
        return Err(bad("no connection"));
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n")?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..k]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(bad("not 200"));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad("no content-length"))?;
    while buf.len() < head_end + len {
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(bad("connection closed in the body"));
        }
        buf.extend_from_slice(&chunk[..k]);
    }
    Ok(len)
}

/// Fetches the page every `every` on a thread of its own (so that the
/// simulator's work in this process does not delay it) until `stop`.
fn spawn_prober(
    port: u16,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Probe>, usize)> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut errors = 0;
        let mut conn = None;
        while !stop.load(Ordering::SeqCst) {
            let at = unix_now();
            let t0 = Instant::now();
            // A connection the server closed (keep-alive ends) is opened
            // again once; only a second failure counts.
            let mut result = probe_once(&mut conn, port);
            if result.is_err() {
                conn = None;
                result = probe_once(&mut conn, port);
            }
            match result {
                Ok(_) => out.push(Probe {
                    at,
                    ms: t0.elapsed().as_secs_f64() * 1000.0,
                }),
                Err(_) => {
                    conn = None;
                    errors += 1;
                }
            }
            std::thread::sleep(every.saturating_sub(t0.elapsed()));
        }
        (out, errors)
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The S3 phase: one run per `--s3-uploads` entry.
async fn phase_s3(o: &Opts, http: &reqwest::Client, report: &mut Report) -> Res<()> {
    for &n in &o.s3_uploads {
        s3_run(o, n, http, report).await?;
    }
    Ok(())
}

/// One bucket of `n` open uploads over `--s3-owners` owners, every S3
/// call delayed `--s3-latency-ms`, the real exporter polling it.
async fn s3_run(o: &Opts, n: usize, http: &reqwest::Client, report: &mut Report) -> Res<()> {
    let interval = o.s3_poll_secs as f64;
    let latency = Duration::from_millis(o.s3_latency_ms);
    let load_start = load_average();
    eprintln!(
        "== phase s3: {n} uploads over {} owners, {} ms per call, poll every {}s",
        o.s3_owners, o.s3_latency_ms, o.s3_poll_secs
    );
    let baseline = n <= S3_BASELINE_MAX;
    let mut vaults = Vec::new();
    if baseline {
        let mut spec = VaultSpec::new("s3base", 300_000);
        spec.session_limit = n;
        vaults.push(spec);
    }
    let mut spec = S3Spec::new();
    spec.buckets.push(S3BucketSpec::new(S3_BUCKET));
    let config = SimConfig {
        scenario: Scenario::Idle,
        seed: 7,
        vaults,
        deepset: Vec::new(),
        s3: Some(spec),
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?;
    let ctl = sim.s3().ok_or("no S3 side")?;
    let url = sim.s3_url().ok_or("no S3 listener")?;
    let bench_rss0 = rss_mib(std::process::id())?.0;
    // Seeded through the control API, which is not bound by the
    // simulator's MAX_UPLOADS_PER_BUCKET (a cap on what HTTP clients can
    // create).
    let mut rng = StdRng::seed_from_u64(4242 + n as u64);
    let now = ctl.now();
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let (seed, chunk) = s3_upload(&mut rng, o.s3_owners, now);
        let parts = seed.parts.len() as u32;
        let id = ctl
            .insert_upload(S3_BUCKET, seed)
            .ok_or("the simulator refused an upload")?;
        chunks.push((id, parts + 1, chunk));
    }
    let active_n = ((n as f64 * o.s3_active_percent / 100.0).round() as usize).min(n);
    let mut active = Vec::with_capacity(active_n);
    for i in rand::seq::index::sample(&mut rng, n, active_n).into_iter() {
        active.push(chunks[i].clone());
    }
    drop(chunks);
    let active: Active = Arc::new(std::sync::Mutex::new(active));
    let truth0 = s3_truth(&ctl);
    let (t_sessions, t_bytes, t_parts) = sum_figures(&truth0);
    if t_sessions != n as u64 {
        return Err(format!("the bucket holds {t_sessions} uploads, not {n}").into());
    }
    let bench_rss1 = rss_mib(std::process::id())?.0;
    if !latency.is_zero() {
        ctl.inject(None, FaultRule::always(None, FaultKind::Delay(latency)));
    }
    let mut notes = vec![format!(
        "S3 {n}: {t_sessions} uploads, {t_parts} parts, {:.1} GiB over {} owners; {active_n} of them ({}%) get a part every poll interval once coverage is checked; the simulator's process grew {:.0} MiB holding them.",
        t_bytes as f64 / 1024f64.powi(3),
        truth0.len(),
        o.s3_active_percent,
        bench_rss1 - bench_rss0
    )];

    // -- the exporter
    let target = format!("{S3_TARGET}:{S3_BUCKET}");
    let e = Exporter::spawn(o, &format!("s3-{n}"), &s3_exporter_config(o, &url))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_start, _) = rss_mib(e.pid())?;
    let first = wait_first_cycle(http, &e, "", Duration::from_secs(300)).await?;
    let mut mon = Monitor::new(&target);
    let limit = Duration::from_secs(o.s3_poll_secs * 3 + 30);
    let p1 = mon.next_poll(http, &e, limit).await?;
    eprintln!(
        "   first poll: ready after {:.2} s, poll_duration {:.2} s",
        first.as_secs_f64(),
        p1.duration
    );
    let lmu = n.div_ceil(S3_PAGE);
    let covered_after = n.div_ceil(S3_CAP);
    // Ideal: the pages one after the other, the ListParts of the first poll
    // 8 at a time, the lifecycle read; every call at the configured latency.
    let ideal = (lmu + n.min(S3_CAP).div_ceil(S3_PARTS_AT_ONCE) + 1) as f64 * latency.as_secs_f64();
    report.rows.push(row(
        format!(
            "S3 {n} uploads, 1 bucket, {} ms per call: first poll (until /-/ready; its poll_duration_seconds)",
            o.s3_latency_ms
        ),
        format!("{:.2} s ({:.2} s)", first.as_secs_f64(), p1.duration),
        format!("{ideal:.2} s (ideal: {lmu} pages + {} ListParts ÷ {S3_PARTS_AT_ONCE} + lifecycle)", n.min(S3_CAP)),
        format!("{:.2}×", first.as_secs_f64() / ideal.max(1e-9)),
        if n <= 10_000 { "< 15 s" } else { "reported" },
        (n <= 10_000).then_some(first < Duration::from_secs(15)),
    ));

    // -- coverage (no churn yet, so the simulator's figures stand still)
    let mut coverage = None;
    if covered_after <= o.s3_coverage_max_polls {
        let mut k = 1;
        loop {
            let ex = exported_figures(mon.page()?, &target);
            let (nd, _) = figure_differences(&ex, &truth0);
            eprintln!("   poll {k}: {nd} owners differ from the simulator");
            if nd == 0 {
                coverage = Some(k);
                break;
            }
            if k >= covered_after + 3 {
                break;
            }
            mon.next_poll(http, &e, limit).await?;
            k += 1;
        }
        match coverage {
            Some(k) => report.rows.push(row(
                format!("S3 {n}: polls until every upload's figures are known (exported per-owner sessions, bytes and parts = the simulator's)"),
                format!("{k} polls ({:.0} s)", (k - 1) as f64 * interval + p1.duration),
                format!("{covered_after} (ceil({n} ÷ max_list_parts_per_poll {S3_CAP}))"),
                format!("{:.2}×", k as f64 / covered_after as f64),
                "= the cap's ceil(n ÷ 1000); sums exact",
                Some(k <= covered_after),
            )),
            None => {
                let ex = exported_figures(mon.page()?, &target);
                let (nd, d) = figure_differences(&ex, &truth0);
                report.rows.push(row(
                    format!("S3 {n}: polls until every upload's figures are known"),
                    format!("not after {} polls: {nd} owners differ", covered_after + 3),
                    format!("{covered_after}"),
                    "",
                    "sums exact",
                    Some(false),
                ));
                report.failures.push(format!(
                    "S3 {n}: exported sums differ from the simulator's after {} polls: {}",
                    covered_after + 3,
                    d.join("; ")
                ));
            }
        }
    } else {
        report.rows.push(row(
            format!("S3 {n}: polls until every upload's figures are known"),
            format!("{covered_after} polls at the cap (not waited for)"),
            format!("ceil({n} ÷ {S3_CAP})"),
            "",
            "reported",
            None,
        ));
    }

    // -- churn: a part per active upload per interval
    let churn_on = Arc::new(AtomicBool::new(true));
    let churn = spawn_s3_churn(
        ctl.clone(),
        active.clone(),
        Duration::from_secs(o.s3_poll_secs),
        churn_on.clone(),
    );

    // -- the measured window: the steady state after full coverage, or
    //    the first polls of a bucket too big to wait for it
    let steady = coverage.is_some();
    let (from, count) = if steady {
        // Everything is "moving" for stall_after after its first sight, so
        // relisted round-robin at the cap; once that has passed, one more
        // round-robin sweep makes the unchanged uploads dormant.
        let from = (S3_STALL_POLLS as usize + covered_after + 5).max(mon.polls.len() + 1);
        (from, o.s3_steady_polls)
    } else {
        (mon.polls.len() + 1, o.s3_window_polls)
    };
    eprintln!("   measuring polls {from}..{}", from + count - 1);
    while mon.polls.len() < from + count - 1 {
        mon.next_poll(http, &e, limit).await?;
    }
    let window: Vec<PollRec> = mon.polls[from - 1..from + count - 1].to_vec();
    let before = mon.polls[from - 2].clone();
    let last = window.last().cloned().ok_or("empty window")?;
    let polls_measured = window.len() as f64;
    let cpu_per_poll = (last.cpu - before.cpu) / polls_measured;
    let avg = |ep: &str| window.iter().map(|r| calls_of(r, ep)).sum::<f64>() / polls_measured;
    let (m_lmu, m_lp, m_lc) = (
        avg("list_multipart_uploads"),
        avg("list_parts"),
        window
            .iter()
            .map(|r| calls_of(r, "get_bucket_lifecycle"))
            .sum::<f64>(),
    );
    let max_lp = window
        .iter()
        .map(|r| calls_of(r, "list_parts"))
        .fold(0.0, f64::max);
    let dormant = (n - active_n) as f64;
    let predicted_lp = (active_n as f64 + dormant / S3_DORMANT_POLLS as f64).min(S3_CAP as f64);
    if steady {
        report.rows.push(row(
            format!(
                "S3 {n}: list_multipart_uploads per steady-state poll (polls {from}–{})",
                from + count - 1
            ),
            format!("{m_lmu:.2}"),
            format!("{lmu} (ceil({n} ÷ 1000))"),
            format!("{:.2}×", m_lmu / lmu as f64),
            "= formula",
            Some(
                window
                    .iter()
                    .all(|r| calls_of(r, "list_multipart_uploads") == lmu as f64),
            ),
        ));
        report.rows.push(row(
            format!(
                "S3 {n}: list_parts per steady-state poll ({active_n} moving, {} dormant; dormant_refresh = {} intervals)",
                n - active_n,
                S3_DORMANT_POLLS
            ),
            format!("{m_lp:.1} (max {max_lp:.0})"),
            format!(
                "{predicted_lp:.1} (min({S3_CAP}, {active_n} + {} ÷ {S3_DORMANT_POLLS}))",
                n - active_n
            ),
            format!("{:.2}×", m_lp / predicted_lp.max(1e-9)),
            "within ±10 % of the formula, ≤ cap",
            Some((m_lp - predicted_lp).abs() <= 0.1 * predicted_lp && max_lp <= S3_CAP as f64),
        ));
        notes.push(format!(
            "S3 {n}: get_bucket_lifecycle calls in the {count} steady polls: {m_lc:.0} (one an hour: {:.0} in the whole run of {} polls).",
            mon.polls.iter().map(|r| calls_of(r, "get_bucket_lifecycle")).sum::<f64>(),
            mon.polls.len()
        ));
    } else {
        notes.push(format!(
            "S3 {n}: calls per poll in the window (polls {from}–{}): list_multipart_uploads {m_lmu:.1}, list_parts {m_lp:.1} (the cap: {}), get_bucket_lifecycle {m_lc:.0} in all.",
            from + count - 1,
            S3_CAP
        ));
    }

    // -- serving while polling: /metrics every 50 ms, churn paused (so the
    //    last polls also settle the figures of the moving uploads)
    churn_on.store(false, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = spawn_prober(e.port, Duration::from_millis(50), stop.clone());
    let probe_from = mon.polls.len() + 1;
    let probe_polls = o.s3_probe_polls.max(3);
    for _ in 0..probe_polls {
        mon.next_poll(http, &e, limit).await?;
    }
    stop.store(true, Ordering::SeqCst);
    let (probes, probe_errors) = prober.join().map_err(|_| "the prober thread panicked")?;
    churn.abort();
    let spans: Vec<(f64, f64)> = mon.polls[probe_from - 1..]
        .iter()
        .filter(|r| !r.failed)
        .map(|r| (r.start, r.start + r.duration))
        .collect();
    let mut busy = Vec::new();
    let mut idle = Vec::new();
    for p in &probes {
        if spans.iter().any(|&(a, b)| p.at >= a && p.at <= b) {
            busy.push(p.ms);
        } else if !spans
            .iter()
            .any(|&(a, b)| p.at >= a - 0.5 && p.at <= b + 1.5)
        {
            idle.push(p.ms);
        }
    }
    busy.sort_by(f64::total_cmp);
    idle.sort_by(f64::total_cmp);
    let (b50, b99, i50, i99) = (
        percentile(&busy, 0.5),
        percentile(&busy, 0.99),
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
    );
    let page = mon.page()?;
    let (plain_len, gzip_len) = (page.plain.len(), page.gzip.len());
    report.rows.push(row(
        format!(
            "S3 {n}: /metrics (gzip, {} B) latency while a poll is in progress, p50 / p99 ({} fetches)",
            gzip_len,
            busy.len()
        ),
        format!("{b50:.2} / {b99:.2} ms"),
        format!("{i50:.2} / {i99:.2} ms while idle ({} fetches)", idle.len()),
        format!("{:.2}× (p50)", b50 / i50.max(1e-9)),
        "p50 ≤ 2× idle (prepared bytes), no errors",
        Some(!busy.is_empty() && !idle.is_empty() && b50 <= 2.0 * i50 && probe_errors == 0),
    ));
    notes.push(format!(
        "S3 {n}: page {plain_len} bytes plain, {gzip_len} gzip; {probe_errors} failed fetches while probing."
    ));

    // -- exact sums again, churn paused for the last polls
    if steady {
        let truth = s3_truth(&ctl);
        let ex = exported_figures(page, &target);
        let (nd, d) = figure_differences(&ex, &truth);
        let (s, b, pp) = sum_figures(&ex);
        report.rows.push(row(
            format!("S3 {n}: exported per-owner sessions, bytes, parts vs the simulator, after the steady state ({} owners)", truth.len()),
            format!("{s} sessions, {b} B, {pp} parts"),
            {
                let (ts, tb, tp) = sum_figures(&truth);
                format!("{ts} sessions, {tb} B, {tp} parts")
            },
            format!("{nd} owners differ"),
            "equal",
            Some(nd == 0),
        ));
        if nd > 0 {
            report.failures.push(format!(
                "S3 {n}: exported sums differ from the simulator's in the steady state: {}",
                d.join("; ")
            ));
        }
    }

    // -- memory, every poll's duration
    let (rss_end, hwm) = rss_mib(e.pid())?;
    let cpu_total = cpu_seconds(e.pid())?;
    let bound = if n <= 10_000 { 96.0 } else { 256.0 };
    report.rows.push(row(
        format!(
            "S3 {n}: resident memory, max sampled VmRSS; VmHWM ({} polls)",
            mon.polls.len()
        ),
        format!("{:.1} MiB; {hwm:.1} MiB", mon.max_rss.max(rss_end)),
        format!("{rss_start:.1} MiB (at start)"),
        format!("{:.2}×", hwm / rss_start.max(0.1)),
        format!("< {bound:.0} MiB"),
        Some(hwm < bound && mon.max_rss < bound),
    ));
    let failed = mon.polls.iter().filter(|r| r.failed).count();
    let longest = mon.polls.iter().map(|r| r.duration).fold(0.0, f64::max);
    let starts: Vec<f64> = mon
        .polls
        .iter()
        .filter(|r| !r.failed)
        .map(|r| r.start)
        .collect();
    let widest_gap = starts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let mut durations: Vec<f64> = mon.polls.iter().map(|r| r.duration).collect();
    durations.sort_by(f64::total_cmp);
    report.rows.push(row(
        format!(
            "S3 {n}: longest of all {} polls (poll_duration_seconds); failed polls; widest gap between poll starts",
            mon.polls.len()
        ),
        format!("{longest:.2} s; {failed} failed; {widest_gap:.2} s"),
        format!("{interval:.0} s (interval); median poll {:.2} s", percentile(&durations, 0.5)),
        format!("{:.2}×", longest / interval),
        "< interval, none failed, none skipped",
        Some(longest < interval && failed == 0 && widest_gap < 1.5 * interval),
    ));

    // -- CPU per steady poll, against a Vault target with as many sessions
    let mut cpu_row = row(
        format!(
            "S3 {n}: exporter CPU per {} poll (user+system from /proc over {count} polls; page fetched every second)",
            if steady { "steady-state" } else { "window" }
        ),
        format!("{:.1} ms", cpu_per_poll * 1000.0),
        format!("{:.1} s CPU over the whole run of {} polls", cpu_total, mon.polls.len()),
        format!("{:.2} % of a core", cpu_per_poll / interval * 100.0),
        "reported",
        None,
    );
    let poll_table = s3_poll_table(n, &mon.polls, from, count);
    e.stop();
    if baseline {
        match vault_baseline(o, n, &sim, http, count).await {
            Ok(v) => {
                cpu_row.baseline = format!(
                    "{:.1} ms (one Vault target, the same {n} sessions over {} owners, in this run)",
                    v * 1000.0,
                    o.s3_owners
                );
                cpu_row.ratio = format!("{:.2}×", cpu_per_poll / v.max(1e-9));
            }
            Err(err) => notes.push(format!("S3 {n}: the Vault baseline failed: {err}")),
        }
    }
    report.rows.push(cpu_row);

    // -- instructions of steady-state polls (callgrind: repeatable where
    //    CPU time is not), against the Vault target
    if steady && baseline && !o.skips("s3-callgrind") {
        let cg = o.s3_steady_polls.min(3);
        eprintln!(
            "== phase s3: callgrind, {n} uploads, polls {from}–{}",
            from + cg - 1
        );
        let churn_on = Arc::new(AtomicBool::new(true));
        let churn = spawn_s3_churn(
            ctl.clone(),
            active.clone(),
            Duration::from_secs(o.s3_poll_secs),
            churn_on.clone(),
        );
        let s3 = callgrind_polls(
            o,
            &format!("s3-{n}-callgrind"),
            &s3_exporter_config(o, &url),
            &target,
            http,
            from,
            cg,
        )
        .await;
        churn.abort();
        let vault = match sim.vault_url("s3base") {
            Some(vurl) => {
                eprintln!("== phase s3: callgrind, Vault baseline");
                callgrind_polls(
                    o,
                    &format!("s3-vault-{n}-callgrind"),
                    &vault_baseline_config(o, &vurl),
                    "vault-base",
                    http,
                    4,
                    cg,
                )
                .await
            }
            None => Err("no baseline vault".into()),
        };
        match (s3, vault) {
            (Ok((s3_ir, polls)), vault) => {
                let lp = polls.iter().map(|r| calls_of(r, "list_parts")).sum::<f64>()
                    / polls.len().max(1) as f64;
                let (base, ratio) = match &vault {
                    Ok((v, _)) => (
                        format!(
                            "{:.1} M, {:.1} k per session (one Vault target, the same {n} sessions)",
                            v / 1e6,
                            v / n as f64 / 1e3
                        ),
                        format!("{:.2}×", s3_ir / v.max(1.0)),
                    ),
                    Err(err) => (format!("Vault baseline failed: {err}"), String::new()),
                };
                report.rows.push(row(
                    format!(
                        "S3 {n}: instructions per steady-state poll (callgrind, polls {from}–{}: {lp:.0} ListParts each on average; page fetched every second)",
                        from + cg - 1
                    ),
                    format!(
                        "{:.1} M, {:.1} k per upload",
                        s3_ir / 1e6,
                        s3_ir / n as f64 / 1e3
                    ),
                    base,
                    ratio,
                    "reported",
                    None,
                ));
            }
            (Err(err), _) => notes.push(format!("S3 {n}: the callgrind run failed: {err}")),
        }
    }
    notes.push(format!(
        "S3 {n}: load average at the start {load_start}, at the end {}.",
        load_average()
    ));
    report.notes.extend(notes);
    report.s3.push(poll_table);
    sim.shutdown().await;
    Ok(())
}

/// The CPU per poll of one Vault target holding `n` sessions over the same
/// owners, polled at the same interval and latency: a baseline measured
/// beside the S3 figures.
async fn vault_baseline(
    o: &Opts,
    n: usize,
    sim: &Simulator,
    http: &reqwest::Client,
    count: usize,
) -> Res<f64> {
    let c = sim.vault("s3base").ok_or("baseline vault missing")?;
    let mut ob = o.clone();
    ob.owners_per_vault = o.s3_owners;
    let mut rng = StdRng::seed_from_u64(77);
    let now = c.now();
    for _ in 0..n {
        c.insert_session(random_vault_session(&mut rng, 0, &ob, now));
    }
    if o.s3_latency_ms > 0 {
        c.inject(FaultRule::always(
            None,
            FaultKind::Delay(Duration::from_millis(o.s3_latency_ms)),
        ));
    }
    let url = sim.vault_url("s3base").ok_or("no baseline vault url")?;
    eprintln!("== phase s3: Vault baseline, {n} sessions in one Vault");
    let e = Exporter::spawn(o, &format!("s3-vault-{n}"), &vault_baseline_config(o, &url))?;
    wait_first_cycle(http, &e, "", Duration::from_secs(120)).await?;
    let mut mon = Monitor::new("vault-base");
    let limit = Duration::from_secs(o.s3_poll_secs * 3 + 30);
    // Two polls to settle (history, buffers), then the window.
    for _ in 0..3 {
        mon.next_poll(http, &e, limit).await?;
    }
    let before = mon.polls.last().cloned().ok_or("no poll")?;
    for _ in 0..count {
        mon.next_poll(http, &e, limit).await?;
    }
    let last = mon.polls.last().cloned().ok_or("no poll")?;
    if mon.polls.iter().any(|r| r.failed) {
        return Err("a baseline poll failed".into());
    }
    e.stop();
    Ok((last.cpu - before.cpu) / count as f64)
}

/// Every poll of a run, as a folded Markdown table.
fn s3_poll_table(n: usize, polls: &[PollRec], from: usize, count: usize) -> String {
    let mut s = format!(
        "<details><summary>S3 {n}: every poll (polls {from}–{} measured)</summary>\n\n\
         | poll | seen at | poll_duration | list_multipart_uploads | list_parts | get_bucket_lifecycle | CPU since previous | VmRSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        from + count - 1
    );
    let mut cpu_prev = 0.0;
    for (i, r) in polls.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {}{} | {:.1} s | {:.2} s | {:.0} | {:.0} | {:.0} | {:.0} ms | {:.1} MiB |",
            i + 1,
            if r.failed { " (failed)" } else { "" },
            r.seen,
            r.duration,
            calls_of(r, "list_multipart_uploads"),
            calls_of(r, "list_parts"),
            calls_of(r, "get_bucket_lifecycle"),
            (r.cpu - cpu_prev) * 1000.0,
            r.rss
        );
        cpu_prev = r.cpu;
    }
    s.push_str("\n</details>\n");
    s
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("fleet_bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    let o = Opts::parse()?;
    std::fs::create_dir_all(&o.work)?;
    let machine = machine(!o.skips("production"));
    let started = OffsetDateTime::now_utc();
    eprintln!("fleet_bench: work directory {}", o.work.display());
    // The Vault/deepset fleet only for the phases that poll it.
    let fleet = if ["vaults", "production", "soak", "scale"]
        .iter()
        .any(|p| !o.skips(p))
    {
        Some(start_fleet(&o).await?)
    } else {
        None
    };
    // The exporter closes keep-alive connections idle for 10 s: do not keep
    // them that long.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(3))
        .build()?;
    let mut report = Report {
        rows: Vec::new(),
        notes: Vec::new(),
        scale: Vec::new(),
        load: Vec::new(),
        soak: Vec::new(),
        s3: Vec::new(),
        failures: Vec::new(),
    };
    // A failed phase is reported, and the others still run.
    let mut failed = Vec::new();
    if let Some(fleet) = &fleet {
        if !o.skips("vaults") {
            if let Err(e) = phase_vaults(fleet, &o, &http, &mut report).await {
                failed.push(format!("phase 1a (Vaults at 60 s) failed: {e}"));
            }
        }
        if !o.skips("production") {
            if let Err(e) = phase_production(fleet, &o, &http, &mut report).await {
                failed.push(format!("phase 1b (fleet at 60 s) failed: {e}"));
            }
        }
        if !o.skips("soak") {
            if let Err(e) = phase_soak(fleet, &o, &http, &mut report).await {
                failed.push(format!("phase 2 (soak) failed: {e}"));
            }
        }
        if !o.skips("scale") {
            if let Err(e) = phase_scale(fleet, &o, &http, &mut report).await {
                failed.push(format!("phase 3 (scale) failed: {e}"));
            }
        }
    }
    if !o.skips("s3") {
        if let Err(e) = phase_s3(&o, &http, &mut report).await {
            failed.push(format!("phase s3 (S3 buckets) failed: {e}"));
        }
    }
    failed.extend(
        report
            .failures
            .iter()
            .map(|f| format!("assertion failed: {f}")),
    );
    for f in &failed {
        eprintln!("fleet_bench: {f}");
        report.notes.push(format!("**{f}**"));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut md = String::new();
    let mut what = Vec::new();
    if fleet.is_some() {
        what.push(format!(
            "{} Vaults × {} sessions ({} owners) + {} deepset workspaces × ~{} sessions; {} ms per upstream call",
            o.vaults,
            o.sessions_per_vault,
            o.vaults * o.owners_per_vault,
            o.workspaces,
            o.sessions_per_workspace,
            o.latency_ms
        ));
    }
    if !o.skips("s3") {
        what.push(format!(
            "S3: one bucket of {} open uploads over {} owners, {} ms per S3 call, polled every {} s",
            o.s3_uploads
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" / "),
            o.s3_owners,
            o.s3_latency_ms,
            o.s3_poll_secs
        ));
    }
    let _ = writeln!(
        md,
        "Run of {} UTC, `fleet_bench {}`; {}.\n",
        started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        args.join(" "),
        what.join("; ")
    );
    md.push_str(&render_table(&report.rows));
    md.push('\n');
    for n in &report.notes {
        let _ = writeln!(md, "- {n}");
    }
    if !report.scale.is_empty() {
        md.push_str("\n#### Scaling (Vault targets only, 50 sessions each, 5 s interval, churn)\n\n| targets | sessions | first cycle | CPU per cycle | cycles measured | CPU use | RSS | page | page gzip |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for l in &report.scale {
            let _ = writeln!(md, "{l}");
        }
    }
    if !report.load.is_empty() {
        md.push_str("\n#### Concurrent connections (wrk, fleet exposition, 60 s polling running)\n\n| connections | encoding | duration | requests | req/s | MiB/s | p50 / p99 | socket errors | non-2xx | exporter RSS before → after | exporter CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for l in &report.load {
            let _ = writeln!(md, "{l}");
        }
    }
    if !report.soak.is_empty() {
        md.push_str("\n#### Soak\n\n");
        for l in &report.soak {
            let _ = writeln!(md, "- {l}");
        }
    }
    if !report.s3.is_empty() {
        md.push_str("\n#### S3 polls\n\n");
        for t in &report.s3 {
            let _ = writeln!(md, "{t}");
        }
    }
    md.push_str("\n#### Machine\n\n");
    md.push_str(&machine);
    let _ = writeln!(md, "- load average at the end: {}", load_average());
    println!("{md}");
    if let Some(out) = &o.out {
        std::fs::write(out, &md)?;
        eprintln!("fleet_bench: wrote {}", out.display());
    }
    if let Some(fleet) = fleet {
        fleet.sim.shutdown().await;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} phase(s) failed (see the report)", failed.len()).into())
    }
}
