//! berthd's modules form layers: reading the sources, no module imports one
//! that imports it back (directly or around a cycle), and HTTP (axum) stays at
//! the edge — the API, the lab server and the daemon that serves them.
//! (Issue 14: the import graph had a 10-file cycle through api/, engine/,
//! daemon.rs and lab/.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`engine/logs.rs` → engine).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Each top-level module and the top-level modules it names (`crate::x`),
/// test code left out.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut text_of: BTreeMap<String, String> = BTreeMap::new();
    for f in files {
        let m = module_of(&src, &f);
        if m == "lib" || m == "main" {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        // What is compiled into the daemon: the file up to its tests.
        let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        let entry = deps.entry(m.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != m {
                entry.insert(name);
            }
        }
        text_of.entry(m).or_default().push_str(&code);
    }
    (deps, text_of)
}

fn find_cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in deps.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, deps, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in deps.keys() {
        if let Some(c) = visit(n, deps, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let (deps, _) = graph();
    assert!(deps.contains_key("engine") && deps.contains_key("api"), "the sources were not found: {deps:?}");
    if let Some(cycle) = find_cycle(&deps) {
        panic!("an import cycle: {}\n(every module's imports: {deps:#?})", cycle.join(" → "));
    }
}

#[test]
fn leaves_import_nothing_of_berth_and_http_stays_at_the_edge() {
    let (deps, text) = graph();
    for leaf in ["ids", "signals", "text", "durable", "fault", "sys", "events", "storage", "config"] {
        assert_eq!(deps.get(leaf).cloned().unwrap_or_default(), BTreeSet::new(), "{leaf} should be a leaf");
    }
    let below_http = ["engine", "runtime", "network", "image", "build", "storage", "dockerfile", "error", "observer", "ids"];
    for m in below_http {
        let t = text.get(m).cloned().unwrap_or_default();
        assert!(!t.contains("axum::"), "{m} uses axum: HTTP belongs to api/, lab/ and the daemon");
        for edge in ["api", "lab", "daemon"] {
            assert!(!deps.get(m).is_some_and(|d| d.contains(edge)), "{m} imports {edge}");
        }
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("a".into()).or_default().insert("b".into());
    deps.entry("b".into()).or_default().insert("c".into());
    deps.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&deps), Some(vec!["a".to_string(), "b".into(), "c".into(), "a".into()]));
    deps.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&deps), None);
}
