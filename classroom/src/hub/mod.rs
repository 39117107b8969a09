//! The hub's state: classes, learners, sessions, and the instructor's feed.
//!
//! Everything lives in memory: a hub that restarts starts with no classes
//! (its spawner's nodes are removed at its shutdown).

pub mod auth;
pub mod export;
pub mod feed;
pub mod progress;
pub mod proxy;
pub mod routes;
pub mod teach;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::spawner::{Node, NodeRequest, Phase, SpawnError, Spawner};
use auth::{Role, Sessions, Tickets};

/// The hub's settings.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// The instructor's token (its file is 0600; printed in the link).
    pub token: String,
    /// Served over TLS: cookies are `__Host-` and Secure.
    pub secure: bool,
    /// Origins besides the hub's own whose requests and WebSockets pass.
    pub allowed_origins: Vec<String>,
    /// The labs a class may run (`labs/<name>`); empty: any name.
    pub labs: Vec<String>,
    /// The longest a class may last.
    pub max_expiry: Duration,
    /// The most learners one class may take.
    pub max_capacity: u32,
    /// The built page (Trunk's dist): served at `/hub/` as the instructor's
    /// dashboard; `None`: the server-rendered classes page is all there is.
    pub page_dir: Option<std::path::PathBuf>,
    /// Where each learner's events and recordings are kept (see
    /// `progress`); `None`: nothing is written.
    pub archive_dir: Option<std::path::PathBuf>,
}

impl HubConfig {
    pub fn new(token: String) -> Self {
        HubConfig {
            token,
            secure: false,
            allowed_origins: Vec::new(),
            labs: vec!["deploy-docker".into()],
            max_expiry: Duration::from_secs(14 * 24 * 3600),
            max_capacity: 500,
            page_dir: None,
            archive_dir: None,
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// A class: its join code is the only way in for learners.
#[derive(Clone, Debug, Serialize)]
pub struct Class {
    pub id: String,
    pub name: String,
    pub lab: String,
    pub capacity: u32,
    /// Unix seconds.
    pub expires_at: u64,
    pub created_at: u64,
    /// The join link's code (unguessable: 128 random bits).
    pub code: String,
    /// Past its expiry: its nodes are removed and nobody joins.
    pub expired: bool,
}

/// A learner in a class, and their node.
#[derive(Clone, Debug, Serialize)]
pub struct Learner {
    pub id: String,
    pub class: String,
    pub name: String,
    pub joined_at: u64,
    /// Unix ms of their last request or keystroke through the hub.
    pub last_activity_ms: u64,
    pub node: Option<Node>,
    /// Why their node could not be made, when it could not.
    pub error: Option<String>,
    /// The node's lab-server secret: only the hub holds it.
    #[serde(skip)]
    pub secret: String,
    /// The terminal shell ids their page opened (the instructor watches the last).
    #[serde(skip)]
    pub shells: Vec<String>,
    /// Their hand is raised (the page's help button), since Unix ms.
    pub hand_ms: Option<u64>,
    /// The instructor typing in their terminal.
    pub takeover: Option<teach::Takeover>,
}

/// What a class create request carries.
#[derive(Clone, Debug, Deserialize)]
pub struct NewClass {
    pub name: String,
    #[serde(default = "default_lab")]
    pub lab: String,
    pub capacity: u32,
    /// Seconds from now.
    pub expires_in_s: u64,
}

fn default_lab() -> String {
    "deploy-docker".into()
}

/// Why the hub refused: each a status and a message.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Inner {
    classes: BTreeMap<String, Class>,
    learners: BTreeMap<String, Learner>,
    /// Every takeover, oldest first.
    takeovers: Vec<teach::TakeoverEntry>,
    /// The last broadcasts, oldest first.
    broadcasts: Vec<teach::Broadcast>,
    /// Each learner's progress as their node's stream told it.
    progress: HashMap<String, Arc<Mutex<progress::LearnerProgress>>>,
}

/// The hub: config, state, sessions, the spawner and the feed.
#[derive(Debug)]
pub struct Hub {
    pub cfg: HubConfig,
    pub spawner: Arc<dyn Spawner>,
    pub sessions: Sessions,
    pub tickets: Tickets,
    inner: Mutex<Inner>,
    /// Every learner's events, tagged (the instructor's feed).
    pub feed: broadcast::Sender<Arc<str>>,
    /// Takeovers and broadcasts, for the learners' pages.
    pub notices: broadcast::Sender<teach::Notice>,
    /// The HTTP client the proxy uses.
    pub client: proxy::Client,
}

impl Hub {
    pub fn new(cfg: HubConfig, spawner: Arc<dyn Spawner>) -> Arc<Self> {
        let sessions = Sessions::new(cfg.secure);
        Arc::new(Hub {
            cfg,
            spawner,
            sessions,
            tickets: Tickets::default(),
            inner: Mutex::default(),
            feed: broadcast::channel(4096).0,
            notices: broadcast::channel(256).0,
            client: proxy::client(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create_class(&self, req: NewClass) -> Result<Class, HubError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(HubError::BadRequest("a class needs a name of 1 to 80 characters".into()));
        }
        if !self.cfg.labs.is_empty() && !self.cfg.labs.contains(&req.lab) {
            return Err(HubError::BadRequest(format!("no such lab: {:?} (this hub runs {})", req.lab, self.cfg.labs.join(", "))));
        }
        if req.capacity == 0 || req.capacity > self.cfg.max_capacity {
            return Err(HubError::BadRequest(format!("capacity must be 1 to {}", self.cfg.max_capacity)));
        }
        if req.expires_in_s == 0 || req.expires_in_s > self.cfg.max_expiry.as_secs() {
            return Err(HubError::BadRequest(format!("expires_in_s must be 1 to {}", self.cfg.max_expiry.as_secs())));
        }
        let now = now_s();
        let class = Class {
            id: format!("c{}", berth_backend::lab::auth::random_hex(4)),
            name: name.to_string(),
            lab: req.lab,
            capacity: req.capacity,
            expires_at: now + req.expires_in_s,
            created_at: now,
            code: berth_backend::lab::auth::random_hex(16),
            expired: false,
        };
        self.lock().classes.insert(class.id.clone(), class.clone());
        // Spawners that reconcile on their own remove its nodes then too.
        let (spawner, id, at) = (self.spawner.clone(), class.id.clone(), UNIX_EPOCH + Duration::from_secs(class.expires_at));
        tokio::spawn(async move {
            if let Err(e) = spawner.set_class_expiry(&id, at).await {
                tracing::warn!(class = %id, error = %e, "telling the spawner the class's expiry");
            }
        });
        tracing::info!(class = %class.id, name = %class.name, "class created");
        Ok(class)
    }

    pub fn classes(&self) -> Vec<(Class, Vec<Learner>)> {
        let inner = self.lock();
        inner.classes.values().map(|c| (c.clone(), inner.learners.values().filter(|l| l.class == c.id).cloned().collect())).collect()
    }

    pub fn class(&self, id: &str) -> Option<(Class, Vec<Learner>)> {
        let inner = self.lock();
        let c = inner.classes.get(id)?.clone();
        let ls = inner.learners.values().filter(|l| l.class == c.id).cloned().collect();
        Some((c, ls))
    }

    pub fn class_by_code(&self, code: &str) -> Option<Class> {
        // 32 hex characters; compared whole.
        self.lock().classes.values().find(|c| c.code == code).cloned()
    }

    pub fn learner(&self, id: &str) -> Option<Learner> {
        self.lock().learners.get(id).cloned()
    }

    /// The learner whose node this is.
    pub fn learner_of_node(&self, node: &str) -> Option<Learner> {
        self.lock().learners.values().find(|l| l.node.as_ref().is_some_and(|n| n.id == node)).cloned()
    }

    pub fn learners(&self) -> Vec<Learner> {
        self.lock().learners.values().cloned().collect()
    }

    pub fn touch(&self, learner: &str) {
        let now = SystemTime::now();
        let node = {
            let mut inner = self.lock();
            let Some(l) = inner.learners.get_mut(learner) else { return };
            l.last_activity_ms = ms(now);
            l.node.as_ref().map(|n| n.id.clone())
        };
        // Spawners that cull idle nodes keep it.
        if let Some(n) = node {
            self.spawner.record_activity(&n, now);
        }
    }

    /// A learner raises or lowers their hand: the feed says so to the
    /// instructor's dashboard (`{"hand": {"learner", "raised"}, "hub_ms"}`).
    pub fn set_hand(&self, learner: &str, raised: bool) -> bool {
        let now = ms(SystemTime::now());
        {
            let mut inner = self.lock();
            let Some(l) = inner.learners.get_mut(learner) else { return false };
            l.hand_ms = if raised { Some(l.hand_ms.unwrap_or(now)) } else { None };
        }
        let frame = serde_json::json!({ "hand": { "learner": learner, "raised": raised }, "hub_ms": now });
        let _ = self.feed.send(frame.to_string().into());
        true
    }

    /// The learner's progress record (made on first use).
    pub fn progress_of(&self, learner: &str) -> Arc<Mutex<progress::LearnerProgress>> {
        self.lock().progress.entry(learner.to_string()).or_default().clone()
    }

    pub fn note_shell(&self, learner: &str, shell: &str) {
        if let Some(l) = self.lock().learners.get_mut(learner) {
            l.shells.retain(|s| s != shell);
            l.shells.push(shell.to_string());
            if l.shells.len() > 16 {
                l.shells.remove(0);
            }
        }
    }

    /// A learner joins a class by its code: a session and a node.
    pub async fn join(self: &Arc<Self>, code: &str, name: &str) -> Result<(Learner, String), HubError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
            return Err(HubError::BadRequest("a display name is 1 to 40 characters".into()));
        }
        let learner = {
            let mut inner = self.lock();
            let class =
                inner.classes.values().find(|c| c.code == code).cloned().ok_or_else(|| HubError::NotFound("no such class".into()))?;
            if class.expired || class.expires_at <= now_s() {
                return Err(HubError::Gone(format!("the class {:?} has ended", class.name)));
            }
            let n = inner.learners.values().filter(|l| l.class == class.id).count();
            if n as u32 >= class.capacity {
                return Err(HubError::Conflict(format!("the class {:?} is full ({} learners)", class.name, class.capacity)));
            }
            let now = SystemTime::now();
            let l = Learner {
                id: format!("l{}", berth_backend::lab::auth::random_hex(6)),
                class: class.id.clone(),
                name: name.to_string(),
                joined_at: now_s(),
                last_activity_ms: ms(now),
                node: None,
                error: None,
                secret: berth_backend::lab::auth::random_hex(24),
                shells: Vec::new(),
                hand_ms: None,
                takeover: None,
            };
            inner.learners.insert(l.id.clone(), l.clone());
            (l, class)
        };
        let (mut l, class) = learner;
        let session = self.sessions.create(Role::Learner(l.id.clone()));
        let req = NodeRequest { class: class.id.clone(), learner: l.id.clone(), lab: class.lab.clone(), secret: l.secret.clone() };
        match self.spawner.spawn(&req).await {
            Ok(node) => l.node = Some(node),
            Err(e) => l.error = Some(e.to_string()),
        }
        {
            let mut inner = self.lock();
            match inner.learners.get_mut(&l.id) {
                Some(stored) => {
                    stored.node = l.node.clone();
                    stored.error = l.error.clone();
                }
                None => return Err(HubError::Gone("the class has ended".into())),
            }
        }
        tracing::info!(learner = %l.id, class = %class.id, node = ?l.node.as_ref().map(|n| &n.id), error = ?l.error, "learner joined");
        if l.node.is_some() {
            let hub = self.clone();
            let id = l.id.clone();
            tokio::spawn(async move { hub.follow(id).await });
        }
        Ok((l, session))
    }

    /// Follows a learner's node until it runs, then feeds its events to
    /// the instructor's feed while the learner exists.
    async fn follow(self: Arc<Self>, learner: String) {
        loop {
            let Some(l) = self.learner(&learner) else { return };
            let Some(node) = l.node.clone() else { return };
            match self.spawner.status(&node.id).await {
                Ok(n) => {
                    let phase = n.phase;
                    self.set_node(&learner, n);
                    match phase {
                        Phase::Running => break,
                        Phase::Failed | Phase::Gone => return,
                        Phase::Pending => {}
                    }
                }
                Err(SpawnError::NotFound(_)) => return,
                Err(e) => tracing::warn!(learner, error = %e, "node status"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        feed::follow_node(self, learner).await;
    }

    fn set_node(&self, learner: &str, node: Node) {
        if let Some(l) = self.lock().learners.get_mut(learner) {
            l.node = Some(node);
        }
    }

    /// Removes a class's nodes and marks it expired (the reaper), or
    /// forgets it (`forget`: the instructor deleted it).
    pub async fn end_class(&self, id: &str, forget: bool) -> Result<(), HubError> {
        if self.class(id).is_some_and(|(c, _)| !c.expired) {
            // What the nodes recorded is kept before they go.
            self.save_class_recordings(id).await;
        }
        let learners: Vec<Learner> = {
            let mut inner = self.lock();
            let Some(c) = inner.classes.get_mut(id) else { return Err(HubError::NotFound(format!("no such class: {id}"))) };
            c.expired = true;
            inner.learners.values().filter(|l| l.class == id).cloned().collect()
        };
        let mut problems = Vec::new();
        for l in &learners {
            self.sessions.end_learner(&l.id);
            if let Some(n) = &l.node {
                if let Err(e) = self.spawner.remove(&n.id).await {
                    problems.push(e.to_string());
                }
            }
        }
        // Anything the spawner still has for the class (made while we looked).
        if let Err(e) = self.spawner.remove_class(id).await {
            problems.push(e.to_string());
        }
        {
            let mut inner = self.lock();
            if forget {
                inner.classes.remove(id);
                inner.learners.retain(|_, l| l.class != id);
            } else {
                for l in inner.learners.values_mut().filter(|l| l.class == id) {
                    if let Some(n) = l.node.as_mut() {
                        n.phase = Phase::Gone;
                    }
                }
            }
        }
        tracing::info!(class = id, learners = learners.len(), forget, "class ended");
        if problems.is_empty() {
            Ok(())
        } else {
            Err(HubError::Unavailable(format!("removing the class's nodes: {}", problems.join("; "))))
        }
    }

    /// Ends every class past its expiry; returns their ids.
    pub async fn reap(&self) -> Vec<String> {
        let now = now_s();
        let due: Vec<String> = self.lock().classes.values().filter(|c| !c.expired && c.expires_at <= now).map(|c| c.id.clone()).collect();
        for id in &due {
            if let Err(e) = self.end_class(id, false).await {
                tracing::warn!(class = %id, error = %e, "expiring a class");
            }
        }
        due
    }

    /// The reaper: every `every`, classes past their expiry lose their nodes.
    pub fn start_reaper(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(hub) = weak.upgrade() else { return };
                hub.reap().await;
            }
        });
    }

    /// The hub is stopping: every class's nodes go.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.lock().classes.keys().cloned().collect();
        for id in ids {
            let _ = self.end_class(&id, false).await;
        }
    }

    /// The class, learners and nodes as the instructor's API shows them.
    pub fn class_json(&self, c: &Class, learners: &[Learner], base: &str) -> serde_json::Value {
        serde_json::json!({
            "id": c.id,
            "name": c.name,
            "lab": c.lab,
            "capacity": c.capacity,
            "expires_at": c.expires_at,
            "created_at": c.created_at,
            "expired": c.expired,
            "join_url": format!("{base}/join/{}", c.code),
            "learners": learners.iter().map(learner_json).collect::<Vec<_>>(),
        })
    }
}

pub fn learner_json(l: &Learner) -> serde_json::Value {
    serde_json::json!({
        "id": l.id,
        "name": l.name,
        "class": l.class,
        "joined_at": l.joined_at,
        "last_activity_ms": l.last_activity_ms,
        "error": l.error,
        "hand_ms": l.hand_ms,
        "takeover": l.takeover,
        "node": l.node.as_ref().map(|n| serde_json::json!({
            "id": n.id,
            "phase": n.phase,
            "addr": n.addr,
            "reason": n.reason,
            "labels": n.labels,
            "view": format!("/n/{}/", n.id),
        })),
    })
}

/// Roles as the route table names them.
pub fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Instructor => "instructor",
        Role::Learner(_) => "learner",
    }
}

/// A map of learner id → display name and class, for the feed's roster.
pub fn roster(hub: &Hub) -> HashMap<String, (String, String)> {
    hub.learners().into_iter().map(|l| (l.id, (l.name, l.class))).collect()
}
