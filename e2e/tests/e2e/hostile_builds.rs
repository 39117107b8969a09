//! Builds and contexts made to hurt the daemon: a `.dockerignore` linked to
//! a host file, thousands of metadata steps, a client that goes away in the
//! middle of a RUN, symlinks and `..` in contexts and archives, malformed
//! Dockerfiles. Each must fail (or succeed) cleanly, write nothing outside
//! berth's roots, and leave the daemon answering.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};

fn host(sb: &Sandbox, cmd: &str) -> String {
    let o = sb.run("sh", &["-c", cmd]).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A tar of `entries` (name, content); a content starting with "->" makes
/// a symlink to the rest. Names are written raw, `..` and `/` included.
fn context_tar(path: &Path, entries: &[(&str, &str)]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        if let Some(target) = data.strip_prefix("->") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            h.set_link_name(target).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
        }
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        let body: &[u8] = if data.starts_with("->") { &[] } else { data.as_bytes() };
        b.append(&h, body).unwrap();
    }
    b.finish().unwrap();
}

/// POSTs a context tar to /build as the CLI would, and returns the answer.
fn post_build(sb: &Sandbox, d: &Berthd, tar: &Path, query: &str) -> String {
    let o = sb
        .run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "120",
                "--unix-socket",
                d.socket.to_str().unwrap(),
                "-X",
                "POST",
                "-H",
                "Content-Type: application/x-tar",
                "--data-binary",
                &format!("@{}", tar.display()),
                &format!("http://berth/build?{query}"),
            ],
        )
        .unwrap();
    out(&o)
}

fn still_answers(sb: &Sandbox, d: &Berthd) {
    let v = sb.docker_ok(d, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
}

fn tmp_left(sb: &Sandbox) -> Vec<String> {
    let tmp = sb.dir().join("berth/data/tmp");
    fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

fn du_kib(p: &Path) -> u64 {
    let o = std::process::Command::new("du").args(["-sk", p.to_str().unwrap()]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("0").parse().unwrap_or(0)
}

#[test]
fn a_dockerignore_linked_to_a_big_host_file_is_not_read_and_nothing_floods() {
    let mut sb = Sandbox::new().unwrap();
    let d = sb.start_berthd(&[]).unwrap();
    // A 20 MB host file of one line, a bad glob with a marker in it.
    let secret = sb.dir().join("host-secret");
    let mut line = String::from("[HOSTMARKER");
    line.push_str(&"x".repeat(20 * 1024 * 1024));
    fs::write(&secret, &line).unwrap();
    let tar = sb.dir().join("ctx.tar");
    context_tar(
        &tar,
        &[("Dockerfile", "FROM scratch\nCOPY app.txt /\n"), ("app.txt", "app\n"), (".dockerignore", &format!("->{}", secret.display()))],
    );
    let answer = post_build(&sb, &d, &tar, "t=ign");
    assert!(!answer.contains("HOSTMARKER"), "the host file's content came back: {}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("Successfully built"), "{}", &answer[..answer.len().min(2000)]);
    // The same file inside the context: refused, with a short message.
    context_tar(&tar, &[("Dockerfile", "FROM scratch\n"), (".dockerignore", &line)]);
    let answer = post_build(&sb, &d, &tar, "t=ign2");
    assert!(answer.contains("more than the 1048576 bytes") && answer.len() < 1000, "{}", &answer[..answer.len().min(1000)]);
    assert!(!answer.contains("HOSTMARKER"));
    let log = d.log_text();
    assert!(log.lines().all(|l| l.len() < 10_000), "a log line of {} bytes", log.lines().map(str::len).max().unwrap_or(0));
    still_answers(&sb, &d);
    assert_eq!(tmp_left(&sb), Vec::<String>::new());
    sb.cleanup().unwrap();
}

#[test]
fn thousands_of_metadata_steps_build_in_seconds_with_bounded_disk() {
    let mut sb = Sandbox::new().unwrap();
    let d = sb.start_berthd(&[]).unwrap();
    let data = sb.dir().join("berth/data");
    let cases = [("labels", 1_500usize), ("mixed", 10_000)];
    for (name, n) in cases {
        let mut df = String::from("FROM scratch\n");
        for i in 0..n {
            df.push_str(&match (name, i % 5) {
                ("labels", _) | (_, 0) => format!("LABEL k{i}=v{i}\n"),
                (_, 1) => format!("ENV E{}=x{i}\n", i % 50),
                (_, 2) => format!("EXPOSE {}\n", 1000 + i % 100),
                (_, 3) => "USER 1000\n".to_string(),
                _ => format!("CMD [\"echo\", \"{i}\"]\n"),
            });
        }
        let ctx = sb.dir().join(name);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), &df).unwrap();
        let before = du_kib(&data);
        let start = Instant::now();
        let o = sb.docker_ok(&d, &["build", "-t", name, ctx.to_str().unwrap()]);
        let took = start.elapsed();
        let grown = du_kib(&data).saturating_sub(before);
        eprintln!("{name}: {n} steps in {took:?}, data root grew {grown} KiB");
        assert!(
            o.contains(&format!("Step {}/{} : ", n + 1, n + 1)) && o.contains("Successfully tagged"),
            "{}",
            &o[o.len().saturating_sub(2000)..]
        );
        // (The first LABEL on scratch may come from the cache: the same step
        // was in the build before.)
        assert_eq!(o.lines().filter(|l| l.starts_with(" ---> ") && !l.contains("Using cache")).count(), n, "a ---> line per step");
        assert!(took < Duration::from_secs(if n > 5_000 { 60 } else { 15 }), "{name}: {took:?}");
        assert!(grown < 16 * 1024, "{name}: the data root grew {grown} KiB");
        let labels: serde_json::Value =
            serde_json::from_str(&sb.docker_ok(&d, &["image", "inspect", "-f", "{{json .Config.Labels}}", name])).unwrap();
        assert_eq!(
            labels[format!("k{}", if name == "labels" { n - 1 } else { n - 5 })],
            format!("v{}", if name == "labels" { n - 1 } else { n - 5 })
        );
    }
    // A rebuild takes every step from the cache, and ends at the same image.
    let id = sb.docker_ok(&d, &["image", "inspect", "-f", "{{.Id}}", "labels"]);
    let o = sb.docker_ok(&d, &["build", "-t", "labels", sb.dir().join("labels").to_str().unwrap()]);
    assert_eq!(o.matches(" ---> Using cache").count(), 1_500);
    assert_eq!(sb.docker_ok(&d, &["image", "inspect", "-f", "{{.Id}}", "labels"]), id);
    still_answers(&sb, &d);
    sb.cleanup().unwrap();
}

#[test]
fn a_build_whose_client_goes_away_is_cancelled_and_leaves_nothing() {
    let (mut sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ctx = sb.dir().join("sleepy");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM alpine\nRUN echo started-sleeping && sleep 30\n").unwrap();
    let log = sb.dir().join("cli.log");
    let mut cli = sb
        .command("docker")
        .args(["build", "-t", "sleepy", ctx.to_str().unwrap()])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("DOCKER_CONFIG", sb.dir().join("docker-config"))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !fs::read_to_string(&log).unwrap_or_default().contains("started-sleeping") {
        assert!(start.elapsed() < Duration::from_secs(60), "the RUN never started: {}", fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!sb.docker_ok(&d, &["ps", "-aq"]).trim().is_empty(), "the RUN container runs");
    // The client is killed (it is the nsenter'd sh's exec: same pid).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(cli.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = cli.wait();
    let killed = Instant::now();
    let clean = || {
        sb.docker_ok(&d, &["ps", "-aq"]).trim().is_empty()
            && host(&sb, "ps -eo args | grep -c '^sleep 30$' || true").trim() == "0"
            && host(&sb, "grep -c overlay /proc/self/mountinfo || true").trim() == "0"
            && tmp_left(&sb).iter().all(|n| !n.starts_with("build"))
    };
    while !clean() {
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "still there {:?} after the client went away: ps {:?}, sleeps {:?}, mounts {:?}, tmp {:?}",
            killed.elapsed(),
            sb.docker_ok(&d, &["ps", "-aq"]),
            host(&sb, "ps -eo args | grep '^sleep 30$' || true"),
            host(&sb, "grep overlay /proc/self/mountinfo || true"),
            tmp_left(&sb)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d.log_text().contains("build cancelled"), "the log says why");
    assert!(sb.docker(&d, &["image", "inspect", "sleepy"]).map(|o| !o.status.success()).unwrap_or(true), "no image");
    still_answers(&sb, &d);
    sb.cleanup().unwrap();
}

/// Reads a file of the image's top layer from the host.
fn top_layer(sb: &Sandbox, d: &Berthd, image: &str) -> PathBuf {
    PathBuf::from(sb.docker_ok(d, &["image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", image]).trim())
}

#[test]
fn hostile_contexts_stay_inside_and_malformed_dockerfiles_fail_clearly() {
    let mut sb = Sandbox::new().unwrap();
    let d = sb.start_berthd(&[]).unwrap();
    let marker = format!("host-only-{}", std::process::id());
    let host_dir = sb.dir().join("hostdir");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("secret.txt"), &marker).unwrap();
    let tar = sb.dir().join("ctx.tar");

    // Symlinks pointing out: COPY of the link, of a dir holding it, and
    // through a symlinked dir, never give the host file's content.
    let hd = host_dir.display().to_string();
    context_tar(
        &tar,
        &[
            ("Dockerfile", "FROM scratch\nCOPY dir/ /dir/\nCOPY linkdir/secret.txt /via-dir.txt\n"),
            ("dir/ok.txt", "ok\n"),
            ("dir/link", &format!("->{hd}/secret.txt")),
            ("linkdir", &format!("->{hd}")),
        ],
    );
    let answer = post_build(&sb, &d, &tar, "t=links");
    assert!(!answer.contains(&marker), "{answer}");
    if answer.contains("Successfully built") {
        let top = top_layer(&sb, &d, "links");
        assert_eq!(fs::read_to_string(top.join("dir/ok.txt")).unwrap(), "ok\n");
        let all = host(&sb, &format!("grep -rl '{marker}' {} || true", sb.dir().join("berth").display()));
        assert_eq!(all.trim(), "", "the host file's content got into berth's roots: {top:?}");
    } else {
        assert!(answer.contains("linkdir/secret.txt"), "a clear error: {answer}");
    }
    let link = sb.dir().join("berth/data");
    assert_eq!(host(&sb, &format!("grep -rl '{marker}' {} || true", link.display())).trim(), "");

    // COPY ../x: Docker's words.
    context_tar(&tar, &[("Dockerfile", "FROM scratch\nCOPY ../hostdir/secret.txt /\n")]);
    let answer = post_build(&sb, &d, &tar, "t=dotdot");
    assert!(answer.contains("forbidden path outside the build context: ../hostdir/secret.txt"), "{answer}");

    // ADD of a tar holding `..` entries, an absolute path, and a symlink
    // then a file through it: nothing lands outside the layer.
    let escape = sb.dir().join(format!("escaped-{}", std::process::id()));
    let inner = sb.dir().join("evil.tar");
    context_tar(
        &inner,
        &[
            ("../../../../../../../../tmp/escaped-dotdot.txt", "dotdot\n"),
            (&format!("{}", escape.display()), "absolute\n"),
            ("out", &format!("->{}", sb.dir().display())),
            ("out/through-link.txt", "through\n"),
            ("fine.txt", "fine\n"),
        ],
    );
    {
        let mut b = tar::Builder::new(fs::File::create(&tar).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add("Dockerfile", b"FROM scratch\nADD evil.tar /x/\n");
        add("evil.tar", &fs::read(&inner).unwrap());
        b.finish().unwrap();
    }
    let answer = post_build(&sb, &d, &tar, "t=evil");
    assert!(!Path::new("/tmp/escaped-dotdot.txt").exists() && !escape.exists(), "{answer}");
    assert!(!sb.dir().join("through-link.txt").exists(), "{answer}");
    assert!(answer.contains("Successfully built") || answer.contains("error"), "{answer}");

    // Malformed Dockerfiles: each a clear error.
    let cases: &[(&str, String, &str)] = &[
        ("unknown", "FROM scratch\nFROBNICATE x\n".into(), "unknown instruction: FROBNICATE"),
        ("heredoc", "FROM scratch\nRUN <<EOF\necho never closed\n".into(), "unterminated heredoc EOF"),
        ("hugeline", format!("FROM scratch\nLABEL a={}\n", "y".repeat(100_000)), "dockerfile line greater than max allowed size of 65535"),
        ("hugeword", format!("FROM scratch\n{}\n", "Z".repeat(60_000)), "unknown instruction: ZZZ"),
    ];
    for (name, df, want) in cases {
        let ctx = sb.dir().join(name);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), df).unwrap();
        let o = sb.docker(&d, &["build", "-t", name, ctx.to_str().unwrap()]).unwrap();
        let text = out(&o);
        assert!(!o.status.success() && text.contains(want), "{name}: {}", &text[..text.len().min(1000)]);
        assert!(text.len() < 2_000, "{name}: an error of {} bytes", text.len());
    }
    still_answers(&sb, &d);
    assert_eq!(host(&sb, "grep -c overlay /proc/self/mountinfo || true").trim(), "0");
    assert_eq!(tmp_left(&sb), Vec::<String>::new());
    sb.cleanup().unwrap();
}
