//! berthd: parses its flags, sets up logging and runs the daemon.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    // berthd re-executes itself as the container helper (single-threaded,
    // before any runtime starts).
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__berth-init") => berth_backend::runtime::init::init_main(args.get(2).map(String::as_str).unwrap_or("")),
        Some("__berth-archive") => berth_backend::runtime::archive::archive_main(args.get(2).map(String::as_str).unwrap_or("")),
        Some("__berth-exec") => berth_backend::runtime::init::exec_main(args.get(2).map(String::as_str).unwrap_or("")),
        _ => {}
    }
    let config = berth_backend::config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(berth_backend::daemon::run(config))
}
