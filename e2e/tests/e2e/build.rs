//! `docker build` through the real CLI (legacy builder, POST /build) in the
//! sandbox: the lab's Dockerfile shape, the layer cache, multi-stage builds
//! and the errors a learner runs into.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::fs;
use std::path::{Path, PathBuf};

use berth_e2e::sandbox::{node1, out, Sandbox};

fn write(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir.to_path_buf()
}

fn host(sb: &Sandbox, cmd: &str) -> String {
    let o = sb.run("sh", &["-c", cmd]).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const LAB_DOCKERFILE: &str = r#"FROM alpine
WORKDIR /app
COPY requirements.txt ./
RUN echo "installing $(cat requirements.txt)" && mkdir -p /deps && cp requirements.txt /deps/installed
COPY . .
EXPOSE 8000
CMD ["httpd", "-f", "-p", "8000", "-h", "/app"]
"#;

const MULTI_DOCKERFILE: &str = r#"ARG GREETING=hello
FROM alpine AS build
ARG GREETING
ENV OUT=/out
RUN mkdir -p $OUT && echo "$GREETING from build" > $OUT/msg.txt
RUN <<EOF
echo heredoc-ran > /out/heredoc.txt
EOF
FROM scratch AS empty
FROM alpine
COPY --from=build /out/ /data/
COPY <<EOF /data/inline.txt
inline content
EOF
COPY *.txt /data/ctx/
ENV DIR=/data
WORKDIR ${DIR}/work
LABEL lab=berth
VOLUME /data/vol
HEALTHCHECK --interval=30s CMD test -f /data/msg.txt
CMD ["cat", "/data/msg.txt"]
"#;

#[test]
fn the_labs_dockerfile_builds_reuses_the_requirements_layer_and_serves() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ctx = write(
        &sb.dir().join("gourmetgram"),
        &[("Dockerfile", LAB_DOCKERFILE), ("requirements.txt", "flask\npillow\n"), ("app.py", "print('version 1')\n")],
    );
    let ctx_s = ctx.to_str().unwrap();
    let first = sb.docker_ok(&d, &["build", "-t", "gourmetgram-app:0.0.1", ctx_s]);
    for want in [
        "Step 1/7 : FROM alpine",
        "Step 4/7 : RUN echo",
        "installing flask",
        "Step 7/7 : CMD",
        "Successfully built ",
        "Successfully tagged gourmetgram-app:0.0.1",
    ] {
        assert!(first.contains(want), "missing {want:?} in:\n{first}");
    }
    assert!(!first.contains("Using cache"), "{first}");
    let v: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["image", "inspect", "gourmetgram-app:0.0.1"])).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8000/tcp": {}}), "{c}");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Cmd"], serde_json::json!(["httpd", "-f", "-p", "8000", "-h", "/app"]));
    let layers = v[0]["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 5, "alpine's layer + WORKDIR, COPY, RUN, COPY: {}", v[0]["RootFS"]);
    let history = sb.docker_ok(&d, &["history", "--no-trunc", "--format", "{{.CreatedBy}}", "gourmetgram-app:0.0.1"]);
    assert!(history.lines().next().unwrap().contains("CMD [\"httpd\""), "{history}");
    assert!(history.contains("COPY dir:") && history.contains("WORKDIR /app"), "{history}");

    // Only the app changes: everything up to the requirements' RUN is cached.
    fs::write(ctx.join("app.py"), "print('version 2')\n").unwrap();
    let second = sb.docker_ok(&d, &["build", "-t", "gourmetgram-app:0.0.1", ctx_s]);
    assert_eq!(second.matches(" ---> Using cache").count(), 3, "{second}");
    let step5 = second.split("Step 5/7").nth(1).unwrap().split("Step 6/7").next().unwrap();
    assert!(!step5.contains("Using cache"), "COPY . . sees the edit:\n{second}");
    assert!(!second.contains("installing flask"), "RUN did not run again:\n{second}");
    // A changed requirements file breaks the cache from there on.
    fs::write(ctx.join("requirements.txt"), "flask\npillow\nnumpy\n").unwrap();
    let third = sb.docker_ok(&d, &["build", "-t", "gourmetgram-app:0.0.1", ctx_s]);
    assert_eq!(third.matches(" ---> Using cache").count(), 1, "{third}");
    assert!(third.contains("installing flask\npillow\nnumpy"), "{third}");

    sb.docker_ok(&d, &["run", "--name", "gourmetgram-app", "-d", "--rm", "-p", "80:8000", "gourmetgram-app:0.0.1"]);
    let mut page = String::new();
    for _ in 0..50 {
        page = host(&sb, &format!("curl -s --max-time 5 http://{}/app.py", sb.uplink.node_ip));
        if !page.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(page, "print('version 2')\n");
    sb.docker_ok(&d, &["stop", "-t", "1", "gourmetgram-app"]);
    // No build container is left behind.
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]), "");
}

#[test]
fn multi_stage_builds_with_args_heredocs_dockerignore_and_flags() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ctx = write(
        &sb.dir().join("multi"),
        &[
            ("build.Dockerfile", MULTI_DOCKERFILE),
            (".dockerignore", "secret.txt\n"),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("secret.txt", "do not ship\n"),
        ],
    );
    let ctx_s = ctx.to_str().unwrap();
    let df = ctx.join("build.Dockerfile");
    let df = df.to_str().unwrap();
    let o = sb.docker_ok(&d, &["build", "--build-arg", "GREETING=bonjour", "-f", df, "-t", "multi", "-t", "multi:v2", ctx_s]);
    assert!(o.contains("Successfully tagged multi:latest") && o.contains("Successfully tagged multi:v2"), "{o}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "multi"]), "bonjour from build\n");
    let files = sb.docker_ok(&d, &["run", "--rm", "multi", "sh", "-c", "ls /data/ctx; cat /data/heredoc.txt /data/inline.txt; pwd"]);
    assert_eq!(files, "a.txt\nb.txt\nheredoc-ran\ninline content\n/data/work\n", "no secret.txt: .dockerignore");
    let v: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["image", "inspect", "multi:v2"])).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["lab"], "berth");
    let env = v[0]["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "DIR=/data"), "{env:?}");
    assert!(!env.iter().any(|e| e.as_str().unwrap().starts_with("GREETING")), "ARGs are not kept: {env:?}");
    assert_eq!(v[0]["Config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "test -f /data/msg.txt"]));
    // The image's VOLUME gives each container an anonymous volume.
    sb.docker_ok(&d, &["run", "--name", "volcheck", "multi", "true"]);
    let m: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["inspect", "-f", "{{json .Mounts}}", "volcheck"])).unwrap();
    assert_eq!((m[0]["Type"].as_str(), m[0]["Destination"].as_str()), (Some("volume"), Some("/data/vol")), "{m}");
    sb.docker_ok(&d, &["rm", "-v", "volcheck"]);
    assert_eq!(sb.docker_ok(&d, &["volume", "ls", "-q"]), "");

    // -q prints just the ID; --no-cache runs every step again.
    let q = sb.docker_ok(&d, &["build", "-q", "--build-arg", "GREETING=bonjour", "-f", df, ctx_s]);
    assert!(q.trim().starts_with("sha256:") && q.trim().lines().count() == 1, "{q}");
    let again = sb.docker_ok(&d, &["build", "--no-cache", "--build-arg", "GREETING=bonjour", "-f", df, ctx_s]);
    assert!(!again.contains("Using cache"), "{again}");
    // --target stops at a stage.
    let t = sb.docker_ok(&d, &["build", "--target", "build", "-t", "only-build", "--build-arg", "GREETING=hi", "-f", df, ctx_s]);
    assert!(t.contains("Successfully tagged only-build:latest") && !t.contains("COPY --from"), "{t}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "only-build", "cat", "/out/msg.txt"]), "hi from build\n");
}

#[test]
fn build_errors_name_the_line_and_leave_nothing_behind() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let images_before = sb.docker_ok(&d, &["images", "-q"]);
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown", "FROM alpine\nFOOBAR x\n", &["Dockerfile parse error line 2: unknown instruction: FOOBAR"]),
        ("syntax", "FROM alpine\nRUN true\nEXPOSE\n", &["Dockerfile parse error line 3"]),
        ("json", "FROM alpine\nSHELL [\"/bin/sh\", \n", &["Dockerfile parse error line 2"]),
        (
            "failing",
            "FROM alpine\nRUN echo before-fail\nRUN echo about-to-fail && exit 3\n",
            &["about-to-fail", "Dockerfile line 3", "returned a non-zero code: 3"],
        ),
        (
            "missing",
            "FROM alpine\nCOPY nothere.txt /\n",
            &["Dockerfile line 2", "COPY failed: file not found in build context", "nothere.txt"],
        ),
        ("escape", "FROM alpine\nCOPY ../outside.txt /\n", &["Dockerfile line 2", "forbidden path outside the build context"]),
        ("badbase", "FROM nosuchimage:1.0\n", &["Dockerfile line 1", "nosuchimage"]),
    ];
    for (name, dockerfile, wants) in cases {
        let ctx = write(&sb.dir().join(name), &[("Dockerfile", dockerfile)]);
        let o = sb.docker(&d, &["build", "-t", &format!("broken-{name}"), ctx.to_str().unwrap()]).unwrap();
        assert!(!o.status.success(), "{name} should fail:\n{}", out(&o));
        for w in *wants {
            assert!(out(&o).contains(w), "{name}: missing {w:?} in:\n{}", out(&o));
        }
    }
    assert_eq!(sb.docker_ok(&d, &["images", "-q"]), images_before, "no half-built image");
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]), "", "no build container left");
    let mounts = host(&sb, "grep -c 'overlay' /proc/self/mountinfo || true");
    assert_eq!(mounts.trim(), "0", "no overlay left mounted");
    let tmp = sb.dir().join("berth/data/tmp");
    let left: Vec<_> = fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "scratch dirs left: {left:?}");
}

/// What SDKs and the CLI's legacy builder send beyond the lab's build
/// (issue 18 item 10): a RUN's stderr wrapped in red as Docker's classic
/// builder wraps it; a Dockerfile and .dockerignore that .dockerignore
/// excludes read but left out of `COPY .`; `--add-host` and `--network` for
/// RUN steps; `--cache-from` an image built before, once the local cache
/// is gone.
#[test]
fn stderr_dockerignore_hosts_network_and_cache_from_are_dockers() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ctx = write(
        &sb.dir().join("extras"),
        &[
            ("Dockerfile", "FROM alpine\nRUN echo to-stderr >&2\nCOPY . /app\nRUN cat /etc/hosts > /hosts && ls /sys/class/net > /nets\n"),
            (".dockerignore", "Dockerfile\n.dockerignore\n"),
            ("app.txt", "app\n"),
        ],
    );
    let ctx = ctx.display().to_string();
    let o = sb.docker(&d, &["build", "--add-host", "db.local:10.1.2.3", "--network", "none", "-t", "extras", &ctx]).unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("\u{1b}[91mto-stderr\n\u{1b}[0m"), "{text:?}");
    let listed = sb.docker_ok(&d, &["run", "--rm", "extras", "ls", "-a", "/app"]);
    assert_eq!(listed.split_whitespace().collect::<Vec<_>>(), [".", "..", "app.txt"], "{listed}");
    assert!(sb.docker_ok(&d, &["run", "--rm", "extras", "cat", "/hosts"]).contains("10.1.2.3\tdb.local\n"));
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "extras", "cat", "/nets"]).trim(), "lo", "--network none: no eth0");

    // --cache-from: the local cache cleared, the image's own layers serve.
    sb.docker_ok(&d, &["builder", "prune", "-f"]);
    let again = sb
        .docker_ok(&d, &["build", "--cache-from", "extras", "--add-host", "db.local:10.1.2.3", "--network", "none", "-t", "extras2", &ctx]);
    assert_eq!(again.matches("Using cache").count(), 3, "{again}");
    assert!(!again.contains("Running in"), "{again}");
    let layers = |i: &str| sb.docker_ok(&d, &["image", "inspect", "-f", "{{json .RootFS.Layers}}", i]);
    assert_eq!(layers("extras"), layers("extras2"));
    sb.docker_ok(&d, &["builder", "prune", "-f"]);
    let cold = sb.docker_ok(&d, &["build", "--add-host", "db.local:10.1.2.3", "--network", "none", "-t", "extras3", &ctx]);
    assert!(cold.contains("Running in"), "without --cache-from the steps run again: {cold}");
}

/// A build whose every step is cached decides its COPY steps from the
/// context held in memory and never writes the context to the disk; a
/// changed file misses and copies the new content (berthd's debug log says
/// which way each build went).
#[test]
fn a_fully_cached_build_never_unpacks_its_context() {
    let (sb, d) = node1().unwrap();
    let ctx = write(
        &sb.dir().join("memctx"),
        &[
            ("Dockerfile", "FROM alpine\nWORKDIR /app\nCOPY requirements.txt ./\nCOPY . .\nCMD [\"cat\", \"/app/app/main.py\"]\n"),
            (".dockerignore", "*.log\n"),
            ("requirements.txt", "flask\n"),
            ("app/main.py", "print('v1')\n"),
            ("debug.log", "noise\n"),
        ],
    );
    let ctx = ctx.display().to_string();
    // (The log is coloured: its escape sequences are left out.)
    let plain = |l: &str| {
        let mut out = String::new();
        let mut esc = false;
        for c in l.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    let phases = || d.log_text().lines().filter(|l| l.contains("build phases")).map(plain).collect::<Vec<_>>();
    let build = || sb.docker_ok(&d, &["build", "-t", "memctx", &ctx]);
    build();
    let second = build();
    assert_eq!(second.matches("Using cache").count(), 4, "{second}");
    let p = phases();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("unpacked=true") && p[1].contains("unpacked=false"), "{p:?}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "memctx"]), "print('v1')\n");
    // .dockerignore applies as on the disk: the log file changing is no change.
    fs::write(Path::new(&ctx).join("debug.log"), "more noise\n").unwrap();
    assert_eq!(build().matches("Using cache").count(), 4);
    fs::write(Path::new(&ctx).join("app/main.py"), "print('v2')\n").unwrap();
    let third = build();
    assert_eq!(third.matches("Using cache").count(), 2, "{third}");
    assert!(phases().last().unwrap().contains("unpacked=true"));
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "memctx"]), "print('v2')\n");
    let ls = sb.docker_ok(&d, &["run", "--rm", "memctx", "ls", "/app"]);
    assert!(!ls.contains("debug.log") && ls.contains("requirements.txt"), "{ls}");
}
