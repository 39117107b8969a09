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

/// Every document of every manifest, by kind and name.
fn documents() -> Vec<serde_yaml::Value> {
    let mut docs = Vec::new();
    for f in files().iter().filter(|f| is_yaml(f)) {
        let text = std::fs::read_to_string(f).expect("a manifest");
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).expect("YAML");
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

/// `selector`'s matchLabels all hold in `labels`.
fn selects(selector: &serde_yaml::Value, labels: &serde_yaml::Value) -> bool {
    let want = selector["matchLabels"].as_mapping().expect("matchLabels");
    !want.is_empty() && want.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_policies_rbac_and_services_select_the_pods_they_mean() {
    let docs = documents();
    let learner = find(&docs, "Pod", "berth-node-example-class-example-learner-2aae7281");
    let learner_labels = &learner["metadata"]["labels"];
    let hub = find(&docs, "Deployment", "berth-hub");
    let hub_labels = &hub["spec"]["template"]["metadata"]["labels"];
    let registry = find(&docs, "Deployment", "berth-registry");
    let registry_labels = &registry["spec"]["template"]["metadata"]["labels"];
    let lab_port = &learner["spec"]["containers"][0]["ports"][0]["containerPort"];

    // Learners: only the hub in, on berthd's port; out only DNS and the registry.
    let deny = &find(&docs, "NetworkPolicy", "berth-node-default-deny")["spec"];
    assert!(selects(&deny["podSelector"], learner_labels), "the learner policy selects the learner pod template");
    assert!(!selects(&deny["podSelector"], hub_labels), "and not the hub");
    let types: Vec<&str> = deny["policyTypes"].as_sequence().expect("policyTypes").iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(types, ["Ingress", "Egress"]);
    let ingress = deny["ingress"].as_sequence().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "one way in");
    let from = ingress[0]["from"].as_sequence().expect("from");
    assert_eq!(from.len(), 1);
    assert!(from[0]["namespaceSelector"].is_null(), "from this namespace only");
    assert!(selects(&from[0]["podSelector"], hub_labels), "from the hub's pods");
    assert_eq!(&ingress[0]["ports"][0]["port"], lab_port);
    let egress = deny["egress"].as_sequence().expect("egress rules");
    assert!(egress.iter().all(|r| r["to"].as_sequence().is_some_and(|t| !t.is_empty())), "every way out names where to");
    assert!(egress.iter().any(|r| selects(&r["to"][0]["podSelector"], registry_labels)), "the registry is reachable");

    // The hub may reach the learners' port; the registry admits learners.
    let hub_policy = &find(&docs, "NetworkPolicy", "berth-hub")["spec"];
    assert!(selects(&hub_policy["podSelector"], hub_labels));
    assert!(hub_policy["egress"]
        .as_sequence()
        .expect("hub egress")
        .iter()
        .any(|r| selects(&r["to"][0]["podSelector"], learner_labels) && &r["ports"][0]["port"] == lab_port));
    let reg_policy = &find(&docs, "NetworkPolicy", "berth-registry")["spec"];
    assert!(selects(&reg_policy["podSelector"], registry_labels));
    assert!(selects(&reg_policy["ingress"][0]["from"][0]["podSelector"], learner_labels));

    // The hub runs as the ServiceAccount the Role is bound to.
    let binding = find(&docs, "RoleBinding", "berth-hub");
    assert_eq!(hub["spec"]["template"]["spec"]["serviceAccountName"], binding["subjects"][0]["name"]);
    assert_eq!(binding["roleRef"]["name"].as_str(), find(&docs, "Role", "berth-hub")["metadata"]["name"].as_str());
    assert_eq!(learner["spec"]["automountServiceAccountToken"].as_bool(), Some(false));

    // Services and the Deployments' selectors reach the pods they name.
    for (svc, labels) in [("berth-hub", hub_labels), ("berth-registry", registry_labels)] {
        let s = find(&docs, "Service", svc);
        let sel = &s["spec"]["selector"];
        assert!(sel.as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))), "Service {svc}");
    }
    assert!(selects(&hub["spec"]["selector"], hub_labels));
    assert!(selects(&registry["spec"]["selector"], registry_labels));
    let ing = find(&docs, "Ingress", "berth-hub");
    assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"].as_str(), Some("berth-hub"));
    assert!(ing["spec"]["tls"][0]["secretName"].as_str().is_some(), "the ingress serves TLS");

    // Every object lives in the namespace the spawner works in.
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "Namespace" | "Kustomization") {
            assert_eq!(d["metadata"]["namespace"].as_str(), Some("berth"), "{kind} {:?}", d["metadata"]["name"]);
        }
    }
}
