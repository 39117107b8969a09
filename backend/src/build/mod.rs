//! `docker build` (the CLI's legacy builder: `POST /build` with the context
//! as a tar). Each instruction makes an image: metadata steps change the
//! config, RUN runs a real berth container and commits its upper dir, COPY,
//! ADD and WORKDIR write through an overlay of the current layers. A step is
//! taken from the cache when its parent, its instruction and (for COPY/ADD)
//! the checksum of its sources match an earlier build's.

pub mod context;
#[cfg(test)]
mod fuzz;
pub mod index;
mod scratch;
mod sources;
mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_shared::Event;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::dockerfile::{self, expand, Step};
use crate::engine::containers::{Containers, Output, StreamKind};
use crate::events::EventBus;
use crate::ids::now_rfc3339;
use crate::image::pull::Puller;
use crate::image::reference::ImageRef;
use crate::image::store::{chain_ids, hex_of, ImageRecord, ImageStore, LayerRef};
use crate::storage::{copy, layer};
use scratch::{mount_overlay, unmount, Scratch};
use step::Work;

/// What `POST /build` asked for.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub tags: Vec<String>,
    pub dockerfile: String,
    pub nocache: bool,
    pub quiet: bool,
    pub pull: bool,
    pub buildargs: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--add-host` entries for RUN steps.
    pub extra_hosts: Vec<String>,
    /// `--network` for RUN steps (None: the default bridge).
    pub network_mode: Option<String>,
    /// `--cache-from` images: their layers may stand for a step's result.
    pub cache_from: Vec<String>,
    /// The Dockerfile when `.dockerignore` excluded it from the context
    /// (read, then removed, as Docker does).
    pub dockerfile_text: Option<String>,
}

/// A failed build: the message the client shows, and a RUN's exit code.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub message: String,
    pub code: Option<i32>,
}

fn fail(message: impl Into<String>) -> BuildError {
    BuildError { message: message.into(), code: None }
}

/// An error naming the Dockerfile line of the step.
fn at(step: &Step, message: impl std::fmt::Display) -> BuildError {
    fail(format!("Dockerfile line {}: {message}", step.line))
}

/// The image a stage has reached: its ID (None: scratch, nothing yet) and
/// its full config (Docker's image JSON).
#[derive(Clone, Debug)]
struct Img {
    id: Option<String>,
    config: Value,
}

impl Img {
    fn scratch() -> Self {
        Img {
            id: None,
            config: json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
        }
    }
    fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
    fn chains(&self) -> Vec<String> {
        chain_ids(&self.diff_ids())
    }
    fn env(&self) -> Vec<String> {
        self.config["config"]["Env"].as_array().map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect()).unwrap_or_default()
    }
    fn short(&self) -> String {
        self.id.as_deref().map(|i| hex_of(i).chars().take(12).collect()).unwrap_or_default()
    }
}

/// The output stream of a build (Docker's JSON messages).
struct Out {
    tx: mpsc::Sender<Value>,
    quiet: bool,
}

impl Out {
    async fn stream(&self, text: impl Into<String>) {
        if !self.quiet {
            let _ = self.tx.send(json!({"stream": text.into()})).await;
        }
    }
    async fn raw(&self, v: Value) {
        if !self.quiet {
            let _ = self.tx.send(v).await;
        }
    }
}

/// Per-stage state while building: declared ARGs, the image so far,
/// whether CMD was set here (an ENTRYPOINT clears an inherited CMD), and
/// whether the step being taken is the build's last (its image is written
/// to the store even when the step only changes metadata).
struct StageState {
    img: Img,
    args: Vec<(String, String)>,
    cmd_set: bool,
    final_step: bool,
}

impl StageState {
    /// Variables for expansion: the image's ENV, then declared ARGs where
    /// ENV does not set them (ENV wins, as in Docker).
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            for e in self.img.env() {
                if let Some((k, v)) = e.split_once('=') {
                    if k == name {
                        return Some(v.to_string());
                    }
                }
            }
            self.args.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }
    }
    fn expand(&self, step: &Step, s: &str) -> Result<String, BuildError> {
        expand::expand(s, &self.lookup()).map_err(|e| at(step, e))
    }
}

#[derive(Debug)]
pub struct Builder {
    images: Arc<ImageStore>,
    puller: Arc<Puller>,
    containers: Arc<Containers>,
    bus: Arc<EventBus>,
    cache_path: PathBuf,
    cache: Mutex<BTreeMap<String, String>>,
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// What one build shares with each of its steps.
struct Job<'a> {
    opts: &'a BuildOptions,
    ctx: &'a Arc<context::Context>,
    build_id: &'a str,
    out: &'a Out,
}

/// A step's filesystem work, run against the merged root.
type FileWork = Box<dyn FnOnce(&Path) -> Result<(), String> + Send>;

/// A layer a step made.
struct NewLayer {
    diff_id: String,
    chain_id: String,
    size: u64,
}

impl Builder {
    pub fn new(images: Arc<ImageStore>, puller: Arc<Puller>, containers: Arc<Containers>, bus: Arc<EventBus>, data_root: &Path) -> Self {
        let cache_path = data_root.join("image").join("build-cache.json");
        let cache = std::fs::read(&cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Builder { images, puller, containers, bus, cache_path, cache: Mutex::new(cache) }
    }

    fn cached(&self, key: &str) -> Option<Img> {
        let id = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()?;
        let config = self.images.config(&id)?;
        let img = Img { id: Some(id), config };
        img.chains().iter().all(|c| self.images.has_layer(c)).then_some(img)
    }

    /// Notes a step's result in the cache (in memory: [`Builder::save_cache`]
    /// writes the file once a build ends, not once a step).
    fn remember(&self, key: &str, id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key.into(), id.into());
    }

    /// The cached steps, each with the layer chain its result stands on
    /// (`docker system df`'s build cache).
    pub fn cache_entries(&self) -> Vec<(String, Option<String>)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
        cache
            .into_iter()
            .map(|(key, id)| {
                let top = self.images.config(&id).and_then(|config| Img { id: Some(id), config }.chains().pop());
                (key, top)
            })
            .collect()
    }

    /// Forgets every cached step (`docker builder prune`); returns their keys.
    pub fn clear_cache(&self) -> Vec<String> {
        let keys: Vec<String> = std::mem::take(&mut *self.cache.lock().unwrap_or_else(|p| p.into_inner())).into_keys().collect();
        self.save_cache();
        keys
    }

    /// Writes the build cache to disk.
    fn save_cache(&self) {
        let bytes = serde_json::to_vec(&*self.cache.lock().unwrap_or_else(|p| p.into_inner())).unwrap_or_default();
        let tmp = self.cache_path.with_extension("json.tmp");
        if std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &self.cache_path)).is_err() {
            tracing::warn!("could not save the build cache");
        }
    }

    /// Applies a step to the image in place: its config section, its
    /// history line, its layer. The ID is then either the hash of the config
    /// written to the store (`persist`: the steps that make a layer, and the
    /// image a build ends with), or, for a metadata-only step in the middle,
    /// a hash of the step's cache key, with nothing written: a config per
    /// LABEL made a long Dockerfile write its growing history once a step
    /// (quadratic in time and disk).
    fn commit(
        &self,
        img: &mut Img,
        created_by: &str,
        layer: Option<&NewLayer>,
        config_section: Value,
        persist: bool,
        key: &str,
    ) -> Result<(), BuildError> {
        let config = &mut img.config;
        let now = now_rfc3339();
        config["config"] = config_section;
        config["created"] = json!(now);
        config["docker_version"] = json!(concat!("berth ", env!("CARGO_PKG_VERSION")));
        config["container_config"] = json!({"Cmd": ["/bin/sh", "-c", created_by.strip_prefix("/bin/sh -c ").unwrap_or(created_by)]});
        if !config["rootfs"]["diff_ids"].is_array() {
            config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        let mut entry = json!({"created": now, "created_by": created_by});
        match layer {
            Some(l) => {
                if let Some(d) = config["rootfs"]["diff_ids"].as_array_mut() {
                    d.push(json!(l.diff_id));
                }
            }
            None => entry["empty_layer"] = json!(true),
        }
        match config["history"].as_array_mut() {
            Some(h) => h.push(entry),
            None => config["history"] = json!([entry]),
        }
        if persist {
            self.persist(img)
        } else {
            img.id = Some(format!("sha256:{}", sha(&format!("berth intermediate\n{key}"))));
            Ok(())
        }
    }

    /// Writes the image's config to the store; its ID becomes the config's hash.
    fn persist(&self, img: &mut Img) -> Result<(), BuildError> {
        let bytes = serde_json::to_vec(&img.config).map_err(|e| fail(e.to_string()))?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        std::fs::write(self.images.config_path(&id), &bytes).map_err(|e| fail(format!("writing the image config: {e}")))?;
        img.id = Some(id);
        Ok(())
    }

    /// The record a container of this (intermediate) image needs.
    fn record_of(&self, img: &Img) -> ImageRecord {
        let diffs = img.diff_ids();
        let layers = chain_ids(&diffs)
            .into_iter()
            .zip(diffs)
            .map(|(chain_id, diff_id)| LayerRef { size: self.images.layer_size(&chain_id), chain_id, diff_id })
            .collect();
        ImageRecord { id: img.id.clone().unwrap_or_default(), repo_tags: vec![], repo_digests: vec![], layers, created: 0 }
    }

    fn lower_dirs(&self, img: &Img, scratch: &Scratch) -> Result<Vec<PathBuf>, BuildError> {
        let mut lowers: Vec<PathBuf> = img.chains().iter().rev().map(|c| self.images.layer_diff(c)).collect();
        if lowers.is_empty() {
            lowers.push(scratch.sub("empty")?);
        }
        Ok(lowers)
    }

    /// Turns an upper dir into a layer on top of `parent` (None if empty).
    fn make_layer(&self, parent: &Img, upper: &Path) -> Result<Option<NewLayer>, BuildError> {
        let (diff_id, size, empty) = layer::diff_id(upper).map_err(|e| fail(format!("reading the step's changes: {e}")))?;
        if empty {
            return Ok(None);
        }
        let mut diffs = parent.diff_ids();
        let parent_chain = chain_ids(&diffs).last().cloned();
        diffs.push(diff_id.clone());
        let chain_id = chain_ids(&diffs).last().cloned().unwrap_or_default();
        let added = self
            .images
            .commit_layer(&chain_id, &diff_id, parent_chain.as_deref(), size, upper)
            .map_err(|e| fail(format!("storing the layer: {e}")))?;
        if added {
            self.bus.emit(Event::LayerAdded {
                chain_id: chain_id.clone(),
                diff_id: diff_id.clone(),
                dir: self.images.layer_diff(&chain_id).display().to_string(),
                size,
            });
        }
        Ok(Some(NewLayer { diff_id, chain_id, size }))
    }

    /// Runs `f` against an overlay of the image's layers with a fresh upper
    /// dir, and makes what it wrote a layer.
    async fn fs_step<F>(&self, img: &Img, f: F) -> Result<Option<NewLayer>, BuildError>
    where
        F: FnOnce(&Path) -> Result<(), String> + Send + 'static,
    {
        let mut scratch = Scratch::new(&self.images, "build-step")?;
        let (upper, work, merged) = (scratch.sub("diff")?, scratch.sub("work")?, scratch.sub("merged")?);
        let lowers = self.lower_dirs(img, &scratch)?;
        mount_overlay(&lowers, Some((&upper, &work)), &merged).map_err(fail)?;
        crate::fault::point("build.copying");
        scratch.mounted.push(merged.clone());
        // The scratch goes with the blocking work: a build cancelled while
        // it runs unmounts and removes it only once the work has stopped.
        let (r, mut scratch) = tokio::task::spawn_blocking(move || {
            let r = f(&merged);
            for m in scratch.mounted.drain(..).rev() {
                unmount(&m);
            }
            (r, scratch)
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        scratch.mounted.clear();
        r.map_err(fail)?;
        let layer = self.make_layer(img, &upper);
        drop(scratch);
        layer
    }

    /// A read-only view of an image's files (for COPY --from).
    fn view(&self, img: &Img, scratch: &mut Scratch) -> Result<PathBuf, BuildError> {
        let lowers = self.lower_dirs(img, scratch)?;
        if lowers.len() == 1 {
            return Ok(lowers[0].clone());
        }
        let merged = scratch.sub("from")?;
        mount_overlay(&lowers, None, &merged).map_err(fail)?;
        scratch.mounted.push(merged.clone());
        Ok(merged)
    }

    /// FROM: a previous stage, scratch, a local image, or a pull.
    async fn base(&self, name: &str, stages: &BTreeMap<String, Img>, pull: bool, out: &Out) -> Result<Img, BuildError> {
        if let Some(img) = stages.get(&name.to_ascii_lowercase()) {
            return Ok(img.clone());
        }
        if name == "scratch" {
            return Ok(Img::scratch());
        }
        let local = if pull { None } else { self.images.resolve(name) };
        let record = match local {
            Some(r) => r,
            None => {
                let r = ImageRef::parse(name).map_err(|e| fail(e.to_string()))?;
                let resolved = self.puller.resolve(&r).await.map_err(|e| fail(e.to_string()))?;
                let (tx, mut rx) = mpsc::channel::<Value>(64);
                let fwd = async {
                    while let Some(v) = rx.recv().await {
                        out.raw(v).await;
                    }
                };
                let (rec, _) = tokio::join!(
                    async {
                        let r = self.puller.fetch(&self.images, &self.bus, &r, resolved, &tx).await;
                        drop(tx);
                        r
                    },
                    fwd
                );
                rec.map_err(|e| fail(e.to_string()))?
            }
        };
        let config = self.images.config(&record.id).ok_or_else(|| fail(format!("image {name} has no config")))?;
        Ok(Img { id: Some(record.id), config })
    }

    /// Runs a whole build; the image ID on success.
    pub async fn build(&self, opts: &BuildOptions, ctx: &Arc<context::Context>, tx: mpsc::Sender<Value>) -> Result<String, BuildError> {
        let out = Out { tx: tx.clone(), quiet: opts.quiet };
        let build_id = sha(&format!("{}{}", now_rfc3339(), crate::ids::random_u128()))[..12].to_string();
        let text = match &opts.dockerfile_text {
            Some(t) => t.clone(),
            None => ctx
                .read_dockerfile(&opts.dockerfile)
                .map_err(fail)?
                .ok_or_else(|| fail(format!("Cannot locate specified Dockerfile: {}", crate::text::excerpt(&opts.dockerfile, 100))))?,
        };
        let parsed = dockerfile::parse(&text).map_err(|e| fail(e.to_string()))?;
        let last = match &opts.target {
            Some(t) => parsed
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
                .ok_or_else(|| fail(format!("failed to reach build target {t} in Dockerfile")))?,
            None => parsed.stages.len() - 1,
        };
        let total = parsed.total_steps();
        self.bus.emit(Event::BuildStarted { build: build_id.clone(), tags: opts.tags.clone(), steps: total });
        let job = Job { opts, ctx, build_id: &build_id, out: &out };
        // A client that goes away (the response stream dropped) cancels the
        // build: the steps' futures are dropped, and with them the RUN
        // container (removed) and the scratch mounts and dirs.
        let result = tokio::select! {
            r = self.run_stages(&job, &parsed, last, total) => r,
            _ = tx.closed() => Err(fail("build cancelled: the client went away")),
        };
        self.save_cache();
        match &result {
            Ok(img) => self.bus.emit(Event::BuildFinished { build: build_id, image: img.id.clone(), error: None }),
            Err(e) => self.bus.emit(Event::BuildFinished { build: build_id, image: None, error: Some(e.message.clone()) }),
        };
        let mut img = result?;
        let id = match &img.id {
            Some(id) if self.images.config_path(id).exists() => id.clone(),
            Some(_) => {
                self.persist(&mut img)?;
                img.id.clone().unwrap_or_default()
            }
            None => {
                let section = img.config["config"].clone();
                self.commit(&mut img, "/bin/sh -c #(nop) ", None, section, true, "")?;
                img.id.clone().unwrap_or_default()
            }
        };
        self.tag(&id, &opts.tags).map_err(|e| fail(format!("tagging the image: {e}")))?;
        let short: String = hex_of(&id).chars().take(12).collect();
        let _ = tx.send(json!({"aux": {"ID": id}})).await;
        if opts.quiet {
            let _ = tx.send(json!({"stream": format!("{id}\n")})).await;
        }
        out.stream(format!("Successfully built {short}\n")).await;
        for t in &opts.tags {
            out.stream(format!("Successfully tagged {t}\n")).await;
        }
        Ok(id)
    }

    /// Records the image in the store with its tags.
    fn tag(&self, id: &str, tags: &[String]) -> std::io::Result<()> {
        let img = Img { id: Some(id.to_string()), config: self.images.config(id).unwrap_or(Value::Null) };
        let mut record = self.record_of(&img);
        record.created = img.config["created"].as_str().map(crate::ids::parse_rfc3339).unwrap_or(0);
        let bytes = std::fs::read(self.images.config_path(id))?;
        let existed = self.images.get(id).is_some();
        self.images.put_image(record, &bytes, tags.first().map(String::as_str))?;
        for t in tags.iter().skip(1) {
            self.images.tag(id, t)?;
        }
        let stored = self.images.get(id);
        if !existed {
            if let Some(s) = &stored {
                self.bus.emit(Event::ImageAdded {
                    id: id.into(),
                    repo_tags: s.repo_tags.clone(),
                    repo_digests: vec![],
                    layers: s.layers.iter().map(|l| l.chain_id.clone()).collect(),
                    size: s.size(),
                });
            }
        } else {
            for t in tags {
                self.bus.emit(Event::ImageTagged { id: id.into(), tag: t.clone() });
            }
        }
        Ok(())
    }

    async fn run_stages(&self, job: &Job<'_>, parsed: &dockerfile::Parsed, last: usize, total: usize) -> Result<Img, BuildError> {
        let (opts, out) = (job.opts, job.out);
        let mut n = 0;
        let mut globals: Vec<(String, String)> = Vec::new();
        for (k, default) in &parsed.global_args {
            n += 1;
            out.stream(format!("Step {n}/{total} : ARG {k}{}\n", default.as_ref().map(|d| format!("={d}")).unwrap_or_default())).await;
            if let Some(v) = opts.buildargs.get(k).cloned().or_else(|| default.clone()) {
                globals.push((k.clone(), v));
            }
        }
        let mut done: BTreeMap<String, Img> = BTreeMap::new();
        let mut result = None;
        for (i, stage) in parsed.stages.iter().enumerate().take(last + 1) {
            n += 1;
            out.stream(format!("Step {n}/{total} : {}\n", stage.text)).await;
            let base_name = expand::expand(&stage.base, &|k: &str| globals.iter().find(|(g, _)| g == k).map(|(_, v)| v.clone()))
                .map_err(|e| fail(format!("Dockerfile line {}: {e}", stage.line)))?;
            let img = self
                .base(&base_name, &done, opts.pull, out)
                .await
                .map_err(|e| fail(format!("Dockerfile line {}: {}", stage.line, e.message)))?;
            if img.id.is_some() {
                out.stream(format!(" ---> {}\n", img.short())).await;
            }
            let mut st = StageState { img, args: Vec::new(), cmd_set: false, final_step: false };
            for (j, step) in stage.steps.iter().enumerate() {
                n += 1;
                st.final_step = i == last && j + 1 == stage.steps.len() && opts.labels.is_empty();
                out.stream(format!("Step {n}/{total} : {}\n", step.text)).await;
                self.step(job, &mut st, step, n, &done, &globals).await?;
            }
            if i == last && !opts.labels.is_empty() {
                let mut cfg = st.img.config["config"].clone();
                for (k, v) in &opts.labels {
                    cfg["Labels"][k] = json!(v);
                }
                self.commit(&mut st.img, "/bin/sh -c #(nop)  LABEL (from --label)", None, cfg, true, "")?;
            }
            done.insert(i.to_string(), st.img.clone());
            if let Some(name) = &stage.name {
                done.insert(name.clone(), st.img.clone());
            }
            result = Some(st.img);
        }
        result.ok_or_else(|| fail("no build stage"))
    }

    async fn step(
        &self,
        job: &Job<'_>,
        st: &mut StageState,
        step: &Step,
        n: usize,
        stages: &BTreeMap<String, Img>,
        globals: &[(String, String)],
    ) -> Result<(), BuildError> {
        let (opts, build_id, out) = (job.opts, job.build_id, job.out);
        let mut cfg = st.img.config["config"].clone();
        if !cfg.is_object() {
            cfg = json!({});
        }
        let (created_by, extra, work) = self.work_of(job, st, step, stages, globals, &mut cfg).await?;
        // The key is the parent, the step as shown, and what else decides its
        // result: the config section is a function of these, and writing it
        // into the key made each step cost the size of the whole config.
        let parent_id = st.img.id.clone().unwrap_or_else(|| "scratch".into());
        let key = sha(&format!("{parent_id}\n{created_by}\n{extra}"));
        let persist = !matches!(work, Work::Meta) || st.final_step;
        if !opts.nocache {
            if let Some(img) = self.cached(&key) {
                out.stream(" ---> Using cache\n").await;
                out.stream(format!(" ---> {}\n", img.short())).await;
                self.tell_step(build_id, n, step, true, img.id.clone().unwrap_or_default());
                st.img = img;
                return Ok(());
            }
            let seen = self.cache.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&key);
            if seen && !persist {
                // A metadata step seen before: its result is made again in
                // memory, with the same ID.
                out.stream(" ---> Using cache\n").await;
                self.commit(&mut st.img, &created_by, None, cfg, false, &key)?;
                out.stream(format!(" ---> {}\n", st.img.short())).await;
                self.tell_step(build_id, n, step, true, st.img.id.clone().unwrap_or_default());
                return Ok(());
            }
        }
        if matches!(work, Work::Run(..)) && st.img.id.as_ref().is_some_and(|id| !self.images.config_path(id).exists()) {
            // A RUN's container reads its image's config (Env, User, …) from
            // the store: a parent that only lived in memory is written now
            // (the step's cache key keeps the ID it had).
            self.persist(&mut st.img)?;
        }
        // `--cache-from`: a source image that went through the same steps
        // from the same parent has this step's layer.
        let from_source = match work {
            Work::Meta => None,
            _ if opts.nocache => None,
            _ => self.from_sources(&st.img, &created_by, &opts.cache_from),
        };
        let reused = from_source.is_some();
        let layer = match (from_source, work) {
            (Some(l), _) => {
                out.stream(" ---> Using cache\n").await;
                Some(l)
            }
            (None, Work::Meta) => None,
            (None, Work::Files(f)) => self.fs_step(&st.img, f).await.map_err(|e| at(step, e))?,
            (None, Work::Run(argv, args)) => self.run_step(&st.img, argv, args, step, out, opts).await?,
        };
        self.commit(&mut st.img, &created_by, layer.as_ref(), cfg, persist, &key)?;
        out.stream(format!(" ---> {}\n", st.img.short())).await;
        let id = st.img.id.clone().unwrap_or_default();
        self.tell_step(build_id, n, step, reused, id.clone());
        if let Some(l) = &layer {
            self.bus.emit(Event::BuildLayer {
                build: build_id.into(),
                step: n,
                chain_id: l.chain_id.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
            });
        }
        self.remember(&key, &id);
        Ok(())
    }

    /// Tells the page a step is done, with the image it left.
    fn tell_step(&self, build: &str, n: usize, step: &Step, cached: bool, image: String) {
        self.bus.emit(Event::BuildStep { build: build.into(), step: n, instruction: step.text.clone(), line: step.line, cached, image });
    }

    /// The layer a `--cache-from` image holds for this step: one whose
    /// history and layers start with the parent's, and whose next history
    /// entry is this step (as it is shown) with a layer. Images not here are
    /// skipped (as Docker's classic builder, it pulls none).
    fn from_sources(&self, parent: &Img, created_by: &str, sources: &[String]) -> Option<NewLayer> {
        let history = |config: &Value| -> Vec<(String, bool)> {
            config["history"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .map(|e| (e["created_by"].as_str().unwrap_or("").to_string(), e["empty_layer"].as_bool().unwrap_or(false)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (parent_history, parent_diffs) = (history(&parent.config), parent.diff_ids());
        for name in sources {
            let Some(record) = self.images.resolve(name) else { continue };
            let Some(config) = self.images.config(&record.id) else { continue };
            let source = Img { id: Some(record.id), config };
            let (h, diffs) = (history(&source.config), source.diff_ids());
            let n = parent_history.len();
            let same_start =
                h.len() > n && h[..n] == parent_history[..] && diffs.len() > parent_diffs.len() && diffs.starts_with(&parent_diffs);
            if !same_start || h[n].0 != created_by || h[n].1 {
                continue;
            }
            let chains = chain_ids(&diffs[..=parent_diffs.len()]);
            let chain_id = chains.last()?.clone();
            if !self.images.has_layer(&chain_id) {
                continue;
            }
            let size = self.images.layer_size(&chain_id);
            return Some(NewLayer { diff_id: diffs[parent_diffs.len()].clone(), chain_id, size });
        }
        None
    }

    /// `--chown=user:group` against the image's /etc/passwd and /etc/group.
    async fn owner_in(&self, img: &Img, spec: &str) -> Result<(u32, u32), String> {
        let numeric = spec.split(':').all(|p| p.parse::<u32>().is_ok());
        if numeric {
            let mut it = spec.split(':').map(|p| p.parse::<u32>().unwrap_or(0));
            let uid = it.next().unwrap_or(0);
            return Ok((uid, it.next().unwrap_or(uid)));
        }
        let mut scratch = Scratch::new(&self.images, "build-chown").map_err(|e| e.message)?;
        let root = self.view(img, &mut scratch).map_err(|e| e.message)?;
        let read = |p: &str| {
            pathrs::Root::open(&root)
                .ok()
                .and_then(|r| r.resolve(p).ok())
                .and_then(|h| std::fs::read_to_string(copy::fd_path(&h)).ok())
                .unwrap_or_default()
        };
        let (passwd, group) = (read("/etc/passwd"), read("/etc/group"));
        let (uid, gid, _) = crate::runtime::init::resolve_user(spec, &passwd, &group)?;
        Ok((uid, gid))
    }

    /// RUN: a berth container of the current image runs the command; its
    /// output is streamed; on success its upper dir becomes the layer.
    async fn run_step(
        &self,
        img: &Img,
        argv: Vec<String>,
        args: Vec<String>,
        step: &Step,
        out: &Out,
        opts: &BuildOptions,
    ) -> Result<Option<NewLayer>, BuildError> {
        let record = self.record_of(img);
        let body = json!({
            "Cmd": argv, "Entrypoint": [""], "Env": args, "AttachStdout": true, "AttachStderr": true, "Labels": {},
            "HostConfig": {"NetworkMode": opts.network_mode.as_deref().unwrap_or("default"), "ExtraHosts": opts.extra_hosts},
        });
        let c = self.containers.create_for_build(&body, &record, &hex_of(&record.id)[..12]).map_err(|e| at(step, e.message))?;
        // Removes the container (killing what runs in it) if the build is
        // dropped before this step ends: a cancelled build leaves nothing.
        let mut guard = RunGuard { containers: self.containers.clone(), c: Some(c.clone()) };
        let cid: String = c.id.chars().take(12).collect();
        out.stream(format!(" ---> Running in {cid}\n")).await;
        let mut rx = c.output.subscribe();
        let mut exits = c.exits();
        let before = *exits.borrow_and_update();
        let started = self.containers.start(&c).await;
        crate::fault::point("build.running");
        let result = async {
            started.map_err(|e| at(step, e.message))?;
            loop {
                match rx.recv().await {
                    // Stderr in red, as Docker's classic builder wraps it.
                    Ok(Output::Data(StreamKind::Stderr, bytes)) => {
                        out.stream(format!("\x1b[91m{}\x1b[0m", String::from_utf8_lossy(&bytes))).await
                    }
                    Ok(Output::Data(_, bytes)) => out.stream(String::from_utf8_lossy(&bytes).into_owned()).await,
                    Ok(Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                }
            }
            let _ = exits.wait_for(|n| *n != before).await;
            let rec = c.record();
            if rec.state.exit_code != 0 {
                let shown = rec.command().join(" ");
                return Err(BuildError {
                    message: format!(
                        "Dockerfile line {}: The command '{shown}' returned a non-zero code: {}",
                        step.line, rec.state.exit_code
                    ),
                    code: Some(rec.state.exit_code),
                });
            }
            let upper = PathBuf::from(&rec.layer.upper);
            layer::drop_mount_points(&upper, &rec.layer.lower);
            self.make_layer(img, &upper)
        }
        .await;
        out.stream(format!("Removing intermediate container {cid}\n")).await;
        guard.c = None;
        if let Err(e) = self.containers.remove(&c, true, true).await {
            tracing::warn!(error = %e, "removing a build container");
        }
        result
    }
}

/// A RUN step's container while the step runs; dropped armed (the build's
/// future was dropped: its client went away), it removes the container.
struct RunGuard {
    containers: Arc<Containers>,
    c: Option<Arc<crate::engine::containers::Container>>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let Some(c) = self.c.take() else { return };
        let containers = self.containers.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    tracing::info!(container = %c.id, "build cancelled: removing its RUN container");
                    if let Err(e) = containers.remove(&c, true, true).await {
                        tracing::warn!(error = %e, "removing a cancelled build's container");
                    }
                });
            }
            Err(_) => tracing::warn!(container = %c.id, "build cancelled outside the runtime: its RUN container stays"),
        }
    }
}
