//! The `kubernetes` spawner: a Pod per learner, made through the Kubernetes
//! API with kube-rs (the only module that knows kube or k8s-openapi).
//!
//! What it makes, in the spawner's namespace:
//! - a ConfigMap `berth-class-<class>` per class, the *owner*: every pod of
//!   the class names it in `ownerReferences`, so deleting it lets
//!   Kubernetes' garbage collector remove the class (the class's expiry is an
//!   annotation on it);
//! - a Secret `<pod>-token` per node holding the per-node secret, mounted as
//!   berthd's `--token-file` (never in an env var or the pod spec), owned by
//!   its pod (so by the class through it);
//! - the Pod, from one template ([`learner_pod`], the same spec as
//!   `deploy/kubernetes/learner-pod.yaml`): berthd privileged or under a
//!   runtime class (Kata), no service-account token, emptyDir data and exec
//!   roots, hostname `node1`;
//! - a warm pool: pods made ahead, labelled `berth.dev/pool=warm` and owned
//!   by the ConfigMap `berth-warm-pool`, claimed on spawn by relabelling
//!   (their token Secret is made at the claim; berthd starts once it is
//!   mounted).
//!
//! Idle culling, class expiry and the warm pool are decided by [`plan`], a
//! pure function of the pods, the classes, the policy and the time;
//! [`KubernetesSpawner::reconcile_once`] lists, plans and applies, and
//! [`KubernetesSpawner::run`] does that every `reconcile_secs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, KeyToPath, Pod, PodSpec, Probe, ResourceRequirements, Secret,
    SecretVolumeSource, SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Node, NodeRequest, Phase, SpawnError, Spawner};

// Labels and annotations (keys).
const NAME: &str = "app.kubernetes.io/name";
const COMPONENT: &str = "app.kubernetes.io/component";
const PART_OF: &str = "app.kubernetes.io/part-of";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const CLASS: &str = "berth.dev/class";
const LEARNER: &str = "berth.dev/learner";
const POOL: &str = "berth.dev/pool";
/// The hub's own ids (labels hold a sanitised form when an id is not a
/// valid label value).
const CLASS_ID: &str = "berth.dev/class-id";
const LEARNER_ID: &str = "berth.dev/learner-id";
const LAST_ACTIVITY: &str = "berth.dev/last-activity";
const CLAIMED_AT: &str = "berth.dev/claimed-at";
const EXPIRES_AT: &str = "berth.dev/expires-at";

const NODE_APP: &str = "berth-node";
const HUB: &str = "berth-hub";
const POOL_OWNER: &str = "berth-warm-pool";
/// Where the token Secret is mounted, and the file berthd reads.
const TOKEN_DIR: &str = "/etc/berth/token";
const TOKEN_KEY: &str = "token";
/// berthd starts once its token file is there: at once for a pod made for a
/// learner (its Secret is made first), at the claim for a warm pod.
const WAIT_FOR_TOKEN: &str = "until [ -s /etc/berth/token/token ]; do sleep 0.2; done; exec berthd \"$@\"";

/// How learners' pods are made and kept; the hub reads it from its config
/// file (every field has a default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// The namespace of the hub, its pods, secrets and owners.
    pub namespace: String,
    /// The node1 image (berthd, the page, iptables, the lab's home).
    pub image: String,
    pub image_pull_policy: String,
    /// berthd as a privileged container (it makes namespaces, bridges,
    /// iptables rules, overlay mounts and cgroups). Under a VM runtime class
    /// it is privileged inside the learner's own VM only.
    pub privileged: bool,
    /// A RuntimeClass such as `kata` (a microVM per pod); none: the node's
    /// default runtime.
    pub runtime_class_name: Option<String>,
    /// Container resources: `requests` and `limits` (cpu, memory,
    /// ephemeral-storage) as Kubernetes quantities.
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    /// The data root's emptyDir size limit (images, layers, volumes).
    pub data_size_limit: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// berthd's lab server port (the hub reaches `podIP:port`).
    pub port: u16,
    /// The hub's origins, passed to berthd as `--allowed-origin`.
    pub hub_origins: Vec<String>,
    /// Registry mirrors for docker.io pulls (`--registry-mirror`) and the
    /// registries reached over HTTP (`--insecure-registry`).
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    /// A node with no activity for this long is removed.
    pub idle_minutes: u64,
    /// Pods kept made and unassigned, claimed on spawn.
    pub warm_pool: usize,
    /// How often the reconcile loop runs.
    pub reconcile_secs: u64,
    /// Activity the hub reports is written to the pod (an annotation, so a
    /// restarted hub still knows it) at most this often.
    pub activity_flush_secs: u64,
}

impl Default for KubeConfig {
    fn default() -> Self {
        let q = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        KubeConfig {
            namespace: "berth".into(),
            image: "berth-node:0.1.0".into(),
            image_pull_policy: "IfNotPresent".into(),
            privileged: true,
            runtime_class_name: None,
            requests: q(&[("cpu", "250m"), ("memory", "512Mi"), ("ephemeral-storage", "2Gi")]),
            limits: q(&[("cpu", "2"), ("memory", "3Gi"), ("ephemeral-storage", "12Gi")]),
            data_size_limit: Some("10Gi".into()),
            node_selector: BTreeMap::new(),
            port: 8080,
            hub_origins: Vec::new(),
            registry_mirrors: vec!["http://berth-registry:5000".into()],
            insecure_registries: vec!["berth-registry:5000".into()],
            idle_minutes: 30,
            warm_pool: 0,
            reconcile_secs: 30,
            activity_flush_secs: 60,
        }
    }
}

impl KubeConfig {
    fn policy(&self) -> Policy {
        Policy {
            idle: Duration::from_secs(self.idle_minutes * 60),
            warm_pool: self.warm_pool,
            activity_flush: Duration::from_secs(self.activity_flush_secs),
        }
    }
}

// ---------------------------------------------------------------------------
// Names and labels

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// A label value for an id: the id itself when Kubernetes accepts it (63
/// letters, digits, `-_.`, alphanumeric at both ends), else a readable
/// part and a hash of the id.
pub fn label_value(id: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends = |s: &str| s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !id.is_empty() && id.len() <= 63 && id.chars().all(ok) && ends(id) {
        return id.to_string();
    }
    let part: String = id.chars().map(|c| if ok(c) { c } else { '-' }).take(40).collect();
    let part = part.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let h = &hash(&[id])[..10];
    if part.is_empty() {
        format!("x-{h}")
    } else {
        format!("{part}-{h}")
    }
}

/// A DNS-1123 label fragment of at most `max` characters (lowercase
/// alphanumerics and `-`), for object names.
fn dns_part(id: &str, max: usize) -> String {
    let s: String = id.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(max).collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "x".into()
    } else {
        s
    }
}

/// The class's owner ConfigMap.
pub fn owner_name(class: &str) -> String {
    format!("berth-class-{}-{}", dns_part(class, 30), &hash(&[class])[..8])
}

/// A learner's pod (when made for them, not claimed from the pool).
pub fn pod_name(class: &str, learner: &str) -> String {
    format!("berth-node-{}-{}-{}", dns_part(class, 20), dns_part(learner, 20), &hash(&[class, learner])[..8])
}

fn secret_name(pod: &str) -> String {
    format!("{pod}-token")
}

fn warm_pod_name(now: SystemTime, seq: u64) -> String {
    let nanos = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos().to_string();
    format!("berth-warm-{}", &hash(&[&nanos, &seq.to_string(), &std::process::id().to_string()])[..10])
}

fn base_labels() -> BTreeMap<String, String> {
    [(NAME, NODE_APP), (COMPONENT, "node1"), (PART_OF, "berth"), (MANAGED_BY, HUB)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn node_selector() -> String {
    format!("{NAME}={NODE_APP},{MANAGED_BY}={HUB}")
}

fn rfc3339(t: SystemTime) -> String {
    Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_default()
}

fn parse_time(s: &str) -> Option<SystemTime> {
    s.parse::<Timestamp>().ok().map(SystemTime::from)
}

// ---------------------------------------------------------------------------
// The pod template

/// The per-pod facts the template is filled with.
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub name: String,
    /// `Some((class, learner))` for a learner's pod, `None` for a warm one.
    pub learner: Option<(String, String)>,
    pub owner: OwnerReference,
    pub now: SystemTime,
}

/// A pod as the owner of its token Secret: deleting the pod, whoever does
/// it (the hub, the garbage collector after its class, kubectl), deletes it.
fn pod_ref(p: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: p.name_any(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn owner_ref(cm: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        uid: cm.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn learner_meta(class: &str, learner: &str, now: SystemTime) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = base_labels();
    labels.insert(CLASS.into(), label_value(class));
    labels.insert(LEARNER.into(), label_value(learner));
    let t = rfc3339(now);
    let annotations = [(CLASS_ID, class), (LEARNER_ID, learner), (LAST_ACTIVITY, t.as_str())]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (labels, annotations)
}

/// berthd's flags in the pod.
fn berthd_args(cfg: &KubeConfig) -> Vec<String> {
    let mut a: Vec<String> = [
        "--host",
        "unix:///run/berth/docker.sock",
        "--page-addr",
        &format!("0.0.0.0:{}", cfg.port),
        "--page-dir",
        "/usr/share/berth/dist",
        "--lab-home",
        "/root",
        "--data-root",
        "/var/lib/berth",
        "--exec-root",
        "/run/berth",
        "--token-file",
        &format!("{TOKEN_DIR}/{TOKEN_KEY}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, values) in [
        ("--registry-mirror", &cfg.registry_mirrors),
        ("--insecure-registry", &cfg.insecure_registries),
        ("--allowed-origin", &cfg.hub_origins),
    ] {
        for v in values {
            a.push(flag.into());
            a.push(v.clone());
        }
    }
    a
}

/// A learner's (or a warm) pod: the one template both are made from, and
/// what `deploy/kubernetes/learner-pod.yaml` shows.
pub fn learner_pod(cfg: &KubeConfig, facts: &PodFacts) -> Pod {
    let (labels, annotations) = match &facts.learner {
        Some((class, learner)) => learner_meta(class, learner, facts.now),
        None => {
            let mut l = base_labels();
            l.insert(POOL.into(), "warm".into());
            (l, BTreeMap::new())
        }
    };
    let quantities =
        |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect());
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let container = Container {
        name: "node1".into(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), WAIT_FOR_TOKEN.into(), "berthd".into()]),
        args: Some(berthd_args(cfg)),
        ports: Some(vec![ContainerPort {
            name: Some("lab".into()),
            container_port: cfg.port.into(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::String("lab".into()), host: None }),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: quantities(&cfg.requests),
            limits: quantities(&cfg.limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext { privileged: Some(cfg.privileged), ..Default::default() }),
        volume_mounts: Some(vec![
            mount("data", "/var/lib/berth", false),
            mount("exec", "/run/berth", false),
            mount("token", TOKEN_DIR, true),
        ]),
        ..Default::default()
    };
    let volumes = vec![
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource { medium: None, size_limit: cfg.data_size_limit.clone().map(Quantity) }),
            ..Default::default()
        },
        Volume {
            name: "exec".into(),
            empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: Some(Quantity("64Mi".into())) }),
            ..Default::default()
        },
        Volume {
            name: "token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(&facts.name)),
                items: Some(vec![KeyToPath { key: TOKEN_KEY.into(), path: TOKEN_KEY.into(), mode: None }]),
                default_mode: Some(0o400),
                // A warm pod starts before its Secret exists (made at the claim).
                optional: Some(true),
            }),
            ..Default::default()
        },
    ];
    Pod {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![facts.owner.clone()]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            hostname: Some("node1".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(10),
            runtime_class_name: cfg.runtime_class_name.clone(),
            node_selector: (!cfg.node_selector.is_empty()).then(|| cfg.node_selector.clone()),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

fn token_secret(cfg: &KubeConfig, pod: &str, class: &str, learner: &str, secret: &str, owner: OwnerReference) -> Secret {
    let mut labels = base_labels();
    labels.insert(CLASS.into(), label_value(class));
    labels.insert(LEARNER.into(), label_value(learner));
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(pod)),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some([(TOKEN_KEY.to_string(), ByteString(secret.as_bytes().to_vec()))].into()),
        ..Default::default()
    }
}

fn owner_map(cfg: &KubeConfig, name: &str, class: Option<&str>) -> ConfigMap {
    let mut labels: BTreeMap<String, String> =
        [(PART_OF, "berth"), (MANAGED_BY, HUB), (COMPONENT, "class-owner")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut annotations = BTreeMap::new();
    let mut data = BTreeMap::new();
    match class {
        Some(c) => {
            labels.insert(CLASS.into(), label_value(c));
            annotations.insert(CLASS_ID.to_string(), c.to_string());
            data.insert("class".to_string(), c.to_string());
        }
        None => {
            labels.insert(COMPONENT.into(), "warm-pool".into());
            labels.insert(POOL.into(), "warm".into());
        }
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Status

fn is_warm(p: &Pod) -> bool {
    p.labels().get(POOL).is_some_and(|v| v == "warm")
}

use kube::ResourceExt;

/// A learner's node as the hub sees it, from its pod.
pub fn pod_to_node(p: &Pod, port: u16) -> Node {
    let ann = p.annotations();
    let labels = p.labels();
    let class = ann.get(CLASS_ID).or_else(|| labels.get(CLASS)).cloned().unwrap_or_default();
    let learner = ann.get(LEARNER_ID).or_else(|| labels.get(LEARNER)).cloned().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let ip = status.pod_ip.clone().filter(|s| !s.is_empty());
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .filter_map(|w| w.reason.clone().map(|r| (r, w.message.clone())))
        .next();
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.clone().or_else(|| c.last_state.as_ref()?.terminated.clone()))
        .next();
    let condition = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t).cloned();
    let ready = condition("Ready").is_some_and(|c| c.status == "True");
    let with_msg = |r: String, m: Option<String>| match m.filter(|m| !m.is_empty()) {
        Some(m) => format!("{r}: {m}"),
        None => r,
    };
    const STUCK: [&str; 6] =
        ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"];
    let (phase, reason) = if p.metadata.deletion_timestamp.is_some() {
        (Phase::Gone, Some("Terminating".to_string()))
    } else {
        match status.phase.as_deref() {
            Some("Running") if ready => (Phase::Running, None),
            Some("Failed") | Some("Succeeded") => {
                let r = status.reason.clone().or_else(|| {
                    terminated
                        .as_ref()
                        .map(|t| format!("{} (exit {})", t.reason.clone().unwrap_or_else(|| "Terminated".into()), t.exit_code))
                });
                (Phase::Failed, Some(with_msg(r.unwrap_or_else(|| "Failed".into()), status.message.clone())))
            }
            _ => match waiting {
                Some((r, m)) if STUCK.contains(&r.as_str()) => (Phase::Failed, Some(with_msg(r, m))),
                Some((r, m)) => (Phase::Pending, Some(with_msg(r, m))),
                None => match condition("PodScheduled").filter(|c| c.status == "False") {
                    Some(c) => (Phase::Pending, Some(with_msg(c.reason.unwrap_or_else(|| "Unschedulable".into()), c.message))),
                    None => (Phase::Pending, (status.phase.as_deref() == Some("Running")).then(|| "NotReady".to_string())),
                },
            },
        }
    };
    let mut facts = BTreeMap::new();
    facts.insert("pod".to_string(), p.name_any());
    if let Some(ns) = &p.metadata.namespace {
        facts.insert("namespace".into(), ns.clone());
    }
    if let Some(ip) = &ip {
        facts.insert("pod_ip".into(), ip.clone());
    }
    if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
        facts.insert("node".into(), n);
    }
    if let Some(a) = ann.get(LAST_ACTIVITY) {
        facts.insert("last_activity".into(), a.clone());
    }
    Node {
        id: p.name_any(),
        class,
        learner,
        phase,
        addr: ip.map(|ip| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }),
        reason,
        labels: facts,
        created: p.metadata.creation_timestamp.as_ref().map(|t| SystemTime::from(t.0)).unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

// ---------------------------------------------------------------------------
// Reconcile: pure decisions

/// What reconciling weighs, from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub idle: Duration,
    pub warm_pool: usize,
    pub activity_flush: Duration,
}

/// A pod as the reconcile logic sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    /// The class's label value; `None` for a warm pod.
    pub class: Option<String>,
    pub created: SystemTime,
    /// The last activity written on the pod.
    pub saved_activity: Option<SystemTime>,
    /// The last activity the hub reported to this process.
    pub seen_activity: Option<SystemTime>,
    /// Its containers started (phase Running).
    pub ready: bool,
    pub failed: bool,
    pub terminating: bool,
}

/// A class owner as the reconcile logic sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassView {
    /// The owner ConfigMap's name.
    pub owner: String,
    /// The class's label value.
    pub class: String,
    pub expires: Option<SystemTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Idle,
    WarmFailed,
    WarmSurplus,
}

/// One step the reconcile loop takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Delete the class's owner (and so, through ownerReferences, its pods
    /// and secrets), and its pods at once.
    RemoveClass { owner: String, class: String },
    /// Delete one pod and its token Secret.
    RemovePod { name: String, why: Why },
    /// Make one warm pod.
    CreateWarm,
    /// Write the activity the hub reported on the pod.
    SaveActivity { name: String, at: SystemTime },
}

/// Decides what to create and delete: classes past their expiry go whole;
/// a learner's pod idle for longer than `policy.idle` (since its last
/// activity, or its making) goes; failed warm pods go; the warm pool is
/// topped up to `policy.warm_pool` or trimmed (least ready, newest first);
/// activity newer than the pod's annotation by `activity_flush` is saved.
pub fn plan(pods: &[PodView], classes: &[ClassView], policy: &Policy, now: SystemTime) -> Vec<Action> {
    let mut out = Vec::new();
    let expired: Vec<&ClassView> = classes.iter().filter(|c| c.expires.is_some_and(|e| e <= now)).collect();
    for c in &expired {
        out.push(Action::RemoveClass { owner: c.owner.clone(), class: c.class.clone() });
    }
    let gone = |class: &str| expired.iter().any(|c| c.class == class);
    let live = pods.iter().filter(|p| !p.terminating);
    for p in live.clone().filter(|p| p.class.as_deref().is_some_and(|c| !gone(c))) {
        let last = [Some(p.created), p.saved_activity, p.seen_activity].into_iter().flatten().max().unwrap_or(p.created);
        if now.duration_since(last).unwrap_or_default() > policy.idle {
            out.push(Action::RemovePod { name: p.name.clone(), why: Why::Idle });
        } else if let Some(seen) = p.seen_activity {
            let saved = p.saved_activity.unwrap_or(SystemTime::UNIX_EPOCH);
            if seen.duration_since(saved).is_ok_and(|d| d >= policy.activity_flush) {
                out.push(Action::SaveActivity { name: p.name.clone(), at: seen });
            }
        }
    }
    let mut warm: Vec<&PodView> = Vec::new();
    for p in live.filter(|p| p.class.is_none()) {
        if p.failed {
            out.push(Action::RemovePod { name: p.name.clone(), why: Why::WarmFailed });
        } else {
            warm.push(p);
        }
    }
    if warm.len() < policy.warm_pool {
        out.extend(std::iter::repeat_n(Action::CreateWarm, policy.warm_pool - warm.len()));
    } else if warm.len() > policy.warm_pool {
        // Keep the ready and the oldest (the likeliest to be ready soon).
        warm.sort_by(|a, b| a.ready.cmp(&b.ready).then(b.created.cmp(&a.created)));
        for p in &warm[..warm.len() - policy.warm_pool] {
            out.push(Action::RemovePod { name: p.name.clone(), why: Why::WarmSurplus });
        }
    }
    out
}

fn pod_view(p: &Pod, seen: Option<SystemTime>) -> PodView {
    let status = p.status.as_ref();
    // Scheduled, pulled and started: as ready as a warm pod gets (its
    // berthd waits for the token the claim brings, so it is never Ready).
    let ready = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let failed = matches!(pod_to_node(p, 0).phase, Phase::Failed);
    PodView {
        name: p.name_any(),
        class: if is_warm(p) { None } else { p.labels().get(CLASS).cloned() },
        created: p.metadata.creation_timestamp.as_ref().map(|t| SystemTime::from(t.0)).unwrap_or(SystemTime::UNIX_EPOCH),
        saved_activity: p.annotations().get(LAST_ACTIVITY).and_then(|s| parse_time(s)),
        seen_activity: seen,
        ready,
        failed,
        terminating: p.metadata.deletion_timestamp.is_some(),
    }
}

fn class_view(cm: &ConfigMap) -> Option<ClassView> {
    Some(ClassView {
        owner: cm.name_any(),
        class: cm.labels().get(CLASS)?.clone(),
        expires: cm.annotations().get(EXPIRES_AT).and_then(|s| parse_time(s)),
    })
}

// ---------------------------------------------------------------------------
// The spawner

/// Pods per learner through the Kubernetes API.
pub struct KubernetesSpawner {
    cfg: KubeConfig,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    maps: Api<ConfigMap>,
    /// Activity the hub reported, by pod (saved on the pod by reconcile).
    activity: Mutex<HashMap<String, SystemTime>>,
    /// One spawn at a time: a learner's second click finds their first pod.
    spawning: tokio::sync::Mutex<()>,
    seq: std::sync::atomic::AtomicU64,
    /// The time spawns stamp on pods (a fixed one in tests).
    clock: fn() -> SystemTime,
}

impl std::fmt::Debug for KubernetesSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSpawner").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

fn api_err(what: &str, e: kube::Error) -> SpawnError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => SpawnError::NotFound(format!("{what}: {}", s.message)),
        kube::Error::Api(s) if s.code == 403 && s.message.contains("exceeded quota") => {
            SpawnError::Capacity(format!("{what}: {}", s.message))
        }
        _ => SpawnError::Backend(format!("{what}: {e}")),
    }
}

/// kube's client for `config`, over rustls. rustls is built here with two
/// crypto providers (ring, and aws-lc-rs that other crates ask for), so it
/// picks none by itself: ring is made the process's default unless one is
/// chosen already (as berth-hub's TLS listener does).
fn client_for(config: kube::Config) -> Result<Client, SpawnError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread chose one meanwhile: that one holds.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Client::try_from(config).map_err(|e| SpawnError::Backend(format!("kubernetes client: {e}")))
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl KubernetesSpawner {
    /// A spawner on `client` (in a cluster: `Client::try_default()`, which
    /// reads the hub's service-account token and the cluster's CA).
    pub fn new(client: Client, cfg: KubeConfig) -> Self {
        let ns = cfg.namespace.clone();
        KubernetesSpawner {
            pods: Api::namespaced(client.clone(), &ns),
            secrets: Api::namespaced(client.clone(), &ns),
            maps: Api::namespaced(client, &ns),
            cfg,
            activity: Mutex::new(HashMap::new()),
            spawning: tokio::sync::Mutex::new(()),
            seq: std::sync::atomic::AtomicU64::new(0),
            clock: SystemTime::now,
        }
    }

    /// The same spawner reading the time from `clock`.
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// A spawner with the client the environment gives (in-cluster
    /// service account, or `$KUBECONFIG`).
    pub async fn from_env(cfg: KubeConfig) -> Result<Self, SpawnError> {
        let config = kube::Config::infer().await.map_err(|e| SpawnError::Backend(format!("kubernetes client config: {e}")))?;
        Ok(Self::new(client_for(config)?, cfg))
    }

    /// What the hub's `--spawner kubernetes --kube-config FILE` needs: the
    /// config read from `file` (JSON with [`KubeConfig`]'s fields, as in
    /// deploy/kubernetes/hub-config.yaml; a misspelt field is an error),
    /// the environment's client, and the reconcile loop started on the
    /// current runtime.
    pub async fn start(file: &std::path::Path) -> Result<std::sync::Arc<Self>, SpawnError> {
        let text = std::fs::read_to_string(file).map_err(|e| SpawnError::Backend(format!("{}: {e}", file.display())))?;
        let cfg: KubeConfig = serde_json::from_str(&text).map_err(|e| SpawnError::Backend(format!("{}: {e}", file.display())))?;
        let s = std::sync::Arc::new(Self::from_env(cfg).await?);
        tokio::spawn(s.clone().run());
        Ok(s)
    }

    pub fn config(&self) -> &KubeConfig {
        &self.cfg
    }

    /// The owner ConfigMap (made if missing).
    async fn ensure_owner(&self, name: &str, class: Option<&str>) -> Result<ConfigMap, SpawnError> {
        if let Some(cm) = self.maps.get_opt(name).await.map_err(|e| api_err("reading the class owner", e))? {
            return Ok(cm);
        }
        match self.maps.create(&PostParams::default(), &owner_map(&self.cfg, name, class)).await {
            Ok(cm) => Ok(cm),
            Err(e) if is_code(&e, 409) => self.maps.get(name).await.map_err(|e| api_err("reading the class owner", e)),
            Err(e) => Err(api_err("making the class owner", e)),
        }
    }

    async fn make_secret(&self, s: &Secret) -> Result<(), SpawnError> {
        let name = s.metadata.name.clone().unwrap_or_default();
        match self.secrets.create(&PostParams::default(), s).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 409) => {
                // Left by an attempt that failed half-way; immutable, so replaced.
                self.delete_secret(&name).await?;
                self.secrets.create(&PostParams::default(), s).await.map(|_| ()).map_err(|e| api_err("making the node's token secret", e))
            }
            Err(e) => Err(api_err("making the node's token secret", e)),
        }
    }

    async fn delete_secret(&self, name: &str) -> Result<(), SpawnError> {
        match self.secrets.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(api_err("deleting the node's token secret", e)),
        }
    }

    async fn delete_pod(&self, name: &str) -> Result<(), SpawnError> {
        match self.pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_code(&e, 404) => {}
            Err(e) => return Err(api_err("deleting the node's pod", e)),
        }
        self.delete_secret(&secret_name(name)).await?;
        self.activity.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        Ok(())
    }

    /// Claims a warm pod for the learner: its token Secret first, then the
    /// pod relabelled and re-owned (a merge patch conditional on the pod's
    /// resourceVersion, so two hubs never claim the same pod).
    async fn claim_warm(&self, req: &NodeRequest, owner: &OwnerReference, now: SystemTime) -> Result<Option<Pod>, SpawnError> {
        let lp = ListParams::default().labels(&format!("{},{POOL}=warm", node_selector()));
        let mut warm: Vec<Pod> = self.pods.list(&lp).await.map_err(|e| api_err("listing the warm pool", e))?.items;
        warm.retain(|p| {
            let v = pod_view(p, None);
            !v.terminating && !v.failed
        });
        warm.sort_by_key(|p| {
            let v = pod_view(p, None);
            (!v.ready, v.created)
        });
        for p in warm {
            let name = p.name_any();
            self.make_secret(&token_secret(&self.cfg, &name, &req.class, &req.learner, &req.secret, pod_ref(&p))).await?;
            let (labels, mut annotations) = learner_meta(&req.class, &req.learner, now);
            // Changing the pod makes its kubelet sync it at once, which
            // remounts its secret volume with the Secret just made (else it
            // waits for the kubelet's periodic sync, a minute by default;
            // kubernetes issue 30189): berthd starts then.
            annotations.insert(CLAIMED_AT.into(), rfc3339(now));
            let mut label_patch = serde_json::to_value(&labels).unwrap_or_default();
            label_patch[POOL] = serde_json::Value::Null;
            let patch = json!({
                "metadata": {
                    "resourceVersion": p.metadata.resource_version,
                    "labels": label_patch,
                    "annotations": annotations,
                    "ownerReferences": [owner],
                }
            });
            match self.pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(claimed) => return Ok(Some(claimed)),
                Err(e) if is_code(&e, 409) || is_code(&e, 404) => {
                    // Another hub claimed (or culled) it first.
                    self.delete_secret(&secret_name(&name)).await?;
                }
                Err(e) => {
                    self.delete_secret(&secret_name(&name)).await?;
                    return Err(api_err("claiming a warm pod", e));
                }
            }
        }
        Ok(None)
    }

    /// The class ends at `at`: written on its owner; the reconcile loop
    /// removes the class then.
    pub async fn set_expiry(&self, class: &str, at: SystemTime) -> Result<(), SpawnError> {
        let name = owner_name(class);
        self.ensure_owner(&name, Some(class)).await?;
        let patch = json!({ "metadata": { "annotations": { EXPIRES_AT: rfc3339(at) } } });
        self.maps
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_err("writing the class's expiry", e))?;
        Ok(())
    }

    /// One turn of the loop: lists the pods and owners, [`plan`]s, applies.
    /// Returns what it did.
    pub async fn reconcile_once(&self, now: SystemTime) -> Result<Vec<Action>, SpawnError> {
        let pods = self.pods.list(&ListParams::default().labels(&node_selector())).await.map_err(|e| api_err("listing nodes", e))?.items;
        let owners = self
            .maps
            .list(&ListParams::default().labels(&format!("{MANAGED_BY}={HUB},{COMPONENT}=class-owner")))
            .await
            .map_err(|e| api_err("listing classes", e))?
            .items;
        let seen = self.activity.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let views: Vec<PodView> = pods.iter().map(|p| pod_view(p, seen.get(&p.name_any()).copied())).collect();
        let classes: Vec<ClassView> = owners.iter().filter_map(class_view).collect();
        let actions = plan(&views, &classes, &self.cfg.policy(), now);
        for a in &actions {
            match a {
                Action::RemoveClass { owner, class } => {
                    tracing::info!(class, "class expired: removing its nodes");
                    self.remove_class_by_label(class, owner).await?;
                }
                Action::RemovePod { name, why } => {
                    tracing::info!(pod = name, ?why, "removing node");
                    self.delete_pod(name).await?;
                }
                Action::CreateWarm => {
                    let pool = self.ensure_owner(POOL_OWNER, None).await?;
                    let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let facts = PodFacts { name: warm_pod_name(now, seq), learner: None, owner: owner_ref(&pool), now };
                    self.pods
                        .create(&PostParams::default(), &learner_pod(&self.cfg, &facts))
                        .await
                        .map_err(|e| api_err("making a warm pod", e))?;
                }
                Action::SaveActivity { name, at } => {
                    let patch = json!({ "metadata": { "annotations": { LAST_ACTIVITY: rfc3339(*at) } } });
                    match self.pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {}
                        Err(e) if is_code(&e, 404) => {}
                        Err(e) => return Err(api_err("saving a node's activity", e)),
                    }
                }
            }
        }
        Ok(actions)
    }

    /// Reconciles every `reconcile_secs` until the task is dropped; a
    /// failed turn is logged and the next one tries again.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.cfg.reconcile_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.reconcile_once((self.clock)()).await {
                tracing::warn!(error = %e, "kubernetes reconcile");
            }
        }
    }

    async fn remove_class_by_label(&self, class_label: &str, owner: &str) -> Result<(), SpawnError> {
        let lp = ListParams::default().labels(&format!("{},{CLASS}={class_label}", node_selector()));
        for p in self.pods.list(&lp).await.map_err(|e| api_err("listing the class's nodes", e))?.items {
            self.delete_pod(&p.name_any()).await?;
        }
        match self.maps.delete(owner, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(api_err("deleting the class owner", e)),
        }
    }
}

#[async_trait::async_trait]
impl Spawner for KubernetesSpawner {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn spawn(&self, req: &NodeRequest) -> Result<Node, SpawnError> {
        let _one = self.spawning.lock().await;
        let now = (self.clock)();
        let lp = ListParams::default().labels(&format!(
            "{},{CLASS}={},{LEARNER}={}",
            node_selector(),
            label_value(&req.class),
            label_value(&req.learner)
        ));
        let existing = self.pods.list(&lp).await.map_err(|e| api_err("looking for the learner's node", e))?.items;
        if let Some(p) = existing.iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.annotations().get(CLASS_ID) == Some(&req.class)
                && p.annotations().get(LEARNER_ID) == Some(&req.learner)
        }) {
            return Ok(pod_to_node(p, self.cfg.port));
        }
        let owner = owner_ref(&self.ensure_owner(&owner_name(&req.class), Some(&req.class)).await?);
        if self.cfg.warm_pool > 0 {
            if let Some(p) = self.claim_warm(req, &owner, now).await? {
                return Ok(pod_to_node(&p, self.cfg.port));
            }
        }
        let name = pod_name(&req.class, &req.learner);
        self.make_secret(&token_secret(&self.cfg, &name, &req.class, &req.learner, &req.secret, owner.clone())).await?;
        let facts = PodFacts { name: name.clone(), learner: Some((req.class.clone(), req.learner.clone())), owner, now };
        match self.pods.create(&PostParams::default(), &learner_pod(&self.cfg, &facts)).await {
            Ok(p) => {
                // The Secret was made first (owned by the class) so the pod
                // starts with it mounted; now it is handed to the pod.
                let patch = json!({ "metadata": { "ownerReferences": [pod_ref(&p)] } });
                if let Err(e) = self.secrets.patch(&secret_name(&name), &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::warn!(pod = name, error = %e, "the token secret stays owned by its class");
                }
                Ok(pod_to_node(&p, self.cfg.port))
            }
            Err(e) if is_code(&e, 409) => {
                Err(SpawnError::Backend(format!("the learner's previous node {name} is still being removed; try again shortly")))
            }
            Err(e) => {
                self.delete_secret(&secret_name(&name)).await?;
                Err(api_err("making the learner's pod", e))
            }
        }
    }

    async fn status(&self, id: &str) -> Result<Node, SpawnError> {
        match self.pods.get_opt(id).await.map_err(|e| api_err("reading the node's pod", e))? {
            Some(p) if !is_warm(&p) && p.labels().contains_key(CLASS) => Ok(pod_to_node(&p, self.cfg.port)),
            _ => Err(SpawnError::NotFound(id.to_string())),
        }
    }

    async fn list(&self) -> Result<Vec<Node>, SpawnError> {
        let lp = ListParams::default().labels(&format!("{},{CLASS}", node_selector()));
        let pods = self.pods.list(&lp).await.map_err(|e| api_err("listing nodes", e))?.items;
        Ok(pods.iter().filter(|p| !is_warm(p)).map(|p| pod_to_node(p, self.cfg.port)).collect())
    }

    async fn remove(&self, id: &str) -> Result<(), SpawnError> {
        self.delete_pod(id).await
    }

    async fn remove_class(&self, class: &str) -> Result<(), SpawnError> {
        self.remove_class_by_label(&label_value(class), &owner_name(class)).await
    }

    fn record_activity(&self, id: &str, at: SystemTime) {
        let mut m = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(id.to_string()).or_insert(at);
        if at > *e {
            *e = at;
        }
    }

    async fn set_class_expiry(&self, class: &str, at: SystemTime) -> Result<(), SpawnError> {
        self.set_expiry(class, at).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::Value;

    use super::*;

    const NOW: &str = "2026-12-02T18:00:00Z";

    fn at(s: &str) -> SystemTime {
        parse_time(s).unwrap()
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    // -- A mocked API server: kube's tower-test pair, answered by a small
    // in-memory store of pods, secrets and configmaps (create, get, list
    // with label selectors, merge patch with a resourceVersion
    // precondition, delete) that records every request.

    #[derive(Clone, Debug)]
    struct Call {
        method: String,
        path: String,
        query: String,
        body: Option<Value>,
    }

    #[derive(Default)]
    struct World {
        objects: BTreeMap<(String, String), Value>,
        calls: Vec<Call>,
        rv: u64,
        /// (method, path prefix, code, message): answered instead.
        fail: Option<(String, String, u16, String)>,
    }

    impl World {
        fn get(&self, kind: &str, name: &str) -> Option<&Value> {
            self.objects.get(&(kind.to_string(), name.to_string()))
        }
        fn names(&self, kind: &str) -> Vec<String> {
            self.objects.keys().filter(|(k, _)| k == kind).map(|(_, n)| n.clone()).collect()
        }
        fn calls(&self, method: &str, kind: &str) -> Vec<Call> {
            let prefix = format!("/api/v1/namespaces/berth/{kind}");
            self.calls.iter().filter(|c| c.method == method && c.path.starts_with(&prefix)).cloned().collect()
        }
        fn writes(&self) -> Vec<String> {
            self.calls.iter().filter(|c| c.method != "GET").map(|c| format!("{} {}", c.method, c.path)).collect()
        }
    }

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn matches(selector: &str, labels: &Value) -> bool {
        selector.split(',').filter(|t| !t.is_empty()).all(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                labels[k].as_str() != Some(v)
            } else if let Some((k, v)) = t.split_once('=') {
                labels[k].as_str() == Some(v.trim_start_matches('='))
            } else if let Some(k) = t.strip_prefix('!') {
                labels[k].is_null()
            } else {
                !labels[t].is_null()
            }
        })
    }

    fn merge(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(p) => {
                if !target.is_object() {
                    *target = json!({});
                }
                let t = target.as_object_mut().unwrap();
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            other => *target = other.clone(),
        }
    }

    fn serve(w: &mut World, method: &str, path: &str, query: &str, body: Option<Value>) -> (u16, Value) {
        w.calls.push(Call { method: method.into(), path: path.into(), query: decode(query), body: body.clone() });
        if let Some((m, p, code, msg)) = &w.fail {
            if m == method && path.starts_with(p.as_str()) {
                return (*code, status(*code, "Injected", msg));
            }
        }
        let rest = path.strip_prefix("/api/v1/namespaces/berth/").expect("a namespaced core/v1 path");
        let (kind, name) = match rest.split_once('/') {
            Some((k, n)) => (k.to_string(), Some(n.to_string())),
            None => (rest.to_string(), None),
        };
        let key = |n: &str| (kind.clone(), n.to_string());
        match (method, name) {
            ("GET", None) => {
                let sel = decode(query).split('&').find_map(|kv| kv.strip_prefix("labelSelector=").map(str::to_string)).unwrap_or_default();
                let items: Vec<Value> = w
                    .objects
                    .iter()
                    .filter(|((k, _), v)| *k == kind && matches(&sel, &v["metadata"]["labels"]))
                    .map(|(_, v)| v.clone())
                    .collect();
                let list_kind = match kind.as_str() {
                    "pods" => "PodList",
                    "secrets" => "SecretList",
                    _ => "ConfigMapList",
                };
                (200, json!({"apiVersion": "v1", "kind": list_kind, "metadata": {"resourceVersion": w.rv.to_string()}, "items": items}))
            }
            ("GET", Some(n)) => match w.objects.get(&key(&n)) {
                Some(v) => (200, v.clone()),
                None => (404, status(404, "NotFound", &format!("{kind} \"{n}\" not found"))),
            },
            ("POST", None) => {
                let mut v = body.unwrap();
                let n = v["metadata"]["name"].as_str().unwrap().to_string();
                if w.objects.contains_key(&key(&n)) {
                    return (409, status(409, "AlreadyExists", &format!("{kind} \"{n}\" already exists")));
                }
                w.rv += 1;
                v["metadata"]["uid"] = json!(format!("uid-{kind}-{n}"));
                v["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                v["metadata"]["creationTimestamp"] = json!(NOW);
                w.objects.insert(key(&n), v.clone());
                (201, v)
            }
            ("PATCH", Some(n)) => {
                let patch = body.unwrap();
                let Some(v) = w.objects.get_mut(&key(&n)) else {
                    return (404, status(404, "NotFound", &format!("{kind} \"{n}\" not found")));
                };
                if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
                    if v["metadata"]["resourceVersion"].as_str() != Some(rv) {
                        return (409, status(409, "Conflict", "the object has been modified"));
                    }
                }
                merge(v, &patch);
                w.rv += 1;
                v["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                (200, v.clone())
            }
            ("DELETE", Some(n)) => match w.objects.remove(&key(&n)) {
                Some(v) => (200, v),
                None => (404, status(404, "NotFound", &format!("{kind} \"{n}\" not found"))),
            },
            (m, n) => panic!("the fake API server does not serve {m} {kind} {n:?}"),
        }
    }

    fn fake(cfg: KubeConfig) -> (KubernetesSpawner, Arc<Mutex<World>>) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let world = Arc::new(Mutex::new(World::default()));
        let w = world.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body = (!bytes.is_empty()).then(|| serde_json::from_slice::<Value>(&bytes).unwrap());
                let (code, v) =
                    serve(&mut w.lock().unwrap(), parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""), body);
                let resp = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&v).unwrap()));
                send.send_response(resp.unwrap());
            }
        });
        (KubernetesSpawner::new(Client::new(svc, "berth"), cfg).with_clock(|| at(NOW)), world)
    }

    fn req(class: &str, learner: &str) -> NodeRequest {
        NodeRequest {
            class: class.into(),
            learner: learner.into(),
            lab: "deploy-docker".into(),
            secret: format!("s3cret-{class}-{learner}-0123456789"),
        }
    }

    fn set_status(world: &Arc<Mutex<World>>, pod: &str, status: Value) {
        let mut w = world.lock().unwrap();
        let v = w.objects.get_mut(&("pods".to_string(), pod.to_string())).unwrap();
        v["status"] = status;
    }

    fn ready(ip: &str) -> Value {
        json!({"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]})
    }

    // -- spawn

    #[tokio::test]
    async fn spawn_makes_the_class_owner_then_the_token_secret_then_the_pod() {
        let (s, world) = fake(KubeConfig::default());
        let r = req("c1", "ada");
        let node = s.spawn(&r).await.unwrap();
        assert_eq!((node.class.as_str(), node.learner.as_str(), node.phase), ("c1", "ada", Phase::Pending));
        assert_eq!(node.id, pod_name("c1", "ada"));
        assert_eq!(node.addr, None, "no IP before scheduling");

        let w = world.lock().unwrap();
        let owner = owner_name("c1");
        let pod = secret_name(&node.id);
        assert_eq!(
            w.writes(),
            vec![
                "POST /api/v1/namespaces/berth/configmaps".to_string(),
                "POST /api/v1/namespaces/berth/secrets".to_string(),
                "POST /api/v1/namespaces/berth/pods".to_string(),
                format!("PATCH /api/v1/namespaces/berth/secrets/{pod}"),
            ],
            "owner, then the secret the pod mounts, then the pod, which then owns the secret"
        );
        let stored = w.get("secrets", &pod).unwrap();
        let pod_uid = format!("uid-pods-{}", node.id);
        assert_eq!(
            stored["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": node.id, "uid": pod_uid, "controller": true}])
        );
        let lookup = &w.calls("GET", "pods")[0];
        let sel = "labelSelector=app.kubernetes.io/name=berth-node,app.kubernetes.io/managed-by=berth-hub,berth.dev/class=c1,berth.dev/learner=ada";
        assert!(lookup.query.contains(sel), "spawn first looks for the learner's node: {}", lookup.query);
        let cm = w.calls("POST", "configmaps")[0].body.clone().unwrap();
        assert_eq!(cm["metadata"]["name"], json!(owner));
        assert_eq!(cm["metadata"]["labels"][CLASS], json!("c1"));

        let secret = w.calls("POST", "secrets")[0].body.clone().unwrap();
        assert_eq!(secret["metadata"]["name"], json!(pod));
        // ByteString serialises as base64.
        let token_b64 = secret["data"]["token"].as_str().unwrap();
        assert_eq!(ByteString(r.secret.as_bytes().to_vec()), serde_json::from_value::<ByteString>(json!(token_b64)).unwrap());
        assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], json!(format!("uid-configmaps-{owner}")));
        assert_eq!(secret["immutable"], json!(true));

        let body = w.calls("POST", "pods")[0].body.clone().unwrap();
        let text = body.to_string();
        assert!(!text.contains(&r.secret), "the node's secret is never in the pod spec: {text}");
        assert!(!text.contains(token_b64), "nor base64-encoded");
        let spec = &body["spec"];
        let c = &spec["containers"][0];
        assert!(c["env"].is_null() && c["envFrom"].is_null(), "no env at all");
        assert_eq!(spec["automountServiceAccountToken"], json!(false));
        assert_eq!(spec["enableServiceLinks"], json!(false));
        assert_eq!(spec["hostname"], json!("node1"));
        assert_eq!(c["securityContext"]["privileged"], json!(true));
        assert!(spec["runtimeClassName"].is_null());
        let meta = &body["metadata"];
        assert_eq!(
            meta["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": format!("uid-configmaps-{owner}"), "controller": true}])
        );
        for (k, v) in
            [(NAME, "berth-node"), (MANAGED_BY, "berth-hub"), (PART_OF, "berth"), (COMPONENT, "node1"), (CLASS, "c1"), (LEARNER, "ada")]
        {
            assert_eq!(meta["labels"][k], json!(v), "label {k}");
        }
        let vols = spec["volumes"].as_array().unwrap();
        let vol = |n: &str| vols.iter().find(|v| v["name"] == json!(n)).unwrap().clone();
        assert_eq!(vol("data")["emptyDir"]["sizeLimit"], json!("10Gi"));
        assert_eq!(vol("exec")["emptyDir"]["medium"], json!("Memory"));
        assert_eq!(vol("token")["secret"]["secretName"], json!(pod));
        assert_eq!(vol("token")["secret"]["defaultMode"], json!(0o400));
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let flag = |f: &str| args.iter().position(|a| *a == f).map(|i| args[i + 1]);
        assert_eq!(flag("--token-file"), Some("/etc/berth/token/token"));
        assert_eq!(flag("--data-root"), Some("/var/lib/berth"));
        assert_eq!(flag("--exec-root"), Some("/run/berth"));
        assert_eq!(flag("--page-addr"), Some("0.0.0.0:8080"));
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(mounts.contains(&json!({"name": "token", "mountPath": "/etc/berth/token", "readOnly": true})));
        assert!(mounts.contains(&json!({"name": "data", "mountPath": "/var/lib/berth"})));
    }

    #[tokio::test]
    async fn spawn_again_for_the_same_learner_returns_their_node_and_makes_nothing() {
        let (s, world) = fake(KubeConfig::default());
        let a = s.spawn(&req("c1", "ada")).await.unwrap();
        let writes = world.lock().unwrap().writes().len();
        let b = s.spawn(&req("c1", "ada")).await.unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(world.lock().unwrap().writes().len(), writes, "the second spawn only looked");
        let c = s.spawn(&req("c1", "grace")).await.unwrap();
        assert_ne!(a.id, c.id);
        assert_eq!(world.lock().unwrap().names("configmaps"), vec![owner_name("c1")], "one owner per class");
    }

    #[tokio::test]
    async fn the_config_picks_a_runtime_class_node_selector_resources_and_hub_origin() {
        let cfg = KubeConfig {
            privileged: false,
            runtime_class_name: Some("kata".into()),
            node_selector: [("berth.dev/pool".to_string(), "learners".to_string())].into(),
            hub_origins: vec!["https://hub.example".into()],
            image: "registry.example/berth-node:7".into(),
            ..Default::default()
        };
        let (s, world) = fake(cfg);
        s.spawn(&req("c1", "ada")).await.unwrap();
        let body = world.lock().unwrap().calls("POST", "pods")[0].body.clone().unwrap();
        assert_eq!(body["spec"]["runtimeClassName"], json!("kata"));
        assert_eq!(body["spec"]["nodeSelector"], json!({"berth.dev/pool": "learners"}));
        let c = &body["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], json!(false));
        assert_eq!(c["image"], json!("registry.example/berth-node:7"));
        assert_eq!(c["resources"]["limits"]["memory"], json!("3Gi"));
        assert_eq!(c["resources"]["requests"]["cpu"], json!("250m"));
        let args = c["args"].to_string();
        assert!(args.contains(r#""--allowed-origin","https://hub.example""#), "{args}");
    }

    #[tokio::test]
    async fn a_quota_refusal_is_no_capacity_and_leaves_no_secret_behind() {
        let (s, world) = fake(KubeConfig::default());
        world.lock().unwrap().fail =
            Some(("POST".into(), "/api/v1/namespaces/berth/pods".into(), 403, "pods \"x\" is forbidden: exceeded quota: learners".into()));
        let e = s.spawn(&req("c1", "ada")).await.unwrap_err();
        assert!(matches!(e, SpawnError::Capacity(_)), "{e:?}");
        assert!(world.lock().unwrap().names("secrets").is_empty(), "the token secret made for it is deleted");
    }

    // -- status, list, remove

    fn pod_with(status: Value) -> Pod {
        let cfg = KubeConfig::default();
        let facts =
            PodFacts { name: "p".into(), learner: Some(("c1".into(), "ada".into())), owner: OwnerReference::default(), now: at(NOW) };
        let mut p = learner_pod(&cfg, &facts);
        p.status = Some(serde_json::from_value(status).unwrap());
        p
    }

    #[test]
    fn pod_phases_map_to_node_phases_with_ip_and_reason() {
        let n = pod_to_node(
            &pod_with(
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
            ),
            8080,
        );
        assert_eq!(
            (n.phase, n.reason.as_deref(), n.addr.as_deref()),
            (Phase::Pending, Some("Unschedulable: 0/3 nodes are available"), None)
        );

        let n = pod_with(
            json!({"phase": "Pending", "podIP": "10.1.2.3", "containerStatuses": [{"name": "node1", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        let n = pod_to_node(&n, 8080);
        assert_eq!((n.phase, n.reason.as_deref()), (Phase::Pending, Some("ContainerCreating")));

        let n = pod_with(
            json!({"phase": "Pending", "containerStatuses": [{"name": "node1", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        let n = pod_to_node(&n, 8080);
        assert_eq!((n.phase, n.reason.as_deref()), (Phase::Failed, Some("ImagePullBackOff: Back-off pulling image")));

        let n = pod_to_node(
            &pod_with(json!({"phase": "Running", "podIP": "10.1.2.3", "conditions": [{"type": "Ready", "status": "False"}]})),
            8080,
        );
        assert_eq!((n.phase, n.reason.as_deref(), n.addr.as_deref()), (Phase::Pending, Some("NotReady"), Some("10.1.2.3:8080")));

        let n = pod_to_node(&pod_with(ready("10.1.2.3")), 8080);
        assert_eq!((n.phase, n.reason, n.addr.as_deref()), (Phase::Running, None, Some("10.1.2.3:8080")));
        assert_eq!(n.labels.get("pod_ip").map(String::as_str), Some("10.1.2.3"));
        assert_eq!((n.class.as_str(), n.learner.as_str()), ("c1", "ada"));

        let n = pod_to_node(&pod_with(ready("fd00::7")), 8080);
        assert_eq!(n.addr.as_deref(), Some("[fd00::7]:8080"));

        let n = pod_with(
            json!({"phase": "Failed", "containerStatuses": [{"name": "node1", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
        );
        let n = pod_to_node(&n, 8080);
        assert_eq!((n.phase, n.reason.as_deref()), (Phase::Failed, Some("OOMKilled (exit 137)")));

        let n = pod_to_node(&pod_with(json!({"phase": "Failed", "reason": "Evicted", "message": "low on ephemeral-storage"})), 8080);
        assert_eq!((n.phase, n.reason.as_deref()), (Phase::Failed, Some("Evicted: low on ephemeral-storage")));

        let mut p = pod_with(ready("10.1.2.3"));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(NOW.parse().unwrap()));
        assert_eq!(pod_to_node(&p, 8080).phase, Phase::Gone);
    }

    #[tokio::test]
    async fn status_follows_the_pod_and_a_missing_or_warm_pod_is_not_found() {
        let (s, world) = fake(KubeConfig::default());
        let node = s.spawn(&req("c1", "ada")).await.unwrap();
        set_status(&world, &node.id, ready("10.4.0.9"));
        let n = s.status(&node.id).await.unwrap();
        assert_eq!((n.phase, n.addr.as_deref()), (Phase::Running, Some("10.4.0.9:8080")));
        assert_eq!(n.created, at(NOW));
        assert!(matches!(s.status("berth-node-nope").await, Err(SpawnError::NotFound(_))));

        let (s, world) = fake(KubeConfig { warm_pool: 1, ..Default::default() });
        s.reconcile_once(at(NOW)).await.unwrap();
        let warm = world.lock().unwrap().names("pods")[0].clone();
        assert!(matches!(s.status(&warm).await, Err(SpawnError::NotFound(_))), "a warm pod is nobody's node");
        assert!(s.list().await.unwrap().is_empty(), "nor listed");
    }

    #[tokio::test]
    async fn remove_deletes_the_pod_and_its_secret_and_a_gone_node_is_ok() {
        let (s, world) = fake(KubeConfig::default());
        let a = s.spawn(&req("c1", "ada")).await.unwrap();
        let b = s.spawn(&req("c1", "grace")).await.unwrap();
        s.remove(&a.id).await.unwrap();
        {
            let w = world.lock().unwrap();
            assert_eq!(w.names("pods"), vec![b.id.clone()]);
            assert_eq!(w.names("secrets"), vec![secret_name(&b.id)]);
            assert_eq!(w.calls("DELETE", "pods").len(), 1);
            assert_eq!(w.calls("DELETE", "pods")[0].path, format!("/api/v1/namespaces/berth/pods/{}", a.id));
        }
        s.remove(&a.id).await.unwrap();
        let listed: Vec<String> = s.list().await.unwrap().into_iter().map(|n| n.id).collect();
        assert_eq!(listed, vec![b.id]);
    }

    #[tokio::test]
    async fn remove_class_deletes_its_pods_and_its_owner_and_nothing_of_another_class() {
        let (s, world) = fake(KubeConfig::default());
        s.spawn(&req("c1", "ada")).await.unwrap();
        s.spawn(&req("c1", "grace")).await.unwrap();
        let other = s.spawn(&req("c2", "alan")).await.unwrap();
        s.remove_class("c1").await.unwrap();
        let w = world.lock().unwrap();
        assert_eq!(w.names("pods"), vec![other.id.clone()]);
        assert_eq!(w.names("secrets"), vec![secret_name(&other.id)]);
        assert_eq!(w.names("configmaps"), vec![owner_name("c2")]);
        let del = w.calls("DELETE", "configmaps");
        assert_eq!(del.len(), 1);
        assert_eq!(del[0].path, format!("/api/v1/namespaces/berth/configmaps/{}", owner_name("c1")));
        assert_eq!(del[0].body.as_ref().unwrap()["propagationPolicy"], json!("Background"), "the garbage collector takes what is left");
    }

    // -- reconcile: pure decisions

    fn policy(warm: usize) -> Policy {
        Policy { idle: mins(30), warm_pool: warm, activity_flush: Duration::from_secs(60) }
    }

    fn view(name: &str, class: Option<&str>, created: SystemTime) -> PodView {
        PodView {
            name: name.into(),
            class: class.map(Into::into),
            created,
            saved_activity: None,
            seen_activity: None,
            ready: true,
            failed: false,
            terminating: false,
        }
    }

    #[test]
    fn a_node_idle_longer_than_the_limit_is_culled_and_recent_activity_keeps_it() {
        let now = at(NOW);
        let t = |m: u64| now - mins(m);
        let pods = vec![
            view("old-idle", Some("c1"), t(45)),
            PodView { saved_activity: Some(t(10)), ..view("saved-recently", Some("c1"), t(90)) },
            PodView { saved_activity: Some(t(40)), seen_activity: Some(t(5)), ..view("seen-recently", Some("c1"), t(90)) },
            PodView { saved_activity: Some(t(31)), ..view("just-over", Some("c1"), t(90)) },
            view("young", Some("c1"), t(29)),
            PodView { terminating: true, ..view("going", Some("c1"), t(99)) },
        ];
        let actions = plan(&pods, &[], &policy(0), now);
        assert_eq!(
            actions,
            vec![
                Action::RemovePod { name: "old-idle".into(), why: Why::Idle },
                Action::SaveActivity { name: "seen-recently".into(), at: t(5) },
                Action::RemovePod { name: "just-over".into(), why: Why::Idle },
            ]
        );
    }

    #[test]
    fn activity_is_saved_on_the_pod_only_when_newer_by_the_flush_interval() {
        let now = at(NOW);
        let p = PodView {
            saved_activity: Some(now - Duration::from_secs(30)),
            seen_activity: Some(now),
            ..view("p", Some("c1"), now - mins(5))
        };
        assert_eq!(plan(std::slice::from_ref(&p), &[], &policy(0), now), vec![]);
        let p = PodView { saved_activity: Some(now - Duration::from_secs(60)), ..p };
        assert_eq!(plan(&[p], &[], &policy(0), now), vec![Action::SaveActivity { name: "p".into(), at: now }]);
    }

    #[test]
    fn an_expired_class_goes_whole_and_its_pods_are_not_culled_one_by_one() {
        let now = at(NOW);
        let pods = vec![view("a1", Some("a"), now - mins(60)), view("b1", Some("b"), now - mins(60)), view("c1", Some("c"), now)];
        let classes = vec![
            ClassView { owner: "berth-class-a".into(), class: "a".into(), expires: Some(now - Duration::from_secs(1)) },
            ClassView { owner: "berth-class-b".into(), class: "b".into(), expires: None },
            ClassView { owner: "berth-class-c".into(), class: "c".into(), expires: Some(now + mins(1)) },
        ];
        assert_eq!(
            plan(&pods, &classes, &policy(0), now),
            vec![
                Action::RemoveClass { owner: "berth-class-a".into(), class: "a".into() },
                Action::RemovePod { name: "b1".into(), why: Why::Idle },
            ]
        );
        let at_expiry = ClassView { expires: Some(now), ..classes[2].clone() };
        assert_eq!(
            plan(&[], &[at_expiry], &policy(0), now),
            vec![Action::RemoveClass { owner: "berth-class-c".into(), class: "c".into() }]
        );
    }

    #[test]
    fn the_warm_pool_is_topped_up_trimmed_and_its_failed_pods_replaced() {
        let now = at(NOW);
        assert_eq!(plan(&[], &[], &policy(3), now), vec![Action::CreateWarm; 3]);
        let claimed = view("claimed", Some("c1"), now);
        let w1 = view("w1", None, now - mins(10));
        let w2 = PodView { ready: false, ..view("w2", None, now - mins(20)) };
        let w3 = view("w3", None, now - mins(1));
        let broken = PodView { failed: true, ..view("broken", None, now - mins(5)) };
        let going = PodView { terminating: true, ..view("going", None, now) };
        // Claimed, terminating and failed pods are not in the pool.
        assert_eq!(
            plan(&[claimed.clone(), w1.clone(), broken.clone(), going.clone()], &[], &policy(2), now),
            vec![Action::RemovePod { name: "broken".into(), why: Why::WarmFailed }, Action::CreateWarm]
        );
        assert_eq!(plan(&[w1.clone(), w2.clone(), w3.clone()], &[], &policy(3), now), vec![]);
        // Too many: the not-ready goes first, then the newest.
        assert_eq!(
            plan(&[w1.clone(), w2.clone(), w3.clone()], &[], &policy(1), now),
            vec![
                Action::RemovePod { name: "w2".into(), why: Why::WarmSurplus },
                Action::RemovePod { name: "w3".into(), why: Why::WarmSurplus }
            ]
        );
        // Warm pods are never culled as idle.
        assert_eq!(plan(&[view("w-old", None, now - mins(600))], &[], &policy(1), now), vec![]);
    }

    // -- reconcile: a turn against the API

    #[tokio::test]
    async fn one_reconcile_turn_removes_expired_classes_and_idle_nodes_saves_activity_and_fills_the_pool() {
        let (s, world) = fake(KubeConfig { warm_pool: 2, ..Default::default() });
        let exp = s.spawn(&req("expiring", "ada")).await.unwrap();
        let idle = s.spawn(&req("c1", "idle")).await.unwrap();
        let busy = s.spawn(&req("c1", "busy")).await.unwrap();
        // The fake stamps every object made at NOW.
        let now = at(NOW) + mins(31);
        s.set_class_expiry("expiring", at(NOW) + mins(30)).await.unwrap();
        s.record_activity(&busy.id, now - mins(2));
        s.record_activity(&busy.id, now - mins(3)); // older reports do not go back in time
        world.lock().unwrap().calls.clear();

        let done = s.reconcile_once(now).await.unwrap();
        assert_eq!(done.len(), 5, "{done:?}");
        assert!(done.contains(&Action::RemoveClass { owner: owner_name("expiring"), class: "expiring".into() }));
        {
            let w = world.lock().unwrap();
            let pods = w.names("pods");
            assert!(!pods.contains(&exp.id), "the expired class's pod is gone");
            assert!(!pods.contains(&idle.id), "the idle pod is gone");
            assert!(pods.contains(&busy.id), "the busy one stays");
            assert_eq!(pods.iter().filter(|p| p.starts_with("berth-warm-")).count(), 2, "two warm pods made: {pods:?}");
            assert_eq!(w.names("secrets"), vec![secret_name(&busy.id)]);
            assert_eq!(w.names("configmaps"), vec![owner_name("c1"), POOL_OWNER.to_string()]);
            let saved = w.get("pods", &busy.id).unwrap()["metadata"]["annotations"][LAST_ACTIVITY].clone();
            assert_eq!(saved, json!(rfc3339(now - mins(2))));
            for p in pods.iter().filter(|p| p.starts_with("berth-warm-")) {
                let v = w.get("pods", p).unwrap();
                assert_eq!(v["metadata"]["labels"][POOL], json!("warm"));
                assert!(v["metadata"]["labels"][CLASS].is_null());
                assert_eq!(v["metadata"]["ownerReferences"][0]["name"], json!(POOL_OWNER));
                assert_eq!(v["spec"]["volumes"][2]["secret"]["optional"], json!(true), "its token comes at the claim");
            }
        }
        // A second turn at the same time has nothing left to do.
        assert_eq!(s.reconcile_once(now).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn spawn_claims_a_ready_warm_pod_by_relabelling_it_and_the_pool_refills() {
        let (s, world) = fake(KubeConfig { warm_pool: 2, ..Default::default() });
        s.reconcile_once(at(NOW)).await.unwrap();
        let warm = world.lock().unwrap().names("pods");
        // Started; berthd waits for the token the claim brings, so not Ready.
        let started = json!({"phase": "Running", "podIP": "10.4.0.7", "conditions": [{"type": "Ready", "status": "False"}]});
        set_status(&world, &warm[1], started);
        world.lock().unwrap().calls.clear();

        let r = req("c1", "ada");
        let node = s.spawn(&r).await.unwrap();
        assert_eq!(node.id, warm[1], "the started one is taken first");
        assert_eq!(
            (node.phase, node.addr.as_deref(), node.class.as_str(), node.learner.as_str()),
            (Phase::Pending, Some("10.4.0.7:8080"), "c1", "ada")
        );
        {
            let w = world.lock().unwrap();
            assert!(w.calls("POST", "pods").is_empty(), "no pod made");
            let secret = w.calls("POST", "secrets")[0].body.clone().unwrap();
            assert_eq!(secret["metadata"]["name"], json!(secret_name(&warm[1])));
            assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], json!(format!("uid-pods-{}", warm[1])), "owned by its pod");
            let patch = w.calls("PATCH", "pods")[0].body.clone().unwrap();
            assert!(patch["metadata"]["resourceVersion"].is_string(), "the claim is conditional: {patch}");
            assert_eq!(patch["metadata"]["labels"][POOL], Value::Null);
            assert!(patch["metadata"]["labels"].as_object().unwrap().contains_key(POOL), "the pool label is removed");
            assert_eq!(patch["metadata"]["ownerReferences"][0]["name"], json!(owner_name("c1")));
            assert!(!patch.to_string().contains(&r.secret));
            let pod = w.get("pods", &warm[1]).unwrap();
            assert_eq!(pod["metadata"]["labels"][LEARNER], json!("ada"));
            assert!(pod["metadata"]["labels"][POOL].is_null());
        }
        assert_eq!(s.list().await.unwrap().len(), 1);
        assert_eq!(s.spawn(&r).await.unwrap().id, warm[1], "idempotent after a claim too");
        assert_eq!(s.reconcile_once(at(NOW)).await.unwrap(), vec![Action::CreateWarm], "the pool refills");
    }

    #[tokio::test]
    async fn a_warm_pod_another_hub_claimed_first_is_skipped_and_a_pod_made() {
        let (s, world) = fake(KubeConfig { warm_pool: 1, ..Default::default() });
        s.reconcile_once(at(NOW)).await.unwrap();
        let warm = world.lock().unwrap().names("pods")[0].clone();
        world.lock().unwrap().fail =
            Some(("PATCH".into(), "/api/v1/namespaces/berth/pods/".into(), 409, "the object has been modified".into()));
        let node = s.spawn(&req("c1", "ada")).await.unwrap();
        assert_eq!(node.id, pod_name("c1", "ada"));
        let w = world.lock().unwrap();
        assert_eq!(w.names("secrets"), vec![secret_name(&node.id)], "the claim's secret was taken back");
        assert!(w.get("pods", &warm).is_some());
    }

    // -- names

    #[test]
    fn ids_become_valid_distinct_label_values_and_names() {
        assert_eq!(label_value("c1"), "c1");
        assert_eq!(label_value("Learner_7.x"), "Learner_7.x");
        let odd = ["Ada Lovelace", "ada lovelace", "-x-", "", "é", &"a".repeat(64)];
        let vals: Vec<String> = odd.iter().map(|s| label_value(s)).collect();
        for v in &vals {
            assert!(!v.is_empty() && v.len() <= 63, "{v}");
            assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{v}");
            assert!(v.starts_with(|c: char| c.is_ascii_alphanumeric()) && v.ends_with(|c: char| c.is_ascii_alphanumeric()), "{v}");
        }
        let mut uniq = vals.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), vals.len(), "{vals:?}");
        for n in [pod_name("Class Of 2026!!", &"L".repeat(100)), owner_name(&"C".repeat(300)), secret_name(&pod_name("a", "b"))] {
            assert!(n.len() <= 63, "{n}");
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
        }
        assert_ne!(pod_name("a-b", "c"), pod_name("a", "b-c"));
    }

    #[tokio::test]
    async fn start_refuses_a_missing_or_misspelt_config_before_any_connection() {
        let e = KubernetesSpawner::start(std::path::Path::new("/nonexistent/kubernetes.json")).await.unwrap_err();
        assert!(e.to_string().contains("/nonexistent/kubernetes.json"), "{e}");
        let dir = std::env::temp_dir().join(format!("berth-kube-start-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kubernetes.json");
        std::fs::write(&file, r#"{"idle_minute": 5}"#).unwrap();
        let e = KubernetesSpawner::start(&file).await.unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.to_string().contains("unknown field `idle_minute`"), "{e}");
    }

    #[tokio::test]
    async fn a_client_for_an_https_api_server_is_made_without_a_preinstalled_crypto_provider() {
        // rustls is built with both ring and aws-lc-rs here: with no
        // process-wide provider chosen, making its client config panics.
        let cfg = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let client = client_for(cfg).unwrap();
        assert_eq!(client.default_namespace(), "default");
    }

    // -- the template in deploy/kubernetes

    /// (resource, verb) of every request the fake saw.
    fn verbs(w: &World) -> BTreeSet<(String, String)> {
        w.calls
            .iter()
            .map(|c| {
                let rest = c.path.strip_prefix("/api/v1/namespaces/berth/").unwrap();
                let (res, named) = match rest.split_once('/') {
                    Some((r, _)) => (r, true),
                    None => (rest, false),
                };
                let verb = match (c.method.as_str(), named) {
                    ("GET", true) => "get",
                    ("GET", false) => "list",
                    ("POST", _) => "create",
                    ("PATCH", _) => "patch",
                    ("DELETE", _) => "delete",
                    (m, _) => panic!("{m}"),
                };
                (res.to_string(), verb.to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn the_hub_role_in_deploy_grants_exactly_the_verbs_the_spawner_uses() {
        let (s, world) = fake(KubeConfig { warm_pool: 1, idle_minutes: 1, ..Default::default() });
        s.reconcile_once(at(NOW)).await.unwrap();
        let claimed = s.spawn(&req("c1", "ada")).await.unwrap();
        let made = s.spawn(&req("c1", "grace")).await.unwrap();
        s.status(&made.id).await.unwrap();
        s.list().await.unwrap();
        s.record_activity(&made.id, at(NOW) + Duration::from_secs(90));
        s.set_class_expiry("c2", at(NOW)).await.unwrap();
        s.reconcile_once(at(NOW) + Duration::from_secs(100)).await.unwrap();
        s.remove(&claimed.id).await.unwrap();
        s.remove_class("c1").await.unwrap();
        let used = verbs(&world.lock().unwrap());

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/hub-rbac.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let role = serde_yaml::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .find(|d| d["kind"] == json!("Role"))
            .expect("a Role in hub-rbac.yaml");
        let mut granted = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            assert_eq!(rule["apiGroups"], json!([""]), "core resources only");
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    granted.insert((r.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()));
                }
            }
        }
        assert_eq!(granted, used, "the Role (left) and what the spawner asked of the API (right)");
    }

    #[test]
    fn the_hub_config_in_deploy_parses_as_the_spawner_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/hub-config.yaml");
        let file: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cfg: KubeConfig = serde_json::from_str(file["data"]["kubernetes.json"].as_str().unwrap()).unwrap();
        assert_eq!(cfg, KubeConfig { warm_pool: 2, hub_origins: vec!["https://berth.example.org".into()], ..Default::default() });
        let err = serde_json::from_str::<KubeConfig>(r#"{"warm_pol": 2}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `warm_pol`"), "a misspelt setting is refused: {err}");
    }

    #[test]
    fn the_learner_pod_template_in_deploy_is_the_spec_the_spawner_makes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/learner-pod.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let file: Value = serde_yaml::from_str(&text).unwrap();
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner_name("example-class"),
            uid: "00000000-0000-0000-0000-000000000000".into(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        let facts = PodFacts {
            name: pod_name("example-class", "example-learner"),
            learner: Some(("example-class".into(), "example-learner".into())),
            owner,
            now: at("2026-01-01T00:00:00Z"),
        };
        let made = serde_json::to_value(learner_pod(&KubeConfig::default(), &facts)).unwrap();
        assert_eq!(
            file,
            made,
            "deploy/kubernetes/learner-pod.yaml differs from what the spawner makes; the spawner's, as YAML:\n{}",
            serde_yaml::to_string(&made).unwrap()
        );
    }
}
