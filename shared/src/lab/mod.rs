//! Guided labs: a lab as data (`labs/<name>/lab.toml` and a Markdown file a
//! step, see [`format`]), its checks as pure predicates over [`crate::State`]
//! ([`checks`]), and progress through it as events ([`progress`]).
//!
//! Use: `let lab = lab::deploy_docker();` then, after every event applied to
//! the state, `for e in lab.tick(&state) { emit(e) }` (berthd live, the page's
//! simulator offline); the steps panel shows `lab.evaluate(&state)` live, or
//! `lab.recorded(&state)` in a replay.

pub mod checks;
pub mod format;
pub mod progress;

pub use checks::{normalize_reference, Check, Diagnosis, Element, Severity};
pub use format::{code_blocks, node1_address, CodeBlock, Lab, LabError, Step};
pub use progress::{
    evaluate, progress_events, CheckStatus, LabChange, LabRecord, LabTimes, StepRecord, StepRow, StepState, StepStatus, StepTimes,
};

/// The files of labs/deploy-docker, embedded (the page has no file system).
pub const DEPLOY_DOCKER_FILES: &[(&str, &str)] = &[
    ("01-hello.md", include_str!("../../../labs/deploy-docker/01-hello.md")),
    ("02-alpine.md", include_str!("../../../labs/deploy-docker/02-alpine.md")),
    ("03-bridge.md", include_str!("../../../labs/deploy-docker/03-bridge.md")),
    ("04-alpine-shell.md", include_str!("../../../labs/deploy-docker/04-alpine-shell.md")),
    ("05-service.md", include_str!("../../../labs/deploy-docker/05-service.md")),
    ("06-publish.md", include_str!("../../../labs/deploy-docker/06-publish.md")),
    ("07-overlay.md", include_str!("../../../labs/deploy-docker/07-overlay.md")),
    ("08-copy-up.md", include_str!("../../../labs/deploy-docker/08-copy-up.md")),
    ("09-second-instance.md", include_str!("../../../labs/deploy-docker/09-second-instance.md")),
    ("10-volume.md", include_str!("../../../labs/deploy-docker/10-volume.md")),
    ("11-volume-edit.md", include_str!("../../../labs/deploy-docker/11-volume-edit.md")),
    ("12-volume-persist.md", include_str!("../../../labs/deploy-docker/12-volume-persist.md")),
    ("13-bind.md", include_str!("../../../labs/deploy-docker/13-bind.md")),
    ("14-build.md", include_str!("../../../labs/deploy-docker/14-build.md")),
    ("15-serve.md", include_str!("../../../labs/deploy-docker/15-serve.md")),
];

/// labs/deploy-docker/lab.toml, embedded.
pub const DEPLOY_DOCKER_TOML: &str = include_str!("../../../labs/deploy-docker/lab.toml");

/// "Deploy a service in a Docker container", parsed from the embedded files
/// (a test makes sure they parse).
pub fn deploy_docker() -> Lab {
    let read = |name: &str| DEPLOY_DOCKER_FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string());
    Lab::parse(DEPLOY_DOCKER_TOML, read).unwrap_or_else(|e| panic!("the embedded lab deploy-docker does not parse: {e}"))
}

#[cfg(test)]
mod tests;
