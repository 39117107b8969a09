//! The lab file format: `labs/<name>/lab.toml` lists the steps in order,
//! each with its title, its Markdown file (beside lab.toml), its checks and
//! its hints:
//!
//! ```toml
//! id = "deploy-docker"
//! title = "Deploy a service in a Docker container"
//! summary = "…"
//!
//! [[steps]]
//! id = "publish"
//! title = "Publish a port"
//! file = "06-publish.md"
//! hints = ["-p HOST:CONTAINER: the host's port comes first"]
//! checks = [
//!   { kind = "container_running", name = "nginx-public" },
//!   { kind = "port_published", container = "nginx-public", host_port = 80, container_port = 80 },
//! ]
//! ```
//!
//! Commands in a step's Markdown are fenced code blocks: ```` ```sh ```` for
//! lines to type into node1's terminal (the page gives them a copy and a
//! "run in terminal" button), ```` ```text ```` for output or file content.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::checks::Check;

/// A lab, its files read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub title: String,
    /// Its Markdown file, relative to lab.toml.
    pub file: String,
    /// The Markdown text.
    pub body: String,
    pub hints: Vec<String>,
    pub checks: Vec<Check>,
}

/// A fenced code block of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBlock {
    /// The fence's language ("sh", "text"…), empty when none.
    pub lang: String,
    pub code: String,
}

impl CodeBlock {
    /// Lines meant for the terminal (the page's "run" button).
    pub fn runnable(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "shell")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    id: String,
    title: String,
    summary: String,
    steps: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    title: String,
    file: String,
    #[serde(default)]
    hints: Vec<String>,
    checks: Vec<Check>,
}

/// Why a lab cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabError {
    /// lab.toml is not valid TOML, or not this format (unknown check kind,
    /// misspelt field…).
    Toml(String),
    /// A step's Markdown file is not there.
    MissingFile { step: String, file: String },
    /// Well-formed but wrong: duplicate step IDs, a step without checks…
    Invalid(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Toml(e) => write!(f, "lab.toml: {e}"),
            LabError::MissingFile { step, file } => write!(f, "step {step}: no file {file}"),
            LabError::Invalid(e) => write!(f, "lab.toml: {e}"),
        }
    }
}

impl std::error::Error for LabError {}

impl Lab {
    /// Reads lab.toml's text; `read` gives a step's Markdown by file name.
    pub fn parse(toml: &str, read: impl Fn(&str) -> Option<String>) -> Result<Lab, LabError> {
        let f: LabFile = toml::from_str(toml).map_err(|e| LabError::Toml(e.to_string()))?;
        if f.steps.is_empty() {
            return Err(LabError::Invalid("a lab has at least one step".into()));
        }
        let mut ids = BTreeSet::new();
        let mut steps = Vec::new();
        for s in f.steps {
            if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(LabError::Invalid(format!("step id {:?}: use letters, digits and '-'", s.id)));
            }
            if !ids.insert(s.id.clone()) {
                return Err(LabError::Invalid(format!("two steps are named {}", s.id)));
            }
            if s.checks.is_empty() {
                return Err(LabError::Invalid(format!("step {} has no checks: nothing could tell it is done", s.id)));
            }
            let body = read(&s.file).ok_or_else(|| LabError::MissingFile { step: s.id.clone(), file: s.file.clone() })?;
            steps.push(Step { id: s.id, title: s.title, file: s.file, body, hints: s.hints, checks: s.checks });
        }
        Ok(Lab { id: f.id, title: f.title, summary: f.summary, steps })
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

impl Step {
    /// Its fenced code blocks, in order.
    pub fn code_blocks(&self) -> Vec<CodeBlock> {
        code_blocks(&self.body)
    }

    /// A command with the lab's placeholders filled from `state`, for the
    /// page's "run in terminal": `A.B.C.D` becomes node1's own address (of
    /// the link its default route leaves by), `172.17.0.X` the address of
    /// the first container the step's checks name that has one. What cannot
    /// be known yet stays as written.
    pub fn fill(&self, code: &str, state: &crate::state::State) -> String {
        let mut out = code.to_string();
        if let Some(addr) = node1_address(state) {
            out = out.replace("A.B.C.D", &addr);
        }
        let ip = self.checks.iter().filter_map(|c| c.container()).find_map(|name| {
            state.containers.values().find(|c| c.name == name).and_then(|c| c.endpoints.values().next()).map(|e| e.ip.clone())
        });
        if let Some(ip) = ip {
            out = out.replace("172.17.0.X", &ip);
        }
        out
    }
}

/// node1's own IPv4 address: on the link of its default route, else on the
/// first link that is not loopback, a bridge or a veth.
pub fn node1_address(state: &crate::state::State) -> Option<String> {
    let v4 = |link: &str| {
        state
            .links
            .get(link)
            .and_then(|l| l.addresses.iter().find(|a| a.contains('.')))
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
    };
    let by_route = state.routes.iter().find(|(dst, _, _)| dst == "default").and_then(|(_, _, dev)| dev.as_deref()).and_then(v4);
    by_route.or_else(|| state.links.iter().filter(|(n, l)| *n != "lo" && l.kind != "bridge" && l.kind != "veth").find_map(|(n, _)| v4(n)))
}

/// The fenced (```) code blocks of Markdown text.
pub fn code_blocks(markdown: &str) -> Vec<CodeBlock> {
    let mut out = Vec::new();
    let mut open: Option<(String, String, Vec<&str>)> = None;
    for line in markdown.lines() {
        let t = line.trim_start();
        match open.take() {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    let indent = line[..line.len() - t.len()].to_string();
                    open = Some((info.split_whitespace().next().unwrap_or("").to_string(), indent, Vec::new()));
                }
            }
            Some((lang, indent, lines)) => {
                if t.starts_with("```") {
                    let code = lines.join("\n");
                    out.push(CodeBlock { lang, code: if code.is_empty() { code } else { format!("{code}\n") } });
                } else {
                    let mut lines = lines;
                    lines.push(line.strip_prefix(indent.as_str()).unwrap_or(line));
                    open = Some((lang, indent, lines));
                }
            }
        }
    }
    out
}
