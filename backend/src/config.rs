//! berthd's settings: flags, each also readable from the environment, and an
//! optional JSON file in the shape of Docker's daemon.json.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// The API versions berthd speaks (the answers that changed between
/// versions follow the version asked: `api::ApiVersion`).
pub use berth_shared::{API_VERSION, MIN_API_VERSION};

#[derive(Clone, Debug, Parser)]
#[command(name = "berthd", version, about = "berth's container engine and lab server")]
pub struct Config {
    /// Unix socket for the Docker Engine API (`unix://` prefix optional).
    #[arg(long = "host", short = 'H', env = "BERTH_HOST", default_value = "/run/berth/docker.sock")]
    pub host: String,

    /// Root of persistent state: images, layers, containers, volumes.
    #[arg(long = "data-root", env = "BERTH_DATA_ROOT", default_value = "/var/lib/berth")]
    pub data_root: PathBuf,

    /// Root of runtime state (pid files, netns handles); emptied on start.
    #[arg(long = "exec-root", env = "BERTH_EXEC_ROOT", default_value = "/run/berth")]
    pub exec_root: PathBuf,

    /// Where the lab page and its event stream are served.
    #[arg(long = "page-addr", env = "BERTH_PAGE_ADDR", default_value = "127.0.0.1:8080")]
    pub page_addr: String,

    /// Directory holding the built page (Trunk's dist).
    #[arg(long = "page-dir", env = "BERTH_PAGE_DIR", default_value = "dist")]
    pub page_dir: PathBuf,

    /// Home directory of the page's terminal sessions (the learner's `~` on
    /// node1: where `gourmetgram/` and `~/data/web` live); default $HOME.
    #[arg(long = "lab-home", env = "BERTH_LAB_HOME")]
    pub lab_home: Option<PathBuf>,

    /// The lab page's token file (made, mode 0600, if missing or empty;
    /// default `<data-root>/lab-token`). Its token signs a browser in
    /// (`/?token=…`) and lets tools in (`Authorization: Bearer …`).
    #[arg(long = "token-file", env = "BERTH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Host names the page is served under besides IP addresses and
    /// `localhost` (repeatable): any other Host is refused (DNS rebinding).
    #[arg(long = "allowed-host", env = "BERTH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Origins besides the page's own whose requests and WebSockets are
    /// accepted (repeatable), e.g. a classroom hub's `https://hub.example`.
    #[arg(long = "allowed-origin", env = "BERTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Registry mirror for docker.io pulls, as Docker's `registry-mirrors`
    /// (repeatable; tried in order).
    #[arg(long = "registry-mirror", env = "BERTH_REGISTRY_MIRRORS", value_delimiter = ',')]
    pub registry_mirrors: Vec<String>,

    /// Registries reached over plain HTTP, as Docker's `insecure-registries`.
    #[arg(long = "insecure-registry", env = "BERTH_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,

    /// A daemon.json-style file; its values add to the flags above.
    #[arg(long = "config-file", env = "BERTH_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// The bridge containers attach to by default (Docker's docker0).
    #[arg(long = "bridge", env = "BERTH_BRIDGE", default_value = "docker0")]
    pub bridge: String,

    /// The default bridge's subnet (Docker's `--bip` network).
    #[arg(long = "bip", env = "BERTH_BIP", default_value = "172.17.0.0/16")]
    pub bip: String,

    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long = "log-level", env = "BERTH_LOG", default_value = "info")]
    pub log_level: String,
}

/// The subset of Docker's daemon.json berthd reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DaemonJson {
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

impl Config {
    /// The API socket's path, without a `unix://` scheme.
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(self.host.strip_prefix("unix://").unwrap_or(&self.host))
    }

    /// Merges a daemon.json file's settings into the flags.
    pub fn merge_file(&mut self) -> anyhow::Result<()> {
        use anyhow::Context;
        let Some(path) = &self.config_file else { return Ok(()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        let file: DaemonJson = serde_json::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
        for m in file.registry_mirrors {
            if !self.registry_mirrors.contains(&m) {
                self.registry_mirrors.push(m);
            }
        }
        for r in file.insecure_registries {
            if !self.insecure_registries.contains(&r) {
                self.insecure_registries.push(r);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_flag_accepts_the_unix_scheme_or_a_bare_path() {
        let c = Config::parse_from(["berthd", "-H", "unix:///tmp/x.sock"]);
        assert_eq!(c.socket_path(), PathBuf::from("/tmp/x.sock"));
        let c = Config::parse_from(["berthd", "--host", "/tmp/y.sock"]);
        assert_eq!(c.socket_path(), PathBuf::from("/tmp/y.sock"));
    }

    #[test]
    fn daemon_json_mirrors_add_to_flags_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, r#"{"registry-mirrors":["http://127.0.0.1:5000","http://a:1"],"insecure-registries":["a:1"]}"#).unwrap();
        let mut c = Config::parse_from(["berthd", "--registry-mirror", "http://127.0.0.1:5000", "--config-file", path.to_str().unwrap()]);
        c.merge_file().unwrap();
        assert_eq!(c.registry_mirrors, vec!["http://127.0.0.1:5000", "http://a:1"]);
        assert_eq!(c.insecure_registries, vec!["a:1"]);
    }

    #[test]
    fn a_malformed_daemon_json_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{not json").unwrap();
        let mut c = Config::parse_from(["berthd", "--config-file", path.to_str().unwrap()]);
        let err = format!("{:#}", c.merge_file().unwrap_err());
        assert!(err.contains("daemon.json"), "{err}");
    }
}
