//! Where learners' node1s come from. The hub asks a [`Spawner`] for a node
//! per learner and talks to it only through what [`Node`] says: the address
//! of its lab server and the per-node secret that server accepts (no one but
//! the hub holds it). Two spawners: `local` (a sandbox of namespaces and a
//! cgroup on this machine, the default) and `kubernetes` (a pod per learner,
//! made through the Kubernetes API).

pub mod kubernetes;
pub mod local;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What the hub asks for: one learner's node1 in one class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRequest {
    /// The class's id (a Kubernetes spawner labels and owns pods by it).
    pub class: String,
    /// The learner's id within the hub (stable, not their display name).
    pub learner: String,
    /// The lab the class runs (`labs/<lab>`), e.g. "deploy-docker".
    pub lab: String,
    /// The secret the node's lab server will accept as `Authorization:
    /// Bearer` (made by the hub, one per node).
    pub secret: String,
}

/// A node's lifecycle phase, as Kubernetes names a pod's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Asked for, not ready yet (namespaces being made, pod scheduled or pulling).
    Pending,
    /// Its lab server answers.
    Running,
    /// It stopped or could not start.
    Failed,
    /// Removed (culled, class expired or deleted).
    Gone,
}

/// One learner's node1, as the hub sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The spawner's name for it (a sandbox id, a pod name).
    pub id: String,
    pub class: String,
    pub learner: String,
    pub phase: Phase,
    /// `host:port` of its lab server (page, /api/events, /api/terminal),
    /// once known (a pod's IP comes after scheduling).
    pub addr: Option<String>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Extra facts for the dashboard (pod IP, node, cgroup…).
    pub labels: BTreeMap<String, String>,
    /// When it was asked for.
    pub created: SystemTime,
}

/// Why a spawner could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No room: the class or the machine is at capacity.
    #[error("no capacity: {0}")]
    Capacity(String),
    /// The node asked about does not exist (any more).
    #[error("no such node: {0}")]
    NotFound(String),
    /// The spawner's backend failed (kernel call, Kubernetes API…).
    #[error("{0}")]
    Backend(String),
}

/// Makes, reports on and removes learners' nodes. Implementations must be
/// idempotent: `spawn` for a learner who has a node returns that node;
/// `remove` of a gone node is Ok.
#[async_trait::async_trait]
pub trait Spawner: Send + Sync + std::fmt::Debug {
    /// "local" or "kubernetes".
    fn kind(&self) -> &'static str;
    /// Asks for a node (returns at once with `Pending`, or `Running` when
    /// it was quick); `status` follows it until `Running`.
    async fn spawn(&self, req: &NodeRequest) -> Result<Node, SpawnError>;
    /// The node's current status.
    async fn status(&self, id: &str) -> Result<Node, SpawnError>;
    /// Every node this spawner has (made by this hub), e.g. after a restart.
    async fn list(&self) -> Result<Vec<Node>, SpawnError>;
    /// Removes a node and everything of it (processes, mounts, links,
    /// rules, cgroups, data root; or the pod).
    async fn remove(&self, id: &str) -> Result<(), SpawnError>;
    /// The hub saw the learner at work on this node at `at` (a keystroke,
    /// an event, a page request). Spawners that cull idle nodes (the
    /// kubernetes one) keep it; the default forgets it.
    fn record_activity(&self, _id: &str, _at: SystemTime) {}
    /// The class ends at `at`. Spawners that reconcile on their own (the
    /// kubernetes one) remove its nodes then; the default leaves that to
    /// the hub's `remove_class`.
    async fn set_class_expiry(&self, _class: &str, _at: SystemTime) -> Result<(), SpawnError> {
        Ok(())
    }
    /// Removes every node of a class (its expiry or deletion).
    async fn remove_class(&self, class: &str) -> Result<(), SpawnError> {
        for n in self.list().await? {
            if n.class == class {
                self.remove(&n.id).await?;
            }
        }
        Ok(())
    }
}
