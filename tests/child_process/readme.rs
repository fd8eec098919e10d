//! The README as a new user reads it: its minimal configuration works as written and
//! every page it links to exists.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_upload_session_exporter");

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The body of the first fenced block that follows `marker` in the README.
fn block_after(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("README has {marker:?}"));
    let rest = &text[at..];
    let start = rest.find("```toml\n").expect("a toml block follows") + "```toml\n".len();
    let end = rest[start..].find("```").expect("the block ends");
    rest[start..start + end].to_string()
}

/// Lines that matter to TOML: no comments, no blank lines, no trailing comments.
fn significant(toml: &str) -> Vec<String> {
    toml.lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_minimal_configuration_is_the_shipped_file_and_checks_out() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shown = block_after(&readme(), "## A minimal configuration");
    let file = std::fs::read_to_string(root.join("config/minimal.toml")).unwrap();
    assert_eq!(
        significant(&shown),
        significant(&file),
        "README block = config/minimal.toml"
    );

    // The commands as the README gives them: with the one export, --check-config passes.
    let out = Command::new(BIN)
        .current_dir(root)
        .args(["--config.file", "config/minimal.toml", "--check-config"])
        .env("VAULT_PROD_PASSWORD", "not-a-real-password")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 target(s): vault-prod"), "{stdout}");
    assert!(!stdout.contains("not-a-real-password"));

    // Without it, the error says which variable to export.
    let out = Command::new(BIN)
        .current_dir(root)
        .args(["--config.file", "config/minimal.toml", "--check-config"])
        .env_remove("VAULT_PROD_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VAULT_PROD_PASSWORD is not set"));
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let dir = page.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let link = &rest[..end];
            if link.contains("://") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let path = link.split('#').next().unwrap_or(link);
            checked += 1;
            if !dir.join(path).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
