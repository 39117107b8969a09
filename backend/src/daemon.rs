//! Starting and stopping berthd: listeners, the first event, clean shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use berth_shared::{EngineMode, Event};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::config::{Config, API_VERSION};
use crate::engine::containers::Containers;
use crate::events::EventBus;
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::lab;
use crate::system::{probe_engine, HostFacts};

/// Runs until SIGINT or SIGTERM, then shuts down cleanly: listeners closed,
/// in-flight requests finished, the socket file removed.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    // Watched before anything is served: a SIGTERM as soon as the API
    // answers is a clean stop, not the signal's default death.
    let stop_signals = StopSignals::watch()?;
    config.merge_file()?;
    let (engine, reason) = probe_engine();
    match &reason {
        None => tracing::info!("engine live: containers run on this host"),
        Some(why) => tracing::warn!(%why, "engine unavailable: serving the page only (simulator)"),
    }
    let socket = config.socket_path();
    let api_listener = if engine == EngineMode::Live { Some(bind_api_socket(&socket).await?) } else { None };
    if engine == EngineMode::Live {
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Docker's modes (0710 root and overlay2…), also fixed on an old root.
        crate::image::store::secure_data_root(&config.data_root).with_context(|| format!("securing {}", config.data_root.display()))?;
    }
    let page_listener =
        TcpListener::bind(&config.page_addr).await.with_context(|| format!("binding the page address {}", config.page_addr))?;

    let bus = Arc::new(EventBus::new().with_lab(berth_shared::lab::deploy_docker()));
    // Without a live engine the store lives in a throwaway dir: the page
    // still serves, nothing is written to the data root.
    let store_root = if engine == EngineMode::Live { config.data_root.clone() } else { tempfile::tempdir()?.keep() };
    let images = Arc::new(ImageStore::open(&store_root).with_context(|| format!("opening the image store in {}", store_root.display()))?);
    replay_store(&bus, &images);
    let exec_root = if engine == EngineMode::Live { config.exec_root.clone() } else { store_root.join("run") };
    let volumes = Arc::new(
        crate::engine::volumes::Volumes::open(&store_root, bus.clone())
            .with_context(|| format!("opening the volumes in {}", store_root.display()))?,
    );
    let containers = Arc::new(
        Containers::open(&store_root, &exec_root, images.clone(), volumes.clone(), bus.clone())
            .with_context(|| format!("opening the containers in {}", store_root.display()))?,
    );
    if engine == EngineMode::Live {
        containers.recover().await;
        let nets = crate::network::Networks::setup(&config.bridge, &config.bip, &exec_root, &store_root, bus.clone())
            .await
            .with_context(|| format!("setting up bridge {} ({})", config.bridge, config.bip))?;
        tracing::info!(bridge = %config.bridge, subnet = %config.bip, networks = nets.all().len(), "networks ready");
        containers.set_networks(Arc::new(nets)).await;
        containers.start_by_policy().await;
        crate::observer::start(bus.clone(), &store_root);
    }
    let daemon_id = daemon_id(&config, engine);
    let puller = Arc::new(Puller::new(&config.registry_mirrors, &config.insecure_registries));
    let state = AppState {
        config: Arc::new(config.clone()),
        bus: bus.clone(),
        host: Arc::new(HostFacts::read()),
        engine,
        daemon_id: Arc::new(daemon_id),
        started: Instant::now(),
        images: images.clone(),
        puller: puller.clone(),
        containers: containers.clone(),
        execs: Arc::new(crate::engine::exec::Execs::default()),
        builder: (engine == EngineMode::Live)
            .then(|| Arc::new(crate::build::Builder::new(images.clone(), puller.clone(), containers.clone(), bus.clone(), &store_root))),
    };
    bus.emit(Event::DaemonStarted {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        root: config.data_root.display().to_string(),
        socket: socket.display().to_string(),
        engine,
        reason,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let auth = Arc::new(lab_auth(&config, engine)?);
    let terminals = lab::terminals::Terminals::new();
    let page_app = lab::app(state.clone(), &config.page_dir, auth.clone(), terminals.clone());
    tracing::info!(addr = %config.page_addr, "lab page listening");
    // As Jupyter does: the address to open, with its token, on stdout.
    println!("berthd: the lab page is at http://{}/?token={}", config.page_addr, auth.token());
    let page_stop = stopped(stop_rx.clone());
    let page = tokio::spawn(async move { axum::serve(page_listener, page_app).with_graceful_shutdown(page_stop).await });
    let api_task = api_listener.map(|l| {
        tracing::info!(socket = %socket.display(), "Engine API listening");
        let api_stop = stopped(stop_rx.clone());
        let app = api::app(state.clone());
        tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(api_stop).await })
    });

    stop_signals.wait().await;
    tracing::info!("shutting down");
    bus.emit(Event::DaemonStopping);
    // The page's shells end with the daemon: none is left an orphan.
    terminals.shutdown().await;
    // As Docker without live-restore: containers stop with the daemon.
    containers.shutdown().await;
    let _ = stop_tx.send(true);
    // In-flight requests get a few seconds; long ones (attach, logs -f,
    // wait) are cut off after that rather than holding the daemon up.
    let grace = std::time::Duration::from_secs(5);
    if let Some(t) = api_task {
        if let Ok(r) = tokio::time::timeout(grace, t).await {
            r.context("API server task")?.context("API server")?;
        } else {
            tracing::warn!("API connections still open after {grace:?}: closing them");
        }
        let _ = std::fs::remove_file(&socket);
    }
    if let Ok(r) = tokio::time::timeout(grace, page).await {
        r.context("page server task")?.context("page server")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The lab page's door: its token from the token file (made if missing).
/// Without a live engine nothing is written to the data root: the token is
/// then made for this run only, unless a token file was named.
fn lab_auth(config: &Config, engine: EngineMode) -> anyhow::Result<lab::auth::LabAuth> {
    let file = config.token_file.clone().or_else(|| (engine == EngineMode::Live).then(|| lab::auth::default_token_file(&config.data_root)));
    let token = match &file {
        Some(path) => lab::auth::load_or_create_token(path).with_context(|| format!("the lab token file {}", path.display()))?,
        None => lab::auth::random_hex(24),
    };
    if let Some(path) = &file {
        tracing::info!(file = %path.display(), "lab token");
    }
    Ok(lab::auth::LabAuth::new(token, &config.page_addr, &config.allowed_hosts, &config.allowed_origins, false))
}

/// Tells the event stream what the store already holds (after a restart).
fn replay_store(bus: &EventBus, images: &ImageStore) {
    let mut seen = std::collections::BTreeSet::new();
    for img in images.list() {
        for l in &img.layers {
            if seen.insert(l.chain_id.clone()) {
                bus.emit(Event::LayerAdded {
                    chain_id: l.chain_id.clone(),
                    diff_id: l.diff_id.clone(),
                    dir: images.layer_diff(&l.chain_id).display().to_string(),
                    size: l.size,
                });
            }
        }
        bus.emit(Event::ImageAdded {
            id: img.id.clone(),
            repo_tags: img.repo_tags.clone(),
            repo_digests: img.repo_digests.clone(),
            layers: img.layers.iter().map(|l| l.chain_id.clone()).collect(),
            size: img.size(),
        });
    }
}

/// Binds the API socket. A stale socket file is replaced; one that a live
/// daemon answers on is left alone and reported.
async fn bind_api_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    // As Docker's: root and the docker group may use it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting permissions on {}", path.display()))?;
    Ok(listener)
}

/// A stable identity for this daemon, kept in its data root.
fn daemon_id(config: &Config, engine: EngineMode) -> String {
    let path = config.data_root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return id.trim().to_string();
    }
    let id = format!("{:032x}", crate::ids::random_u128());
    if engine == EngineMode::Live {
        if let Err(e) = std::fs::write(&path, &id) {
            tracing::warn!(error = %e, "could not persist the engine id");
        }
    }
    id
}

/// SIGINT and SIGTERM, watched from the daemon's start.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("watching SIGINT")?,
            term: signal(SignalKind::terminate()).context("watching SIGTERM")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT"),
            _ = self.term.recv() => tracing::info!("SIGTERM"),
        }
    }
}
