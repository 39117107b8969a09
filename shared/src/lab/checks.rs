//! A lab step's checks: a fixed set of kinds, each a pure predicate over
//! [`State`]. A failing check says why in a [`Diagnosis`]: a stable code, a
//! sentence with the values it saw, and the diagram element to highlight.
//!
//! Checks read state only. No event or recording frame carries what the
//! learner typed (the terminal's input goes to the PTY, not to the stream),
//! so a step is judged by what node1 holds, whatever order it was done in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::container::Status;
use crate::event::FileChangeKind;
use crate::state::{Container, State};

/// One check of a step, as lab.toml writes it (`kind = "…"` and its fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The image is in the store (pulled or built).
    ImagePresent { reference: String },
    /// A container of this image ran and exited (with this code, if given).
    ContainerRan {
        image: String,
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// The container by this name runs.
    ContainerRunning { name: String },
    /// No container by this name runs (stopped, or removed).
    ContainerStopped { name: String },
    /// The container runs, attached to the bridge by a veth whose host end
    /// is a port of that bridge.
    ContainerOnBridge { name: String, bridge: String },
    /// The bridge is up with this address ("172.17.0.1/16").
    BridgeUp { name: String, address: String },
    /// Docker's chains hold rules in this table.
    ChainsPresent { table: String, chains: Vec<String> },
    /// The container publishes `host_port` to its `container_port`, and nat
    /// DOCKER holds the DNAT rule sending it there.
    PortPublished { container: String, host_port: u16, container_port: u16 },
    /// The container runs on an overlay mounted at its merged dir.
    OverlayMounted { container: String },
    /// The file (absolute path in the container) was written in the
    /// container's own upper dir: copied up, the image's copy untouched.
    OverlayFileCopiedUp { container: String, path: String },
    /// Two running containers of the image share its lower dirs, each with
    /// an upper dir of its own.
    TwoContainersShareLower { image: String },
    /// The named volume exists.
    VolumeExists { name: String },
    /// The empty volume was filled from an image's files (copy-in).
    VolumeCopiedIn { volume: String },
    /// A running container mounts the volume at `destination` (this
    /// container, if named).
    VolumeUsedBy {
        volume: String,
        destination: String,
        #[serde(default)]
        container: Option<String>,
    },
    /// A file (path inside the volume, "/index.html") was written into it.
    VolumeFileWritten { volume: String, path: String },
    /// A running container mounts the volume that is not the one it was
    /// filled from: its data outlived that container.
    VolumeReused { volume: String },
    /// No stopped container is left (`docker container prune`).
    NoStoppedContainers,
    /// The running container has a host dir ending in `source_suffix`
    /// bind-mounted at `destination`.
    BindMount { container: String, destination: String, source_suffix: String },
    /// `docker build` made an image with this tag, and the build succeeded.
    ImageBuilt { tag: String },
}

/// How bad a failing check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Not done yet: do the step.
    Todo,
    /// Done, but something is wrong (deleted by hand, edited in the wrong
    /// place): the step shows as failed until it is put right.
    Broken,
}

/// Why a check fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Stable, for tests and the page: `port.dnat_missing`, `container.missing`…
    pub code: String,
    pub severity: Severity,
    /// A sentence with the values seen.
    pub message: String,
    /// The diagram element to highlight.
    pub element: Option<Element>,
}

/// A thing the diagrams draw, named as the page can find it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Element {
    Container(String),
    Port(u16),
    Bridge(String),
    Link(String),
    Rule { table: String, rule: String },
    Chain { table: String, chain: String },
    Image(String),
    Layer(String),
    Overlay(String),
    Volume(String),
    Build(String),
}

impl Element {
    /// "container:nginx-public", "port:80", "rule:nat:-A DOCKER …".
    pub fn id(&self) -> String {
        match self {
            Element::Container(n) => format!("container:{n}"),
            Element::Port(p) => format!("port:{p}"),
            Element::Bridge(n) => format!("bridge:{n}"),
            Element::Link(n) => format!("link:{n}"),
            Element::Rule { table, rule } => format!("rule:{table}:{rule}"),
            Element::Chain { table, chain } => format!("chain:{table}:{chain}"),
            Element::Image(r) => format!("image:{r}"),
            Element::Layer(d) => format!("layer:{d}"),
            Element::Overlay(n) => format!("overlay:{n}"),
            Element::Volume(n) => format!("volume:{n}"),
            Element::Build(t) => format!("build:{t}"),
        }
    }

    /// The `data-testid` the page's diagrams give this element today, where
    /// they draw it as one (rules are found by their text instead).
    pub fn testid(&self) -> Option<String> {
        match self {
            Element::Container(n) => Some(format!("container-{n}")),
            Element::Port(p) => Some(format!("port-{p}")),
            Element::Bridge(n) => Some(format!("bridge-{n}")),
            Element::Link(n) => Some(format!("link-{n}")),
            Element::Overlay(n) => Some(format!("overlay-{n}")),
            _ => None,
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

impl From<Element> for String {
    fn from(e: Element) -> String {
        e.id()
    }
}

impl TryFrom<String> for Element {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| format!("not an element id: {s:?}"))?;
        let two = || rest.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| format!("not an element id: {s:?}"));
        Ok(match kind {
            "container" => Element::Container(rest.into()),
            "port" => Element::Port(rest.parse().map_err(|_| format!("not a port: {rest:?}"))?),
            "bridge" => Element::Bridge(rest.into()),
            "link" => Element::Link(rest.into()),
            "rule" => two().map(|(table, rule)| Element::Rule { table, rule })?,
            "chain" => two().map(|(table, chain)| Element::Chain { table, chain })?,
            "image" => Element::Image(rest.into()),
            "layer" => Element::Layer(rest.into()),
            "overlay" => Element::Overlay(rest.into()),
            "volume" => Element::Volume(rest.into()),
            "build" => Element::Build(rest.into()),
            _ => return Err(format!("unknown element kind {kind:?} in {s:?}")),
        })
    }
}

fn todo(code: &str, message: String, element: Option<Element>) -> Diagnosis {
    Diagnosis { code: code.into(), severity: Severity::Todo, message, element }
}

fn broken(code: &str, message: String, element: Option<Element>) -> Diagnosis {
    Diagnosis { code: code.into(), severity: Severity::Broken, message, element }
}

/// "nginx" → "nginx:latest", "docker.io/library/alpine" → "alpine:latest".
pub fn normalize_reference(r: &str) -> String {
    let r = r.trim().trim_start_matches("docker.io/").trim_start_matches("library/");
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

fn image_id<'a>(state: &'a State, reference: &str) -> Option<&'a str> {
    let want = normalize_reference(reference);
    state.images.values().find(|i| i.repo_tags.iter().any(|t| normalize_reference(t) == want)).map(|i| i.id.as_str())
}

fn of_image(state: &State, c: &Container, reference: &str) -> bool {
    normalize_reference(&c.image) == normalize_reference(reference) || image_id(state, reference).is_some_and(|id| id == c.image_id)
}

fn by_name<'a>(state: &'a State, name: &str) -> Option<&'a Container> {
    state.containers.values().find(|c| c.name == name)
}

/// The container by this name, running; or why not.
fn running<'a>(state: &'a State, name: &str) -> Result<&'a Container, Diagnosis> {
    match by_name(state, name) {
        None => Err(todo(
            "container.missing",
            format!("no container is named {name}: run it (if it ran with --rm and stopped, it was removed)"),
            Some(Element::Container(name.into())),
        )),
        Some(c) if c.status != Status::Running => Err(todo(
            "container.not_running",
            format!(
                "{name} exists but is {}{}: start it again (docker start {name})",
                c.status.as_str(),
                c.exit_code.map(|e| format!(" (exit code {e})")).unwrap_or_default()
            ),
            Some(Element::Container(name.into())),
        )),
        Some(c) => Ok(c),
    }
}

fn has_tokens(rule: &str, want: &[&str]) -> bool {
    let w: Vec<&str> = rule.split_whitespace().collect();
    want.windows(2).step_by(2).all(|p| w.windows(2).any(|x| x[0] == p[0] && x[1] == p[1]))
}

impl Check {
    /// The check's kind as lab.toml names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::ImagePresent { .. } => "image_present",
            Check::ContainerRan { .. } => "container_ran",
            Check::ContainerRunning { .. } => "container_running",
            Check::ContainerStopped { .. } => "container_stopped",
            Check::ContainerOnBridge { .. } => "container_on_bridge",
            Check::BridgeUp { .. } => "bridge_up",
            Check::ChainsPresent { .. } => "chains_present",
            Check::PortPublished { .. } => "port_published",
            Check::OverlayMounted { .. } => "overlay_mounted",
            Check::OverlayFileCopiedUp { .. } => "overlay_file_copied_up",
            Check::TwoContainersShareLower { .. } => "two_containers_share_lower",
            Check::VolumeExists { .. } => "volume_exists",
            Check::VolumeCopiedIn { .. } => "volume_copied_in",
            Check::VolumeUsedBy { .. } => "volume_used_by",
            Check::VolumeFileWritten { .. } => "volume_file_written",
            Check::VolumeReused { .. } => "volume_reused",
            Check::NoStoppedContainers => "no_stopped_containers",
            Check::BindMount { .. } => "bind_mount",
            Check::ImageBuilt { .. } => "image_built",
        }
    }

    /// The container the check is about, if it names one.
    pub fn container(&self) -> Option<&str> {
        match self {
            Check::ContainerRunning { name } | Check::ContainerStopped { name } | Check::ContainerOnBridge { name, .. } => Some(name),
            Check::PortPublished { container, .. }
            | Check::OverlayMounted { container }
            | Check::OverlayFileCopiedUp { container, .. }
            | Check::BindMount { container, .. } => Some(container),
            Check::VolumeUsedBy { container, .. } => container.as_deref(),
            _ => None,
        }
    }

    /// What the check asks, as the steps panel lists it.
    pub fn describe(&self) -> String {
        match self {
            Check::ImagePresent { reference } => format!("image {reference} is on node1"),
            Check::ContainerRan { image, exit_code: Some(c) } => format!("a container of {image} ran and exited with code {c}"),
            Check::ContainerRan { image, exit_code: None } => format!("a container of {image} ran and exited"),
            Check::ContainerRunning { name } => format!("{name} is running"),
            Check::ContainerStopped { name } => format!("{name} is stopped"),
            Check::ContainerOnBridge { name, bridge } => format!("{name} is plugged into {bridge} by a veth pair"),
            Check::BridgeUp { name, address } => format!("{name} is up with {address}"),
            Check::ChainsPresent { table, chains } => format!("the {table} table has the chains {}", chains.join(", ")),
            Check::PortPublished { container, host_port, container_port } => {
                format!("node1's port {host_port} leads to port {container_port} of {container}")
            }
            Check::OverlayMounted { container } => format!("{container}'s root is an overlay"),
            Check::OverlayFileCopiedUp { container, path } => format!("{path} was edited in {container} and copied up into its upper dir"),
            Check::TwoContainersShareLower { image } => format!("two running containers of {image} share its lower dirs"),
            Check::VolumeExists { name } => format!("volume {name} exists"),
            Check::VolumeCopiedIn { volume } => format!("{volume} was filled from the image's files"),
            Check::VolumeUsedBy { volume, destination, container: Some(c) } => format!("{c} mounts {volume} at {destination}"),
            Check::VolumeUsedBy { volume, destination, container: None } => format!("a container mounts {volume} at {destination}"),
            Check::VolumeFileWritten { volume, path } => format!("{path} was written in {volume}"),
            Check::VolumeReused { volume } => format!("a new container serves {volume}'s data"),
            Check::NoStoppedContainers => "no stopped container is left".into(),
            Check::BindMount { container, destination, source_suffix } => {
                format!("{container} has …{source_suffix} bind-mounted at {destination}")
            }
            Check::ImageBuilt { tag } => format!("docker build made {tag}"),
        }
    }

    /// Passes (`Ok`) or says why not.
    pub fn evaluate(&self, state: &State) -> Result<(), Diagnosis> {
        match self {
            Check::ImagePresent { reference } => match image_id(state, reference) {
                Some(_) => Ok(()),
                None => Err(todo(
                    "image.missing",
                    format!("node1 has no image {}: pull it, or run it (docker pulls what it lacks)", normalize_reference(reference)),
                    Some(Element::Image(reference.clone())),
                )),
            },
            Check::ContainerRan { image, exit_code } => {
                let mine: Vec<&Container> = state.containers.values().filter(|c| of_image(state, c, image)).collect();
                if mine.iter().any(|c| c.status == Status::Exited && exit_code.is_none_or(|e| c.exit_code == Some(e))) {
                    return Ok(());
                }
                if let Some(c) = mine.iter().find(|c| c.status == Status::Exited) {
                    return Err(broken(
                        "container.failed",
                        format!("{} ({image}) exited with code {}, not {}", c.name, c.exit_code.unwrap_or(0), exit_code.unwrap_or(0)),
                        Some(Element::Container(c.name.clone())),
                    ));
                }
                if let Some(c) = mine.first() {
                    return Err(todo(
                        "container.still_running",
                        format!("{} ({image}) is {}: it has not exited yet", c.name, c.status.as_str()),
                        Some(Element::Container(c.name.clone())),
                    ));
                }
                Err(todo(
                    "container.missing",
                    format!("no container of {image} is on node1: run one (without --rm, it stays after it exits)"),
                    Some(Element::Image(image.clone())),
                ))
            }
            Check::ContainerRunning { name } => running(state, name).map(|_| ()),
            Check::ContainerStopped { name } => match by_name(state, name) {
                Some(c) if c.status == Status::Running => Err(todo(
                    "container.still_running",
                    format!("{name} still runs: stop it (docker stop {name})"),
                    Some(Element::Container(name.clone())),
                )),
                _ => Ok(()),
            },
            Check::ContainerOnBridge { name, bridge } => {
                let c = running(state, name)?;
                let Some(ep) = c.endpoints.values().find(|e| e.bridge == *bridge) else {
                    let on: Vec<&str> = c.endpoints.values().map(|e| e.bridge.as_str()).collect();
                    return Err(broken(
                        "endpoint.missing",
                        format!(
                            "{name} runs but has no interface on {bridge} (it is on: {})",
                            if on.is_empty() { "nothing".to_string() } else { on.join(", ") }
                        ),
                        Some(Element::Container(name.clone())),
                    ));
                };
                if state.links.is_empty() {
                    // Nothing observed of the kernel (a state without an observer): trust the engine.
                    return Ok(());
                }
                match state.links.get(&ep.host_if) {
                    None => Err(todo("veth.not_seen", format!("{name}'s host end {} is not among node1's links yet", ep.host_if), Some(Element::Link(ep.host_if.clone())))),
                    Some(l) if l.master.as_deref() != Some(bridge) => Err(broken(
                        "veth.not_on_bridge",
                        format!("{} (the host end of {name}'s {}) is not a port of {bridge} (master: {}) — was it taken off the bridge by hand?", ep.host_if, ep.ifname, l.master.as_deref().unwrap_or("none")),
                        Some(Element::Link(ep.host_if.clone())),
                    )),
                    Some(_) => Ok(()),
                }
            }
            Check::BridgeUp { name, address } => match state.bridges.get(name) {
                None => Err(todo("bridge.missing", format!("{name} is not up: is berthd running?"), Some(Element::Bridge(name.clone())))),
                Some(b) if format!("{}/{}", b.address, b.prefix) != *address => Err(broken(
                    "bridge.address",
                    format!("{name} has {}/{}, not {address}", b.address, b.prefix),
                    Some(Element::Bridge(name.clone())),
                )),
                Some(_) => Ok(()),
            },
            Check::ChainsPresent { table, chains } => {
                for chain in chains {
                    let there = state
                        .kernel_rules
                        .iter()
                        .any(|(t, r)| t == table && (r.starts_with(&format!("-A {chain} ")) || has_tokens(r, &["-j", chain])));
                    if !there {
                        return Err(broken(
                            "chain.missing",
                            format!("the {table} table has no rule in or jumping to {chain} — were Docker's rules flushed by hand?"),
                            Some(Element::Chain { table: table.clone(), chain: chain.clone() }),
                        ));
                    }
                }
                Ok(())
            }
            Check::PortPublished { container, host_port, container_port } => {
                let c = match running(state, container) {
                    Ok(c) => c,
                    Err(d) => {
                        // Say who has the port instead, if someone does.
                        if let Some(o) = state.containers.values().find(|o| o.ports.iter().any(|p| p.host_port == *host_port)) {
                            return Err(todo(
                                "port.not_published",
                                format!("port {host_port} is published by {}, not {container}: {}", o.name, d.message),
                                Some(Element::Port(*host_port)),
                            ));
                        }
                        return Err(d);
                    }
                };
                let Some(p) = c.ports.iter().find(|p| p.host_port == *host_port) else {
                    let has: Vec<String> = c.ports.iter().map(|p| format!("{}->{}", p.host_port, p.container_port)).collect();
                    let msg = if has.is_empty() {
                        format!("{container} runs but publishes no port: run it with -p {host_port}:{container_port}")
                    } else {
                        format!(
                            "{container} publishes {} but not port {host_port}: run it with -p {host_port}:{container_port}",
                            has.join(", ")
                        )
                    };
                    return Err(todo("port.not_published", msg, Some(Element::Container(container.clone()))));
                };
                if p.container_port != *container_port {
                    return Err(broken("port.wrong_target", format!("port {host_port} leads to {container}'s port {}, not {container_port}: run it with -p {host_port}:{container_port}", p.container_port), Some(Element::Port(*host_port))));
                }
                let dest = format!("{}:{}", p.container_ip, p.container_port);
                let hp = host_port.to_string();
                let is_dnat = |t: &str, r: &str| {
                    t == "nat" && r.starts_with("-A DOCKER ") && has_tokens(r, &["--dport", &hp, "-j", "DNAT", "--to-destination", &dest])
                };
                if state.kernel_rules.iter().any(|(t, r)| is_dnat(t, r)) {
                    return Ok(());
                }
                match state.rules.iter().find(|(t, r)| is_dnat(t, r)) {
                    Some((t, r)) => Err(broken(
                        "port.dnat_missing",
                        format!("port {host_port} is published but no DNAT rule in nat DOCKER sends it to {dest} — was it deleted by hand? (docker stop and run {container} again puts it back)"),
                        Some(Element::Rule { table: t.clone(), rule: r.clone() }),
                    )),
                    None => Err(todo("port.dnat_removed", format!("berth took down the DNAT rule of port {host_port}: the port is being unpublished"), Some(Element::Port(*host_port)))),
                }
            }
            Check::OverlayMounted { container } => {
                let c = running(state, container)?;
                let observed = state.mounts.get(&c.layer.merged);
                match observed {
                    _ if !c.mounted => Err(broken(
                        "overlay.not_mounted",
                        format!("{container} runs but berth has no overlay mounted at {}", c.layer.merged),
                        Some(Element::Overlay(container.clone())),
                    )),
                    Some(m) if m.fstype != "overlay" => Err(broken(
                        "overlay.not_mounted",
                        format!("{} is a {} mount, not an overlay", c.layer.merged, m.fstype),
                        Some(Element::Overlay(container.clone())),
                    )),
                    _ => Ok(()),
                }
            }
            Check::OverlayFileCopiedUp { container, path } => {
                let c = running(state, container)?;
                let path = abs(path);
                if state.files.get(&c.layer.upper).is_some_and(|f| f.get(&path).is_some_and(|k| *k != FileChangeKind::Deleted)) {
                    return Ok(());
                }
                if let Some(dir) = c.layer.lower.iter().find(|d| state.files.get(*d).is_some_and(|f| f.contains_key(&path))) {
                    return Err(broken(
                        "overlay.lower_edited",
                        format!("{path} was changed in the image layer {dir}, not in {container}: every container of {} sees that, and nothing was copied up into {} — edit it inside {container} (docker exec -it {container} /bin/sh)", c.image, c.layer.upper),
                        Some(Element::Layer(dir.clone())),
                    ));
                }
                Err(todo(
                    "overlay.not_copied_up",
                    format!("{container}'s upper dir {} has no {path} yet: edit it inside the container", c.layer.upper),
                    Some(Element::Overlay(container.clone())),
                ))
            }
            Check::TwoContainersShareLower { image } => {
                let mine: Vec<&Container> =
                    state.containers.values().filter(|c| c.status == Status::Running && of_image(state, c, image)).collect();
                match mine.as_slice() {
                    [] => Err(todo(
                        "overlay.no_instance",
                        format!("no container of {image} runs: start two"),
                        Some(Element::Image(image.clone())),
                    )),
                    [one] => Err(todo(
                        "overlay.one_instance",
                        format!("only {} runs from {image}: start a second one", one.name),
                        Some(Element::Overlay(one.name.clone())),
                    )),
                    [a, rest @ ..] => match rest.iter().find(|b| b.layer.lower == a.layer.lower && b.layer.upper != a.layer.upper) {
                        Some(_) => Ok(()),
                        None => Err(broken(
                            "overlay.lower_differs",
                            format!(
                                "{} and {} do not share their lower dirs ({} vs {})",
                                a.name,
                                rest[0].name,
                                a.layer.lower.join(":"),
                                rest[0].layer.lower.join(":")
                            ),
                            Some(Element::Overlay(rest[0].name.clone())),
                        )),
                    },
                }
            }
            Check::VolumeExists { name } => match state.volumes.get(name) {
                Some(_) => Ok(()),
                None => Err(todo(
                    "volume.missing",
                    format!("there is no volume {name}: docker volume create {name}"),
                    Some(Element::Volume(name.clone())),
                )),
            },
            Check::VolumeCopiedIn { volume } => match state.volumes.get(volume) {
                None => Err(todo("volume.missing", format!("there is no volume {volume}"), Some(Element::Volume(volume.clone())))),
                Some(v) if v.populated_from.is_none() => Err(todo(
                    "volume.not_copied_in",
                    format!("{volume} is still empty: mount it over a dir of the image that has files (-v {volume}:/usr/share/nginx/html)"),
                    Some(Element::Volume(volume.clone())),
                )),
                Some(_) => Ok(()),
            },
            Check::VolumeUsedBy { volume, destination, container } => {
                if !state.volumes.contains_key(volume) {
                    return Err(todo("volume.missing", format!("there is no volume {volume}"), Some(Element::Volume(volume.clone()))));
                }
                let users =
                    state.containers.values().filter(|c| c.status == Status::Running && container.as_ref().is_none_or(|n| c.name == *n));
                let mut users = users.peekable();
                if users.peek().is_none() {
                    if let Some(n) = container {
                        running(state, n)?;
                    }
                }
                let mut seen = Vec::new();
                for c in users {
                    for m in &c.mounts {
                        if m.kind == "volume" && m.name == *volume {
                            if m.destination.trim_end_matches('/') == destination.trim_end_matches('/') {
                                return Ok(());
                            }
                            seen.push(format!("{} at {}", c.name, m.destination));
                        }
                    }
                }
                let msg = match (seen.is_empty(), container) {
                    (false, _) => format!("{volume} is mounted by {}, not at {destination}", seen.join(", ")),
                    (true, Some(n)) => format!("{n} does not mount {volume} at {destination}: run it with -v {volume}:{destination}"),
                    (true, None) => {
                        format!("no running container mounts {volume} at {destination}: run one with -v {volume}:{destination}")
                    }
                };
                Err(todo("volume.not_mounted", msg, Some(Element::Volume(volume.clone()))))
            }
            Check::VolumeFileWritten { volume, path } => {
                let Some(v) = state.volumes.get(volume) else {
                    return Err(todo("volume.missing", format!("there is no volume {volume}"), Some(Element::Volume(volume.clone()))));
                };
                let path = abs(path);
                if state.files.get(&v.mountpoint).is_some_and(|f| f.get(&path).is_some_and(|k| *k != FileChangeKind::Deleted)) {
                    Ok(())
                } else {
                    Err(todo(
                        "volume.not_edited",
                        format!(
                            "{path} in {volume} ({}{path}) has not been written yet: edit it from a container that mounts {volume}",
                            v.mountpoint
                        ),
                        Some(Element::Volume(volume.clone())),
                    ))
                }
            }
            Check::VolumeReused { volume } => {
                let Some(v) = state.volumes.get(volume) else {
                    return Err(todo("volume.missing", format!("there is no volume {volume}"), Some(Element::Volume(volume.clone()))));
                };
                let first = v.populated_from.as_ref().map(|(c, _)| c.as_str());
                // Serving it: mounted where the data was first served from
                // (a container that only edits it elsewhere does not count).
                let served_at = v.populated_from.as_ref().map(|(_, p)| p.as_str());
                let users: Vec<&Container> = state
                    .containers
                    .values()
                    .filter(|c| {
                        c.status == Status::Running
                            && c.mounts
                                .iter()
                                .any(|m| m.kind == "volume" && m.name == *volume && served_at.is_none_or(|p| m.destination == p))
                    })
                    .collect();
                if users.iter().any(|c| Some(c.id.as_str()) != first) {
                    return Ok(());
                }
                let msg = match users.first() {
                    Some(c) => format!("{volume} is still served by {}, the container it was filled from: stop it (and prune), then run a new one with -v {volume}:…", c.name),
                    None => format!("no running container mounts {volume}: run a new one with -v {volume}:…"),
                };
                Err(todo("volume.not_reused", msg, Some(Element::Volume(volume.clone()))))
            }
            Check::NoStoppedContainers => {
                let stopped: Vec<&str> =
                    state.containers.values().filter(|c| c.status != Status::Running).map(|c| c.name.as_str()).collect();
                match stopped.first() {
                    None => Ok(()),
                    Some(first) => Err(todo(
                        "container.stopped_left",
                        format!(
                            "{} stopped container{} left ({}): docker container prune",
                            stopped.len(),
                            if stopped.len() == 1 { " is" } else { "s are" },
                            stopped.join(", ")
                        ),
                        Some(Element::Container((*first).into())),
                    )),
                }
            }
            Check::BindMount { container, destination, source_suffix } => {
                let c = running(state, container)?;
                let at = c.mounts.iter().find(|m| m.destination.trim_end_matches('/') == destination.trim_end_matches('/'));
                match at {
                    Some(m) if m.kind == "bind" && m.source.trim_end_matches('/').ends_with(source_suffix.trim_end_matches('/')) => Ok(()),
                    Some(m) if m.kind == "bind" => Err(broken("bind.wrong_source", format!("{container} has {} bind-mounted at {destination}, not a dir ending in {source_suffix}", m.source), Some(Element::Container(container.clone())))),
                    Some(m) => Err(broken("bind.is_volume", format!("{container} mounts the named volume {} at {destination}, not a host dir: a bind mount's source is a path (~/data/web, or /root/data/web)", m.name), Some(Element::Volume(m.name.clone())))),
                    None => Err(todo("bind.missing", format!("{container} has nothing mounted at {destination}: run it with -v ~{source_suffix}:{destination}"), Some(Element::Container(container.clone())))),
                }
            }
            Check::ImageBuilt { tag } => {
                let want = normalize_reference(tag);
                let builds: Vec<&crate::state::Build> =
                    state.builds.values().filter(|b| b.tags.iter().any(|t| normalize_reference(t) == want)).collect();
                let made = builds
                    .iter()
                    .filter(|b| b.finished)
                    .filter_map(|b| b.image.as_deref())
                    .any(|img| state.images.get(img).is_some_and(|i| i.repo_tags.iter().any(|t| normalize_reference(t) == want)));
                if made {
                    return Ok(());
                }
                if let Some(b) = builds.iter().rev().find(|b| b.finished && b.error.is_some()) {
                    return Err(broken(
                        "build.failed",
                        format!("the build of {want} failed: {}", b.error.clone().unwrap_or_default()),
                        Some(Element::Build(want)),
                    ));
                }
                if builds.iter().any(|b| !b.finished) {
                    return Err(todo("build.running", format!("{want} is being built"), Some(Element::Build(want))));
                }
                Err(todo("build.missing", format!("no build has made {want} yet: docker build -t {want} …"), Some(Element::Build(want))))
            }
        }
    }
}

fn abs(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}
