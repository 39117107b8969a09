use anyhow::Context;
use clap::Parser;
use gourmetgram::{web, Classifier};
use std::path::PathBuf;
use std::sync::Arc;

/// GourmetGram: upload a food photo, get one of eleven classes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The weights: a torch.save'd MobileNetV2 state_dict (food11.pth).
    #[arg(long, env = "GOURMETGRAM_MODEL", default_value = "food11.pth")]
    model: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "GOURMETGRAM_LISTEN", default_value = "0.0.0.0:8000")]
    listen: String,
    /// Intra-op threads for inference (two collapse under load on two cores).
    #[arg(long, env = "GOURMETGRAM_THREADS", default_value_t = 1)]
    threads: usize,
    /// Inference threads, each with its own network over the one copy of
    /// the weights (default: one a core, at most 4).
    #[arg(long, env = "GOURMETGRAM_WORKERS")]
    workers: Option<usize>,
    /// Most waiting images one worker classifies in one forward pass (on a
    /// single intra-op thread a batch costs more per image than one at a
    /// time: measured 32 vs 27 ms for two).
    #[arg(long, default_value_t = 1)]
    max_batch: usize,
    /// Most requests waiting for the classifier; more get 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Largest accepted upload, in MiB.
    #[arg(long, default_value_t = 16)]
    max_upload_mib: usize,
    /// The image `GET /test` classifies.
    #[arg(long, env = "GOURMETGRAM_TEST_IMAGE", default_value = "static/test_image.jpeg")]
    test_image: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4));
    let classifier = Classifier::start(&args.model, workers, args.threads, args.max_batch, args.queue)
        .with_context(|| format!("loading the model from {}", args.model.display()))?;
    tracing::info!(file = %classifier.info.file, sha256 = %classifier.info.sha256, threads = args.threads, workers, "weights loaded");
    let state = Arc::new(web::AppState { classifier, test_image: args.test_image });
    let app = web::router(state, args.max_upload_mib * 1024 * 1024);
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await?;
    Ok(())
}
