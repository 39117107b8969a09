//! berth-hub: the classroom's front door (see the crate's doc and the
//! README's "Classroom" section).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_classroom::hub::{Hub, HubConfig, NewClass};
use berth_classroom::spawner::local::{Limits, LocalConfig, LocalSpawner};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "berth-hub", version, about = "berth's classroom: a node1 per learner behind one door")]
struct Args {
    /// Where the hub listens.
    #[arg(long, env = "BERTH_HUB_ADDR", default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// The hub's state: its token file, the learners' nodes, and the archive of each class (events, recordings).
    #[arg(long, env = "BERTH_HUB_STATE", default_value = "/var/lib/berth-hub")]
    state_dir: PathBuf,
    /// The instructor's token file (made, mode 0600, if missing; default `<state-dir>/instructor-token`).
    #[arg(long, env = "BERTH_HUB_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Where learners' nodes come from: `local` (namespaces on this machine)
    /// or `kubernetes` (a pod per learner; needs --kube-config).
    #[arg(long, default_value = "local")]
    spawner: String,
    /// The kubernetes spawner's settings (JSON, as deploy/kubernetes/hub-config.yaml holds them).
    #[arg(long, env = "BERTH_HUB_KUBE_CONFIG")]
    kube_config: Option<PathBuf>,
    /// The berthd each node runs (default: beside this binary).
    #[arg(long, env = "BERTH_HUB_BERTHD")]
    berthd: Option<PathBuf>,
    /// The built page each node serves (Trunk's dist).
    #[arg(long, default_value = "dist")]
    page_dir: PathBuf,
    /// The fixture registry's storage, served read-only in every node ("" for none).
    #[arg(long, default_value = "/var/lib/berth-lab/registry/storage")]
    registry_storage: String,
    /// Origins besides the hub's own whose requests and WebSockets pass (repeatable).
    #[arg(long = "allowed-origin", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// TLS certificate chain (PEM); with --tls-key the hub serves HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Each node's memory cap, MB.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u64,
    /// Each node's CPU cap, in cores.
    #[arg(long, default_value_t = 1.0)]
    cpus: f64,
    /// Each node's process cap.
    #[arg(long, default_value_t = 1024)]
    pids: u32,
    /// The most nodes on this machine.
    #[arg(long, default_value_t = 200)]
    max_nodes: usize,
    /// The hub side of uplink N is named PREFIX + N.
    #[arg(long, default_value = "bhub")]
    link_prefix: String,
    /// The hub's cgroup in every hierarchy (must start with "berth").
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// How often class expiry is checked, ms.
    #[arg(long, default_value_t = 1000)]
    reap_every_ms: u64,
    /// Make a class at start (printing its join link).
    #[arg(long)]
    class: Option<String>,
    /// That class's capacity.
    #[arg(long, default_value_t = 30)]
    capacity: u32,
    /// That class's life, seconds.
    #[arg(long, default_value_t = 4 * 3600)]
    expires_in_s: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(args.spawner.as_str(), "local" | "kubernetes"),
        "--spawner {:?}: use local (namespaces on this machine) or kubernetes (a pod per learner)",
        args.spawner
    );
    std::fs::create_dir_all(&args.state_dir).with_context(|| format!("creating {}", args.state_dir.display()))?;
    let token_file = args.token_file.clone().unwrap_or_else(|| args.state_dir.join("instructor-token"));
    let token = berth_backend::lab::auth::load_or_create_token(&token_file)
        .with_context(|| format!("the instructor token file {}", token_file.display()))?;
    let page_dir = args.page_dir.canonicalize().unwrap_or(args.page_dir.clone());
    // The local spawner (kept for its shutdown) or the kubernetes one.
    let local: Option<Arc<LocalSpawner>> = match args.spawner.as_str() {
        "local" => Some(local_spawner(&args, &page_dir)?),
        _ => None,
    };
    let spawner: Arc<dyn berth_classroom::spawner::Spawner> = match &local {
        Some(l) => l.clone(),
        None => {
            let file = args.kube_config.clone().context("--spawner kubernetes needs --kube-config FILE")?;
            berth_classroom::spawner::kubernetes::KubernetesSpawner::start(&file)
                .await
                .map_err(|e| anyhow::anyhow!("the kubernetes spawner: {e}"))?
        }
    };

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(c, k).await.context("reading the TLS certificate and key")?)
        }
        _ => None,
    };
    let mut cfg = HubConfig::new(token.clone());
    cfg.secure = tls.is_some();
    cfg.allowed_origins = args.allowed_origins.clone();
    // The same page is the instructor's dashboard at /hub/.
    cfg.page_dir = Some(page_dir);
    cfg.archive_dir = Some(args.state_dir.join("archive"));
    let hub = Hub::new(cfg, spawner);
    hub.start_reaper(Duration::from_millis(args.reap_every_ms.max(50)));
    let app = berth_classroom::hub::routes::app(hub.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(name) = &args.class {
        let c = hub
            .create_class(NewClass {
                name: name.clone(),
                lab: "deploy-docker".into(),
                capacity: args.capacity,
                expires_in_s: args.expires_in_s,
            })
            .map_err(|e| anyhow::anyhow!("the class: {e}"))?;
        println!("berth-hub: learners join {name:?} at {scheme}://{}/join/{}", args.addr, c.code);
    }
    println!("berth-hub: the instructor's page is at {scheme}://{}/?token={token}", args.addr);

    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
        }
        tracing::info!("stopping: removing every learner's node");
        h2.graceful_shutdown(Some(Duration::from_secs(3)));
    });
    let served = match tls {
        Some(t) => axum_server::bind_rustls(args.addr, t).handle(handle).serve(app.into_make_service()).await,
        None => axum_server::bind(args.addr).handle(handle).serve(app.into_make_service()).await,
    };
    hub.shutdown().await;
    if let Some(l) = &local {
        l.shutdown().await;
    }
    served.context("serving")?;
    Ok(())
}

/// The local spawner as the flags describe it.
fn local_spawner(args: &Args, page_dir: &std::path::Path) -> anyhow::Result<Arc<LocalSpawner>> {
    let berthd = match args.berthd.clone() {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("berthd"),
    };
    anyhow::ensure!(
        berthd.is_file(),
        "{} is missing: build it (cargo build -p berth-backend --bin berthd) or pass --berthd",
        berthd.display()
    );
    let mut lc = LocalConfig::new(args.state_dir.clone(), berthd.canonicalize()?, page_dir.to_path_buf());
    lc.registry_storage = (!args.registry_storage.is_empty()).then(|| PathBuf::from(&args.registry_storage));
    lc.limits =
        Limits { memory_bytes: args.memory_mb << 20, cpu_ms_per_100ms: (args.cpus * 100.0).round().max(1.0) as u32, pids: args.pids };
    lc.max_nodes = args.max_nodes;
    lc.link_prefix = args.link_prefix.clone();
    if let Some(p) = &args.cgroup_parent {
        anyhow::ensure!(p.starts_with("berth") && !p.contains('/'), "--cgroup-parent must start with \"berth\" and be one name");
        lc.cgroup_parent = p.clone();
    }
    Ok(Arc::new(LocalSpawner::new(lc).map_err(|e| anyhow::anyhow!("the local spawner: {e}"))?))
}
