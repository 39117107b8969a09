//! Volumes and bind mounts in the sandbox, as the lab uses them, with the
//! real docker CLI and the host's tools.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Sandbox};

fn host(sb: &Sandbox, cmd: &str) -> String {
    let o = sb.run("sh", &["-c", cmd]).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn page(sb: &Sandbox) -> String {
    host(sb, "curl -s --max-time 5 http://127.0.0.1/")
}

#[test]
fn a_named_volume_is_filled_from_the_image_shared_between_containers_and_outlives_them() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["volume", "create", "webvol"]);
    let ls = sb.docker_ok(&d, &["volume", "ls"]);
    assert!(ls.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["local", "webvol"]), "{ls}");
    let v: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["volume", "inspect", "webvol"])).unwrap();
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(mountpoint, sb.dir().join("berth/data/volumes/webvol/_data").display().to_string());
    assert_eq!(host(&sb, &format!("ls -A {mountpoint}")), "", "a new volume is empty");

    // Mounted over nginx's html dir: the image's files are copied in.
    sb.docker_ok(&d, &["run", "--name", "nginx-vol", "-d", "--rm", "-v", "webvol:/usr/share/nginx/html", "-p", "80:80", "nginx:alpine"]);
    assert!(page(&sb).contains("Welcome to nginx!"));
    let stat = host(&sb, &format!("stat -c '%a %u' {mountpoint}/index.html"));
    let merged = sb.docker_ok(&d, &["inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", "nginx-vol"]);
    let image_copy = merged
        .trim()
        .split(':')
        .map(|l| format!("{l}/usr/share/nginx/html/index.html"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    assert_eq!(stat, host(&sb, &format!("stat -c '%a %u' {image_copy}")), "mode and owner kept");
    let mounts = sb.docker_ok(&d, &["inspect", "-f", "{{json .Mounts}}", "nginx-vol"]);
    let m: serde_json::Value = serde_json::from_str(&mounts).unwrap();
    assert_eq!(m[0]["Type"], "volume", "{m}");
    assert_eq!(m[0]["Name"], "webvol");
    assert_eq!(m[0]["Source"].as_str(), Some(mountpoint.as_str()));
    assert_eq!(m[0]["Destination"], "/usr/share/nginx/html");
    assert_eq!(m[0]["RW"], true);

    // Another container edits the page through the same volume.
    sb.docker_ok(
        &d,
        &["run", "--rm", "-v", "webvol:/data/web", "alpine", "sh", "-c", "echo '<h1>Hello from the volume</h1>' > /data/web/index.html"],
    );
    assert!(page(&sb).contains("Hello from the volume"), "{}", page(&sb));
    let o = sb.docker(&d, &["volume", "rm", "webvol"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("volume is in use"), "{}", out(&o));

    // Gone with its containers, the data stays; a new container sees it.
    sb.docker_ok(&d, &["stop", "nginx-vol"]);
    sb.docker_ok(&d, &["run", "--name", "stopped-user", "-v", "webvol:/data", "alpine", "true"]);
    sb.docker_ok(&d, &["container", "prune", "-f"]);
    let again = sb.docker_ok(
        &d,
        &["run", "--rm", "-v", "webvol:/usr/share/nginx/html:ro", "nginx:alpine", "cat", "/usr/share/nginx/html/index.html"],
    );
    assert!(again.contains("Hello from the volume"), "{again}");
    // Read-only: writes fail inside.
    let o = sb.docker(&d, &["run", "--rm", "-v", "webvol:/data:ro", "alpine", "touch", "/data/x"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("Read-only file system"), "{}", out(&o));

    sb.docker_ok(&d, &["volume", "rm", "webvol"]);
    assert!(!std::path::Path::new(&mountpoint).exists());
    let o = sb.docker(&d, &["volume", "inspect", "webvol"]).unwrap();
    assert!(out(&o).contains("no such volume"), "{}", out(&o));
}

#[test]
fn a_bind_mount_shows_host_edits_and_can_be_read_only() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    sb.docker_ok(&d, &["pull", "alpine"]);
    let web = sb.dir().join("data/web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<h1>From the host</h1>\n").unwrap();
    let spec = format!("{}:/usr/share/nginx/html", web.display());
    sb.docker_ok(&d, &["run", "--name", "nginx-bind", "-d", "--rm", "-v", &spec, "-p", "80:80", "nginx:alpine"]);
    assert!(page(&sb).contains("From the host"));
    std::fs::write(web.join("index.html"), "<h1>Edited on the host</h1>\n").unwrap();
    assert!(page(&sb).contains("Edited on the host"));
    let m: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["inspect", "-f", "{{json .Mounts}}", "nginx-bind"])).unwrap();
    assert_eq!((m[0]["Type"].as_str(), m[0]["Propagation"].as_str()), (Some("bind"), Some("rprivate")), "{m}");
    assert_eq!(m[0]["Source"].as_str(), Some(web.to_str().unwrap()));

    // Written inside, seen on the host; `:ro` and --mount readonly refuse writes.
    let rw = format!("{}:/web", web.display());
    sb.docker_ok(&d, &["run", "--rm", "-v", &rw, "alpine", "sh", "-c", "echo inside > /web/from-container.txt"]);
    assert_eq!(std::fs::read_to_string(web.join("from-container.txt")).unwrap(), "inside\n");
    let ro = format!("{}:/web:ro", web.display());
    let o = sb.docker(&d, &["run", "--rm", "-v", &ro, "alpine", "touch", "/web/x"]).unwrap();
    assert!(out(&o).contains("Read-only file system"), "{}", out(&o));
    let mount = format!("type=bind,source={},target=/web,readonly", web.display());
    let o = sb.docker(&d, &["run", "--rm", "--mount", &mount, "alpine", "touch", "/web/x"]).unwrap();
    assert!(out(&o).contains("Read-only file system"), "{}", out(&o));
    // --mount wants the source to exist; -v makes it.
    let o = sb.docker(&d, &["run", "--rm", "--mount", "type=bind,source=/nonexistent/berth-test,target=/x", "alpine", "true"]).unwrap();
    assert!(out(&o).contains("bind source path does not exist: /nonexistent/berth-test"), "{}", out(&o));
    let made = sb.dir().join("made/by/v");
    sb.docker_ok(&d, &["run", "--rm", "-v", &format!("{}:/x", made.display()), "alpine", "true"]);
    assert!(made.is_dir());
    let o = sb.docker(&d, &["run", "--rm", "-v", "webvol:relative/path", "alpine", "true"]).unwrap();
    assert!(out(&o).contains("must be absolute"), "{}", out(&o));
}

#[test]
fn anonymous_volumes_come_and_go_with_their_containers_and_prune_clears_the_rest() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "--rm", "-v", "/scratch", "alpine", "sh", "-c", "echo x > /scratch/f"]);
    assert_eq!(sb.docker_ok(&d, &["volume", "ls", "-q"]), "", "--rm removes the anonymous volume");
    sb.docker_ok(&d, &["run", "--name", "keeps", "-v", "/scratch", "alpine", "true"]);
    let name = sb.docker_ok(&d, &["volume", "ls", "-q"]).trim().to_string();
    assert_eq!(name.len(), 64, "{name}");
    let dangling = sb.docker_ok(&d, &["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling, "", "used by a stopped container");
    sb.docker_ok(&d, &["rm", "-v", "keeps"]);
    assert_eq!(sb.docker_ok(&d, &["volume", "ls", "-q"]), "");

    sb.docker_ok(&d, &["volume", "create", "one"]);
    sb.docker_ok(&d, &["volume", "create", "two"]);
    sb.docker_ok(&d, &["run", "--name", "user", "-v", "two:/d", "alpine", "true"]);
    // Docker 23+ (API 1.42): a prune takes anonymous volumes only, unless -a.
    let pruned = sb.docker_ok(&d, &["volume", "prune", "-f"]);
    assert!(!pruned.contains("one"), "{pruned}");
    let pruned = sb.docker_ok(&d, &["volume", "prune", "-a", "-f"]);
    assert!(pruned.contains("one") && !pruned.contains("two"), "{pruned}");
    assert_eq!(sb.docker_ok(&d, &["volume", "ls", "-q"]).trim(), "two");
    let o = sb.docker(&d, &["volume", "create", "bad/name"]).unwrap();
    assert!(out(&o).contains("includes invalid characters for a local volume name"), "{}", out(&o));
}
