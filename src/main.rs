//! The `upload_session_exporter` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use upload_session_exporter::app::{self, Exporter, ServeOptions};
use upload_session_exporter::config::{self, Config};
use upload_session_exporter::logging::{self, LogFormat, LogLevel};
use upload_session_exporter::metrics::exposition::{REVISION, VERSION};
use upload_session_exporter::shard::Shard;
use upload_session_exporter::web::WebConfigWatcher;
use upload_session_exporter::{demo, kinds, report, server};

/// Used when `--config.file` is not given and this file exists.
const DEFAULT_CONFIG: &str = "config/upload_session_exporter.toml";

fn long_version() -> &'static str {
    Box::leak(format!("{VERSION} (revision {REVISION})").into_boxed_str())
}

/// Prometheus exporter for resumable upload sessions (Veeva Vault / SiteVault
/// File Staging, deepset Cloud).
#[derive(Debug, Parser)]
#[command(name = "upload_session_exporter", version = long_version(), about)]
struct Cli {
    /// Configuration file (TOML). Default: config/upload_session_exporter.toml if present.
    #[arg(long = "config.file", value_name = "PATH", global = true)]
    config_file: Option<PathBuf>,
    /// Address to serve /metrics on.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":10157"
    )]
    listen_address: String,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    telemetry_path: String,
    /// TLS and basic-auth configuration (exporter-toolkit YAML format).
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Only log messages with this level or above.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    log_level: LogLevel,
    /// Log format.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    log_format: LogFormat,
    /// Run against the built-in simulator (Vault, SiteVault and deepset); no credentials needed.
    #[arg(long, global = true)]
    demo: bool,
    /// Validate the configuration (and the secrets it points to), then exit 0 or 1.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Poll every target once, print the exposition to stdout and exit (1 if a target failed).
    #[arg(long)]
    once: bool,
    /// Serve at most this many connections at once.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = server::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Enable POST /-/reload (re-read the configuration, like SIGHUP).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Do not serve /sessions and /api/v1/sessions (they show file names and
    /// owners to whoever may scrape /metrics).
    #[arg(long = "web.disable-sessions-page")]
    disable_sessions_page: bool,
    /// Poll only this replica's share of the targets: INDEX/COUNT, or
    /// ordinal/COUNT to take INDEX from the host name (StatefulSet pods).
    #[arg(
        long,
        value_name = "INDEX/COUNT",
        env = "UPLOAD_SESSION_EXPORTER_SHARD"
    )]
    shard: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Poll once and print every session per target: owner, file, progress,
    /// rate, ETA, expiry and state (stalled, at risk, awaiting commit...).
    Sessions {
        /// Only this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
}

/// jemalloc instead of glibc's malloc: the poll path allocates many small,
/// short-lived objects (HTTP requests, decoded sessions, rendered samples)
/// beside a few large buffers (pages, bodies), the mix on which glibc spends
/// most time consolidating and splitting chunks; see BENCHMARKS.md.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("upload_session_exporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, log))
}

async fn run(cli: Cli, log: Option<logging::LogControl>) -> ExitCode {
    let web = match &cli.web_config_file {
        None => None,
        Some(path) => match WebConfigWatcher::new(path) {
            Ok(w) => Some(Arc::new(w)),
            Err(e) => {
                eprintln!("upload_session_exporter: invalid --web.config.file: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if !cli.telemetry_path.starts_with('/')
        || matches!(cli.telemetry_path.as_str(), "/" | "/-/healthy" | "/-/ready")
    {
        eprintln!(
            "upload_session_exporter: --web.telemetry-path {:?} must start with '/' and differ from /, /-/healthy and /-/ready",
            cli.telemetry_path
        );
        return ExitCode::FAILURE;
    }
    let listen = match server::parse_listen_address(&cli.listen_address) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("upload_session_exporter: {e}");
            return ExitCode::FAILURE;
        }
    };

    let shard = match cli
        .shard
        .as_deref()
        .map(|s| Shard::parse(s, hostname().as_deref()))
    {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("upload_session_exporter: --shard: {e}");
            return ExitCode::FAILURE;
        }
    };

    // The demo simulator lives as long as this function.
    let mut _simulator = None;
    let mut loader: Option<app::Loader> = None;
    let config = if cli.demo {
        match demo::start().await {
            Ok((sim, config)) => {
                let (url, s3_url) = (sim.base_url().to_string(), sim.s3_url().to_string());
                loader = Some(Arc::new(move || {
                    demo::config_for(&url, &s3_url).map_err(|e| e.to_string())
                }));
                _simulator = Some(sim);
                config
            }
            Err(e) => {
                eprintln!("upload_session_exporter: --demo: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        // Blocking reads, off the runtime.
        let file = cli.config_file.clone();
        let loaded = tokio::task::spawn_blocking(move || load_config(file.as_deref()))
            .await
            .unwrap_or_else(|e| {
                Err(format!(
                    "upload_session_exporter: reading the configuration failed: {e}"
                ))
            });
        match loaded {
            Ok(c) => {
                if let Some(path) = c.source.clone() {
                    loader = Some(Arc::new(move || {
                        config::load(&path).map_err(|e| e.to_string())
                    }));
                }
                c
            }
            Err(msg) => {
                eprintln!("{msg}");
                return ExitCode::FAILURE;
            }
        }
    };

    if cli.check_config {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        let source = config.source.as_ref().map_or_else(
            || "demo configuration".to_string(),
            |p| p.display().to_string(),
        );
        println!(
            "{source}: OK: {} target(s): {}",
            names.len(),
            names.join(", ")
        );
        return ExitCode::SUCCESS;
    }

    if let Some(Command::Sessions { target }) = &cli.command {
        // Targets found at run time (S3 buckets) are named like configured
        // ones, so they are found before a name is looked up.
        let (config, finders_failed) = app::with_found(&config).await;
        for (finder, err) in &finders_failed {
            eprintln!("upload_session_exporter: target {finder}: cannot find its targets: {err}");
        }
        let config = match share(&config, shard, target.as_deref()) {
            Ok(c) => c,
            Err(msg) => {
                eprintln!("upload_session_exporter: {msg}");
                return ExitCode::FAILURE;
            }
        };
        if config.targets.is_empty() {
            eprintln!("upload_session_exporter: {}", none_owned(shard));
            return ExitCode::SUCCESS;
        }
        return match report::sessions(&config, target.as_deref()).await {
            Ok(reports) => {
                let mut ok = true;
                for r in reports {
                    match r.result {
                        Ok(table) => println!("{table}"),
                        Err(e) => {
                            ok = false;
                            println!("{}: poll failed: {e}\n", r.target);
                        }
                    }
                }
                if ok && finders_failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("upload_session_exporter: {e}");
                ExitCode::FAILURE
            }
        };
    }

    if cli.once {
        let config = match share(&config, shard, None) {
            Ok(c) => c,
            Err(msg) => {
                eprintln!("upload_session_exporter: {msg}");
                return ExitCode::FAILURE;
            }
        };
        if config.targets.is_empty() {
            eprintln!("upload_session_exporter: {}", none_owned(shard));
        }
        let (text, failed) = app::poll_all_once_in(&config, shard).await;
        print!("{text}");
        for (target, err) in &failed {
            eprintln!("upload_session_exporter: target {target}: {err}");
        }
        return if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    // Registered before the server starts: a SIGTERM sent as soon as the
    // address is announced must stop us cleanly, not kill us by default.
    let signals = Signals::register();
    let shutdown = CancellationToken::new();
    let exporter = match Exporter::start(
        config,
        loader,
        ServeOptions {
            listen,
            telemetry_path: cli.telemetry_path.clone(),
            enable_lifecycle: cli.enable_lifecycle,
            shard,
            web,
            log,
            limits: server::Limits {
                header_read_timeout: server::HEADER_READ_TIMEOUT,
                idle_timeout: server::IDLE_TIMEOUT,
                max_connections: cli.max_connections,
            },
            sessions_page: !cli.disable_sessions_page,
        },
        shutdown.clone(),
    )
    .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("upload_session_exporter: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.demo {
        eprintln!(
            // The curl URL ends the line: scripts (and tests) take it from there.
            "upload_session_exporter: demo running; {}try: curl http://127.0.0.1:{}{}",
            if cli.disable_sessions_page {
                String::new()
            } else {
                format!(
                    "open http://127.0.0.1:{}/sessions in a browser, or ",
                    exporter.addr().port()
                )
            },
            exporter.addr().port(),
            cli.telemetry_path,
        );
    }
    run_until_stopped(&exporter, signals).await;
    tracing::info!("shutting down");
    exporter.stop().await;
    ExitCode::SUCCESS
}

/// SIGINT, SIGTERM and SIGHUP streams, taken before anything is announced.
struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(int), Ok(term), Ok(hup)) => Some((int, term, hup)),
                _ => {
                    tracing::warn!("cannot listen for signals; stop with Ctrl-C");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }
}

/// Reloads on SIGHUP; returns on SIGINT or SIGTERM.
async fn run_until_stopped(exporter: &Exporter, signals: Signals) {
    #[cfg(unix)]
    {
        let Some((mut int, mut term, mut hup)) = signals.streams else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    // Errors are logged by reload; the old configuration stays.
                    let _ = exporter.reload().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (exporter, signals);
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The configuration with only this replica's share of the targets, for
/// `--once` and `sessions` (the server filters by itself, since a reload
/// needs every target). Asking `sessions` for another replica's target is an
/// error that names its replica.
fn share(config: &Config, shard: Option<Shard>, only: Option<&str>) -> Result<Config, String> {
    let Some(shard) = shard else {
        return Ok(config.clone());
    };
    if let Some(name) = only {
        if config.targets.iter().any(|t| t.name == name) && !shard.owns(name) {
            return Err(format!(
                "target {name:?} is polled by shard {}, not by this one ({shard})",
                shard.owner_of(name)
            ));
        }
    }
    let mut config = config.clone();
    // A target that finds its targets runs on every replica; what it finds
    // is shared out.
    config
        .targets
        .retain(|t| kinds::discovers(t) || shard.owns(&t.name));
    Ok(config)
}

fn none_owned(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("shard {s} polls none of the configured targets"),
        None => "no targets configured".to_string(),
    }
}

/// The host name (for `--shard ordinal/COUNT`).
fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
}

fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => {
            return Err(format!(
                "upload_session_exporter: no configuration: pass --config.file PATH (see \
                 config/example.toml), create {DEFAULT_CONFIG}, or try --demo"
            ))
        }
    };
    config::load(&path).map_err(|e| format!("upload_session_exporter: invalid configuration:\n{e}"))
}
