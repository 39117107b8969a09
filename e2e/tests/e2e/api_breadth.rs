//! What other Docker clients expect beyond the lab's commands, through the
//! real docker CLI (issue 18, in slices): swarm mode answered as a Docker
//! engine outside any swarm answers it, unknown routes as Docker's JSON
//! 404, `docker top`, and inspect's HostConfig with every key Docker has.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out};

#[test]
fn swarm_commands_fail_as_on_a_docker_engine_outside_a_swarm() {
    let (sb, d) = node1().unwrap();
    for (args, want) in [
        (vec!["node", "ls"], "This node is not a swarm manager."),
        (vec!["service", "ls"], "This node is not a swarm manager."),
        (vec!["secret", "ls"], "This node is not a swarm manager."),
        (vec!["config", "ls"], "This node is not a swarm manager."),
        (vec!["swarm", "leave", "--force"], "This node is not part of a swarm"),
    ] {
        let o = sb.docker(&d, &args).unwrap();
        let text = out(&o);
        assert!(!o.status.success(), "docker {}: {text}", args.join(" "));
        assert!(text.contains(want), "docker {}: {text}", args.join(" "));
    }
    let info = sb.docker_ok(&d, &["info", "-f", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(info.trim(), "inactive");
}

#[test]
fn docker_top_lists_the_containers_processes_and_only_them() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "sleeper", "alpine", "sh", "-c", "sleep 600 & sleep 700"]);
    sb.docker_ok(&d, &["exec", "-d", "sleeper", "sleep", "800"]);
    let mut top = String::new();
    for _ in 0..50 {
        top = sb.docker_ok(&d, &["top", "sleeper"]);
        if top.contains("sleep 800") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let lines: Vec<&str> = top.lines().collect();
    assert!(lines[0].split_whitespace().eq(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]), "{top}");
    // (busybox's sh runs its last command in its own place: sleep 700 is PID 1.)
    for cmd in ["sleep 600", "sleep 700", "sleep 800"] {
        assert!(lines.iter().any(|l| l.ends_with(cmd)), "{cmd} missing:\n{top}");
    }
    assert_eq!(lines.len(), 4, "the container's three processes, nothing of the host's:\n{top}");
    // ps arguments pass through; ones ps refuses, or that are not ps's, are the client's error.
    let custom = sb.docker_ok(&d, &["top", "sleeper", "-o", "pid,args"]);
    assert!(custom.lines().next().unwrap().split_whitespace().eq(["PID", "COMMAND"]), "{custom}");
    for bad in [vec!["top", "sleeper", "--frobnicate"], vec!["top", "sleeper", "-ef;", "id"]] {
        let o = sb.docker(&d, &bad).unwrap();
        assert!(!o.status.success(), "{}", out(&o));
        assert!(!out(&o).contains("500") && !out(&o).contains("Internal"), "{}", out(&o));
    }
    sb.docker_ok(&d, &["stop", "-t", "1", "sleeper"]);
    let o = sb.docker(&d, &["top", "sleeper"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("is not running"), "{}", out(&o));
    let o = sb.docker(&d, &["top", "nonesuch"]).unwrap();
    assert!(out(&o).contains("No such container: nonesuch"), "{}", out(&o));
}

#[test]
fn inspect_shows_every_host_config_key_with_dockers_defaults_to_a_client_that_sent_few() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // As the Python SDK's containers.create sends it: no LogConfig, no RestartPolicy.
    let (s, body) = sb.api(
        &d,
        "POST",
        "/containers/create?name=sdk",
        Some(r#"{"Image":"alpine","Cmd":["true"],"HostConfig":{"NetworkMode":"default"}}"#),
    );
    assert_eq!(s, 201, "{body}");
    let (s, body) = sb.api(&d, "GET", "/containers/sdk/json", None);
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hc = &v["HostConfig"];
    assert_eq!(hc["LogConfig"]["Type"], "json-file", "{hc}");
    assert_eq!(hc["RestartPolicy"]["Name"], "no", "{hc}");
    assert_eq!((hc["Runtime"].as_str(), hc["ShmSize"].as_u64()), (Some("runc"), Some(64 << 20)), "{hc}");
    for key in ["Binds", "PortBindings", "CapAdd", "Dns", "Devices", "Ulimits", "PidsLimit", "MaskedPaths", "ReadonlyPaths", "ConsoleSize"]
    {
        assert!(hc.get(key).is_some(), "HostConfig.{key} missing: {hc}");
    }
    // The docker CLI's own create keeps what it sent.
    sb.docker_ok(&d, &["create", "--name", "cli", "--log-driver", "none", "alpine", "true"]);
    let f = sb.docker_ok(
        &d,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "cli",
        ],
    );
    assert_eq!(f.trim(), "none no:0");
}

/// A query parameter's value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[test]
fn list_filters_in_the_sdks_list_form_filter_as_the_clis_map_form_does() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["create", "--name", "web-1", "alpine", "true"]);
    sb.docker_ok(&d, &["create", "--name", "db-1", "alpine", "true"]);
    sb.docker_ok(&d, &["network", "create", "webnet"]);
    sb.docker_ok(&d, &["volume", "create", "--label", "keep=yes", "kept"]);
    sb.docker_ok(&d, &["volume", "create", "scratch"]);
    let names = |body: &str, key: &str, field: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let list = if key.is_empty() { v } else { v[key].clone() };
        let mut n: Vec<String> = list.as_array().unwrap().iter().map(|x| x[field].to_string().trim_matches('"').to_string()).collect();
        n.sort();
        n
    };
    for form in [r#"{"name":["web"]}"#, r#"{"name":{"web":true}}"#] {
        let (s, body) = sb.api(&d, "GET", &format!("/containers/json?all=1&filters={}", enc(form)), None);
        assert_eq!((s, names(&body, "", "Names")), (200, vec!["[\"/web-1\"]".to_string()]), "{form}: {body}");
        let (s, body) = sb.api(&d, "GET", &format!("/networks?filters={}", enc(&form.replace("web", "webnet"))), None);
        assert_eq!((s, names(&body, "", "Name")), (200, vec!["webnet".to_string()]), "{form}: {body}");
    }
    let (s, body) = sb.api(&d, "GET", &format!("/volumes?filters={}", enc(r#"{"label":["keep=yes"]}"#)), None);
    assert_eq!((s, names(&body, "Volumes", "Name")), (200, vec!["kept".to_string()]), "{body}");
    // A prune with a filter in the list form removes only what it names.
    let (s, body) = sb.api(&d, "POST", &format!("/volumes/prune?filters={}", enc(r#"{"label!":["keep"]}"#)), None);
    assert_eq!(s, 200, "{body}");
    let (_, body) = sb.api(&d, "POST", &format!("/volumes/prune?filters={}", enc(r#"{"label":["nothing-has-this"]}"#)), None);
    assert!(body.contains("\"VolumesDeleted\""), "{body}");
    let left = sb.docker_ok(&d, &["volume", "ls", "-q"]);
    assert!(left.contains("kept"), "a filtered prune removed a volume it did not name: {left}");
    // Filters that are not JSON, or neither form: Docker's 400, not a whole list.
    for bad in ["nope", r#"{"name":"web"}"#] {
        for path in ["/containers/json", "/networks", "/volumes"] {
            let (s, body) = sb.api(&d, "GET", &format!("{path}?filters={}", enc(bad)), None);
            assert_eq!(s, 400, "{path} {bad}: {body}");
            assert!(body.contains("invalid filter"), "{body}");
        }
    }
}

#[test]
fn a_sigkill_answers_once_the_container_has_exited_and_a_start_right_after_works() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "killme", "alpine", "sleep", "600"]);
    let sock = d.socket.display().to_string();
    for round in 0..5 {
        // The kill, then at once (one curl, no gap) the container's state:
        // the kill's answer came after the exit.
        let o = sb
            .run(
                "curl",
                &[
                    "-sS",
                    "--unix-socket",
                    &sock,
                    "-X",
                    "POST",
                    "http://berth/v1.41/containers/killme/kill",
                    "--next",
                    "-sS",
                    "--unix-socket",
                    &sock,
                    "http://berth/v1.41/containers/killme/json",
                ],
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
        let st = &v["State"];
        assert_eq!(
            (st["Status"].as_str(), st["Running"].as_bool(), st["ExitCode"].as_i64(), st["Pid"].as_i64()),
            (Some("exited"), Some(false), Some(137), Some(0)),
            "round {round}"
        );
        sb.docker_ok(&d, &["start", "killme"]);
        let st = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Status}}", "killme"]);
        assert_eq!(st.trim(), "running", "round {round}");
    }
    // Another signal is the container's to handle (PID 1 ignores what it has
    // no handler for, as under Docker): this one traps TERM and exits 3.
    sb.docker_ok(&d, &["run", "-d", "--name", "trapper", "alpine", "sh", "-c", "trap 'exit 3' TERM; sleep 600 & wait"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    sb.docker_ok(&d, &["kill", "-s", "TERM", "trapper"]);
    assert_eq!(sb.docker_ok(&d, &["wait", "trapper"]).trim(), "3");
}

#[test]
fn docker_rename_renames_and_the_new_name_resolves_on_a_user_network() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["network", "create", "renet"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "before", "--network", "renet", "alpine", "sleep", "600"]);
    sb.docker_ok(&d, &["create", "--name", "taken", "alpine", "true"]);
    sb.docker_ok(&d, &["rename", "before", "after"]);
    assert_eq!(sb.docker_ok(&d, &["inspect", "-f", "{{.Name}}", "after"]).trim(), "/after");
    let ps = sb.docker_ok(&d, &["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "after");
    // Its peers on the user-defined network find it by the new name, not the old.
    let found = sb.docker_ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "renet",
            "alpine",
            "sh",
            "-c",
            "ping -c1 -W2 after >/dev/null && echo found; ping -c1 -W1 before >/dev/null 2>&1 || echo old-gone",
        ],
    );
    assert_eq!(found.split_whitespace().collect::<Vec<_>>(), ["found", "old-gone"], "{found}");
    // Docker's refusals.
    for (args, want) in [
        (vec!["rename", "after", "taken"], "is already in use by container"),
        (vec!["rename", "after", "after"], "Renaming a container with the same name as its current name"),
        (vec!["rename", "after", "bad/name"], "Invalid container name"),
        (vec!["rename", "nonesuch", "other"], "No such container: nonesuch"),
    ] {
        let o = sb.docker(&d, &args).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "docker {}: {}", args.join(" "), out(&o));
    }
    // The rename is an event, with the old name.
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let ev = sb.docker_ok(
        &d,
        &[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "event=rename",
            "--format",
            "{{.Actor.Attributes.oldName}} {{.Actor.Attributes.name}}",
        ],
    );
    assert_eq!(ev.trim(), "/before after", "{ev}");
}

/// `docker cp` both ways, into running and stopped containers, through
/// volumes, and never outside the container: the copy resolves paths as
/// the container's processes do (its absolute symlinks included).
#[test]
fn docker_cp_copies_both_ways_inside_the_container_only() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "box", "-v", "cpvol:/data", "alpine", "sleep", "300"]);
    let host = sb.dir().join("cp");
    std::fs::create_dir_all(host.join("site/img")).unwrap();
    std::fs::write(host.join("site/index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(host.join("site/img/logo.png"), [137u8, 80, 78, 71]).unwrap();
    std::fs::write(host.join("note.txt"), "a note\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();

    // Into a running container: a file, a directory, and into a volume.
    sb.docker_ok(&d, &["cp", &h("note.txt"), "box:/tmp/"]);
    // (Into an existing directory it goes under its own name, as Docker's.)
    sb.docker_ok(&d, &["cp", &h("site"), "box:/srv"]);
    sb.docker_ok(&d, &["cp", &h("site"), "box:/www"]);
    sb.docker_ok(&d, &["cp", &h("note.txt"), "box:/data/in-volume.txt"]);
    let script = "cat /tmp/note.txt /srv/site/index.html /www/index.html /data/in-volume.txt; stat -c '%U %s' /www/img/logo.png";
    let seen = sb.docker_ok(&d, &["exec", "box", "sh", "-c", script]);
    assert_eq!(seen, "a note\n<h1>hello</h1>\n<h1>hello</h1>\na note\nroot 4\n");

    // Out of it: a file the container made, and a directory.
    sb.docker_ok(&d, &["exec", "box", "sh", "-c", "mkdir -p /out/sub && echo made inside > /out/sub/f && ln -s sub/f /out/link"]);
    sb.docker_ok(&d, &["cp", "box:/out", &h("back")]);
    assert_eq!(std::fs::read_to_string(host.join("back/sub/f")).unwrap(), "made inside\n");
    assert_eq!(std::fs::read_link(host.join("back/link")).unwrap().display().to_string(), "sub/f");
    sb.docker_ok(&d, &["cp", "box:/etc/hostname", &h("hostname")]);
    let hn = sb.docker_ok(&d, &["exec", "box", "cat", "/etc/hostname"]);
    assert_eq!(std::fs::read_to_string(host.join("hostname")).unwrap(), hn);

    // An absolute symlink in the container points into the container.
    sb.docker_ok(&d, &["exec", "box", "ln", "-s", "/etc", "/tmp/etclink"]);
    std::fs::write(host.join("berth-cp-probe"), "probe\n").unwrap();
    sb.docker_ok(&d, &["cp", &h("berth-cp-probe"), "box:/tmp/etclink/"]);
    assert_eq!(sb.docker_ok(&d, &["exec", "box", "cat", "/etc/berth-cp-probe"]), "probe\n");
    assert!(!std::path::Path::new("/etc/berth-cp-probe").exists(), "docker cp wrote on the host");

    // A stopped container: copied into, then its process sees the file.
    sb.docker_ok(&d, &["create", "--name", "later", "alpine", "cat", "/tmp/note.txt"]);
    sb.docker_ok(&d, &["cp", &h("note.txt"), "later:/tmp/note.txt"]);
    sb.docker_ok(&d, &["cp", "later:/etc/passwd", &h("passwd")]);
    assert!(std::fs::read_to_string(host.join("passwd")).unwrap().starts_with("root:"));
    sb.docker_ok(&d, &["start", "-a", "later"]).contains("a note").then_some(()).expect("the copied file is in the container");

    // Docker's errors, never a 500.
    for (args, want) in [
        (vec!["cp".to_string(), "box:/nonexistent".to_string(), h("x")], "Could not find the file /nonexistent in container box"),
        (vec!["cp".to_string(), h("note.txt"), "nobox:/tmp/x.txt".to_string()], "No such container"),
        (
            vec!["cp".to_string(), h("site"), "box:/tmp/note.txt/".to_string()],
            "cannot overwrite non-directory \"/tmp/note.txt\" with directory",
        ),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = sb.docker(&d, &a).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "{a:?}: {}", out(&o));
        assert!(!out(&o).contains("500"), "{a:?}: {}", out(&o));
    }
    // A read-only root refuses writes; its volume takes them.
    sb.docker_ok(&d, &["run", "-d", "--name", "ro", "--read-only", "-v", "rovol:/data", "alpine", "sleep", "300"]);
    let o = sb.docker(&d, &["cp", &h("note.txt"), "ro:/tmp/"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("container rootfs is marked read-only"), "{}", out(&o));
    sb.docker_ok(&d, &["cp", &h("note.txt"), "ro:/data/"]);
    assert_eq!(sb.docker_ok(&d, &["exec", "ro", "cat", "/data/note.txt"]), "a note\n");
    // The API's stat header, as an SDK reads it.
    let sock = d.socket.display().to_string();
    let o = sb.run("curl", &["-sS", "-I", "--unix-socket", &sock, "http://berth/v1.41/containers/box/archive?path=/tmp/note.txt"]).unwrap();
    let head = String::from_utf8_lossy(&o.stdout).to_string();
    let b64 = head
        .lines()
        .find_map(|l| l.strip_prefix("x-docker-container-path-stat: ").or_else(|| l.strip_prefix("X-Docker-Container-Path-Stat: ")))
        .unwrap_or_else(|| panic!("{head}"));
    use base64::Engine;
    let stat: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap()).unwrap();
    assert_eq!((stat["name"].as_str(), stat["size"].as_u64()), (Some("note.txt"), Some(7)), "{stat}");
    sb.docker_ok(&d, &["rm", "-f", "box", "later", "ro"]);
}

/// `docker commit`: the container's changes (added and deleted files) as a
/// new layer, its config with `--change`s read as a build reads them, the
/// author and message in the history; a running container keeps running.
#[test]
fn docker_commit_makes_an_image_of_a_containers_changes() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "--name", "one", "alpine", "sh", "-c", "mkdir /srv/app && echo a > /srv/app/a && echo b > /srv/app/b"]);
    let id = sb.docker_ok(
        &d,
        &[
            "commit",
            "-a",
            "Ada <ada@example.com>",
            "-m",
            "two files",
            "-c",
            "ENV STAGE=one",
            "-c",
            "CMD [\"ls\", \"/srv/app\"]",
            "one",
            "lab/app:v1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/app:v1"]), "a\nb\n");
    // A deletion in the next commit is a whiteout: the file is gone from the image.
    sb.docker_ok(&d, &["run", "--name", "two", "lab/app:v1", "rm", "/srv/app/a"]);
    sb.docker_ok(&d, &["commit", "two", "lab/app:v2"]);
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/app:v2", "ls", "/srv/app"]), "b\n");
    // Its config and history.
    let cfg = sb.docker_ok(&d, &["inspect", "-f", "{{.Author}}|{{json .Config.Cmd}}|{{range .Config.Env}}{{.}} {{end}}", "lab/app:v1"]);
    let f: Vec<&str> = cfg.trim().split('|').collect();
    assert_eq!(f[0], "Ada <ada@example.com>", "{cfg}");
    assert_eq!(f[1], "[\"ls\",\"/srv/app\"]", "{cfg}");
    assert!(f[2].split_whitespace().any(|e| e == "STAGE=one"), "{cfg}");
    let history = sb.docker_ok(&d, &["history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}", "lab/app:v1"]);
    assert!(history.lines().next().unwrap().starts_with("two files|"), "{history}");
    let layers = |img: &str| sb.docker_ok(&d, &["inspect", "-f", "{{len .RootFS.Layers}}", img]).trim().parse::<usize>().unwrap();
    assert_eq!(layers("lab/app:v1"), layers("alpine") + 1);
    assert_eq!(layers("lab/app:v2"), layers("alpine") + 2);

    // A running container is paused for the copy and then goes on.
    sb.docker_ok(&d, &["run", "-d", "--name", "live", "alpine", "sh", "-c", "echo up > /tmp/state; sleep 300"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    sb.docker_ok(&d, &["commit", "live", "lab/live"]);
    assert_eq!(sb.docker_ok(&d, &["inspect", "-f", "{{.State.Status}}", "live"]).trim(), "running");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/live", "cat", "/tmp/state"]), "up\n");
    // Docker's errors.
    for (args, want) in [
        (vec!["commit", "nonesuch", "x"], "No such container"),
        (vec!["commit", "one", "Bad:Tag"], "invalid reference format"),
        (vec!["commit", "-c", "RUN rm -rf /", "one", "x"], "run is not a valid change command"),
    ] {
        let o = sb.docker(&d, &args).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "{args:?}: {}", out(&o));
    }
    sb.docker_ok(&d, &["rm", "-f", "one", "two", "live"]);
}

/// `docker export | docker import`: the container's root filesystem (not
/// its volumes, nothing of /proc) as a tar, and a tar (plain, gzip, or on
/// stdin) as a one-layer image with `--change`s and a message.
#[test]
fn docker_export_then_import_makes_a_runnable_image() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "box",
            "-v",
            "exvol:/data",
            "alpine",
            "sh",
            "-c",
            "echo hello > /hello.txt; echo secret > /data/in-volume; sleep 300",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tar = sb.dir().join("box.tar");
    let tar_s = tar.display().to_string();
    sb.docker_ok(&d, &["export", "-o", &tar_s, "box"]);
    let listing = String::from_utf8_lossy(&sb.run("tar", &["-tf", &tar_s]).unwrap().stdout).to_string();
    assert!(listing.lines().any(|l| l == "hello.txt"), "{listing}");
    assert!(listing.lines().any(|l| l == "bin/sh" || l == "bin/busybox"), "{listing}");
    assert!(!listing.lines().any(|l| l.starts_with("proc/") && l != "proc/"), "nothing of /proc: {listing}");
    assert!(!listing.contains("in-volume"), "volumes are not exported: {listing}");

    let id = sb.docker_ok(&d, &["import", "-c", "CMD [\"cat\", \"/hello.txt\"]", "-m", "from box", &tar_s, "lab/imported:1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/imported:1"]), "hello\n");
    let history = sb.docker_ok(&d, &["history", "--format", "{{.Comment}}", "lab/imported:1"]);
    assert_eq!(history.trim(), "from box");
    assert_eq!(sb.docker_ok(&d, &["inspect", "-f", "{{len .RootFS.Layers}}", "lab/imported:1"]).trim(), "1");
    // gzip, and on stdin.
    sb.run("sh", &["-c", &format!("gzip -c {tar_s} > {tar_s}.gz")]).unwrap();
    sb.docker_ok(&d, &["import", &format!("{tar_s}.gz"), "lab/gz"]);
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/gz", "cat", "/hello.txt"]), "hello\n");
    let o = sb
        .command("sh")
        .args(["-c", &format!("{} -H unix://{} import - lab/stdin < {tar_s}", "docker", d.socket.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/stdin", "cat", "/hello.txt"]), "hello\n");
    // Not a tar: the client's error.
    std::fs::write(sb.dir().join("junk.tar"), vec![b'x'; 2048]).unwrap();
    let o = sb.docker(&d, &["import", &sb.dir().join("junk.tar").display().to_string(), "lab/junk"]).unwrap();
    assert!(!o.status.success() && !out(&o).contains("500"), "{}", out(&o));
    sb.docker_ok(&d, &["rm", "-f", "box"]);
}

/// `docker save | docker load`: a pulled image's layers are written back
/// byte for byte (its ID and layers unchanged after a load into another
/// daemon), an image berth built or committed too; several images in one
/// archive, tags kept; a damaged archive is the client's error.
#[test]
fn docker_save_then_load_gives_back_the_same_images() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    sb.docker_ok(&d, &["run", "--name", "cc", "alpine", "sh", "-c", "echo mine > /mine"]);
    sb.docker_ok(&d, &["commit", "cc", "lab/mine:1"]);
    let ids = |sb: &berth_e2e::sandbox::Sandbox, d: &berth_e2e::sandbox::Berthd| {
        ["alpine", "nginx:alpine", "lab/mine:1"]
            .map(|i| sb.docker_ok(d, &["inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}", i]).trim().to_string())
    };
    let before = ids(&sb, &d);
    let tar = sb.dir().join("images.tar").display().to_string();
    sb.docker_ok(&d, &["save", "-o", &tar, "alpine", "nginx:alpine", "lab/mine:1"]);
    let listing = String::from_utf8_lossy(&sb.run("tar", &["-tf", &tar]).unwrap().stdout).to_string();
    assert!(listing.lines().any(|l| l == "manifest.json") && listing.lines().any(|l| l.ends_with("/layer.tar")), "{listing}");
    // Each layer.tar is the very stream its diff ID is the digest of.
    let sh = |cmd: String| String::from_utf8_lossy(&sb.run("sh", &["-c", &cmd]).unwrap().stdout).trim().to_string();
    let manifest: serde_json::Value = serde_json::from_str(&sh(format!("tar -xOf {tar} manifest.json"))).unwrap();
    let mut checked = 0;
    for (img, m) in before.iter().zip(manifest.as_array().unwrap()) {
        let diffs: Vec<String> = serde_json::from_str(img.split_once(' ').unwrap().1).unwrap();
        for (layer, diff) in m["Layers"].as_array().unwrap().iter().zip(&diffs) {
            let sum = sh(format!("tar -xOf {tar} {} | sha256sum | cut -d' ' -f1", layer.as_str().unwrap()));
            assert_eq!(format!("sha256:{sum}"), *diff, "{layer}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} layers checked");

    // Into the same daemon after removing them, and back.
    sb.docker_ok(&d, &["rm", "cc"]);
    sb.docker_ok(&d, &["rmi", "alpine", "nginx:alpine", "lab/mine:1"]);
    let loaded = sb.docker_ok(&d, &["load", "-i", &tar]);
    for t in ["alpine:latest", "nginx:alpine", "lab/mine:1"] {
        assert!(loaded.contains(&format!("Loaded image: {t}")), "{loaded}");
    }
    assert_eq!(ids(&sb, &d), before, "the same IDs and layers after save and load");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/mine:1", "cat", "/mine"]), "mine\n");
    // Through a pipe, one image by ID: loaded untagged.
    let id = before[0].split(' ').next().unwrap().to_string();
    let o = sb
        .command("sh")
        .args(["-c", &format!("docker -H unix://{s} save {id} | gzip | docker -H unix://{s} load", s = d.socket.display())])
        .output()
        .unwrap();
    assert!(o.status.success() && out(&o).contains(&format!("Loaded image ID: {id}")), "{}", out(&o));
    // A damaged archive: the client's error, not a 500.
    std::fs::write(sb.dir().join("bad.tar"), vec![b'z'; 4096]).unwrap();
    let o = sb.docker(&d, &["load", "-i", &sb.dir().join("bad.tar").display().to_string()]).unwrap();
    assert!(!o.status.success() && !out(&o).contains("500"), "{}", out(&o));
    let o = sb.docker(&d, &["save", "nonesuch"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("No such image: nonesuch"), "{}", out(&o));
}

/// `docker images --filter` (reference globs, dangling, label, before,
/// since), `docker image prune [-a]` with what it reclaimed, and `docker
/// logs --since/--until`.
#[test]
fn image_filters_prune_and_log_time_windows_work_as_dockers() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    let ctx = sb.dir().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nLABEL stage=one team=lab\nRUN echo one > /one\n").unwrap();
    sb.docker_ok(&d, &["build", "-q", "-t", "lab/one:1", &ctx.display().to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nLABEL stage=two\nRUN echo two > /two\n").unwrap();
    sb.docker_ok(&d, &["build", "-q", "-t", "lab/two:1", &ctx.display().to_string()]);
    let names = |filter: &[&str]| {
        let mut a = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filter {
            a.extend(["--filter", f]);
        }
        let mut v: Vec<String> = sb.docker_ok(&d, &a).lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["reference=lab/*"]), vec!["lab/one:1", "lab/two:1"]);
    assert_eq!(names(&["reference=nginx:alp*"]), vec!["nginx:alpine"]);
    assert_eq!(names(&["reference=*:latest"]), vec!["alpine:latest"]);
    assert_eq!(names(&["label=stage=one"]), vec!["lab/one:1"]);
    assert_eq!(names(&["label=team"]), vec!["lab/one:1"]);
    assert_eq!(names(&["since=lab/one:1"]), vec!["lab/two:1"]);
    assert!(names(&["before=lab/two:1"]).contains(&"lab/one:1".to_string()));
    assert!(names(&["dangling=true"]).is_empty());
    let o = sb.docker(&d, &["images", "--filter", "dangling=maybe"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("Invalid filter 'dangling=[maybe]'"), "{}", out(&o));
    let o = sb.docker(&d, &["images", "--filter", "colour=red"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("invalid filter 'colour'"), "{}", out(&o));

    // A rebuild moves the tag: the old image dangles, and prune removes it.
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nLABEL stage=two\nRUN echo two again > /two\n").unwrap();
    sb.docker_ok(&d, &["build", "-q", "-t", "lab/two:1", &ctx.display().to_string()]);
    assert_eq!(names(&["dangling=true"]), vec!["<none>:<none>"]);
    let pruned = sb.docker_ok(&d, &["image", "prune", "-f"]);
    assert!(pruned.contains("deleted: sha256:") && pruned.contains("Total reclaimed space:"), "{pruned}");
    assert!(names(&["dangling=true"]).is_empty());
    // -a: every image no container uses; the one in use stays.
    sb.docker_ok(&d, &["create", "--name", "keeper", "nginx:alpine"]);
    sb.docker_ok(&d, &["image", "prune", "-a", "-f"]);
    assert_eq!(names(&[]), vec!["nginx:alpine"]);

    // Logs in a time window.
    sb.docker_ok(&d, &["run", "-d", "--name", "talker", "alpine", "sh", "-c", "echo early; sleep 2; echo late; sleep 300"]);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let logs = |args: &[&str]| {
        let mut a = vec!["logs"];
        a.extend(args);
        a.push("talker");
        out(&sb.docker(&d, &a).unwrap())
    };
    assert_eq!(logs(&[]), "early\nlate\n");
    assert_eq!(logs(&["--since", "1s"]), "late\n");
    assert_eq!(logs(&["--until", "1s"]), "early\n");
    sb.docker_ok(&d, &["rm", "-f", "talker", "keeper"]);
}

/// One hijacked request over berthd's socket, as an SDK makes it: the
/// bytes after the response's headers, read until berthd closes the
/// connection. `input` is sent after the request, with a pause first.
fn hijacked(socket: &std::path::Path, method: &str, path: &str, body: &str, input: &[&[u8]]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} /v1.41{path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    for chunk in input {
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.write_all(chunk).unwrap();
    }
    let mut all = Vec::new();
    let start = std::time::Instant::now();
    let _ = s.read_to_end(&mut all);
    // berthd ends the connection (a timeout here means it did not).
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "the connection stayed open: {:?}", String::from_utf8_lossy(&all));
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(all.len());
    all.split_off(at)
}

/// Exec and attach details SDKs rely on: the start request's Tty decides
/// raw or multiplexed output; detach keys end an attachment and leave the
/// container running; `attach?logs=1&stream=0` to a finished container
/// sends its output and closes.
#[test]
fn exec_framing_detach_keys_and_attach_logs_are_dockers() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "-i", "-t", "--name", "tt", "alpine", "sh"]);
    let exec = |tty: bool| {
        let (code, body) =
            sb.api(&d, "POST", "/containers/tt/exec", Some(&format!(r#"{{"Cmd":["echo","hello"],"AttachStdout":true,"Tty":{tty}}}"#)));
        assert_eq!(code, 201, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"].as_str().unwrap().to_string()
    };
    // Created with a TTY, started without: multiplexed (stream 1, length 6 or 7).
    let id = exec(true);
    let out = hijacked(&d.socket, "POST", &format!("/exec/{id}/start"), r#"{"Detach":false,"Tty":false}"#, &[]);
    assert_eq!(&out[..4], &[1, 0, 0, 0], "multiplexed: {out:?}");
    assert!(String::from_utf8_lossy(&out[8..]).starts_with("hello"), "{out:?}");
    let id = exec(true);
    let out = hijacked(&d.socket, "POST", &format!("/exec/{id}/start"), r#"{"Detach":false,"Tty":true}"#, &[]);
    assert!(out.starts_with(b"hello"), "raw: {out:?}");

    // Detach keys: the attachment ends, the shell goes on.
    let out = hijacked(
        &d.socket,
        "POST",
        "/containers/tt/attach?stream=1&stdin=1&stdout=1&stderr=1",
        "",
        &[b"echo one-$((40+2))\n", b"\x10\x11"],
    );
    assert!(String::from_utf8_lossy(&out).contains("one-42"), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(sb.docker_ok(&d, &["inspect", "-f", "{{.State.Running}}", "tt"]).trim(), "true");
    let out =
        hijacked(&d.socket, "POST", "/containers/tt/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,x", "", &[b"echo two\n", b"\x01x"]);
    assert!(String::from_utf8_lossy(&out).contains("two"), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(sb.docker_ok(&d, &["inspect", "-f", "{{.State.Running}}", "tt"]).trim(), "true");
    let (code, body) = sb.api(&d, "POST", "/containers/tt/attach?stream=1&stdin=1&detachKeys=shift-x", None);
    assert!(code == 400 && body.contains("Invalid detach keys (shift-x) provided"), "{code} {body}");

    // A finished container's output, and the end.
    sb.docker_ok(&d, &["run", "--name", "done", "alpine", "sh", "-c", "echo out; echo err >&2"]);
    let out = hijacked(&d.socket, "POST", "/containers/done/attach?logs=1&stream=0&stdout=1&stderr=1", "", &[]);
    assert_eq!(out, [&[1u8, 0, 0, 0, 0, 0, 0, 4][..], b"out\n", &[2, 0, 0, 0, 0, 0, 0, 4], b"err\n"].concat(), "{out:?}");
    sb.docker_ok(&d, &["rm", "-f", "tt", "done"]);
}

/// `--group-add`, prunes' SpaceReclaimed, and `docker builder prune`.
#[test]
fn group_add_prune_sizes_and_builder_prune() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ids = sb.docker_ok(&d, &["run", "--rm", "--group-add", "nogroup", "--group-add", "4242", "-u", "1000", "alpine", "id", "-G"]);
    let gids: Vec<&str> = ids.split_whitespace().collect();
    assert!(gids.contains(&"65534") && gids.contains(&"4242"), "{ids}");
    let o = sb.docker(&d, &["run", "--rm", "--group-add", "nosuchgroup", "alpine", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("Unable to find group nosuchgroup"), "{}", out(&o));

    // A stopped container's layer holds a 1 MiB file: its prune frees it.
    sb.docker_ok(&d, &["run", "--name", "big", "alpine", "sh", "-c", "head -c 1048576 /dev/zero > /blob"]);
    let (code, body) = sb.api(&d, "POST", "/containers/prune", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["SpaceReclaimed"].as_u64().unwrap() >= 1_048_576, "{v}");

    // The build cache and its intermediate layers go; images stay usable.
    let ctx = sb.dir().join("bctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nRUN head -c 65536 /dev/zero > /a\nRUN echo b > /b\n").unwrap();
    sb.docker_ok(&d, &["build", "-q", "-t", "lab/cached", &ctx.display().to_string()]);
    let again = sb.docker_ok(&d, &["build", "-t", "lab/cached", &ctx.display().to_string()]);
    assert!(again.contains("Using cache"), "{again}");
    let pruned = sb.docker_ok(&d, &["builder", "prune", "-f"]);
    assert!(pruned.contains("Total:") || pruned.contains("Total reclaimed space"), "{pruned}");
    let rebuilt = sb.docker_ok(&d, &["build", "-t", "lab/cached", &ctx.display().to_string()]);
    assert!(!rebuilt.contains("Using cache"), "the cache is gone: {rebuilt}");
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/cached", "cat", "/b"]), "b\n");
}

/// `GET /distribution/{name}/json`: the registry's descriptor (the digest
/// a pull records) and platforms, without pulling; an unknown name is a 404.
#[test]
fn distribution_inspect_tells_what_the_registry_has_without_pulling() {
    let (sb, d) = node1().unwrap();
    let (code, body) = sb.api(&d, "GET", "/distribution/nginx:alpine/json", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let digest = v["Descriptor"]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:") && v["Descriptor"]["size"].as_u64().unwrap() > 0, "{v}");
    assert!(v["Platforms"].as_array().unwrap().iter().any(|p| p["os"] == "linux" && p["architecture"] == "amd64"), "{v}");
    assert_eq!(sb.docker_ok(&d, &["images", "-q"]).trim(), "", "nothing was pulled");
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    let digests = sb.inspect(&d, "nginx:alpine", "{{json .RepoDigests}}");
    assert!(digests.contains(&digest), "{digests} vs {digest}");
    let (code, body) = sb.api(&d, "GET", "/distribution/nosuchrepo/thing:1/json", None);
    assert_eq!(code, 404, "{body}");
}

/// An empty Dockerfile is refused with an HTTP error before any output.
#[test]
fn an_empty_dockerfile_is_the_clients_error() {
    let (sb, d) = node1().unwrap();
    let ctx = sb.dir().join("empty-ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "\n  \n").unwrap();
    let o = sb.docker(&d, &["build", "-t", "x", &ctx.display().to_string()]).unwrap();
    assert!(!o.status.success() && out(&o).contains("the Dockerfile (Dockerfile) cannot be empty"), "{}", out(&o));
}

/// The API version (item 11): berthd speaks the docker CLI's 1.50 and
/// negotiates down; a client pinned to an older version gets that version's
/// answers, as Docker gives them.
#[test]
fn the_cli_speaks_1_50_and_older_clients_get_their_versions_answers() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let v = sb.docker_ok(&d, &["version", "-f", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}}"]);
    assert_eq!(v.trim(), "1.50 1.50 1.24");
    let old = sb.docker_at(&d, "1.41", &["version", "-f", "{{.Client.APIVersion}} {{.Server.APIVersion}}"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&old.stdout).trim(), "1.41 1.50", "{}", out(&old));
    let too_old = sb.docker_at(&d, "1.23", &["ps"]).unwrap();
    assert!(!too_old.status.success() && out(&too_old).contains("client version 1.23 is too old"), "{}", out(&too_old));

    // `docker volume prune`: from 1.42 only anonymous volumes, unless -a.
    let anonymous_volume = || {
        sb.docker_ok(&d, &["create", "--name", "anon", "-v", "/data", "alpine", "true"]);
        let name = sb.inspect(&d, "anon", "{{range .Mounts}}{{.Name}}{{end}}");
        sb.docker_ok(&d, &["rm", "anon"]);
        name
    };
    sb.docker_ok(&d, &["volume", "create", "named1"]);
    let anon = anonymous_volume();
    let pruned = sb.docker_ok(&d, &["volume", "prune", "-f"]);
    assert!(pruned.contains(&anon) && !pruned.contains("named1"), "{pruned}");
    let old = sb.docker_at(&d, "1.41", &["volume", "prune", "-f"]).unwrap();
    assert!(out(&old).contains("named1"), "a 1.41 prune removes named volumes too: {}", out(&old));
    sb.docker_ok(&d, &["volume", "create", "named2"]);
    assert!(sb.docker_ok(&d, &["volume", "prune", "-a", "-f"]).contains("named2"));

    // Image inspect: VirtualSize until 1.44, ContainerConfig until 1.45.
    let (_, new) = sb.api_at(&d, "1.50", "GET", "/images/alpine/json", None);
    let (_, old) = sb.api_at(&d, "1.43", "GET", "/images/alpine/json", None);
    assert!(!new.contains("\"VirtualSize\"") && !new.contains("\"ContainerConfig\"") && new.contains("\"Size\""), "{new}");
    assert!(old.contains("\"VirtualSize\"") && old.contains("\"ContainerConfig\""), "{old}");

    // Names on a user-defined network: DNSNames from 1.44; Aliases only
    // what was asked from 1.45 (before, the short ID and hostname too).
    sb.docker_ok(&d, &["network", "create", "names"]);
    let id = sb.docker_ok(&d, &["run", "-d", "--name", "named", "--network", "names", "--network-alias", "db", "alpine", "sleep", "300"]);
    let short = &id.trim()[..12];
    let ep = "{{json .NetworkSettings.Networks.names.Aliases}} {{json .NetworkSettings.Networks.names.DNSNames}}";
    assert_eq!(sb.inspect(&d, "named", ep), format!(r#"["db"] ["named","db","{short}"]"#));
    let (_, body) = sb.api_at(&d, "1.44", "GET", "/containers/named/json", None);
    assert!(body.contains(&format!(r#""Aliases":["db","{short}"]"#)), "{body}");
    let (_, body) = sb.api_at(&d, "1.41", "GET", "/containers/named/json", None);
    assert!(!body.contains("DNSNames"), "{body}");

    // `docker stop -s` (1.42): the signal asked, not the container's.
    sb.docker_ok(&d, &["run", "-d", "--name", "sig", "alpine", "sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.2; done"]);
    sb.docker_ok(&d, &["stop", "-s", "USR1", "sig"]);
    assert_eq!(sb.inspect(&d, "sig", "{{.State.ExitCode}}"), "3");
    let bad = sb.docker(&d, &["stop", "-s", "NOPE", "sig"]).unwrap();
    assert!(out(&bad).contains("Invalid signal: NOPE"), "{}", out(&bad));

    // One network at most before 1.44; several from 1.44.
    let two = r#"{"Image":"alpine","Cmd":["true"],"NetworkingConfig":{"EndpointsConfig":{"bridge":{},"names":{}}}}"#;
    let (code, body) = sb.api_at(&d, "1.43", "POST", "/containers/create", Some(two));
    assert!(code == 400 && body.contains("Container cannot be created with multiple network endpoints: bridge, names"), "{code} {body}");
    let (code, body) = sb.api_at(&d, "1.44", "POST", "/containers/create?name=two", Some(two));
    assert_eq!(code, 201, "{body}");
    sb.docker_ok(&d, &["rm", "-f", "named", "sig", "two"]);
}
