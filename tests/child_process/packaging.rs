//! The crate as others build it: the Docker build context holds everything
//! cargo needs, and `rust-version` is true for the locked dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The host triple: cargo only downloaded the packages of this platform, so
/// offline commands must not ask for the others.
fn host() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

/// Runs a command; its stdout, or a panic with everything it said.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `1.89`, `1.88.0` as comparable numbers (missing parts are 0).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn rust_version_covers_every_locked_package() {
    let out = run(cargo()
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host()]));
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "upload_session_exporter")
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml sets rust-version");
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(ours)).then(|| {
                format!(
                    "{} {} needs {needs}",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-version = {ours:?}, but Cargo.lock pins: {too_new:?}"
    );
    // The container builds with a toolchain at least that new.
    let df = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let image = df
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("the build stage uses the rust image");
    let image_version = image.split(['-', ' ']).next().unwrap_or("");
    assert!(
        version(image_version) >= version(ours),
        "Dockerfile builds with rust:{image_version}, below rust-version {ours}"
    );
    // The sanity of the reading: some dependency states a version at all.
    assert!(
        packages
            .iter()
            .filter(|p| p["rust_version"].is_string())
            .count()
            > 20
    );
}

/// One `.dockerignore` pattern, matched like Docker does (path segments,
/// `*` and `?` within a segment, `**` for any number of segments; a match of
/// a directory covers everything below it).
fn glob(pattern: &[&str], path: &[&str]) -> bool {
    fn seg(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg(&p[1..], s) || (!s.is_empty() && seg(p, &s[1..])),
            (Some(b'?'), Some(_)) => seg(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => seg(&p[1..], &s[1..]),
            _ => false,
        }
    }
    match (pattern.first(), path.first()) {
        (None, _) => true, // a parent directory matched
        (Some(&"**"), _) => {
            glob(&pattern[1..], path) || (!path.is_empty() && glob(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => seg(p.as_bytes(), s.as_bytes()) && glob(&pattern[1..], &path[1..]),
        (Some(_), None) => false,
    }
}

struct DockerIgnore(Vec<(bool, Vec<String>)>);

impl DockerIgnore {
    fn load(context: &Path) -> DockerIgnore {
        let text = std::fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        DockerIgnore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (keep, p) = match l.strip_prefix('!') {
                        Some(p) => (true, p),
                        None => (false, l),
                    };
                    let segs = p
                        .trim_start_matches("./")
                        .trim_matches('/')
                        .split('/')
                        .filter(|s| !s.is_empty() && *s != ".")
                        .map(str::to_string)
                        .collect();
                    (keep, segs)
                })
                .collect(),
        )
    }

    /// True if `rel` (relative to the context) is left out; the last
    /// matching pattern decides, as in Docker.
    fn excludes(&self, rel: &Path) -> bool {
        let path: Vec<&str> = rel.iter().filter_map(|s| s.to_str()).collect();
        let mut out = false;
        for (keep, pattern) in &self.0 {
            let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
            if glob(&pattern, &path) {
                out = !keep;
            }
        }
        out
    }
}

/// Copies `rel` of `context` to `dest`, recursively, leaving out what the
/// .dockerignore excludes.
fn copy_into(context: &Path, ignore: &DockerIgnore, rel: &Path, dest: &Path) {
    let src = context.join(rel);
    // An excluded directory is still walked when a `!` pattern may bring
    // something below it back.
    if ignore.excludes(rel) && !(src.is_dir() && ignore.0.iter().any(|(keep, _)| *keep)) {
        return;
    }
    if src.is_dir() {
        std::fs::create_dir_all(dest).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let name = e.unwrap().file_name();
            copy_into(context, ignore, &rel.join(&name), &dest.join(&name));
        }
    } else if !ignore.excludes(rel) {
        assert!(src.is_file(), "COPY source {} missing", rel.display());
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::copy(&src, dest).unwrap();
    }
}

/// The build stage's instructions, continuation lines joined.
fn build_stage(dockerfile: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in dockerfile.lines() {
        let t = l.trim();
        if t.starts_with('#') && cur.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                if !cur.trim().is_empty() {
                    lines.push(cur.trim().to_string());
                }
                cur.clear();
            }
        }
    }
    lines
        .into_iter()
        .skip_while(|l| !l.starts_with("FROM "))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("FROM "))
        .map(|(_, l)| l)
        .collect()
}

/// `include_str!("...")` / `include_bytes!("...")` paths in the Rust files
/// under `dir`, resolved against each file's directory.
fn included_files(dir: &Path, found: &mut Vec<(PathBuf, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            included_files(&p, found);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for mac in ["include_str!(\"", "include_bytes!(\""] {
                for (i, _) in text.match_indices(mac) {
                    let rest = &text[i + mac.len()..];
                    if let Some(end) = rest.find('"') {
                        found.push((p.clone(), p.parent().unwrap().join(&rest[..end])));
                    }
                }
            }
        }
    }
}

/// Rebuilds the Docker build stage's context without Docker: exactly what
/// its COPY lines copy (minus .dockerignore) in a temporary directory, then
/// cargo there, offline and locked. `cargo fetch` loads every target the
/// manifest declares and checks Cargo.lock, which is where a missing bench
/// or workspace member fails `cargo build`. A cold `cargo check` of the
/// context took 13 minutes (4.5 min CPU) on a shared 2-core machine: too
/// slow for every test run.
#[test]
fn docker_build_context_holds_what_cargo_needs() {
    let df = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let stage = build_stage(&df);
    assert!(stage[0].starts_with("FROM "), "{stage:?}");
    let ignore = DockerIgnore::load(&root());
    let ctx = tempfile::tempdir().unwrap();
    let mut workdir = PathBuf::from("/");
    let mut cargo_line = None;
    for l in &stage {
        if let Some(dir) = l.strip_prefix("WORKDIR ") {
            workdir = workdir.join(dir.trim());
        } else if let Some(args) = l.strip_prefix("COPY ") {
            let words: Vec<&str> = args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert!(
                !args.contains("--from"),
                "the build stage copies only from the context: {l}"
            );
            let (dest, srcs) = words.split_last().expect("COPY SRC... DEST");
            let dest_abs = workdir.join(dest);
            let dest_in = ctx.path().join(dest_abs.strip_prefix("/").unwrap());
            for src in srcs {
                let rel = Path::new(src.trim_start_matches("./"));
                let target = if dest.ends_with('/') || srcs.len() > 1 || root().join(rel).is_dir() {
                    // Into a directory: a file keeps its name; a directory's
                    // contents land in DEST.
                    if root().join(rel).is_dir() {
                        dest_in.clone()
                    } else {
                        dest_in.join(rel.file_name().unwrap())
                    }
                } else {
                    dest_in.clone()
                };
                copy_into(&root(), &ignore, rel, &target);
            }
        } else if let Some(cmd) = l.strip_prefix("RUN ") {
            if cmd.trim_start().starts_with("cargo ") {
                cargo_line = Some(cmd.trim().to_string());
            }
        }
    }
    let cargo_line = cargo_line.expect("the build stage runs cargo");
    let words: Vec<&str> = cargo_line.split_whitespace().collect();
    assert_eq!(&words[..2], ["cargo", "build"], "{cargo_line}");
    assert!(
        words.contains(&"--locked"),
        "{cargo_line}: builds what Cargo.lock pins"
    );
    let bins: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1])
        .collect();
    assert!(bins.contains(&"upload_session_exporter"), "{cargo_line}");

    // Cargo's view of the copied crate, from the WORKDIR the RUN runs in.
    let dir = ctx.path().join(workdir.strip_prefix("/").unwrap());
    run(cargo()
        .current_dir(&dir)
        .args(["fetch", "--locked", "--offline", "--target", &host()]));
    let out = run(cargo().current_dir(&dir).args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--no-deps",
    ]));
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut built_bins = Vec::new();
    for pkg in meta["packages"].as_array().unwrap() {
        for t in pkg["targets"].as_array().unwrap() {
            let src = t["src_path"].as_str().unwrap();
            assert!(
                Path::new(src).is_file(),
                "{} target {src} is not in the context",
                t["name"]
            );
            if t["kind"].as_array().unwrap().iter().any(|k| k == "bin") {
                built_bins.push(t["name"].as_str().unwrap().to_string());
            }
        }
    }
    for b in &bins {
        assert!(
            built_bins.iter().any(|n| n == b),
            "--bin {b}: not a bin of {built_bins:?}"
        );
    }
    // Files the sources include at compile time are there too.
    let mut included = Vec::new();
    included_files(&dir, &mut included);
    for (file, inc) in &included {
        assert!(
            inc.is_file(),
            "{} includes {}, not in the context",
            file.display(),
            inc.display()
        );
    }
    assert!(!included.is_empty(), "the scan of include_str! found none");
}

#[test]
fn dockerignore_patterns_match_like_docker() {
    let ig = DockerIgnore(vec![
        (false, vec!["target".into()]),
        (false, vec!["**".into(), "*.swp".into()]),
        (false, vec!["docs".into()]),
        (true, vec!["docs".into(), "keep.md".into()]),
    ]);
    assert!(ig.excludes(Path::new("target")));
    assert!(ig.excludes(Path::new("target/debug/x")));
    assert!(!ig.excludes(Path::new("src/target.rs")));
    assert!(ig.excludes(Path::new("src/a/.b.swp")));
    assert!(ig.excludes(Path::new("docs/x.md")));
    assert!(!ig.excludes(Path::new("docs/keep.md")));
    assert!(!ig.excludes(Path::new("Cargo.toml")));
}
