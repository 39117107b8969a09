//! deploy/kubernetes against the Kubernetes JSON schemas: every manifest is
//! checked by `kubernetes-validate` (PyPI, installed by scripts/setup.sh into
//! a venv under the lab's state dir), strictly (unknown fields are errors),
//! for one fixed Kubernetes version: the one k8s-openapi is built for
//! (classroom/Cargo.toml, feature v1_35).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const KUBERNETES_VERSION: &str = "1.35.0";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The validator setup.sh installs; a missing one fails the test (it
/// must never pass unchecked).
fn validator() -> PathBuf {
    let state = std::env::var_os("BERTH_STATE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib/berth-lab"));
    let bin = state.join("kubernetes-validate-venv/bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/setup.sh (it installs kubernetes-validate from PyPI into that venv); the manifests cannot be checked without it",
        bin.display()
    );
    bin
}

struct Outcome {
    ok: bool,
    lines: Vec<String>,
}

fn validate(files: &[PathBuf]) -> Outcome {
    let out = Command::new(validator())
        .arg("--strict")
        .arg("--kubernetes-version")
        .arg(KUBERNETES_VERSION)
        .args(files)
        .output()
        .expect("running kubernetes-validate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Outcome { ok: out.status.success(), lines: text.lines().map(str::to_string).collect() }
}

/// What fails a run: a non-zero exit, any error, any warning but the one
/// for kustomize's own file (which has no Kubernetes schema); a misspelt
/// kind or apiVersion is only a warning to kubernetes-validate.
fn problems(out: &Outcome) -> Vec<String> {
    let mut p: Vec<String> = out
        .lines
        .iter()
        .filter(|l| {
            l.starts_with("ERROR") || (l.starts_with("WARN") && !(l.contains("kustomization.yaml") && l.contains("kind Kustomization")))
        })
        .cloned()
        .collect();
    if !out.ok && p.is_empty() {
        p.push(format!("kubernetes-validate exited with failure:\n{}", out.lines.join("\n")));
    }
    p
}

/// Every file under deploy/kubernetes, relative to it.
fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    let mut out = Vec::new();
    walk(&deploy_dir(), &mut out);
    out.sort();
    out
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

#[test]
fn every_manifest_in_deploy_kubernetes_passes_the_schemas_strictly() {
    let all = files();
    let root = deploy_dir();
    // Only manifests, the README and the images' Dockerfiles live here: a
    // manifest in another format would escape the check.
    for f in &all {
        let rel = f.strip_prefix(&root).expect("under deploy/kubernetes");
        let allowed = is_yaml(f) || rel == Path::new("README.md") || rel.starts_with("images");
        assert!(allowed, "deploy/kubernetes/{} is neither a YAML manifest, the README nor an image's file", rel.display());
    }
    let manifests: Vec<PathBuf> = all.into_iter().filter(|f| is_yaml(f)).collect();
    assert!(manifests.len() >= 8, "the manifests are there: {manifests:?}");
    let out = validate(&manifests);
    let report = out.lines.join("\n");
    assert_eq!(problems(&out), Vec::<String>::new(), "kubernetes-validate:\n{report}");
    for f in manifests.iter().filter(|f| !f.ends_with("kustomization.yaml")) {
        let name = f.to_string_lossy();
        assert!(
            out.lines.iter().any(|l| l.starts_with("INFO") && l.contains(name.as_ref()) && l.contains("passed")),
            "{name} had no resource checked:\n{report}"
        );
    }
}

#[test]
fn the_kustomization_applies_every_manifest_but_the_learner_pod_template() {
    let root = deploy_dir();
    let text = std::fs::read_to_string(root.join("kustomization.yaml")).expect("deploy/kubernetes/kustomization.yaml");
    let k: serde_yaml::Value = serde_yaml::from_str(&text).expect("kustomization.yaml is YAML");
    assert_eq!(k["kind"].as_str(), Some("Kustomization"));
    let listed: BTreeSet<String> =
        k["resources"].as_sequence().expect("resources").iter().map(|r| r.as_str().expect("a path").to_string()).collect();
    let present: BTreeSet<String> = files()
        .iter()
        .filter(|f| is_yaml(f))
        .map(|f| f.strip_prefix(&root).expect("under deploy/kubernetes").to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml" && f != "learner-pod.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml's resources and the manifests beside it");
}

#[test]
fn a_broken_manifest_is_rejected() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pod = std::fs::read_to_string(deploy_dir().join("learner-pod.yaml")).expect("learner-pod.yaml");
    let cases = [
        ("misspelt-field.yaml", pod.replacen("privileged: true", "privilegd: true", 1), "privilegd"),
        ("wrong-type.yaml", pod.replacen("containerPort: 8080", "containerPort: eighty", 1), "eighty"),
        ("bad-kind.yaml", pod.replacen("kind: Pod", "kind: Pods", 1), "Pods"),
    ];
    for (name, text, word) in cases {
        assert!(text.contains(word), "the case {name} changed the template");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("writing the case");
        let out = validate(std::slice::from_ref(&path));
        let report = out.lines.join("\n");
        assert!(problems(&out).iter().any(|l| l.contains(word)), "{name}: not rejected:\n{report}");
        if !name.starts_with("bad-kind") {
            assert!(!out.ok, "{name}: kubernetes-validate exited 0:\n{report}");
        }
    }
}
