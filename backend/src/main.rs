//! berthd: parses its flags, sets up logging and runs the daemon.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = berth_backend::config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(berth_backend::daemon::run(config))
}
