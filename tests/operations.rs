//! Operations: configuration reload (API, HTTP, SIGHUP) and sharding.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use upload_session_exporter::app::{Exporter, Loader, ReloadSummary, ServeOptions};
use upload_session_exporter::config::{self, Environment};
use upload_session_exporter::shard::Shard;
use upload_session_sim::Endpoint;

struct Env;
impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        (name == "VAULT_PW").then(|| "demo".to_string())
    }
}

fn target_toml(name: &str, url: &str, interval: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"vault\"\nurl = \"{url}\"\nusername = \"demo@example.com\"\n\
         password_env = \"VAULT_PW\"\npoll_interval = \"{interval}\"\ntimeout = \"2s\"\n\n"
    )
}

async fn metrics(exporter: &Exporter) -> String {
    get(&format!("http://{}/metrics", exporter.addr()))
        .await
        .text()
        .await
        .unwrap()
}

/// Waits until the exposition satisfies `f`.
async fn until(exporter: &Exporter, what: &str, f: impl Fn(&str) -> bool) -> String {
    for _ in 0..200 {
        let text = metrics(exporter).await;
        if f(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}:\n{}", metrics(exporter).await);
}

fn counter(text: &str, key: &str) -> u64 {
    value(text, key).parse().unwrap()
}

#[tokio::test]
async fn reload_applies_changes_and_keeps_the_rest() {
    let sim = sim(vec![
        vault_spec("a", 1),
        vault_spec("b", 2),
        vault_spec("c", 3),
    ])
    .await;
    let url = |v: &str| sim.vault_url(v).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(
        &path,
        format!(
            "{}{}",
            target_toml("a", &url("a"), "1s"),
            target_toml("b", &url("b"), "1s")
        ),
    )
    .unwrap();
    let p = path.clone();
    let loader: Loader =
        Arc::new(move || config::load_with_env(&p, &Env).map_err(|e| e.to_string()));
    let exporter = Exporter::start(
        loader().unwrap(),
        Some(loader.clone()),
        ServeOptions::loopback(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let up = |t: &str| format!("upload_session_target_up{{target=\"{t}\",kind=\"vault\"}} 1");
    let text = until(&exporter, "a and b up", |t| {
        t.contains(&up("a")) && t.contains(&up("b"))
    })
    .await;
    assert_eq!(
        value(
            &text,
            "upload_session_exporter_config_last_reload_successful"
        ),
        "1"
    );
    let a_calls =
        "upload_session_api_requests_total{target=\"a\",endpoint=\"list_upload_sessions\"}";
    let before = counter(&text, a_calls);

    // b removed, c added, a untouched.
    std::fs::write(
        &path,
        format!(
            "{}{}",
            target_toml("a", &url("a"), "1s"),
            target_toml("c", &url("c"), "1s")
        ),
    )
    .unwrap();
    let summary = exporter.reload().await.unwrap();
    assert_eq!(
        summary,
        ReloadSummary {
            added: vec!["c".into()],
            removed: vec!["b".into()],
            changed: vec![],
            unchanged: 1,
            other_shards: 0,
        }
    );
    let text = until(&exporter, "c up", |t| t.contains(&up("c"))).await;
    assert!(
        !text.contains("target=\"b\""),
        "b's series are gone:\n{text}"
    );
    assert!(counter(&text, a_calls) >= before, "a's counters continue");
    // a kept running: still its first login; b logged out when stopped.
    assert_eq!(sim.vault("a").unwrap().request_count(Endpoint::Auth), 1);
    assert_eq!(sim.vault("b").unwrap().request_count(Endpoint::Logout), 1);

    // a changed: restarted with its state (counters do not go back).
    let before = counter(&metrics(&exporter).await, a_calls);
    std::fs::write(
        &path,
        format!(
            "{}{}",
            target_toml("a", &url("a"), "2s"),
            target_toml("c", &url("c"), "1s")
        ),
    )
    .unwrap();
    let summary = exporter.reload().await.unwrap();
    assert_eq!(summary.changed, vec!["a".to_string()]);
    let text = metrics(&exporter).await;
    assert!(counter(&text, a_calls) >= before);

    // An invalid file is refused; everything keeps running.
    std::fs::write(
        &path,
        "[[targets]]\nname = \"a\"\nkind = \"vault\"\nurl = \"nope\"\n",
    )
    .unwrap();
    let err = exporter.reload().await.unwrap_err();
    assert!(err.contains("targets[0].url"), "{err}");
    let text = until(&exporter, "reload failure recorded", |t| {
        t.contains("upload_session_exporter_config_last_reload_successful 0")
    })
    .await;
    assert!(text.contains(&up("a")) && text.contains(&up("c")));
    exporter.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn reload_over_http_only_with_lifecycle() {
    let sim = sim(vec![vault_spec("a", 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, target_toml("a", &sim.vault_url("a").unwrap(), "1s")).unwrap();
    let p = path.clone();
    let loader: Loader =
        Arc::new(move || config::load_with_env(&p, &Env).map_err(|e| e.to_string()));
    let client = reqwest::Client::new();
    for lifecycle in [false, true] {
        let opts = ServeOptions {
            enable_lifecycle: lifecycle,
            ..ServeOptions::loopback()
        };
        let exporter = Exporter::start(
            loader().unwrap(),
            Some(loader.clone()),
            opts,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let url = format!("http://{}/-/reload", exporter.addr());
        let r = client.post(&url).send().await.unwrap();
        if lifecycle {
            assert_eq!(r.status(), 200);
            let body = r.text().await.unwrap();
            assert!(
                body.starts_with("Reloaded: added [], removed [], changed [], 1 unchanged"),
                "{body}"
            );
            assert_eq!(client.get(&url).send().await.unwrap().status(), 405);
            std::fs::write(&path, "garbage = [").unwrap();
            let r = client.post(&url).send().await.unwrap();
            assert_eq!(r.status(), 500);
            assert!(r
                .text()
                .await
                .unwrap()
                .contains("running configuration stays in force"));
        } else {
            assert_eq!(r.status(), 403);
            assert_eq!(r.text().await.unwrap(), "Lifecycle API is not enabled.\n");
        }
        exporter.stop().await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn shards_split_targets_without_overlap_or_gap() {
    let names: Vec<String> = (0..8).map(|i| format!("vault-{i}")).collect();
    let sim = sim(vec![vault_spec("main", 1)]).await;
    let toml: String = names
        .iter()
        .map(|n| target_toml(n, &sim.vault_url("main").unwrap(), "1s"))
        .collect();
    let cfg = config::parse_str(&toml, "t", &Env).unwrap();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for index in 0..2 {
        let opts = ServeOptions {
            shard: Some(Shard { index, count: 2 }),
            ..ServeOptions::loopback()
        };
        let exporter = Exporter::start(cfg.clone(), None, opts, CancellationToken::new())
            .await
            .unwrap();
        let ready = format!("http://{}/-/ready", exporter.addr());
        assert!(
            eventually(Duration::from_secs(10), || async {
                get(&ready).await.status() == 200
            })
            .await
        );
        let text = until(&exporter, "shard's targets up", |t| {
            t.contains("upload_session_target_up{")
        })
        .await;
        let mine: Vec<String> = names
            .iter()
            .filter(|n| text.contains(&format!("upload_session_target_up{{target=\"{n}\"")))
            .cloned()
            .collect();
        for n in &mine {
            assert!(Shard { index, count: 2 }.owns(n));
        }
        seen.push(mine);
        exporter.stop().await;
    }
    let mut all: Vec<String> = seen.concat();
    all.sort();
    assert_eq!(
        all, names,
        "every target exactly once across the shards: {seen:?}"
    );
    assert!(!seen[0].is_empty() && !seen[1].is_empty(), "{seen:?}");
    sim.shutdown().await;
}

#[test]
fn sighup_reloads_the_running_binary() {
    use std::process::{Command, Stdio};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim(vec![vault_spec("a", 1), vault_spec("b", 2)]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, target_toml("a", &sim.vault_url("a").unwrap(), "1s")).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_upload_session_exporter"))
        .args([
            "--config.file",
            path.to_str().unwrap(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .env("VAULT_PW", "demo")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let wait_for = |needle: String| {
        rt.block_on(async {
            for _ in 0..200 {
                if let Ok(r) = reqwest::get(&url).await {
                    if r.text().await.unwrap_or_default().contains(&needle) {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        })
    };
    let up_b = "upload_session_target_up{target=\"b\",kind=\"vault\"} 1".to_string();
    let ok_a = wait_for("upload_session_target_up{target=\"a\",kind=\"vault\"} 1".into());
    std::fs::write(
        &path,
        format!(
            "{}{}",
            target_toml("a", &sim.vault_url("a").unwrap(), "1s"),
            target_toml("b", &sim.vault_url("b").unwrap(), "1s")
        ),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let ok_b = wait_for(up_b);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    rt.block_on(sim.shutdown());
    assert!(ok_a, "a never came up");
    assert!(hup.success());
    assert!(ok_b, "b did not appear after SIGHUP");
    assert!(status.success(), "{status:?}");
}

#[test]
fn log_level_follows_the_configuration_on_reload() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim(vec![vault_spec("a", 1)]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    let target = target_toml("a", &sim.vault_url("a").unwrap(), "1s");
    std::fs::write(&path, &target).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_upload_session_exporter"))
        .args([
            "--config.file",
            path.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "warn",
        ])
        .env("VAULT_PW", "demo")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let hup = |child: &std::process::Child| {
        assert!(Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    let reloaded_within = |secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("configuration reloaded") => return Some(l),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        None
    };
    std::thread::sleep(Duration::from_millis(500));
    hup(&child);
    let quiet = reloaded_within(2);
    std::fs::write(
        &path,
        format!("[exporter]\nlog_level = \"info\"\n\n{target}"),
    )
    .unwrap();
    hup(&child);
    let loud = reloaded_within(5);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    rt.block_on(sim.shutdown());
    assert!(
        quiet.is_none(),
        "info line printed at --log.level warn: {quiet:?}"
    );
    let loud = loud.expect("no info line after log_level = \"info\"");
    assert!(
        loud.starts_with("ts=") && loud.contains("level=info"),
        "{loud}"
    );
}
