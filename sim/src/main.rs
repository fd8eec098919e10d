//! `upload_session_sim`: runs the upstream simulator (Veeva Vault File
//! Staging, deepset Cloud and S3 multipart uploads — the latter on a
//! listener of its own, `--s3-listen`, default the next port) standalone, e.g. for demos or to point an
//! exporter at. With `--admin` it also serves the admin API
//! (`/_sim/faults`, `/_sim/actions`; see
//! `upload_session_sim::admin`) to break and heal the simulated
//! APIs at run time.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use upload_session_sim::deepset::DEMO_API_KEY;
use upload_session_sim::{
    SimConfig, SimOptions, Simulator, DEMO_PASSWORD, DEMO_USERNAME, S3_DEMO_ACCESS_KEY_ID,
    S3_DEMO_SECRET_ACCESS_KEY, UPLOADER_PASSWORD,
};

/// Simulator of the Veeva Vault File Staging and deepset Cloud upload-session
/// APIs, for demos and for pointing upload_session_exporter at.
#[derive(Debug, Parser)]
#[command(name = "upload_session_sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:10158")]
    listen: SocketAddr,
    /// Address the S3 side listens on (default: the --listen IP, next port).
    #[arg(long)]
    s3_listen: Option<SocketAddr>,
    /// Background activity.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Demo)]
    scenario: ScenarioArg,
    /// Seed of the demo activity.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve the admin API under /_sim (arm and clear faults at run time).
    /// It has no authentication: use it on loopback or a test network only.
    #[arg(long)]
    admin: bool,
    /// Allow --admin on an address other than loopback (anyone who can
    /// reach it can then break the simulated APIs).
    #[arg(long, requires = "admin")]
    admin_allow_remote: bool,
    /// Only log messages with this level or above (debug, info, warn, error).
    #[arg(long = "log.level", default_value = "info")]
    log_level: tracing::Level,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One `key=value` line per event.
    Logfmt,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// Uploads progress, stall, commit and expire by themselves.
    Demo,
    /// Only what clients do.
    Idle,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // stderr (stdout carries the addresses printed below), never ANSI colours:
    // the output is read by tests and log collectors more often than by eyes.
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(args.log_level);
    match args.log_format {
        LogFormat::Logfmt => log.init(),
        LogFormat::Json => log.json().init(),
    }
    let mut config = match args.scenario {
        ScenarioArg::Demo => SimConfig::demo(),
        ScenarioArg::Idle => SimConfig::idle(),
    };
    config.seed = args.seed;
    let users: Vec<(String, Vec<String>)> = config
        .vaults
        .iter()
        .map(|v| {
            let names = v
                .users
                .iter()
                .filter(|u| !u.admin)
                .map(|u| u.username.clone())
                .collect();
            (v.name.clone(), names)
        })
        .collect();
    let workspaces: Vec<(String, Vec<(String, String)>)> = config
        .deepset
        .iter()
        .map(|w| {
            let users = w
                .users
                .iter()
                .map(|u| {
                    (
                        format!("{} {}", u.given_name, u.family_name),
                        u.api_key.clone(),
                    )
                })
                .collect();
            (w.workspace.clone(), users)
        })
        .collect();
    let s3_users: Vec<(String, String, Option<String>, String)> = config
        .s3
        .iter()
        .flat_map(|s| s.users.iter())
        .map(|u| {
            (
                u.access_key_id.clone(),
                u.secret_access_key.clone(),
                u.session_token.clone(),
                u.identity.id.clone(),
            )
        })
        .collect();
    let mut options = if args.admin {
        SimOptions::with_admin()
    } else {
        SimOptions::default()
    };
    // A fixed port by default, so that demo instructions stay valid; port
    // 0 on --listen keeps it free too.
    let s3_listen = args.s3_listen.unwrap_or_else(|| {
        let port = match args.listen.port() {
            0 => 0,
            p => p.saturating_add(1),
        };
        SocketAddr::new(args.listen.ip(), port)
    });
    options = options.s3_listen(s3_listen);
    if args.admin && !args.listen.ip().is_loopback() {
        if !args.admin_allow_remote {
            eprintln!(
                "upload_session_sim: refusing to serve the admin API on {}: it has no \
                 authentication and that is not a loopback address. Listen on 127.0.0.1, or add \
                 --admin-allow-remote on a trusted test network",
                args.listen
            );
            return ExitCode::FAILURE;
        }
        eprintln!(
            "upload_session_sim: warning: the admin API has no authentication and {} is not a \
             loopback address; anyone who can reach it can break the simulated APIs",
            args.listen
        );
    }
    // Registered before the banner: a SIGTERM sent as soon as the address
    // is printed must stop us cleanly, not kill us by default.
    let stop = stop_signal();
    let sim = match Simulator::start_with(args.listen, config, options).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("upload_session_sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Veeva Vault File Staging simulator listening on {}",
        sim.base_url()
    );
    for (i, (name, uploaders)) in users.iter().enumerate() {
        let url = sim.vault_url(name).unwrap_or_default();
        let root = if i == 0 {
            format!(" (also {})", sim.base_url())
        } else {
            String::new()
        };
        println!("  vault {name:<10} {url}{root}");
        if !uploaders.is_empty() {
            println!(
                "    uploaders (password {UPLOADER_PASSWORD:?}): {}",
                uploaders.join(", ")
            );
        }
    }
    println!("  login: username {DEMO_USERNAME:?}, password {DEMO_PASSWORD:?} (admin)");
    println!(
        "  e.g. curl -s -X POST {}/api/v25.2/auth -d username={DEMO_USERNAME} -d password={DEMO_PASSWORD}",
        sim.base_url()
    );
    if !workspaces.is_empty() {
        println!("deepset Cloud simulator at {}", sim.deepset_url());
        for (name, users) in &workspaces {
            println!("  workspace {name}");
            for (who, key) in users {
                println!("    API key {key:<16} {who}");
            }
        }
        if let Some((name, _)) = workspaces.first() {
            println!(
                "  e.g. curl -s -H 'Authorization: Bearer {DEMO_API_KEY}' {}/api/v1/workspaces/{name}/upload_sessions",
                sim.deepset_url()
            );
        }
    }
    if let Some(url) = sim.s3_url() {
        println!("S3 multipart-upload simulator at {url} (path-style, region us-east-1, SigV4)");
        for (key, secret, token, arn) in &s3_users {
            match token {
                None => println!("    access key {key} secret {secret}  {arn}"),
                Some(t) => {
                    println!("    access key {key} secret {secret} session token {t}  {arn}")
                }
            }
        }
        if let Some(ctl) = sim.s3() {
            if let Some(bucket) = ctl.buckets().first() {
                println!(
                    "  e.g. AWS_ACCESS_KEY_ID={S3_DEMO_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY='{S3_DEMO_SECRET_ACCESS_KEY}' \\\n       aws --endpoint-url {url} --region us-east-1 s3api list-multipart-uploads --bucket {bucket}"
                );
            }
        }
    }
    if args.admin {
        println!("admin API at {}/_sim (faults, actions)", sim.base_url());
        println!(
            "  e.g. curl -s -X POST {}/_sim/faults -d '{{\"api\":\"vault\",\"vault\":\"main\",\"endpoint\":\"list_sessions\",\"kind\":\"http_status\",\"status\":503}}'",
            sim.base_url()
        );
        println!(
            "       curl -s {0}/_sim/faults; curl -s -X DELETE {0}/_sim/faults",
            sim.base_url()
        );
    }
    stop.await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

/// Registers for SIGINT and (on Unix) SIGTERM now; the returned future
/// resolves on either.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for signals");
                None
            }
        };
        async move {
            match streams {
                Some((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
