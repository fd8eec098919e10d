//! Records the git revision for `upload_session_exporter_build_info`.
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=UPLOAD_SESSION_EXPORTER_REVISION");
    // Watch the files that actually exist: in a git worktree `.git` is a
    // file, and a rerun-if-changed path that does not exist reruns this
    // script, and so recompiles the crate, on every cargo invocation.
    // Only this checkout's HEAD and branch: commits on other worktrees'
    // branches do not touch them.
    let git_dir = git(&["rev-parse", "--git-dir"]).map(PathBuf::from);
    let common_dir = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from);
    match (git_dir, common_dir) {
        (Some(dir), Some(common)) => {
            let mut watched = vec![dir.join("HEAD"), common.join("packed-refs")];
            if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
                watched.push(common.join(branch));
            }
            for path in watched.iter().filter(|p| p.exists()) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        // Not a git checkout (a source tarball): nothing to watch.
        _ => println!("cargo:rerun-if-changed=build.rs"),
    }
    if std::env::var("UPLOAD_SESSION_EXPORTER_REVISION").is_ok() {
        return; // set by a packager; keep it
    }
    if let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=UPLOAD_SESSION_EXPORTER_REVISION={rev}");
    }
}
