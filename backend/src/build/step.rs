//! What one Dockerfile instruction does in a build: the history line it
//! shows (and its cache key's extra input), and its work — none for a
//! metadata instruction (its config change is made here), a command to run
//! for RUN, or files to write through the step's overlay for WORKDIR, COPY
//! and ADD. The executor (`Builder::step`) looks it up in the cache, does
//! the work and commits the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::scratch::Scratch;
use super::sources::copy_sources;
use super::{at, context, sha, Builder, FileWork, Img, Job, StageState};
use crate::dockerfile::instructions::{self, with_shell};
use crate::dockerfile::{Form, Kind, Step};
use crate::storage::copy;

/// A step's work beside its config change.
pub(super) enum Work {
    Meta,
    Run(Vec<String>, Vec<String>),
    Files(FileWork),
}

impl Builder {
    /// What `step` does from the stage's image and arguments: its history
    /// line, its cache key's extra input (a COPY's sources' checksum) and
    /// its work; `cfg` (the image config's `config`) gets its change.
    pub(super) async fn work_of(
        &self,
        job: &Job<'_>,
        st: &mut StageState,
        step: &Step,
        stages: &BTreeMap<String, Img>,
        globals: &[(String, String)],
        cfg: &mut Value,
    ) -> Result<(String, String, Work), super::BuildError> {
        let (opts, ctx, out) = (job.opts, job.ctx, job.out);
        let nop = |s: &str| format!("/bin/sh -c #(nop)  {s}");
        let mut cmd_set = st.cmd_set;
        let applied = instructions::apply(cfg, &st.img.config, &step.kind, &st.lookup(), &mut cmd_set).map_err(|e| at(step, e))?;
        st.cmd_set = cmd_set;
        Ok(match applied {
            Some(a) => (nop(&a.shown), a.extra, Work::Meta),
            None => match &step.kind {
                Kind::Arg(args) => {
                    let mut shown = Vec::new();
                    for (k, default) in args {
                        let default = match default {
                            Some(d) => Some(st.expand(step, d)?),
                            None => globals.iter().find(|(g, _)| g == k).map(|(_, v)| v.clone()),
                        };
                        let v = opts.buildargs.get(k).cloned().or(default.clone());
                        if let Some(v) = v {
                            st.args.push((k.clone(), v));
                        }
                        shown.push(match default {
                            Some(d) => format!("{k}={d}"),
                            None => k.clone(),
                        });
                    }
                    (nop(&format!("ARG {}", shown.join(" "))), String::new(), Work::Meta)
                }
                Kind::Workdir(w) => {
                    let dir = instructions::workdir(cfg, &st.expand(step, w)?);
                    cfg["WorkingDir"] = json!(dir);
                    let d = dir.clone();
                    let work = Work::Files(Box::new(move |root: &Path| {
                        let wr = copy::Writer::new(root, copy::Attrs::default()).map_err(|e| e.to_string())?;
                        if !wr.is_dir(Path::new(&d)) {
                            wr.dir(Path::new(&d), None).map_err(|e| format!("creating WORKDIR {d}: {e}"))?;
                        }
                        Ok(())
                    }));
                    (nop(&format!("WORKDIR {dir}")), String::new(), work)
                }
                Kind::Maintainer(m) => {
                    st.img.config["author"] = json!(m);
                    (nop(&format!("MAINTAINER {m}")), String::new(), Work::Meta)
                }
                Kind::Run { cmd, heredocs } => {
                    let argv = match (cmd, heredocs.first()) {
                        (Form::Shell(s), Some(h))
                            if s.trim() == format!("<<{}", h.name) || s.trim().starts_with("<<") && s.split_whitespace().count() == 1 =>
                        {
                            with_shell(&st.img.config, h.body.trim_end())
                        }
                        (Form::Shell(s), Some(_)) => {
                            // `RUN cmd <<EOF`: the heredoc is the command's stdin.
                            let mut script = s.clone();
                            for h in heredocs {
                                script.push('\n');
                                script.push_str(&h.body);
                                script.push_str(&h.name);
                            }
                            with_shell(&st.img.config, &script)
                        }
                        (Form::Shell(s), None) => with_shell(&st.img.config, s),
                        (Form::Exec(a), _) => a.clone(),
                    };
                    let args: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let shown = match cmd {
                        Form::Shell(s) if heredocs.is_empty() => format!("/bin/sh -c {s}"),
                        _ => argv.join(" "),
                    };
                    let created = if args.is_empty() { shown } else { format!("|{} {} {shown}", args.len(), args.join(" ")) };
                    (created, String::new(), Work::Run(argv, args))
                }
                Kind::Copy { add, from, chown, chmod, sources, dest, heredocs } => {
                    let dest = st.expand(step, dest)?;
                    let wd = cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string();
                    let abs = if dest.starts_with('/') { dest.clone() } else { format!("{}/{}", wd.trim_end_matches('/'), dest) };
                    let abs = if dest.ends_with('/') && !abs.ends_with('/') { format!("{abs}/") } else { abs };
                    let owner = match chown {
                        Some(c) => Some(self.owner_in(&st.img, &st.expand(step, c)?).await.map_err(|e| at(step, e))?),
                        None => None,
                    };
                    let mode = match chmod {
                        Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| at(step, format!("invalid chmod {m}")))?),
                        None => None,
                    };
                    let word = if *add { "ADD" } else { "COPY" };
                    if !heredocs.is_empty() {
                        let docs: Vec<(String, String)> = heredocs.iter().map(|h| (h.name.clone(), h.body.clone())).collect();
                        let sum = sha(&format!("{docs:?}"));
                        let a = abs.clone();
                        let work = Work::Files(Box::new(move |root: &Path| {
                            let w = copy::Writer::new(root, copy::Attrs { owner, mode, keep_owner: false }).map_err(|e| e.to_string())?;
                            for (name, body) in &docs {
                                let target = if a.ends_with('/') { format!("{a}{name}") } else { a.clone() };
                                w.bytes(Path::new(&target), body.as_bytes()).map_err(|e| format!("writing {target}: {e}"))?;
                            }
                            Ok(())
                        }));
                        (nop(&format!("{word} heredoc:{sum} in {abs} ")), sum, work)
                    } else {
                        let mut from_scratch = None;
                        // A stage's or image's files (None: the context's).
                        let src_root: Option<PathBuf> = match from {
                            Some(f) => {
                                let f = st.expand(step, f)?;
                                let img = match stages.get(&f.to_ascii_lowercase()) {
                                    Some(i) => i.clone(),
                                    None => self.base(&f, stages, false, out).await.map_err(|e| at(step, e))?,
                                };
                                let mut s = Scratch::new(&self.images, "build-from")?;
                                let p = self.view(&img, &mut s)?;
                                from_scratch = Some(s);
                                Some(p)
                            }
                            None => None,
                        };
                        let mut rels = Vec::new();
                        for s in sources {
                            if *add && (s.starts_with("http://") || s.starts_with("https://")) {
                                return Err(at(step, format!("ADD {s}: berth does not download URLs in builds (no outside network); put the file in the build context")));
                            }
                            let s = st.expand(step, s)?;
                            let found = match &src_root {
                                Some(r) => context::sources(r, &s),
                                None => ctx.sources(&s),
                            };
                            rels.extend(found.map_err(|e| at(step, format!("{word} failed: {e}")))?);
                        }
                        let sum = match &src_root {
                            Some(r) => context::checksum(r, &rels),
                            None => ctx.checksum(&rels),
                        }
                        .map_err(|e| at(step, e))?;
                        let many = rels.len() > 1 || sources.len() > 1;
                        if many && !abs.ends_with('/') {
                            return Err(at(
                                step,
                                format!(
                                "When using {word} with more than one source file, the destination must be a directory and end with a /"
                            ),
                            ));
                        }
                        let (a, add, tmp, ctx) = (abs.clone(), *add, self.images.tmp_dir(), ctx.clone());
                        let work = Work::Files(Box::new(move |root: &Path| {
                            let _keep = from_scratch;
                            // Only a step that copies needs the context's files on the disk.
                            let src_root = match src_root {
                                Some(r) => r,
                                None => ctx.files()?.to_path_buf(),
                            };
                            copy_sources(root, &src_root, &rels, &a, add, copy::Attrs { owner, mode, keep_owner: false }, &tmp)
                        }));
                        let shown_from = from.as_ref().map(|f| format!("--from={f} ")).unwrap_or_default();
                        (nop(&format!("{word} {shown_from}dir:{sum} in {abs} ")), sum, work)
                    }
                }
                // (apply answered for every metadata instruction.)
                other => return Err(at(step, format!("internal error: {other:?} is not a metadata instruction"))),
            },
        })
    }
}
