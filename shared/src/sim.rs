//! The offline simulator: node1 with simulated I/O. It takes the lab's
//! commands as a shell would, decides what the engine would do and emits the
//! same [`Event`]s berthd emits (rule texts from [`crate::netfilter`],
//! addresses from [`crate::ipam`]), so the page draws it with the same
//! components. Outputs are shaped like the real tools' (docker CLI tables,
//! iproute2, iptables). Pure: no clock, no randomness but a seeded one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::container::{refusal, RwLayer};
use crate::event::{EngineMode, Envelope, Event, FileChangeKind, Mount};
use crate::ipam::{mac_for, mac_string, Ipam};
use crate::netfilter::{bridge_rules, global_rules, PortMap};
use crate::plan::{self, Plan, Step};
use crate::state::{apply, State};

const ROOT: &str = "/var/lib/berth";

/// An image the simulated registry has.
struct Image {
    name: &'static str,
    id: &'static str,
    layers: &'static [&'static str],
    cmd: &'static [&'static str],
    exposed: Option<&'static str>,
    size: &'static str,
}

const IMAGES: &[Image] = &[
    Image {
        name: "hello-world:latest",
        id: "sha256:74cc54e27dc41bb10dc4b2226072d469509f2f22f1a3ce74f4a59661a1d44602",
        layers: &["e07ee1baac5fae6a26f30cabfe54a36d3402f96afda318fe0a96cec4ca393359"],
        cmd: &["/hello"],
        exposed: None,
        size: "13.3kB",
    },
    Image {
        name: "alpine:latest",
        id: "sha256:88e1bfc6615d2e3e7ffd3a07bb7d4b1ab2de3d1a69d7a7e5e3f0e3a1e0a7c9d2",
        layers: &["5a6fd8a4a23d9c2c1f0d5cbbe3b5e4d6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2"],
        cmd: &["/bin/sh"],
        exposed: None,
        size: "2.04MB",
    },
    Image {
        name: "nginx:alpine",
        id: "sha256:799f2b34929564792fb15a52a07fb9f81950221b081c23441fb3b9122b1af609",
        layers: &[
            "5a6fd8a4a23d9c2c1f0d5cbbe3b5e4d6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2",
            "05710008d9544b3f5b8c0a1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f",
            "4c1fca9a2218a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5",
        ],
        cmd: &["nginx", "-g", "daemon off;"],
        exposed: Some("80/tcp"),
        size: "11.8MB",
    },
    Image {
        name: "gourmetgram-base:libtorch-2.13.0",
        id: "sha256:3b6c2d9e0f1a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        layers: &[
            "5a6fd8a4a23d9c2c1f0d5cbbe3b5e4d6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2",
            "6e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d",
            "9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e",
        ],
        cmd: &["/bin/sh"],
        exposed: None,
        size: "452MB",
    },
];

const LEGACY_BUILDER_NOTICE: &str = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\n";

/// The fixture nginx image's error page (scripts/fixtures.py writes the same).
const ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Error</title></head>\n<body><h1>An error occurred.</h1></body></html>\n";
const WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking.</p>\n</body>\n</html>\n";

/// An image the simulated node1 has: from the catalog or built here.
#[derive(Clone, Debug)]
struct ImageInfo {
    name: String,
    id: String,
    layers: Vec<String>,
    cmd: Vec<String>,
    exposed: Option<String>,
}

impl From<&Image> for ImageInfo {
    fn from(i: &Image) -> Self {
        ImageInfo {
            name: i.name.into(),
            id: i.id.into(),
            layers: i.layers.iter().map(|l| l.to_string()).collect(),
            cmd: i.cmd.iter().map(|c| c.to_string()).collect(),
            exposed: i.exposed.map(String::from),
        }
    }
}

/// The GourmetGram build context, as a directory in the learner's home
/// (the differential test writes the same files for the real engine). The
/// Dockerfile and Cargo.toml are the real ones (gourmetgram/); the lock,
/// the weights and the binary are small stand-ins.
pub const GG_FILES: &[(&str, &str)] = &[
    ("Dockerfile", include_str!("../../gourmetgram/Dockerfile")),
    ("Cargo.toml", include_str!("../../gourmetgram/Cargo.toml")),
    ("Cargo.lock", "# simulated node1: the real lock pins the service's crates\n"),
    ("food11.pth", "simulated node1: the real food11.pth is a torch.save zip of MobileNetV2 weights\n"),
    ("bin/gourmetgram", "simulated node1: scripts/gourmetgram.sh build puts the real binary here\n"),
    ("src/main.rs", "// GourmetGram: axum + tch, classifies food photos into 11 classes.\n"),
    ("templates/index.html", "<h1>GourmetGram</h1>\n"),
];

const GG_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>GourmetGram</title></head>\n<body>\n<h1>GourmetGram</h1>\n<p>Upload a food photo: Bread, Dairy product, Dessert, Egg, Fried food, Meat, Noodles/Pasta, Rice, Seafood, Soup, Vegetable/Fruit.</p>\n<p>(simulated node1: this page stands in for the real service)</p>\n</body>\n</html>\n";

fn find_image(name: &str) -> Option<&'static Image> {
    let full = if name.contains(':') { name.to_string() } else { format!("{name}:latest") };
    let full = full.trim_start_matches("docker.io/library/").trim_start_matches("library/").to_string();
    IMAGES.iter().find(|i| i.name == full)
}

/// A simulated container's files and settings beyond State.
#[derive(Clone, Debug, Default)]
struct Extra {
    image: String,
    /// Files written in the container (its upper dir): path → content.
    upper: BTreeMap<String, String>,
    logs: Vec<String>,
    auto_remove: bool,
    /// (volume name, mount path)
    volumes: Vec<(String, String)>,
}

/// What one command line gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    pub text: String,
    pub events: Vec<Envelope>,
    /// `vi FILE`: the terminal opens an editor on (path, content) and hands
    /// the result to [`Sim::save_file`].
    pub editor: Option<(String, String)>,
}

#[derive(Debug)]
pub struct Sim {
    pub state: State,
    seq: u64,
    now_ms: u64,
    rng: u64,
    ipam: Ipam,
    pulled: Vec<String>,
    /// Images built here, by tag.
    built: BTreeMap<String, ImageInfo>,
    /// The build cache: (parent, instruction) → image after the step.
    build_cache: BTreeMap<(String, String), (String, Option<String>)>,
    extra: BTreeMap<String, Extra>,
    /// Volume contents: name → path → content.
    volume_files: BTreeMap<String, BTreeMap<String, String>>,
    /// The container an interactive shell runs in (`docker run -it`, `exec -it`).
    pub inside: Option<String>,
    /// That shell's working directory (`cd`, `pwd`, relative paths).
    cwd: String,
    /// Whether the command's output goes to a terminal (`ls` prints columns
    /// there, one name a line elsewhere, as busybox does).
    tty: bool,
    /// The learner's copy of the GourmetGram context: path → content.
    gg_files: BTreeMap<String, String>,
    out: Vec<Envelope>,
    next_index: u32,
    /// The guided lab whose progress it reports, as berthd does: after
    /// every event, the progress events `Lab::tick` asks for.
    lab: Option<crate::lab::Lab>,
}

fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

/// Columns padded as the docker CLI's tabwriter does (3 spaces apart).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0)).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl Sim {
    /// node1 as berthd leaves it at start: docker0 and Docker's rules.
    pub fn new(now_ms: u64) -> Self {
        let ipam = Ipam::new("172.17.0.0/16").unwrap_or_else(|_| unreachable_ipam());
        let mut sim = Sim {
            state: State::default(),
            seq: 0,
            now_ms,
            rng: 0x9e37_79b9_7f4a_7c15 ^ now_ms,
            ipam,
            pulled: Vec::new(),
            built: BTreeMap::new(),
            build_cache: BTreeMap::new(),
            extra: BTreeMap::new(),
            volume_files: BTreeMap::new(),
            inside: None,
            cwd: "/".into(),
            tty: true,
            gg_files: GG_FILES.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
            out: Vec::new(),
            next_index: 4,
            lab: None,
        };
        sim.emit(Event::DaemonStarted {
            version: "simulated".into(),
            api_version: crate::API_VERSION.into(),
            root: ROOT.into(),
            socket: "/run/berth/docker.sock".into(),
            engine: EngineMode::Live,
            reason: None,
        });
        for (i, (name, kind, addr)) in
            [("lo", "", "127.0.0.1/8"), ("eth0", "", "192.168.1.10/24"), ("docker0", "bridge", "172.17.0.1/16")].iter().enumerate()
        {
            sim.emit(Event::LinkObserved {
                index: i as u32 + 1,
                name: (*name).into(),
                kind: (*kind).into(),
                master: None,
                up: true,
                link_netnsid: None,
            });
            let (a, p) = addr.split_once('/').unwrap_or((addr, "24"));
            sim.emit(Event::AddressObserved { link: (*name).into(), address: a.into(), prefix: p.parse().unwrap_or(24) });
        }
        sim.emit(Event::RouteObserved { dst: "default".into(), gateway: Some("192.168.1.1".into()), dev: Some("eth0".into()) });
        sim.emit(Event::RouteObserved { dst: "172.17.0.0/16".into(), gateway: None, dev: Some("docker0".into()) });
        sim.emit(Event::BridgeUp { name: "docker0".into(), address: "172.17.0.1".into(), prefix: 16, created: true });
        // Each rule inserted at its place, last first, as berthd does.
        let standing: Vec<_> = global_rules().into_iter().chain(bridge_rules("docker0", "172.17.0.0/16")).collect();
        for (r, _) in standing.iter().rev() {
            sim.push(Event::RuleAdded { table: r.table.into(), rule: r.text() });
        }

        sim.out.clear();
        sim
    }

    fn emit(&mut self, event: Event) {
        let progress = matches!(event, Event::LabProgress { .. });
        // What berthd's rule observer then sees in the kernel's ruleset.
        let kernel = match &event {
            Event::RuleAdded { table, rule } => Some(Event::KernelRuleObserved { table: table.clone(), rule: rule.clone() }),
            Event::RuleRemoved { table, rule } => Some(Event::KernelRuleGone { table: table.clone(), rule: rule.clone() }),
            _ => None,
        };
        self.push(event);
        if let Some(k) = kernel {
            self.push(k);
        }
        if !progress {
            self.tick_lab();
        }
    }

    /// Runs a plan (decided as berthd decides it) on the simulated host.
    fn execute(&mut self, plan: &Plan) {
        let links = self.state.links.iter().map(|(name, l)| (name.clone(), l.index)).collect();
        let mut host = SimHost { ipam: &mut self.ipam, links, next_index: &mut self.next_index };
        let mut told = Vec::new();
        // The simulated host cannot fail.
        let _ = plan::execute_now(&mut host, plan, &mut |e| told.push(e));
        for e in told {
            self.emit(e);
        }
    }

    fn push(&mut self, event: Event) {
        self.seq += 1;
        self.now_ms += 1;
        apply(&mut self.state, &event);
        self.out.push(Envelope::new(self.seq, self.now_ms, event));
    }

    fn tick_lab(&mut self) {
        let events = self.lab.as_ref().map(|l| l.tick(&self.state)).unwrap_or_default();
        for e in events {
            self.push(e);
        }
    }

    /// Judges progress through `lab` from now on, as berthd does live; its
    /// first progress (the first step current) is part of the start state.
    /// `completed` are steps a learner completed before (the page keeps them
    /// across a reload: the simulated node1 itself starts anew).
    pub fn with_lab(mut self, lab: crate::lab::Lab, completed: &[String]) -> Self {
        for step in completed.iter().filter(|s| lab.step(s).is_some()) {
            let done = Event::LabProgress { lab: lab.id.clone(), step: step.clone(), change: crate::lab::LabChange::StepCompleted };
            apply(&mut self.state, &done);
        }
        self.lab = Some(lab);
        self.tick_lab();
        self.out.clear();
        self
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::new();
        while s.len() < n {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            s.push_str(&format!("{:016x}", self.rng));
        }
        s.truncate(n);
        s
    }

    /// The prompt the terminal shows.
    pub fn prompt(&self) -> String {
        match &self.inside {
            // busybox sh's `\w # ` (root's home as ~).
            Some(_) => format!("{} # ", if self.cwd == "/root" { "~" } else { self.cwd.as_str() }),
            None => "\x1b[1;32mroot@node1\x1b[0m:\x1b[1;34m~\x1b[0m# ".into(),
        }
    }

    /// Runs one command line at `now_ms`.
    pub fn run(&mut self, line: &str, now_ms: u64) -> Output {
        self.now_ms = self.now_ms.max(now_ms);
        self.out.clear();
        let (line, jq) = match line.split_once("| jq") {
            Some((l, q)) => (l.trim().to_string(), Some(words(q).into_iter().filter(|w| !w.starts_with('-')).collect::<Vec<_>>().join(""))),
            None => (line.trim().to_string(), None),
        };
        let mut argv = words(&line);
        while argv.first().map(String::as_str) == Some("sudo") {
            argv.remove(0);
        }
        if let (Some(id), ["vi" | "vim", path]) = (self.inside.clone(), argv.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
            let content = self.read_file(&id, &self.abs(path)).unwrap_or_default();
            return Output { text: String::new(), events: std::mem::take(&mut self.out), editor: Some((path.to_string(), content)) };
        }
        let mut text = if argv.is_empty() {
            String::new()
        } else if self.inside.is_some() {
            self.container_shell(&argv)
        } else {
            self.host_shell(&argv)
        };
        if let Some(path) = jq {
            text = jq_path(&text, &path);
        }
        Output { text, events: std::mem::take(&mut self.out), editor: None }
    }

    /// What an editor wrote (`:w`, `:wq`), into the container the shell is
    /// in; returns the events the write made (its `FileChanged`).
    pub fn save_file(&mut self, path: &str, content: &str) -> Vec<Envelope> {
        self.out.clear();
        if let Some(id) = self.inside.clone() {
            let path = self.abs(path);
            self.write_file(&id, &path, content);
        }
        std::mem::take(&mut self.out)
    }

    fn host_shell(&mut self, argv: &[String]) -> String {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["docker", rest @ ..] => self.docker(rest),
            ["ip", rest @ ..] => self.ip(rest, None),
            ["iptables", rest @ ..] if rest.iter().any(|w| matches!(*w, "-D" | "--delete" | "-A" | "--append" | "-I" | "--insert")) => {
                self.iptables_edit(rest)
            }
            ["iptables", rest @ ..] => self.iptables(rest),
            ["curl" | "wget" | "lynx", rest @ ..] => self.fetch(rest),
            ["hostname"] => "node1\n".into(),
            ["id"] => "uid=0(root) gid=0(root) groups=0(root)\n".into(),
            ["ls"] => "gourmetgram\n".into(),
            ["ls", dir] if dir.trim_end_matches('/') == "gourmetgram" => {
                let mut names: Vec<&str> = self.gg_files.keys().map(|k| k.split('/').next().unwrap_or(k)).collect();
                names.sort_unstable();
                names.dedup();
                format!("{}\n", names.join("  "))
            }
            ["ls", dir] => format!("ls: cannot access '{dir}': No such file or directory\n"),
            ["cat", path] => match self.gg_files.get(path.trim_start_matches("./").trim_start_matches("gourmetgram/")) {
                Some(content) if path.trim_start_matches("./").starts_with("gourmetgram/") => content.clone(),
                _ => format!("cat: {path}: No such file or directory\n"),
            },
            ["echo", rest @ ..] => {
                // `echo TEXT > FILE` / `>> FILE` into the GourmetGram context.
                let (append, at) = match rest.iter().position(|w| *w == ">>") {
                    Some(i) => (true, Some(i)),
                    None => (false, rest.iter().position(|w| *w == ">")),
                };
                match at {
                    Some(i) if rest.len() == i + 2 => {
                        let text = format!("{}\n", rest[..i].join(" "));
                        let path = rest[i + 1].trim_start_matches("./");
                        match path.strip_prefix("gourmetgram/") {
                            Some(rel) => {
                                let f = self.gg_files.entry(rel.to_string()).or_default();
                                if append {
                                    f.push_str(&text);
                                } else {
                                    *f = text;
                                }
                                String::new()
                            }
                            None => format!("bash: {path}: Read-only file system (simulated node1)\n"),
                        }
                    }
                    _ => format!("{}\n", rest.join(" ")),
                }
            }
            ["clear"] => "\x1b[H\x1b[2J".into(),
            ["exit"] => "logout (the simulated node1 stays: reload the page to start over)\n".into(),
            ["help"] => "The simulated node1 knows the lab's commands: docker (pull, run, ps, logs, stop, rm, exec, inspect, images, network, volume), ip addr|link|route, iptables --list -n [-t nat], curl/wget, hostname, echo, clear.\n".into(),
            [cmd, ..] => format!("bash: {cmd}: command not found\n"),
            [] => String::new(),
        }
    }

    fn container_shell(&mut self, argv: &[String]) -> String {
        // `a && b`, `a; b`: one after the other (`&&` stops at a failure,
        // known here by the shell's and tools' error words).
        if let Some(at) = argv.iter().position(|w| w == "&&" || w == ";") {
            let first = self.container_shell(&argv[..at]);
            let failed = ["/bin/sh:", "cat: can't", "ls: "].iter().any(|e| first.starts_with(e));
            if argv[at] == "&&" && failed {
                return first;
            }
            return first + &self.container_shell(&argv[at + 1..]);
        }
        let id = self.inside.clone().unwrap_or_default();
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["exit"] => {
                let leaving = self.inside.take();
                if let Some(id) = leaving {
                    // A `run -it` shell ends its container; an exec shell does not.
                    if self.extra.get(&id).is_some_and(|e| e.image.starts_with("alpine")) {
                        self.stop(&id, 0);
                    }
                }
                String::new()
            }
            ["ip", rest @ ..] => self.ip(rest, Some(&id)),
            ["hostname"] => format!("{}\n", &id[..12]),
            ["pwd"] => format!("{}\n", self.cwd),
            ["cd"] => {
                self.cwd = "/root".into();
                String::new()
            }
            ["cd", dir] => {
                let to = self.abs(dir);
                if self.is_dir(&id, &to) {
                    self.cwd = to;
                    String::new()
                } else {
                    format!("/bin/sh: cd: can't cd to {dir}: No such file or directory\n")
                }
            }
            ["echo", rest @ ..] => {
                let joined = rest.join(" ");
                if let Some((text, file)) = joined.split_once('>') {
                    let file = self.abs(file.trim());
                    self.write_file(&id, &file, &format!("{}\n", text.trim()));
                    String::new()
                } else {
                    format!("{joined}\n")
                }
            }
            ["cat", path] => self.read_file(&id, &self.abs(path)).unwrap_or_else(|| format!("cat: can't open '{path}': No such file or directory\n")),
            ["df", ..] => String::from("Filesystem           1K-blocks      Used Available Use% Mounted on\noverlay               61255492  12345678  45678901  22% /\ntmpfs                    65536         0     65536   0% /dev\n"),
            ["traceroute", host] => format!(
                "traceroute to {host} ({host}), 30 hops max, 46 byte packets\n 1  172.17.0.1 (172.17.0.1)  0.052 ms  0.021 ms  0.018 ms\n 2  192.168.1.1 (192.168.1.1)  0.611 ms  0.482 ms  0.455 ms\n 3  10.0.0.1 (10.0.0.1)  4.912 ms  4.630 ms  4.588 ms\n 4  {host} ({host})  11.204 ms  10.987 ms  11.015 ms\n"
            ),
            ["ls", rest @ ..] => {
                let dir = match rest.first() {
                    Some(d) => self.abs(d),
                    None => self.cwd.clone(),
                };
                self.list_dir(&id, &dir)
            }
            [cmd, ..] => format!("/bin/sh: {cmd}: not found\n"),
            [] => String::new(),
        }
    }

    fn by_name(&self, key: &str) -> Option<String> {
        self.state.containers.values().find(|c| c.name == key || c.id.starts_with(key)).map(|c| c.id.clone())
    }

    fn docker(&mut self, a: &[&str]) -> String {
        if let Some(msg) = crate::cli::check_docker(a) {
            // The CLI warns about the legacy builder before it checks anything.
            return if a.first() == Some(&"build") { format!("{LEGACY_BUILDER_NOTICE}{msg}") } else { msg };
        }
        match a {
            ["pull", image] => self.pull(image).unwrap_or_else(|e| e),
            ["images"] | ["image", "ls"] => {
                let mut rows = vec![vec!["REPOSITORY".into(), "TAG".into(), "IMAGE ID".into(), "CREATED".into(), "SIZE".into()]];
                for (name, b) in &self.built {
                    let (repo, tag) = name.split_once(':').unwrap_or((name, "latest"));
                    rows.push(vec![repo.into(), tag.into(), b.id[7..19].into(), "Less than a second ago".into(), "14.1MB".into()]);
                }
                for name in &self.pulled {
                    if let Some(i) = find_image(name) {
                        let (repo, tag) = i.name.split_once(':').unwrap_or((i.name, "latest"));
                        rows.push(vec![repo.into(), tag.into(), i.id[7..19].into(), "2 weeks ago".into(), i.size.into()]);
                    }
                }
                table(&rows)
            }
            ["run", rest @ ..] => self.docker_run(rest),
            ["build", rest @ ..] => self.build(rest),
            ["ps", rest @ ..] => self.ps(rest.contains(&"-a") || rest.contains(&"--all")),
            [verb @ ("stop" | "kill"), names @ ..] => {
                let kill = *verb == "kill";
                let mut out = String::new();
                for n in names.iter().filter(|n| !n.starts_with('-') && n.parse::<u32>().is_err()) {
                    let Some(id) = self.by_name(n) else {
                        out.push_str(&format!("Error response from daemon: {}\n", refusal::no_such_container(n)));
                        continue;
                    };
                    // berthd's decision: its signal (SIGKILL, or the lab's
                    // images' stop signal, SIGTERM, which they exit 0 on).
                    match plan::kill(&self.state, &id, if kill { plan::SIGKILL } else { 15 }) {
                        Ok(signal) => {
                            self.execute(&signal);
                            self.stop(&id, if kill { 137 } else { 0 });
                        }
                        // A stop of a stopped container is no error (Docker's 304).
                        Err(why) if kill => {
                            out.push_str(&format!("Error response from daemon: {why}\n"));
                            continue;
                        }
                        Err(_) => {}
                    }
                    out.push_str(&format!("{n}\n"));
                }
                out
            }
            ["rm", names @ ..] => {
                let mut out = String::new();
                let force = names.contains(&"-f");
                for n in names.iter().filter(|n| !n.starts_with('-')) {
                    match self.by_name(n) {
                        Some(id) => {
                            let status = self.state.containers.get(&id).map(|c| c.status).unwrap_or(crate::Status::Exited);
                            if let Some(why) = refusal::remove(&id, status, false, force) {
                                out.push_str(&format!("Error response from daemon: {why}\n"));
                                continue;
                            }
                            if self.running(&id) {
                                self.stop(&id, 137);
                            }
                            self.remove(&id);
                            out.push_str(&format!("{n}\n"));
                        }
                        None => out.push_str(&format!("Error response from daemon: {}\n", refusal::no_such_container(n))),
                    }
                }
                out
            }
            ["container", "prune", ..] => {
                let dead: Vec<String> = self.state.containers.values().filter(|c| c.status != crate::Status::Running).map(|c| c.id.clone()).collect();
                let mut out = String::from("Deleted Containers:\n");
                for id in &dead {
                    self.remove(id);
                    out.push_str(&format!("{id}\n"));
                }
                out.push_str("\nTotal reclaimed space: 0B\n");
                out
            }
            ["logs", name] => match self.by_name(name) {
                Some(id) => self.extra.get(&id).map(|e| e.logs.concat()).unwrap_or_default(),
                None => format!("Error response from daemon: {}\n", refusal::no_such_container(name)),
            },
            ["exec", rest @ ..] => {
                // Its options, then the container, then the command (with its own flags).
                let (mut i, mut tty, mut workdir) = (0, false, None);
                while i < rest.len() && rest[i].starts_with('-') {
                    match rest[i] {
                        "-w" | "--workdir" => {
                            workdir = rest.get(i + 1).copied();
                            i += 1;
                        }
                        "-e" | "--env" | "-u" | "--user" | "--detach-keys" | "--env-file" => i += 1,
                        f if f.starts_with("--workdir=") => workdir = f.strip_prefix("--workdir="),
                        f if !f.starts_with("--") && f.contains('t') => tty = true,
                        _ => {}
                    }
                    i += 1;
                }
                let cwd = match workdir {
                    Some(w) if w.starts_with('/') => w.to_string(),
                    Some(w) => return format!("Error response from daemon: the working directory '{w}' is invalid, it needs to be an absolute path\n"),
                    None => "/".to_string(),
                };
                match &rest[i.min(rest.len())..] {
                    [name, cmd @ ..] => match self.by_name(name) {
                        Some(id) if self.running(&id) => {
                            if cmd.is_empty() || matches!(cmd, ["sh"] | ["/bin/sh"] | ["bash"]) {
                                self.inside = Some(id);
                                self.cwd = cwd;
                                String::new()
                            } else {
                                // `sh -c SCRIPT` runs SCRIPT; without -t nothing is a terminal.
                                let argv: Vec<String> = match cmd {
                                    ["sh" | "/bin/sh", "-c", script] => words(script),
                                    _ => cmd.iter().map(|s| s.to_string()).collect(),
                                };
                                let outer = std::mem::replace(&mut self.cwd, cwd);
                                self.inside = Some(id);
                                self.tty = tty;
                                let out = self.container_shell(&argv);
                                self.tty = true;
                                self.inside = None;
                                self.cwd = outer;
                                out
                            }
                        }
                        Some(id) => format!("Error response from daemon: {}\n", refusal::not_running(&id)),
                        None => format!("Error response from daemon: {}\n", refusal::no_such_container(name)),
                    },
                    _ => "\"docker exec\" requires at least 2 arguments.\n".into(),
                }
            }
            ["inspect", name] | ["container", "inspect", name] => match self.by_name(name) {
                Some(id) => self.inspect(&id),
                None => match self.lookup(name) {
                    Some(i) => image_inspect(&i),
                    None => format!("[]\nError: No such object: {name}\n"),
                },
            },
            ["image", "inspect", name] => match self.lookup(name).filter(|i| self.built.contains_key(&i.name) || self.pulled.contains(&i.name)) {
                Some(i) => image_inspect(&i),
                None => format!("[]\nError: No such image: {name}\n"),
            },
            ["network", "ls"] => table(&[
                vec!["NETWORK ID".into(), "NAME".into(), "DRIVER".into(), "SCOPE".into()],
                vec!["b1a8e0f3c2d1".into(), "bridge".into(), "bridge".into(), "local".into()],
                vec!["6a5d4c3b2a19".into(), "host".into(), "host".into(), "local".into()],
                vec!["0f9e8d7c6b5a".into(), "none".into(), "null".into(), "local".into()],
            ]),
            ["network", "inspect", "bridge"] => self.network_inspect(),
            ["volume", "create", name] => {
                self.create_volume(name);
                format!("{name}\n")
            }
            ["volume", "ls"] => {
                let mut rows = vec![vec!["DRIVER".into(), "VOLUME NAME".into()]];
                rows.extend(self.state.volumes.keys().map(|v| vec!["local".into(), v.clone()]));
                table(&rows)
            }
            ["volume", "inspect", name] => match self.state.volumes.get(*name) {
                Some(v) => format!("[\n    {{\n        \"CreatedAt\": \"2026-11-28T12:00:00Z\",\n        \"Driver\": \"local\",\n        \"Labels\": null,\n        \"Mountpoint\": \"{}\",\n        \"Name\": \"{name}\",\n        \"Options\": null,\n        \"Scope\": \"local\"\n    }}\n]\n", v.mountpoint),
                None => format!("[]\nError response from daemon: {}\n", refusal::no_such_volume(name)),
            },
            ["volume", "rm", name] => match plan::remove_volume(&self.state, name) {
                Ok(plan) => {
                    self.execute(&plan);
                    self.volume_files.remove(*name);
                    format!("{name}\n")
                }
                Err(why) => format!("Error response from daemon: {why}\n"),
            },
            ["version"] => format!(
                "Client: Docker Engine - Community\n Version:           28.2.2\n\nServer: berth (simulated node1)\n Engine:\n  Version:          simulated\n  API version:      {} (minimum version {})\n",
                crate::API_VERSION,
                crate::MIN_API_VERSION
            ),
            [] | ["--help"] | ["help"] => "Usage:  docker [OPTIONS] COMMAND\n\nThe simulated node1 knows: pull, images, run, ps, logs, stop, kill, rm, exec, inspect, image inspect, network ls|inspect, volume create|ls|inspect|rm, container prune, version\n".into(),
            [cmd, ..] => format!("docker: '{cmd}' is not a docker command in the simulated node1.\nSee 'docker --help'\n"),
        }
    }

    fn pull(&mut self, image: &str) -> Result<String, String> {
        let i = find_image(image).ok_or_else(|| {
            format!("Error response from daemon: pull access denied for {image}, repository does not exist or may require 'docker login'\n")
        })?;
        let (repo, tag) = i.name.split_once(':').unwrap_or((i.name, "latest"));
        let mut out = format!("{tag}: Pulling from library/{repo}\n");
        let mut lower: Vec<String> = Vec::new();
        for l in i.layers {
            let chain = format!("sha256:{l}");
            if self.state.layers.contains_key(&chain) {
                out.push_str(&format!("{}: Already exists\n", &l[..12]));
            } else {
                self.emit(Event::LayerAdded {
                    chain_id: chain.clone(),
                    diff_id: chain.clone(),
                    dir: format!("{ROOT}/overlay2/{l}/diff"),
                    size: 1_000_000,
                });
                out.push_str(&format!("{}: Pull complete\n", &l[..12]));
            }
            lower.push(chain);
        }
        let existed = self.pulled.iter().any(|p| p == i.name);
        if !existed {
            self.pulled.push(i.name.into());
            self.emit(Event::ImageAdded { id: i.id.into(), repo_tags: vec![i.name.into()], repo_digests: vec![], layers: lower, size: 0 });
        }
        out.push_str(&format!(
            "Digest: sha256:{}\nStatus: {} for {}\ndocker.io/library/{}\n",
            &i.id[7..],
            if existed { "Image is up to date" } else { "Downloaded newer image" },
            i.name,
            i.name
        ));
        Ok(out)
    }

    /// A local image by name: built here, or pulled from the catalog.
    fn lookup(&self, name: &str) -> Option<ImageInfo> {
        let tagged = if name.contains(':') { name.to_string() } else { format!("{name}:latest") };
        if let Some(b) = self.built.get(&tagged) {
            return Some(b.clone());
        }
        find_image(name).map(ImageInfo::from)
    }

    fn running(&self, id: &str) -> bool {
        self.state.containers.get(id).is_some_and(|c| c.status == crate::Status::Running)
    }

    fn docker_run(&mut self, a: &[&str]) -> String {
        let mut name = None;
        let (mut detach, mut interactive, mut rm) = (false, false, false);
        let mut ports = Vec::new();
        let mut volumes = Vec::new();
        let mut i = 0;
        while i < a.len() && a[i].starts_with('-') {
            match a[i] {
                "-d" | "--detach" => detach = true,
                f if f.len() > 1 && !f.starts_with("--") && f[1..].chars().all(|c| "dit".contains(c)) => {
                    detach |= f.contains('d');
                    interactive |= f.contains('i') || f.contains('t');
                }
                "--rm" => rm = true,
                "--name" => {
                    i += 1;
                    name = a.get(i).map(|s| s.to_string());
                }
                "-p" | "--publish" => {
                    i += 1;
                    let spec = a.get(i).copied().unwrap_or("");
                    let (h, c) = spec.split_once(':').unwrap_or((spec, spec));
                    match (h.parse::<u16>(), c.trim_end_matches("/tcp").parse::<u16>()) {
                        (Ok(h), Ok(c)) => ports.push((h, c)),
                        _ => {
                            return format!(
                                "docker: invalid publish opts format (should be name=value but got '{spec}').\nSee 'docker run --help'.\n"
                            )
                        }
                    }
                }
                "-v" | "--volume" => {
                    i += 1;
                    let spec = a.get(i).copied().unwrap_or("");
                    match spec.split_once(':') {
                        Some((v, p)) => volumes.push((v.to_string(), p.to_string())),
                        None => return format!("docker: invalid volume specification: '{spec}'.\n"),
                    }
                }
                // Valid flags the simulation does not model (checked by cli::check_docker).
                other => {
                    if crate::cli::takes_value("run", other) && !other.contains('=') {
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        let Some(image) = a.get(i).copied() else { return crate::cli::check_docker(&["run"]).unwrap_or_default() };
        let cmd: Vec<String> = a[i + 1..].iter().map(|s| s.to_string()).collect();
        let Some(img) = self.lookup(image) else {
            return format!("Unable to find image '{image}' locally\ndocker: Error response from daemon: pull access denied for {image}, repository does not exist or may require 'docker login'.\n");
        };
        let mut out = String::new();
        if !self.built.contains_key(&img.name) && !self.pulled.contains(&img.name) {
            out.push_str(&format!("Unable to find image '{}' locally\n", img.name));
            out.push_str(&self.pull(&img.name).unwrap_or_default());
        }
        if let Some(n) = &name {
            if let Some(other) = self.state.containers.values().find(|c| c.name == *n) {
                return format!("docker: Error response from daemon: {}\nSee 'docker run --help'.\n", refusal::name_in_use(n, &other.id));
            }
        }
        let id = self.hex(64);
        let name = name.unwrap_or_else(|| format!("sim_{}", &id[..6]));
        let store = format!("{ROOT}/overlay2");
        let layer = RwLayer::for_container(&store, &id, img.layers.iter().rev().map(|l| format!("{store}/{l}/diff")).collect());
        let mut mounts = Vec::new();
        // A source that is a path is a bind mount of a host dir, not a volume.
        let (binds, volumes): (Vec<_>, Vec<_>) =
            volumes.into_iter().partition(|(v, _)| v.starts_with('/') || v.starts_with('~') || v.starts_with('.'));
        for (src, p) in &binds {
            let source = match src.strip_prefix('~') {
                Some(rest) => format!("/root{rest}"),
                None => src.clone(),
            };
            mounts.push(Mount { kind: "bind".into(), name: String::new(), source, destination: p.clone(), readonly: false });
        }
        for (v, p) in &volumes {
            self.create_volume(v);
            mounts.push(Mount {
                kind: "volume".into(),
                name: v.clone(),
                source: format!("{ROOT}/volumes/{v}/_data"),
                destination: p.clone(),
                readonly: false,
            });
        }
        let command = if cmd.is_empty() { img.cmd.clone() } else { cmd.clone() };
        self.emit(Event::ContainerCreated {
            id: id.clone(),
            name: name.clone(),
            image: image.into(),
            image_id: img.id.clone(),
            command: command.clone(),
            layer: layer.clone(),
            mounts,
            labels: Default::default(),
        });
        self.extra.insert(id.clone(), Extra { image: img.name.clone(), auto_remove: rm, volumes: volumes.clone(), ..Extra::default() });
        // Copy-in: an empty volume over nginx's html dir gets the image's page.
        for (v, p) in &volumes {
            if img.name.starts_with("nginx") && p == "/usr/share/nginx/html" && self.volume_files.get(v).is_some_and(|f| f.is_empty()) {
                let files = self.volume_files.entry(v.clone()).or_default();
                files.insert("index.html".into(), WELCOME.into());
                files.insert("50x.html".into(), ERROR_PAGE.into());
                self.emit(Event::VolumePopulated { name: v.clone(), container: id.clone(), path: p.clone(), files: 2 });
            }
        }
        self.execute(&Plan::whole(vec![plan::mount_root(&id, &layer)]));
        // A host port another container holds: as in berthd, its proxy cannot
        // claim it, so the start fails before joining the network, its run is
        // taken apart, and the container stays, exited.
        if let Some((h, _)) = ports.iter().find(|(h, _)| self.state.containers.values().any(|c| c.ports.iter().any(|p| p.host_port == *h)))
        {
            let why = refusal::port_in_use(&id[..12], "tcp", Ipv4Addr::UNSPECIFIED, *h, "address already in use");
            self.execute(&plan::exit(&self.state, &id, 127, None));
            // The CLI: the ID it created (detached), its waiter's log line,
            // then the error.
            if detach {
                out.push_str(&format!("{id}\n"));
            }
            let now = chrono::DateTime::from_timestamp_millis(self.now_ms as i64).unwrap_or_default();
            out.push_str(&format!(
                "time=\"{}\" level=error msg=\"Error waiting for container: {why}\"\ndocker: Error response from daemon: {why}\n\nRun 'docker run --help' for more information\n",
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ));
            return out;
        }
        let ip = match self.ipam.allocate() {
            Ok(ip) => ip,
            Err(e) => return format!("docker: Error response from daemon: {e}.\n"),
        };
        let netns = format!("/run/berth/netns/{}", &id[..12]);
        let endpoint = plan::Attachment {
            id: id.clone(),
            network: "bridge".into(),
            bridge: "docker0".into(),
            netns: netns.clone(),
            ifname: "eth0".into(),
            host_if: format!("veth{}", &self.hex(7)),
            ip,
            prefix: 16,
            gateway: Ipv4Addr::new(172, 17, 0, 1),
            mac: mac_string(mac_for(ip)),
            default_route: true,
            ip6: None,
            gateway6: None,
            link_local: Vec::new(),
        };
        let maps: Vec<PortMap> = ports
            .iter()
            .map(|(h, c)| PortMap {
                proto: "tcp".into(),
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: *h,
                container_ip: ip,
                container_port: *c,
            })
            .collect();
        self.execute(&plan::join(&id, &netns, &[endpoint], &maps));
        let pid = 4000 + (self.seq % 1000) as i32;
        self.execute(&plan::started(&id, pid, true));
        match img.name.as_str() {
            "hello-world:latest" => {
                let msg = "\nHello from Docker!\nThis message shows that your installation appears to be working correctly.\n\n(berth's simulated node1: the steps behind it are on the diagrams)\n";
                self.stop(&id, 0);
                out.push_str(msg);
                out
            }
            n if n.starts_with("gourmetgram") => {
                if let Some(e) = self.extra.get_mut(&id) {
                    e.logs.push("GourmetGram listening on 0.0.0.0:8000 (model: test weights)\n".into());
                }
                if !detach {
                    out.push_str("GourmetGram listening on 0.0.0.0:8000 (model: test weights)\n");
                } else {
                    out.push_str(&format!("{id}\n"));
                }
                out
            }
            n if n.starts_with("nginx") => {
                if let Some(e) = self.extra.get_mut(&id) {
                    e.logs.push("/docker-entrypoint.sh: Configuration complete; ready for start up\n".into());
                }
                if detach {
                    out.push_str(&format!("{id}\n"));
                } else {
                    out.push_str("/docker-entrypoint.sh: Configuration complete; ready for start up\n");
                }
                out
            }
            _ => {
                if interactive && (cmd.is_empty() || cmd == ["sh"] || cmd == ["/bin/sh"]) {
                    self.inside = Some(id);
                    self.cwd = "/".into();
                } else if detach {
                    out.push_str(&format!("{id}\n"));
                } else {
                    // A one-off command: run it in the container, then it exits.
                    self.inside = Some(id.clone());
                    out.push_str(&self.container_shell(&cmd));
                    self.inside = None;
                    self.stop(&id, 0);
                }
                out
            }
        }
    }

    /// `docker build -t TAG DIR` of the bundled GourmetGram context, as the
    /// legacy builder prints it, with its cache.
    fn build(&mut self, a: &[&str]) -> String {
        let tag = a.windows(2).find(|w| w[0] == "-t").map(|w| w[1].to_string());
        let nocache = a.contains(&"--no-cache");
        let Some(dir) = a.iter().rev().find(|w| !w.starts_with('-') && Some(w.to_string()) != tag).copied() else {
            return "\"docker build\" requires exactly 1 argument.\nSee 'docker build --help'.\n".into();
        };
        if dir.trim_end_matches('/') != "gourmetgram" {
            return format!("unable to prepare context: path \"{dir}\" not found\n");
        }
        let tag = tag.map(|t| if t.contains(':') { t } else { format!("{t}:latest") });
        let dockerfile = self.gg_files.get("Dockerfile").cloned().unwrap_or_default();
        let steps: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let build = self.hex(12);
        self.emit(Event::BuildStarted { build: build.clone(), tags: tag.iter().cloned().collect(), steps: steps.len() });
        // The lab's docker CLI (28, no buildx) warns before a legacy build.
        let mut out = String::from(LEGACY_BUILDER_NOTICE);
        out.push_str("Sending build context to Docker daemon  6.144kB\n");
        let from = steps.first().and_then(|s| s.strip_prefix("FROM ")).unwrap_or("scratch").trim().to_string();
        let base = match self.lookup(&from) {
            Some(b) => b,
            None => {
                out.push_str(&format!(
                    "Step 1/{} : FROM {from}\npull access denied for {from}, repository does not exist or may require 'docker login'\n",
                    steps.len()
                ));
                return out;
            }
        };
        if !self.pulled.contains(&base.name) {
            let _ = self.pull(&from);
        }
        let (mut parent, mut layers, mut cmd, mut exposed) = (base.id.clone(), base.layers.clone(), base.cmd.clone(), None);
        for (n, step) in steps.iter().enumerate() {
            out.push_str(&format!("Step {}/{} : {step}\n", n + 1, steps.len()));
            if n == 0 {
                out.push_str(&format!(" ---> {}\n", &parent[7..19]));
                continue;
            }
            // A COPY's cache key includes what it copies, as the real builder's checksum does.
            let sources = match step.strip_prefix("COPY ") {
                Some(args) => {
                    let srcs: Vec<&str> = args.split_whitespace().collect();
                    let srcs = &srcs[..srcs.len().saturating_sub(1)];
                    self.gg_files
                        .iter()
                        .filter(|(n, _)| srcs.iter().any(|s| *s == "." || n.as_str() == *s || n.starts_with(&format!("{s}/"))))
                        .map(|(n, c)| format!("{n}\0{c}\0"))
                        .collect::<String>()
                }
                None => String::new(),
            };
            let key = (parent.clone(), format!("{step}\0{sources}"));
            let fs_step = step.starts_with("COPY") || step.starts_with("RUN") || step.starts_with("WORKDIR");
            let cached = if nocache { None } else { self.build_cache.get(&key).cloned() };
            let (image, layer) = match cached {
                Some(hit) => {
                    out.push_str(" ---> Using cache\n");
                    hit
                }
                None => {
                    if step.starts_with("RUN") {
                        let cid = self.hex(12);
                        out.push_str(&format!(" ---> Running in {cid}\n{}Removing intermediate container {cid}\n", self.run_output(step)));
                    }
                    let layer = fs_step.then(|| self.hex(64));
                    let hit = (format!("sha256:{}", self.hex(64)), layer);
                    self.build_cache.insert(key, hit.clone());
                    hit
                }
            };
            if let Some(l) = &layer {
                let chain = format!("sha256:{l}");
                if !self.state.layers.contains_key(&chain) {
                    self.emit(Event::LayerAdded {
                        chain_id: chain.clone(),
                        diff_id: chain.clone(),
                        dir: format!("{ROOT}/overlay2/{l}/diff"),
                        size: 4096,
                    });
                    self.emit(Event::BuildLayer { build: build.clone(), step: n + 1, chain_id: chain.clone(), diff_id: chain, size: 4096 });
                }
                layers.push(l.clone());
            }
            if let Some(rest) = step.strip_prefix("CMD ") {
                cmd = serde_json::from_str::<Vec<String>>(rest).unwrap_or_default();
            }
            if let Some(p) = step.strip_prefix("EXPOSE ") {
                exposed = Some(format!("{}/tcp", p.trim()));
            }
            out.push_str(&format!(" ---> {}\n", &image[7..19]));
            self.emit(Event::BuildStep {
                build: build.clone(),
                step: n + 1,
                instruction: step.to_string(),
                line: n + 1,
                cached: out.ends_with(&format!("Using cache\n ---> {}\n", &image[7..19])),
                image: image.clone(),
            });
            parent = image;
        }
        out.push_str(&format!("Successfully built {}\n", &parent[7..19]));
        if let Some(t) = &tag {
            out.push_str(&format!("Successfully tagged {t}\n"));
            let info = ImageInfo { name: t.clone(), id: parent.clone(), layers: layers.clone(), cmd, exposed };
            self.built.insert(t.clone(), info);
            self.emit(Event::ImageAdded {
                id: parent.clone(),
                repo_tags: vec![t.clone()],
                repo_digests: vec![],
                layers: layers.iter().map(|l| format!("sha256:{l}")).collect(),
                size: 0,
            });
        }
        self.emit(Event::BuildFinished { build, image: Some(parent), error: None });
        out
    }

    /// What a build's RUN prints, for the commands the lab's Dockerfile has.
    fn run_output(&self, step: &str) -> String {
        let cmd = step.trim_start_matches("RUN").trim();
        match cmd.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["sha256sum", file, ..] => match self.gg_files.get(*file) {
                Some(content) => {
                    use sha2::Digest;
                    let hex: String = sha2::Sha256::digest(content.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
                    format!("{hex}  {file}\n")
                }
                None => format!("sha256sum: {file}: No such file or directory\n"),
            },
            ["echo", rest @ ..] => format!("{}\n", rest.join(" ").trim_matches('"')),
            _ => String::new(),
        }
    }

    fn stop(&mut self, id: &str, code: i32) {
        if !self.running(id) {
            return;
        }
        // The same decision berthd executes when a container's process ends.
        self.execute(&plan::exit(&self.state, id, code, None));
        if self.inside.as_deref() == Some(id) {
            self.inside = None;
        }
        if self.extra.get(id).is_some_and(|e| e.auto_remove) {
            self.remove(id);
        }
    }

    /// A volume by this name, made if there is none (berthd's decision).
    fn create_volume(&mut self, name: &str) {
        let plan = plan::create_volume(&self.state, name, &format!("{ROOT}/volumes/{name}/_data"), false);
        if !plan.steps.is_empty() {
            self.execute(&plan);
            self.volume_files.insert(name.into(), BTreeMap::new());
        }
    }

    fn remove(&mut self, id: &str) {
        self.extra.remove(id);
        self.execute(&plan::remove(&self.state, id, Vec::new()));
    }

    fn ps(&self, all: bool) -> String {
        let mut rows = vec![["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
        for c in self.state.containers.values().filter(|c| all || c.status == crate::Status::Running) {
            // As the CLI shows it: shell-quoted, cut at 20 characters.
            let cmd = c
                .command
                .iter()
                .map(|a| if a.contains(' ') || a.contains(';') { format!("'{a}'") } else { a.clone() })
                .collect::<Vec<_>>()
                .join(" ");
            let cmd = if cmd.chars().count() > 20 {
                format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
            } else {
                format!("\"{cmd}\"")
            };
            let status = match c.status {
                crate::Status::Running => "Up Less than a second".to_string(),
                _ => format!("Exited ({}) Less than a second ago", c.exit_code.unwrap_or(0)),
            };
            let ports = c.ports.iter().map(|p| format!("0.0.0.0:{}->{}/tcp", p.host_port, p.container_port)).collect::<Vec<_>>().join(", ");
            // Nothing published: the ports its image exposes, whatever its state.
            let ports = if ports.is_empty() { self.lookup(&c.image).and_then(|i| i.exposed).unwrap_or_default() } else { ports };
            rows.push(vec![c.id[..12].to_string(), c.image.clone(), cmd, "Less than a second ago".into(), status, ports, c.name.clone()]);
        }
        table(&rows)
    }

    fn inspect(&self, id: &str) -> String {
        let Some(c) = self.state.containers.get(id) else { return "[]\n".into() };
        let ep = c.endpoints.get("bridge");
        let v = serde_json::json!([{
            "Id": c.id,
            "Name": format!("/{}", c.name),
            "Image": c.image_id,
            "State": {"Status": c.status.as_str(), "Running": c.status == crate::Status::Running, "Pid": c.pid.unwrap_or(0), "ExitCode": c.exit_code.unwrap_or(0)},
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": c.layer.lower.join(":"),
                "UpperDir": c.layer.upper, "MergedDir": c.layer.merged, "WorkDir": c.layer.work,
            }},
            "Mounts": c.mounts.iter().map(|m| serde_json::json!({"Type": m.kind, "Name": m.name, "Source": m.source, "Destination": m.destination, "Driver": "local", "RW": !m.readonly})).collect::<Vec<_>>(),
            "Config": {"Hostname": &c.id[..12], "Image": c.image, "Cmd": c.command},
            "NetworkSettings": {
                "IPAddress": ep.map(|e| e.ip.clone()).unwrap_or_default(),
                "Gateway": ep.map(|e| e.gateway.clone()).unwrap_or_default(),
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "Ports": c.ports.iter().map(|p| (format!("{}/tcp", p.container_port), serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": p.host_port.to_string()}]))).collect::<serde_json::Map<_, _>>(),
            },
        }]);
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    }

    fn network_inspect(&self) -> String {
        let containers: serde_json::Map<String, serde_json::Value> = self
            .state
            .containers
            .values()
            .filter_map(|c| {
                let e = c.endpoints.get("bridge")?;
                Some((c.id.clone(), serde_json::json!({"Name": c.name, "EndpointID": c.id.chars().rev().collect::<String>(), "MacAddress": e.mac, "IPv4Address": format!("{}/{}", e.ip, e.prefix), "IPv6Address": ""})))
            })
            .collect();
        let v = serde_json::json!([{
            "Name": "bridge", "Id": "b1a8e0f3c2d1", "Scope": "local", "Driver": "bridge", "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
            "Internal": false, "Attachable": false, "Ingress": false, "Containers": containers,
            "Options": {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": "docker0", "com.docker.network.driver.mtu": "1500"},
            "Labels": {},
        }]);
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    }

    /// `ip addr|link|route` on the host, or inside container `inside`.
    fn ip(&self, a: &[&str], inside: Option<&str>) -> String {
        let links: Vec<ShownLink> = match inside {
            Some(id) => {
                let mut v = vec![(1, "lo".to_string(), "loopback".to_string(), vec!["127.0.0.1/8".to_string()], None)];
                if let Some(e) = self.state.containers.get(id).and_then(|c| c.endpoints.get("bridge")) {
                    v.push((5, format!("eth0@if{}", 6), e.mac.clone(), vec![format!("{}/{}", e.ip, e.prefix)], None));
                }
                v
            }
            None => self
                .state
                .links
                .iter()
                .map(|(n, l)| {
                    let mac = if n == "lo" {
                        "loopback".to_string()
                    } else {
                        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", l.index, 0x11, 0x22, l.index * 3)
                    };
                    let name = if l.kind == "veth" { format!("{n}@if{}", l.index - 1) } else { n.clone() };
                    (l.index, name, mac, l.addresses.clone(), l.master.clone())
                })
                .collect(),
        };
        let mut links = links;
        links.sort_by_key(|l| l.0);
        // `ip addr|link [show] [dev] DEV` or `… show master BRIDGE`.
        let words: Vec<&str> = a.iter().skip(1).copied().filter(|w| !matches!(*w, "show" | "list" | "ls")).collect();
        let (mut show, mut master_of) = (None, None);
        let mut k = 0;
        while k < words.len() {
            match words[k] {
                "master" => {
                    master_of = words.get(k + 1).copied();
                    k += 1;
                }
                "dev" => {
                    show = words.get(k + 1).copied();
                    k += 1;
                }
                d => show = Some(d),
            }
            k += 1;
        }
        links.retain(|(_, name, _, _, master)| {
            show.is_none_or(|d| name.split('@').next() == Some(d)) && master_of.is_none_or(|m| master.as_deref() == Some(m))
        });
        if let Some(d) = show.filter(|_| links.is_empty() && matches!(a.first().copied(), Some("addr" | "a" | "address" | "link" | "l"))) {
            return format!("Device \"{d}\" does not exist.\n");
        }
        let mut out = String::new();
        match a.first().copied() {
            Some("addr" | "a" | "address") | None => {
                for (idx, name, mac, addrs, master) in &links {
                    out.push_str(&link_line(*idx, name, master.as_deref(), false));
                    out.push_str(&ether_line(mac, name.contains('@') && inside.is_none()));
                    for a in addrs {
                        let dev = name.split('@').next().unwrap_or(name);
                        let scope = if a.starts_with("127.") { "host" } else { "global" };
                        out.push_str(&format!(
                            "    inet {a} {}scope {scope} {dev}\n       valid_lft forever preferred_lft forever\n",
                            brd(a)
                        ));
                    }
                }
            }
            Some("link" | "l") => {
                for (idx, name, mac, _, master) in &links {
                    out.push_str(&link_line(*idx, name, master.as_deref(), true));
                    out.push_str(&ether_line(mac, name.contains('@') && inside.is_none()));
                }
            }
            Some("route" | "r") => match inside {
                Some(_) => out.push_str("default via 172.17.0.1 dev eth0 \n172.17.0.0/16 dev eth0 scope link  src 172.17.0.2 \n"),
                None => {
                    for (dst, gw, dev) in &self.state.routes {
                        out.push_str(&format!(
                            "{dst}{}{} \n",
                            gw.as_ref().map(|g| format!(" via {g}")).unwrap_or_default(),
                            dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default()
                        ));
                    }
                }
            },
            Some(other) => out.push_str(&format!("Object \"{other}\" is unknown, try \"ip help\".\n")),
        }
        out
    }

    /// `iptables --list -n [-t nat]` (also `-L -n`, `-S`).
    /// `iptables [-t T] -D|-A|-I CHAIN SPEC…` by hand: the kernel's ruleset
    /// changes (berth's record of what it added does not), as berthd's
    /// observer would report it.
    fn iptables_edit(&mut self, a: &[&str]) -> String {
        let table = a.windows(2).find(|w| w[0] == "-t" || w[0] == "--table").map(|w| w[1]).unwrap_or("filter").to_string();
        let Some(at) = a.iter().position(|w| matches!(*w, "-D" | "--delete" | "-A" | "--append" | "-I" | "--insert")) else {
            return String::new();
        };
        let spec: Vec<&str> = a[at + 1..].to_vec();
        if spec.is_empty() {
            return format!("iptables v1.8.9 (nf_tables): option \"{}\" requires an argument\n", a[at]);
        }
        let rule = format!("-A {}", spec.join(" "));
        let present = self.state.kernel_rules.iter().any(|(t, r)| *t == table && *r == rule);
        match a[at] {
            "-D" | "--delete" if !present => "iptables: Bad rule (does a matching rule exist in that chain?).\n".into(),
            "-D" | "--delete" => {
                self.emit(Event::KernelRuleGone { table, rule });
                String::new()
            }
            _ if present => String::new(),
            _ => {
                self.emit(Event::KernelRuleObserved { table, rule });
                String::new()
            }
        }
    }

    fn iptables(&self, a: &[&str]) -> String {
        const KNOWN: &[&str] = &[
            "-L",
            "--list",
            "-n",
            "--numeric",
            "-nL",
            "-Ln",
            "-t",
            "--table",
            "-v",
            "--verbose",
            "-S",
            "--list-rules",
            "-x",
            "--exact",
            "--line-numbers",
        ];
        if let Some(bad) = a.iter().find(|w| w.starts_with('-') && !KNOWN.contains(w)) {
            return format!(
                "iptables v1.8.9 (nf_tables): unknown option \"{bad}\"\nTry `iptables -h' or 'iptables --help' for more information.\n"
            );
        }
        let table = a.windows(2).find(|w| w[0] == "-t" || w[0] == "--table").map(|w| w[1]).unwrap_or("filter");
        // What the kernel has: berth's rules (less those deleted by hand),
        // then any added by hand.
        let listed = self.state.iptables_s(table);
        let rules: Vec<&String> = listed.iter().collect();
        if a.contains(&"-S") {
            return rules.iter().map(|r| format!("{r}\n")).collect();
        }
        if !(a.contains(&"--list") || a.contains(&"-L") || a.contains(&"-nL") || a.contains(&"-Ln")) {
            return "iptables v1.8.9 (nf_tables): no command specified\nTry `iptables -h' or 'iptables --help' for more information.\n"
                .into();
        }
        let builtin: &[&str] =
            if table == "nat" { &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] } else { &["INPUT", "FORWARD", "OUTPUT"] };
        let custom: &[&str] =
            if table == "nat" { &["DOCKER"] } else { &["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"] };
        // `iptables -L CHAIN`: the one chain (the word that is no option nor the table's name).
        let table_at = a.iter().position(|w| *w == "-t" || *w == "--table").map(|i| i + 1);
        let only = a.iter().enumerate().find(|(i, w)| !w.starts_with('-') && Some(*i) != table_at).map(|(_, w)| *w);
        if only.is_some_and(|c| !builtin.contains(&c) && !custom.contains(&c)) {
            return "iptables: No chain/target/match by that name.\n".into();
        }
        let mut out = String::new();
        for chain in builtin.iter().chain(custom.iter()).filter(|c| only.is_none_or(|o| o == **c)) {
            let mine: Vec<&String> = rules.iter().copied().filter(|r| r.split_whitespace().nth(1) == Some(chain)).collect();
            if builtin.contains(chain) {
                out.push_str(&format!("Chain {chain} (policy ACCEPT)\n"));
            } else {
                let refs = self.state.rules.iter().filter(|(t, r)| t == table && r.ends_with(&format!("-j {chain}"))).count();
                out.push_str(&format!("Chain {chain} ({refs} references)\n"));
            }
            out.push_str("target     prot opt source               destination         \n");
            for r in mine {
                out.push_str(&list_line(r));
            }
            out.push('\n');
        }
        out.trim_end().to_string() + "\n"
    }

    /// `curl http://ADDR[:PORT]/PATH`: a container's page (nginx), with the
    /// file from its upper dir or a volume when there is one.
    fn fetch(&self, a: &[&str]) -> String {
        let Some(url) = a.iter().find(|x| x.starts_with("http://") || x.contains('.')) else {
            return "curl: try 'curl --help' for more information\n".into();
        };
        let rest = url.trim_start_matches("http://");
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = hostport.split_once(':').map(|(h, p)| (h, p.parse().unwrap_or(80))).unwrap_or((hostport, 80u16));
        let target = self.state.containers.values().find(|c| {
            let own = if c.image.starts_with("gourmetgram") { 8000 } else { 80 };
            c.status == crate::Status::Running
                && (c.endpoints.values().any(|e| e.ip == host && port == own)
                    || (["127.0.0.1", "localhost", "192.168.1.10", "node1"].contains(&host) && c.ports.iter().any(|p| p.host_port == port)))
        });
        match target {
            Some(c) if c.image.starts_with("gourmetgram") => GG_PAGE.into(),
            Some(c) if c.image.starts_with("nginx") => {
                let file = if path.is_empty() { "index.html".to_string() } else { path.to_string() };
                self.read_file(&c.id, &format!("/usr/share/nginx/html/{file}")).unwrap_or_else(|| "<html>\n<head><title>404 Not Found</title></head>\n<body>\n<center><h1>404 Not Found</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n".into())
            }
            _ => format!("curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n"),
        }
    }

    /// A path as the container shell means it: relative ones from its
    /// working directory, `.` and `..` resolved.
    fn abs(&self, path: &str) -> String {
        let joined = if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", self.cwd) };
        let mut parts: Vec<&str> = Vec::new();
        for p in joined.split('/') {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }

    /// Whether a directory is there in the container: the image's usual
    /// ones, a volume's mount point, or a parent of a file it holds.
    fn is_dir(&self, id: &str, dir: &str) -> bool {
        const DIRS: [&str; 19] = [
            "/",
            "/bin",
            "/dev",
            "/etc",
            "/home",
            "/lib",
            "/media",
            "/mnt",
            "/opt",
            "/proc",
            "/root",
            "/run",
            "/sbin",
            "/srv",
            "/sys",
            "/tmp",
            "/usr",
            "/usr/share",
            "/var",
        ];
        let nginx = self.extra.get(id).is_some_and(|e| e.image.starts_with("nginx"));
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        DIRS.contains(&dir)
            || (nginx && ["/usr/share/nginx", "/usr/share/nginx/html", "/etc/nginx"].contains(&dir))
            || self.extra.get(id).is_some_and(|e| {
                e.volumes.iter().any(|(_, p)| p == dir || p.starts_with(&prefix)) || e.upper.keys().any(|f| f.starts_with(&prefix))
            })
    }

    fn volume_at(&self, id: &str, path: &str) -> Option<(String, String)> {
        let e = self.extra.get(id)?;
        e.volumes.iter().find(|(_, p)| path.starts_with(&format!("{p}/"))).map(|(v, p)| (v.clone(), path[p.len() + 1..].to_string()))
    }

    fn read_file(&self, id: &str, path: &str) -> Option<String> {
        if let Some((v, rel)) = self.volume_at(id, path) {
            return self.volume_files.get(&v)?.get(&rel).cloned();
        }
        if let Some(f) = self.extra.get(id).and_then(|e| e.upper.get(path)) {
            return Some(f.clone());
        }
        let image = self.extra.get(id).map(|e| e.image.clone()).unwrap_or_default();
        match (image.starts_with("nginx"), path) {
            (true, "/usr/share/nginx/html/index.html") => Some(WELCOME.into()),
            (true, "/usr/share/nginx/html/50x.html") => Some(ERROR_PAGE.into()),
            (_, "/etc/hostname") => Some(format!("{}\n", &id[..12])),
            _ => None,
        }
    }

    /// A write inside a container: into a volume, or copied up into its upper dir.
    /// Each write is reported as berthd's observer reports it: a
    /// `FileChanged` in the volume's data dir or the container's upper dir.
    fn write_file(&mut self, id: &str, path: &str, content: &str) {
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        let change = if self.read_file(id, &path).is_some() { FileChangeKind::Modified } else { FileChangeKind::Added };
        if let Some((v, rel)) = self.volume_at(id, &path) {
            self.volume_files.entry(v.clone()).or_default().insert(rel.clone(), content.into());
            if let Some(dir) = self.state.volumes.get(&v).map(|vol| vol.mountpoint.clone()) {
                self.emit(Event::FileChanged { dir, path: format!("/{rel}"), change });
            }
            return;
        }
        if let Some(e) = self.extra.get_mut(id) {
            e.upper.insert(path.clone(), content.into());
            if let Some(dir) = self.state.containers.get(id).map(|c| c.layer.upper.clone()) {
                self.emit(Event::FileChanged { dir, path, change });
            }
        }
    }

    fn list_dir(&self, id: &str, dir: &str) -> String {
        match dir.trim_end_matches('/') {
            "" => "bin    dev    etc    home   lib    media  mnt    opt    proc   root   run    sbin   srv    sys    tmp    usr    var\n"
                .into(),
            "/usr/share/nginx/html" => {
                let mut names: Vec<String> = vec!["50x.html".into(), "index.html".into()];
                if let Some((v, _)) = self.volume_at(id, "/usr/share/nginx/html/x") {
                    names = self.volume_files.get(&v).map(|f| f.keys().cloned().collect()).unwrap_or_default();
                }
                if names.is_empty() {
                    String::new()
                } else {
                    format!("{}\n", names.join(if self.tty { "  " } else { "\n" }))
                }
            }
            d => format!("ls: {d}: No such file or directory\n"),
        }
    }
}

/// The simulated node1's kernel: it does every step, and its observers
/// report at once what berthd's would a moment later.
struct SimHost<'a> {
    ipam: &'a mut Ipam,
    /// Link indexes by name, as the state has them.
    links: BTreeMap<String, u32>,
    /// The kernel's last link index (a veth pair takes two).
    next_index: &'a mut u32,
}

impl plan::Host for SimHost<'_> {
    type Error = std::convert::Infallible;
    async fn perform(&mut self, step: &Step) -> Result<Vec<Event>, Self::Error> {
        Ok(match step {
            Step::MountOverlay { merged, .. } => {
                vec![Event::MountObserved { target: merged.clone(), fstype: "overlay".into(), source: "overlay".into() }]
            }
            Step::UnmountOverlay { merged, .. } => vec![Event::MountGone { target: merged.clone() }],
            Step::AttachEndpoint(a) => {
                *self.next_index += 2;
                vec![Event::LinkObserved {
                    index: *self.next_index,
                    name: a.host_if.clone(),
                    kind: "veth".into(),
                    master: Some(a.bridge.clone()),
                    up: true,
                    link_netnsid: Some(0),
                }]
            }
            Step::DetachEndpoint { host_if, ip, .. } => {
                if let Ok(ip) = ip.parse() {
                    self.ipam.release(ip);
                }
                // The pair goes with the namespace (or is deleted).
                vec![Event::LinkGone { index: self.links.get(host_if).copied().unwrap_or(0), name: host_if.clone() }]
            }
            Step::Announce(_)
            | Step::AddRule(_)
            | Step::DeleteRule(_)
            | Step::Publish { .. }
            | Step::Unpublish { .. }
            | Step::CreateNetns { .. }
            | Step::RemoveNetns { .. }
            | Step::Signal { .. }
            | Step::RemoveContainer { .. }
            | Step::CreateVolume { .. }
            | Step::RemoveVolume { .. } => Vec::new(),
        })
    }
}

fn unreachable_ipam() -> Ipam {
    // 172.17.0.0/16 always parses; this keeps `new` free of panics.
    Ipam::new("10.0.0.0/16").unwrap_or_else(|_| unreachable_ipam())
}

/// A link as `ip` prints it: index, name, MAC, addresses, master.
type ShownLink = (u32, String, String, Vec<String>, Option<String>);

/// `docker image inspect` of a catalog image (the fields the lab reads).
fn image_inspect(i: &ImageInfo) -> String {
    let v = serde_json::json!([{
        "Id": i.id,
        "RepoTags": [i.name],
        "Config": {
            "Cmd": i.cmd,
            "ExposedPorts": i.exposed.as_ref().map(|p| serde_json::json!({p: {}})),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "Architecture": "amd64",
        "Os": "linux",
        "RootFS": {"Type": "layers", "Layers": i.layers.iter().map(|l| format!("sha256:{l}")).collect::<Vec<_>>()},
    }]);
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// A link's first line as iproute2 prints it: `ip link` adds the link mode;
/// a veth has a transmit queue (qlen 1000), a bridge none.
fn link_line(idx: u32, name: &str, master: Option<&str>, link_mode: bool) -> String {
    let mode = if link_mode { "mode DEFAULT " } else { "" };
    if name == "lo" {
        return format!("{idx}: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN {mode}group default qlen 1000\n");
    }
    let m = master.map(|m| format!("master {m} ")).unwrap_or_default();
    let qlen = if name.starts_with("veth") { "qlen 1000" } else { "" };
    format!("{idx}: {name}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue {m}state UP {mode}group default {qlen}\n")
}

fn ether_line(mac: &str, netnsid: bool) -> String {
    if mac == "loopback" {
        return "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n".into();
    }
    format!("    link/ether {mac} brd ff:ff:ff:ff:ff:ff{}\n", if netnsid { " link-netnsid 0" } else { "" })
}

fn brd(cidr: &str) -> String {
    let Some((ip, p)) = cidr.split_once('/') else { return String::new() };
    let (Ok(ip), Ok(p)) = (ip.parse::<Ipv4Addr>(), p.parse::<u32>()) else { return String::new() };
    if ip.is_loopback() || p >= 31 {
        return String::new();
    }
    let b = u32::from(ip) | (u32::MAX >> p);
    format!("brd {} ", Ipv4Addr::from(b))
}

/// One `-A` rule as `iptables -L -n` lists it (iptables 1.8 with nf_tables:
/// protocols by number, a `!` in the separator before an inverted address).
fn list_line(rule: &str) -> String {
    let w: Vec<&str> = rule.split_whitespace().collect();
    let get = |flag: &str| w.windows(2).find(|x| x[0] == flag).map(|x| x[1]);
    let negated = |flag: &str| w.windows(2).any(|x| x[0] == "!" && x[1] == flag);
    let target = get("-j").unwrap_or("");
    let proto = match get("-p") {
        Some("tcp") => "6",
        Some("udp") => "17",
        Some(p) => p,
        None => "0",
    };
    let addr = |flag: &str| get(flag).map(|a| a.trim_end_matches("/32").to_string()).unwrap_or_else(|| "0.0.0.0/0".into());
    let inv = |flag: &str| if negated(flag) { '!' } else { ' ' };
    let mut extra = Vec::new();
    if let Some(t) = get("--dst-type") {
        extra.push(format!("ADDRTYPE match dst-type {t}"));
    }
    if let Some(s) = get("--ctstate") {
        extra.push(format!("ctstate {s}"));
    }
    if let Some(p) = get("--dport") {
        extra.push(format!("{} dpt:{p}", get("-p").unwrap_or("tcp")));
    }
    if let Some(t) = get("--to-destination") {
        extra.push(format!("to:{t}"));
    }
    format!("{target:<9}  {proto:<5}-- {}{:<20}{}{:<20} {}\n", inv("-s"), addr("-s"), inv("-d"), addr("-d"), extra.join(" "))
}

/// `jq -r '.[0].A.B'` on JSON text.
fn jq_path(json: &str, path: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json.split("\nError").next().unwrap_or(json)) else {
        return json.to_string();
    };
    for part in path.split('.').filter(|p| !p.is_empty()) {
        v = match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(i) => v.get(i.parse::<usize>().unwrap_or(0)).cloned().unwrap_or(serde_json::Value::Null),
            None => v.get(part).cloned().unwrap_or(serde_json::Value::Null),
        };
    }
    match v {
        serde_json::Value::String(s) => format!("{s}\n"),
        other => format!("{}\n", serde_json::to_string_pretty(&other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sim: &mut Sim, line: &str) -> String {
        sim.run(line, 1_767_225_600_000).text
    }

    #[test]
    fn the_networking_section_runs_with_the_same_addresses_and_rules_as_berthd() {
        let mut sim = Sim::new(1_767_225_600_000);
        let boot: Vec<&(String, String)> = sim.state.rules.iter().collect();
        assert!(boot.contains(&&("nat".to_string(), "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".to_string())));
        let out = run(&mut sim, "docker run --name nginx-public -d --rm -p 80:80 nginx:alpine");
        assert!(out.contains("Unable to find image 'nginx:alpine' locally"), "{out}");
        let c = sim.state.containers.values().next().unwrap().clone();
        assert_eq!(c.endpoints["bridge"].ip, "172.17.0.2");
        assert_eq!(c.endpoints["bridge"].mac, "02:42:ac:11:00:02");
        let nat = run(&mut sim, "iptables --list -n -t nat");
        assert!(nat.contains("Chain DOCKER (2 references)"), "{nat}");
        assert!(nat.contains("DNAT       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:172.17.0.2:80"), "{nat}");
        assert!(run(&mut sim, "curl http://192.168.1.10/").contains("Welcome to nginx!"));
        let ps = run(&mut sim, "docker ps");
        assert!(ps.lines().nth(1).unwrap().contains("0.0.0.0:80->80/tcp   nginx-public"), "{ps}");
        let addr = run(&mut sim, "ip addr show docker0");
        assert!(addr.contains("inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0"), "{addr}");
        assert!(run(&mut sim, "ip addr").contains("master docker0"));
        run(&mut sim, "docker stop nginx-public");
        assert!(sim.state.containers.is_empty(), "--rm removed it");
        assert!(!sim.state.rules.iter().any(|(_, r)| r.contains("DNAT")));
        assert_eq!(run(&mut sim, "docker run --name again -d nginx:alpine").len(), 65);
        assert_eq!(sim.state.containers.values().next().unwrap().endpoints["bridge"].ip, "172.17.0.2", "the address was released");
    }

    /// The drifts issue 14 found by hand: a container shell has a working
    /// directory (pwd, cd, relative paths, vi of the lab's relative path),
    /// `ip link show master docker0` lists the bridge's ports only, and
    /// `iptables -L CHAIN` lists that chain.
    #[test]
    fn a_run_whose_host_port_is_taken_fails_as_berthds_and_leaves_the_container_exited_with_nothing_held() {
        let mut sim = Sim::new(1_767_225_600_000);
        run(&mut sim, "docker run --name first -d -p 80:80 nginx:alpine");
        let rules = sim.state.rules.clone();
        let out = run(&mut sim, "docker run --name second -d -p 80:80 nginx:alpine");
        let second = sim.state.containers.values().find(|c| c.name == "second").expect("the container stays").clone();
        assert_eq!(
            out,
            format!(
                "{id}\ntime=\"2026-01-01T00:00:00Z\" level=error msg=\"Error waiting for container: {why}\"\ndocker: Error response from daemon: {why}\n\nRun 'docker run --help' for more information\n",
                id = second.id,
                why = format!("driver failed programming external connectivity on endpoint {}: Error starting userland proxy: listen tcp4 0.0.0.0:80: bind: address already in use", &second.id[..12])
            )
        );
        assert_eq!((second.status, second.exit_code), (crate::Status::Exited, Some(127)));
        assert!(second.endpoints.is_empty() && second.ports.is_empty() && !second.mounted, "{second:?}");
        assert_eq!(sim.state.rules, rules, "no rule added or taken");
        assert_eq!(sim.state.links.keys().filter(|l| l.starts_with("veth")).count(), 1, "first's pair only: {:?}", sim.state.links.keys());
        assert_eq!(run(&mut sim, "docker rm second"), "second\n");
        // Its address went back: the next container gets it.
        run(&mut sim, "docker run --name third -d nginx:alpine");
        let third = sim.state.containers.values().find(|c| c.name == "third").unwrap();
        assert_eq!(third.endpoints["bridge"].ip, "172.17.0.3");
    }

    #[test]
    fn a_container_shell_has_a_working_directory_and_listings_filter_as_the_tools_do() {
        let mut sim = Sim::new(0);
        run(&mut sim, "docker run --name web -d nginx:alpine");
        run(&mut sim, "docker exec -it web sh");
        assert_eq!(run(&mut sim, "pwd"), "/\n");
        let out = sim.run("vi usr/share/nginx/html/index.html", 0);
        let (path, content) = out.editor.unwrap();
        assert!(path == "usr/share/nginx/html/index.html" && content.contains("Welcome to nginx!"), "{content}");
        run(&mut sim, "cd /usr/share/nginx");
        assert_eq!(sim.prompt(), "/usr/share/nginx # ");
        assert_eq!(run(&mut sim, "cat html/../html/index.html"), run(&mut sim, "cat /usr/share/nginx/html/index.html"));
        assert!(run(&mut sim, "cd nowhere").contains("can't cd to nowhere"));
        sim.save_file("html/index.html", "saved\n");
        assert_eq!(run(&mut sim, "cat /usr/share/nginx/html/index.html"), "saved\n");
        run(&mut sim, "exit");
        let ports = run(&mut sim, "ip link show master docker0");
        assert!(ports.lines().next().is_some_and(|l| l.contains("veth") && l.contains("master docker0 state UP mode DEFAULT")), "{ports}");
        assert!(!ports.contains("lo:") && !ports.contains("docker0:"), "{ports}");
        let forward = run(&mut sim, "iptables -L FORWARD -n");
        assert!(forward.starts_with("Chain FORWARD") && !forward.contains("Chain INPUT"), "{forward}");
        assert_eq!(run(&mut sim, "iptables -L NOPE -n"), "iptables: No chain/target/match by that name.\n");
    }

    #[test]
    fn overlay_copy_up_volume_copy_in_and_persistence_behave_as_on_berthd() {
        let mut sim = Sim::new(0);
        run(&mut sim, "docker run --name nginx-1 -d --rm nginx:alpine");
        let lower = run(&mut sim, "docker inspect nginx-1 | jq -r '.[0].GraphDriver.Data.LowerDir'");
        assert_eq!(lower.trim().split(':').count(), 3, "{lower}");
        run(&mut sim, "docker exec -it nginx-1 sh");
        assert_eq!(sim.prompt(), "/ # ");
        run(&mut sim, "echo edited > /usr/share/nginx/html/index.html");
        run(&mut sim, "exit");
        assert!(sim.inside.is_none());
        assert_eq!(run(&mut sim, "curl http://172.17.0.2/"), "edited\n");
        run(&mut sim, "docker run --name nginx-2 -d --rm nginx:alpine");
        assert!(run(&mut sim, "curl http://172.17.0.3/").contains("Welcome to nginx!"), "the lower layer is unchanged");
        run(&mut sim, "docker volume create webvol");
        run(&mut sim, "docker run --name web -d -v webvol:/usr/share/nginx/html -p 8080:80 nginx:alpine");
        assert!(run(&mut sim, "curl http://127.0.0.1:8080/").contains("Welcome to nginx!"), "copied in");
        run(&mut sim, "docker run -it --rm -v webvol:/data/web alpine");
        run(&mut sim, "echo hello from the volume > /data/web/index.html");
        run(&mut sim, "exit");
        assert_eq!(run(&mut sim, "curl http://127.0.0.1:8080/"), "hello from the volume\n");
        assert!(run(&mut sim, "docker volume rm webvol").contains("volume is in use"));
        run(&mut sim, "docker rm -f web");
        run(&mut sim, "docker container prune -f");
        assert!(sim.state.volumes.contains_key("webvol"), "the volume outlives its containers");
        assert_eq!(run(&mut sim, "frobnicate"), "bash: frobnicate: command not found\n");
        // The GourmetGram build: steps, then the cache on a second build.
        let first = run(&mut sim, "docker build -t gourmetgram-app:0.0.1 gourmetgram");
        assert!(
            first.contains("Step 1/7 : FROM gourmetgram-base:libtorch-2.13.0")
                && first.contains("Successfully tagged gourmetgram-app:0.0.1"),
            "{first}"
        );
        assert!(!first.contains("Using cache"));
        let again = run(&mut sim, "docker build -t gourmetgram-app:0.0.1 gourmetgram");
        assert_eq!(again.matches("Using cache").count(), 6, "{again}");
        run(&mut sim, "docker run --name gourmetgram-app -d --rm -p 80:8000 gourmetgram-app:0.0.1");
        assert!(run(&mut sim, "curl http://192.168.1.10/").contains("GourmetGram"));
        let inspect = run(&mut sim, "docker image inspect gourmetgram-app:0.0.1");
        assert!(inspect.contains("\"8000/tcp\"") && inspect.matches("sha256:").count() >= 5, "{inspect}");
        // vi in a container: the terminal edits, the simulator keeps the result.
        run(&mut sim, "docker exec -it nginx-2 sh");
        let o = sim.run("vi /usr/share/nginx/html/index.html", 0);
        let (path, content) = o.editor.expect("an editor opens");
        assert!(content.contains("Welcome to nginx!"));
        sim.save_file(&path, "<h1>vi was here</h1>\n");
        run(&mut sim, "exit");
        assert_eq!(run(&mut sim, "curl http://172.17.0.3/"), "<h1>vi was here</h1>\n");
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;

    #[test]
    fn iptables_s_lists_dockers_rules_in_the_kernels_order_by_chain() {
        let mut sim = Sim::new(1_767_225_600_000);
        let filter = sim.run("iptables -S", 1_767_225_600_000).text;
        // As Docker's daemon leaves them (iptables -S on a Docker host).
        let want = "\
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
";
        assert_eq!(filter, want);
        sim.run("docker run --name nginx-public -d --rm -p 80:80 nginx:alpine", 1_767_225_600_000);
        let nat = sim.run("iptables -t nat -S", 1_767_225_600_000).text;
        let want = "\
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80
";
        assert_eq!(nat, want);
    }
}
