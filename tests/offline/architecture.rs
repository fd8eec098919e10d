//! The shape of the source: the data walks one way (config -> kind -> poll
//! -> history -> page -> server), so no two top-level modules of the
//! exporter crate may depend on each other, directly or around a loop; and
//! everything about one upstream kind lives in its folder `src/kinds/<kind>/`:
//! the generic layers know kinds only through the traits and the registry of
//! `src/kinds/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/poller/history.rs` ->
/// `poller`); `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Every top-level module named after `crate::` in `text` (also inside
/// `use crate::{a, b::c}`), test modules included: they are code too.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group, up to its matching brace.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(item.trim().split("::").next().unwrap_or("").to_string());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(item.trim().split("::").next().unwrap_or("").to_string());
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn no_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        let deps = graph.entry(m.clone()).or_default();
        deps.extend(referenced(&text).into_iter().filter(|d| *d != m));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    assert!(graph.len() >= 10, "found only {:?}", graph.keys());

    // Depth-first search; a back edge is a cycle, reported with its path.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_string());
            cycles.push(c.join(" -> "));
            return;
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in &graph[m] {
            visit(d, graph, path, done, cycles);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    let edges: Vec<String> = graph
        .iter()
        .map(|(m, d)| {
            format!(
                "{m} -> {}",
                d.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}\n\nthe graph:\n{}",
        cycles.join("\n"),
        edges.join("\n")
    );
    // Shown with --nocapture: the layering as it is.
    println!("{}", edges.join("\n"));
}

#[test]
fn grouped_imports_are_read() {
    let r = referenced(
        "use crate::{config::{self, X}, model, poller::Readiness};\nuse crate::web::Auth;",
    );
    let want: BTreeSet<String> = ["config", "model", "poller", "web"]
        .map(String::from)
        .into();
    assert_eq!(r, want);
}

/// The code of a file without its comments and its `#[cfg(test)]` module
/// (tests may build targets of any kind).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn kinds_are_named_only_in_their_folders_and_the_registry() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let kinds_dir = src.join("kinds");
    let kinds: Vec<String> = std::fs::read_dir(&kinds_dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.is_dir()
                .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    assert!(kinds.len() >= 2, "{kinds:?}");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !f.starts_with(&kinds_dir)) {
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        for k in &kinds {
            for needle in [format!("\"{k}\""), format!("kinds::{k}")] {
                for line in code.lines().filter(|l| l.contains(&needle)) {
                    found.push(format!("{}: {needle}: {}", f.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "kind-specific code outside src/kinds/ (move it into the kind's folder, or \
         reach it through the traits of src/kinds/mod.rs):\n{}",
        found.join("\n")
    );
    // The registry names each kind's folder.
    let registry = std::fs::read_to_string(kinds_dir.join("mod.rs")).unwrap();
    for k in &kinds {
        assert!(registry.contains(&format!("pub mod {k};")), "{k}");
    }
}

#[test]
fn comments_and_tests_are_not_code() {
    let code = code_of("let a = 1; // \"vault\"\n// \"deepset\"\nlet b = 2;\n#[cfg(test)]\nmod tests { \"vault\" }\n");
    assert_eq!(code, "let a = 1; // \"vault\"\nlet b = 2;\n");
}
