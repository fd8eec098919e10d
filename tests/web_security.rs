//! Basic auth and connection slots under attack (issue 14): no user
//! enumeration by timing, idle keep-alive connections cannot hold every
//! slot, a flood of wrong passwords cannot starve a valid login, the
//! login cache survives a reload, bcrypt's 72-byte truncation is refused,
//! `/-/ready` names targets only to authenticated clients, and a silent
//! client on the TLS port gets one header budget in total.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, ServeOptions};
use upload_session_exporter::config::{Config, ExporterSettings};
use upload_session_exporter::kinds::vault::VaultConfig;
use upload_session_exporter::secret::Secret;
use upload_session_exporter::server::Limits;
use upload_session_exporter::web::{Auth, WebConfig, WebConfigWatcher};

async fn start(web: Option<&Path>, limits: Limits, config: Config) -> Exporter {
    let opts = ServeOptions {
        web: web.map(|w| Arc::new(WebConfigWatcher::new(w).unwrap())),
        limits,
        ..ServeOptions::loopback()
    };
    Exporter::start(config, None, opts, CancellationToken::new())
        .await
        .unwrap()
}

fn no_targets() -> Config {
    common::config(vec![])
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Client address number `i` (each its own failure budget).
fn addr(i: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
}

/// A web.yml with `users` (name, password) at bcrypt `cost` and a header
/// that tells which version of the file served a response.
fn write_web(dir: &Path, users: &[(String, String)], cost: u32, generation: u32) {
    let mut yml = format!(
        "http_server_config:\n  headers:\n    X-Generation: \"{generation}\"\nbasic_auth_users:\n"
    );
    for (u, p) in users {
        yml.push_str(&format!("  {u}: {}\n", bcrypt::hash(p, cost).unwrap()));
    }
    std::fs::write(dir.join("web.yml"), yml).unwrap();
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns its
/// head, lower-cased.
async fn read_response(s: &mut TcpStream) -> String {
    common::read_response_head(s).await.to_ascii_lowercase()
}

/// True if the peer closes within `within` (reading whatever comes).
async fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut buf))
        .await
        .is_ok()
}

#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    write_web(
        dir.path(),
        &[("prometheus".into(), "right-pw".into())],
        6,
        1,
    );
    let web = WebConfig::load(&dir.path().join("web.yml")).unwrap();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..9 {
        // Each attempt from its own address: no failure budget involved.
        let t = Instant::now();
        let r = web
            .check(Some(&basic("prometheus", "wrong")), addr(2 * i))
            .await;
        known.push(t.elapsed());
        assert_eq!(r, Auth::Denied);
        let t = Instant::now();
        let r = web
            .check(Some(&basic("nobody", "wrong")), addr(2 * i + 1))
            .await;
        unknown.push(t.elapsed());
        assert_eq!(r, Auth::Denied);
    }
    let (known, unknown) = (median(known), median(unknown));
    // Both run bcrypt at the same cost: alike within a generous factor.
    assert!(
        unknown * 3 >= known && known * 3 >= unknown,
        "unknown user {unknown:?} vs known user with a wrong password {known:?}"
    );
    // Still right for the right password, also with an upper-case scheme.
    let header = basic("prometheus", "right-pw").replacen("Basic", "BASIC", 1);
    assert_eq!(web.check(Some(&header), addr(100)).await, Auth::Allowed);
}

#[tokio::test]
async fn passwords_beyond_72_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = "p".repeat(72);
    write_web(dir.path(), &[("prometheus".into(), long.clone())], 4, 1);
    let web = WebConfig::load(&dir.path().join("web.yml")).unwrap();
    assert_eq!(
        web.check(Some(&basic("prometheus", &long)), addr(1)).await,
        Auth::Allowed
    );
    // bcrypt ignores what follows byte 72; the exporter must not.
    for (i, suffix) in ["x", "yy", "anything at all"].iter().enumerate() {
        let pw = format!("{long}{suffix}");
        assert_eq!(
            web.check(Some(&basic("prometheus", &pw)), addr(10 + i as u32))
                .await,
            Auth::Denied,
            "{suffix}"
        );
    }
    // Suffixes did not add cache entries.
    assert_eq!(web.auth_shared().cached_logins(), 1);
}

#[tokio::test]
async fn idle_keep_alive_connections_make_room_for_a_scrape() {
    let e = start(
        None,
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4,
        },
        no_targets(),
    )
    .await;
    let url = format!("http://{}/metrics", e.addr());
    let scrape = || async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let t = Instant::now();
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("upload_session_exporter_build_info"));
        t.elapsed()
    };
    let baseline = scrape().await;
    // Wait until that connection is gone (its client was dropped).
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every slot: a keep-alive connection that made one request and idles.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(e.addr()).await.unwrap();
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut s).await.starts_with("http/1.1 200"));
        idle.push(s);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let waited = scrape().await;
    assert!(
        waited < baseline + Duration::from_secs(1),
        "idle connections held every slot: {waited:?} (baseline {baseline:?})"
    );
    // The oldest idle one made room; the youngest is still served.
    assert!(
        closes_within(&mut idle[0], Duration::from_secs(2)).await,
        "the longest idle connection was not closed"
    );
    let last = idle.last_mut().unwrap();
    last.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(last).await.starts_with("http/1.1 200"));
    e.stop().await;
}

#[tokio::test]
async fn unauthorized_answers_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    write_web(dir.path(), &[("prometheus".into(), "pw".into())], 4, 1);
    let e = start(
        Some(&dir.path().join("web.yml")),
        Limits::default(),
        no_targets(),
    )
    .await;
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        closes_within(&mut s, Duration::from_secs(3)).await,
        "a 401 kept the connection"
    );
    // With credentials, keep-alive as usual.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic("prometheus", "pw")
    );
    for _ in 0..2 {
        s.write_all(req.as_bytes()).await.unwrap();
        assert!(read_response(&mut s).await.starts_with("http/1.1 200"));
    }
    e.stop().await;
}

/// One login as `user` on a new connection from `from`; how long it took.
async fn login(base: &str, from: IpAddr, user: &str, password: &str) -> (u16, Duration) {
    let c = reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = c
        .get(format!("{base}/metrics"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), t.elapsed())
}

fn users(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i}"), format!("password-{i}-9f2c")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_does_not_delay_a_valid_login() {
    let dir = tempfile::tempdir().unwrap();
    let users = users(6);
    // Debug builds run bcrypt slowly: cost 7 takes ~0.1 s there.
    write_web(dir.path(), &users, 7, 1);
    let e = start(
        Some(&dir.path().join("web.yml")),
        Limits::default(),
        no_targets(),
    )
    .await;
    let base = format!("http://{}", e.addr());
    let prometheus: IpAddr = "127.0.0.1".parse().unwrap();
    // Uncached logins (each user's first) without a flood.
    let mut baseline = Vec::new();
    for (u, p) in &users[..3] {
        let (status, took) = login(&base, prometheus, u, p).await;
        assert_eq!(status, 200);
        baseline.push(took);
    }
    let baseline = median(baseline);

    // Wrong passwords from ten other loopback addresses, 60 at a time.
    let stop = CancellationToken::new();
    let mut flood = Vec::new();
    for i in 0..60u32 {
        let base = base.clone();
        let stop = stop.clone();
        let from: IpAddr = format!("127.0.0.{}", 2 + i % 10).parse().unwrap();
        let user = if i % 2 == 0 {
            "user5".to_string()
        } else {
            format!("nobody{i}")
        };
        flood.push(tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .local_address(from)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let mut n = 0u32;
            while !stop.is_cancelled() {
                n += 1;
                let r = c
                    .get(format!("{base}/metrics"))
                    .basic_auth(&user, Some(format!("wrong-{n}")))
                    .send()
                    .await;
                if let Ok(r) = r {
                    assert_eq!(r.status(), 401);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // The first wave (one fresh attempt per address) passes first; what
    // counts is the flood that goes on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut during = Vec::new();
    for (u, p) in &users[3..] {
        let (status, took) = login(&base, prometheus, u, p).await;
        assert_eq!(status, 200);
        eprintln!("during: {took:?}");
        during.push(took);
    }
    stop.cancel();
    for f in flood {
        f.await.unwrap();
    }
    eprintln!("flood: baseline {baseline:?}, during {during:?}");
    let during = median(during);
    let limit = (baseline * 3).max(Duration::from_secs(1));
    assert!(
        during < limit,
        "a valid login took {during:?} during the flood (baseline {baseline:?})"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_logins_survive_a_reload_of_web_yml() {
    let dir = tempfile::tempdir().unwrap();
    let users = users(3);
    write_web(dir.path(), &users, 8, 1);
    let e = start(
        Some(&dir.path().join("web.yml")),
        Limits::default(),
        no_targets(),
    )
    .await;
    let base = format!("http://{}", e.addr());
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    let mut uncached = Vec::new();
    for (u, p) in &users {
        let (status, took) = login(&base, me, u, p).await;
        assert_eq!(status, 200);
        uncached.push(took);
    }
    let uncached = median(uncached);

    // The same users (same hashes) in a changed file: a reload.
    let yml = std::fs::read_to_string(dir.path().join("web.yml")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        dir.path().join("web.yml"),
        yml.replace("X-Generation: \"1\"", "X-Generation: \"2\""),
    )
    .unwrap();
    let reloaded = common::eventually(Duration::from_secs(10), || async {
        let r = reqwest::get(format!("{base}/-/healthy")).await.unwrap();
        r.headers()["x-generation"] == "2"
    })
    .await;
    assert!(reloaded, "web.yml not reloaded");

    let mut after = Vec::new();
    for (u, p) in &users {
        let (status, took) = login(&base, me, u, p).await;
        assert_eq!(status, 200);
        after.push(took);
    }
    let after = median(after);
    assert!(
        after * 3 < uncached,
        "logins after the reload took {after:?}, as long as uncached ones ({uncached:?})"
    );
    e.stop().await;
}

/// A listener that accepts and never answers: a first poll that hangs.
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (a, h)
}

#[tokio::test]
async fn ready_names_pending_targets_only_to_authenticated_clients() {
    let (hole, hole_task) = black_hole().await;
    let mut target = common::base_target(
        "secret-vault-name",
        &format!("http://{hole}"),
        Box::new(VaultConfig::new("demo@example.com", Secret::new("demo"))),
    );
    target.timeout = Duration::from_secs(60);
    let config = Config {
        source: None,
        exporter: ExporterSettings::default(),
        targets: vec![target],
    };
    let dir = tempfile::tempdir().unwrap();
    write_web(dir.path(), &[("prometheus".into(), "pw".into())], 4, 1);
    let e = start(Some(&dir.path().join("web.yml")), Limits::default(), config).await;
    let url = format!("http://{}/-/ready", e.addr());
    let c = reqwest::Client::new();
    for req in [
        c.get(&url),
        c.get(&url).basic_auth("prometheus", Some("wrong")),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503);
        let body = r.text().await.unwrap();
        assert_eq!(
            body,
            "Not ready: waiting for the first poll of 1 target(s).\n"
        );
    }
    let r = c
        .get(&url)
        .basic_auth("prometheus", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        "Not ready: waiting for the first poll of secret-vault-name.\n"
    );
    e.stop().await;
    hole_task.abort();
}

#[tokio::test]
async fn a_silent_client_on_the_tls_port_gets_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::pki(&["localhost"]);
    std::fs::write(dir.path().join("server.crt"), &p.server_cert).unwrap();
    std::fs::write(dir.path().join("server.key"), &p.server_key).unwrap();
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let budget = Duration::from_secs(2);
    let e = start(
        Some(&dir.path().join("web.yml")),
        Limits {
            header_read_timeout: budget,
            ..Limits::default()
        },
        no_targets(),
    )
    .await;
    // TLS works.
    let c = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = c
        .get(format!("https://localhost:{}/-/healthy", e.addr().port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Says nothing: closed after one budget, not a peek's plus a
    // handshake's.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let t = Instant::now();
    assert!(closes_within(&mut s, budget * 3).await, "never closed");
    let held = t.elapsed();
    assert!(
        held < budget + budget / 2,
        "a silent connection was held {held:?} for a budget of {budget:?}"
    );
    e.stop().await;
}
