//! What the binaries print, as a user or a log pipeline reads it: JSON log
//! lines, the simulator's own name and streams, `--shard` in one-shot runs.

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use common::*;

/// Any JSON value; refuses an object that repeats a key (serde_json keeps
/// the last, as jq, Python, Loki and Vector do, and says nothing).
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

/// A `[[targets]]` table of a Vault at `url` (the simulator's demo login).
fn vault_target_toml(name: &str, url: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"vault\"\nurl = \"{url}\"\n\
         username = \"demo@example.com\"\npassword_env = \"VAULT_PW\"\n\n"
    )
}

/// Parses one log line, refusing repeated keys.
fn strict_json(line: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str::<NoDuplicateKeys>(line).map_err(|e| format!("{e}: {line}"))?;
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}

#[test]
fn the_strict_parser_refuses_repeated_keys() {
    assert!(strict_json(r#"{"target":"a","x":[{"k":1}],"module":"m"}"#).is_ok());
    let e =
        strict_json(r#"{"target":"blackhole","level":"WARN","target":"m::poller"}"#).unwrap_err();
    assert!(e.contains("duplicate key \"target\""), "{e}");
    assert!(strict_json(r#"{"a":[{"k":1,"k":2}]}"#).is_err());
}

/// Lines of a child's pipe, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A child process that is killed when the test ends, even by a panic.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Reap {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reap {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// SIGTERM, then the exit code (within 10 s).
fn stop(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real run at debug level with one healthy and one unreachable target:
/// every stderr line is one JSON object whose keys are unique, and the
/// failing target's name survives as `target`.
#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_have_unique_keys() {
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\ntimeout = \"2s\"\n\n{}{}",
            vault_target_toml("t1", &sim.vault_url("main").unwrap()),
            vault_target_toml("blackhole", &dead_url)
        ),
    )
    .unwrap();
    let log = tokio::task::spawn_blocking(move || {
        let child = Command::new(BIN)
            .arg("--config.file")
            .arg(&path)
            .args(["--log.format", "json", "--log.level", "debug"])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env("VAULT_PW", "demo")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut child = Reap(child);
        let rx = lines_of(child.stderr.take().unwrap());
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        // Until both targets have been polled (t1 logs its login at debug).
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            log.push(line);
            let seen = |what: &str| log.iter().any(|l| l.contains(what));
            if seen("poll failed") && seen("logged in to vault") {
                break;
            }
        }
        let code = stop(&mut child);
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
            log.push(line);
        }
        assert_eq!(code, Some(0), "{log:#?}");
        log
    })
    .await
    .unwrap();
    let objects: Vec<serde_json::Value> = log
        .iter()
        .map(|l| strict_json(l).unwrap_or_else(|e| panic!("{e}\nall lines: {log:#?}")))
        .collect();
    assert!(objects.len() >= 3, "{log:#?}");
    for o in &objects {
        assert!(o["timestamp"].is_string() && o["level"].is_string(), "{o}");
        assert!(o["message"].is_string() && o["module"].is_string(), "{o}");
    }
    let failed = objects
        .iter()
        .find(|o| o["message"] == "poll failed")
        .unwrap_or_else(|| panic!("no failed poll logged: {log:#?}"));
    assert_eq!(failed["target"], "blackhole", "{failed}");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(
        failed["module"], "upload_session_exporter::poller",
        "{failed}"
    );
    assert!(
        objects.iter().any(|o| o["message"] == "shutting down"),
        "{log:#?}"
    );
    sim.shutdown().await;
}

// The simulator binary's own output: sim/tests/binary.rs.

/// Target names in `upload_session_target_up` samples of an exposition.
fn polled_targets(exposition: &str) -> Vec<String> {
    let mut names: Vec<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("upload_session_target_up{target=\""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// `--once` and `sessions` poll only the replica's share, like the server:
/// two shards' outputs are disjoint and together cover every target.
#[tokio::test(flavor = "multi_thread")]
async fn once_and_sessions_honour_the_shard() {
    use upload_session_exporter::shard::Shard;
    let sim = sim(vec![vault_spec("main", 1000)]).await;
    let url = sim.vault_url("main").unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("replica-test-{i}")).collect();
    let share = |index| -> Vec<String> {
        let s = Shard { index, count: 2 };
        names.iter().filter(|n| s.owns(n)).cloned().collect()
    };
    let (mine, theirs) = (share(0), share(1));
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "{mine:?} {theirs:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    let toml: String = names.iter().map(|n| vault_target_toml(n, &url)).collect();
    std::fs::write(&path, format!("[defaults]\ntimeout = \"5s\"\n\n{toml}")).unwrap();
    let path = path.display().to_string();
    let other_target = theirs[0].clone();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = |shard_env: Option<&str>, extra: &[&str]| {
            let mut cmd = Command::new(BIN);
            cmd.args(["--config.file", &path])
                .args(extra)
                .env("VAULT_PW", "demo")
                .env_remove("UPLOAD_SESSION_EXPORTER_SHARD");
            if let Some(s) = shard_env {
                cmd.env("UPLOAD_SESSION_EXPORTER_SHARD", s);
            }
            let out = cmd.output().expect("binary runs");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        [
            run(None, &["--shard", "0/2", "--once"]),
            // The environment variable, as the StatefulSet sets it.
            run(Some("1/2"), &["--once"]),
            run(None, &["--shard", "0/2", "sessions"]),
            run(None, &["--shard", "1/2", "sessions"]),
            run(None, &["--once"]),
            run(
                None,
                &["--shard", "0/2", "sessions", "--target", &other_target],
            ),
        ]
    })
    .await
    .unwrap();
    for (i, expected) in [(0, &mine), (1, &theirs)] {
        let (code, out, err) = &outputs[i];
        assert_eq!(*code, Some(0), "{err}");
        assert_eq!(&polled_targets(out), expected, "shard {i}/2 --once");
    }
    // sessions: each table names its target; the other share's never appear.
    for (i, (own, other)) in [(2, (&mine, &theirs)), (3, (&theirs, &mine))] {
        let (code, out, err) = &outputs[i];
        assert_eq!(*code, Some(0), "{err}");
        for n in own {
            assert!(out.contains(n.as_str()), "{n} missing:\n{out}");
        }
        for n in other {
            assert!(
                !out.contains(n.as_str()),
                "{n} is the other shard's:\n{out}"
            );
        }
    }
    // Without --shard, every target.
    let mut all = names.clone();
    all.sort();
    assert_eq!(polled_targets(&outputs[4].1), all);
    // Another replica's target, asked for by name: say whose it is.
    let (code, _, err) = &outputs[5];
    assert_eq!(*code, Some(1));
    assert!(
        err.contains(&format!("{:?} is polled by shard 1/2", theirs[0])),
        "{err}"
    );
    sim.shutdown().await;
}
