//! Hostile image layers: tars built here, pushed to a registry of the
//! sandbox's own and pulled through berthd. Each is refused with a clear
//! error (or, where Docker takes it, taken as Docker does), nothing is
//! written or changed outside berth's roots, and the daemon still answers.
//! Also: a setuid-root binary of an image cannot be run by another user
//! from the data root (Docker keeps its root and overlay2 at 0710).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::sandbox::{out, Berthd, Sandbox};
use sha2::{Digest, Sha256};

const REGISTRY: &str = "127.0.0.1:5001";

/// A registry of this test's own inside node1 (its storage in the sandbox
/// dir: hostile images never reach the shared fixture registry).
struct Registry {
    child: Child,
}

impl Registry {
    fn start(sb: &Sandbox) -> Registry {
        let dir = sb.dir().join("hostile-registry");
        fs::create_dir_all(dir.join("storage")).unwrap();
        let cfg = dir.join("config.yml");
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {REGISTRY}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = sb
            .command("/usr/bin/docker-registry")
            .args(["serve", cfg.to_str().unwrap()])
            .env("REGISTRY_HTTP_ADDR", REGISTRY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            let up = sb
                .run("curl", &["-fsS", "--max-time", "2", &format!("http://{REGISTRY}/v2/")])
                .map(|o| o.status.success())
                .unwrap_or(false);
            if up {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the test registry did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { child }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only the process this test started, by its pid (the sandbox's
        // cleanup would end it too).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Pushes one blob with curl inside node1 (POST, then PUT with the digest).
fn push_blob(sb: &Sandbox, repo: &str, data: &[u8]) -> String {
    let digest = sha(data);
    let file = sb.dir().join(format!("blob-{}", &digest[7..]));
    fs::write(&file, data).unwrap();
    let o = sb
        .run("curl", &["-fsS", "-X", "POST", "-D", "-", "-o", "/dev/null", &format!("http://{REGISTRY}/v2/{repo}/blobs/uploads/")])
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let headers = String::from_utf8_lossy(&o.stdout).into_owned();
    let loc = headers
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
        .unwrap_or_else(|| panic!("no Location in {headers}"))
        .trim()
        .to_string();
    let loc = if loc.starts_with('/') { format!("http://{REGISTRY}{loc}") } else { loc };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let o = sb
        .run(
            "curl",
            &[
                "-fsS",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("{loc}{sep}digest={digest}"),
            ],
        )
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let _ = fs::remove_file(file);
    digest
}

/// Pushes a one-layer image (uncompressed OCI layer) as `REGISTRY/hostile/<name>:latest`.
fn push_image(sb: &Sandbox, name: &str, layer: &[u8]) -> String {
    let repo = format!("hostile/{name}");
    let layer_digest = push_blob(sb, &repo, layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/id"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = push_blob(sb, &repo, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let mfile = sb.dir().join(format!("manifest-{name}.json"));
    fs::write(&mfile, &manifest).unwrap();
    let o = sb
        .run(
            "curl",
            &[
                "-fsS",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
                &format!("@{}", mfile.display()),
                &format!("http://{REGISTRY}/v2/{repo}/manifests/latest"),
            ],
        )
        .unwrap();
    assert!(o.status.success(), "pushing the manifest: {}", out(&o));
    format!("{REGISTRY}/{repo}")
}

/// A tar member with its name (and link name) written raw: `..` and
/// absolute paths reach the unpacker as an attacker writes them.
fn member(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, link: &str, body: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(body.len() as u64);
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if !link.is_empty() {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    b.append(&h, body).unwrap();
}

fn device(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, major: u32, minor: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(path).unwrap();
    h.set_device_major(major).unwrap();
    h.set_device_minor(minor).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

fn layer(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

/// The sandbox with the test registry and a berthd that may pull from it.
fn setup() -> (Sandbox, Registry, Berthd, PathBuf) {
    let sb = Sandbox::new().unwrap();
    let reg = Registry::start(&sb);
    let d = sb.start_berthd(&["--insecure-registry", REGISTRY]).unwrap();
    let data = sb.dir().join("berth/data");
    (sb, reg, d, data)
}

/// Every path under `dir` with its inode facts, for before/after checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u32, u64, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path(), m.mode(), m.uid(), m.nlink(), m.len()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn find_named(dir: &Path, name: &str, skip: &Path) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.starts_with(skip) {
            continue;
        }
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_name() == name {
                hits.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    hits
}

#[test]
fn hostile_layers_are_refused_and_nothing_lands_outside_berths_roots() {
    let (sb, _reg, d, data) = setup();
    // `host` plays the host's /etc: a canary shadow file, root's, 0600.
    let host = sb.dir().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("shadow"), "root:canary").unwrap();
    fs::set_permissions(host.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    let before = snapshot(&host);
    let h = host.to_str().unwrap().to_string();
    let big_pax = {
        let body = format!(" comment={}\n", "a".repeat(2 << 20));
        let mut n = body.len() + 1;
        while format!("{n}{body}").len() != n {
            n += 1;
        }
        format!("{n}{body}")
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dotdot", layer(|b| member(b, tar::EntryType::Regular, "a/../../../../host/owned", "", b"x", 0o644)), "'..' in path"),
        ("absolute", layer(|b| member(b, tar::EntryType::Regular, &format!("{h}/owned"), "", b"x", 0o644)), "absolute path"),
        (
            "symlink-write",
            layer(|b| {
                member(b, tar::EntryType::Symlink, "evil", &h, b"", 0o777);
                member(b, tar::EntryType::Regular, "evil/owned", "", b"x", 0o644);
            }),
            "a parent is a symlink",
        ),
        ("hardlink-up", layer(|b| member(b, tar::EntryType::Link, "stolen", "../../../host/shadow", b"", 0o644)), "'..' in path"),
        ("hardlink-absolute", layer(|b| member(b, tar::EntryType::Link, "stolen", &format!("{h}/shadow"), b"", 0o644)), "absolute path"),
        (
            "hardlink-via-symlink",
            layer(|b| {
                member(b, tar::EntryType::Symlink, "etcl", &h, b"", 0o777);
                member(b, tar::EntryType::Link, "stolen", "etcl/shadow", b"", 0o644);
            }),
            "layer entry \"stolen\": hard link to \"etcl/shadow\" refused",
        ),
        (
            "huge-pax",
            layer(|b| {
                member(b, tar::EntryType::XHeader, "PaxHeaders/x", "", big_pax.as_bytes(), 0o644);
                member(b, tar::EntryType::Regular, "x", "", b"x", 0o644);
            }),
            "over 1 MiB",
        ),
        (
            "long-name",
            layer(|b| {
                let mut name = "n".repeat(4000).into_bytes();
                name.push(0);
                member(b, tar::EntryType::GNULongName, "././@LongLink", "", &name, 0o644);
                member(b, tar::EntryType::Regular, "short", "", b"x", 0o644);
            }),
            "layer entry",
        ),
    ];
    for (name, tar, want) in &cases {
        let image = push_image(&sb, name, tar);
        let o = sb.docker(&d, &["pull", &image]).unwrap();
        let text = out(&o);
        assert!(!o.status.success(), "{name}: the pull succeeded:\n{text}");
        assert!(text.contains(want), "{name}: expected {want:?} in:\n{text}");
        // The canary is untouched: no new link, owner, mode or file.
        assert_eq!(snapshot(&host), before, "{name}: the host dir changed");
        assert_eq!(fs::read_to_string(host.join("shadow")).unwrap(), "root:canary");
        // Nothing half-unpacked stays behind.
        let left: Vec<_> = fs::read_dir(data.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{name}: left in tmp: {left:?}");
        // The daemon still answers.
        let v = sb.docker(&d, &["version", "--format", "{{.Server.Version}}"]).unwrap();
        assert!(v.status.success(), "{name}: {}", out(&v));
    }
    assert!(find_named(sb.dir(), "owned", &data).is_empty());
    assert!(find_named(&data, "owned", Path::new("/nonexistent")).is_empty());
    assert_eq!(sb.docker_ok(&d, &["images", "-q"]).trim(), "", "a refused image was stored");

    // Device nodes are made as Docker makes them (root, no user namespace):
    // inside the layer dir only.
    let image = push_image(
        &sb,
        "devices",
        &layer(|b| {
            device(b, tar::EntryType::Char, "dev/mynull", 1, 3);
            device(b, tar::EntryType::Block, "dev/myloop", 7, 0);
            member(b, tar::EntryType::Fifo, "dev/fifo", "", b"", 0o600);
        }),
    );
    sb.docker_ok(&d, &["pull", &image]);
    let nodes = find_named(&data.join("overlay2"), "mynull", Path::new("/nonexistent"));
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let m = fs::symlink_metadata(&nodes[0]).unwrap();
    assert_eq!((m.mode() & 0o170000, m.rdev()), (0o020000, nix::sys::stat::makedev(1, 3)));
    assert!(find_named(sb.dir(), "mynull", &data).is_empty());
    assert_eq!(snapshot(&host), before);
}

#[test]
fn a_setuid_binary_in_a_layer_cannot_be_run_by_other_users_from_the_data_root() {
    let (sb, _reg, d, data) = setup();
    let id = fs::read("/usr/bin/id").unwrap();
    let image = push_image(
        &sb,
        "setuid",
        &layer(|b| {
            member(b, tar::EntryType::Directory, "bin/", "", b"", 0o755);
            member(b, tar::EntryType::Regular, "bin/id", "", &id, 0o4755);
        }),
    );
    sb.docker_ok(&d, &["pull", &image]);
    let hits = find_named(&data.join("overlay2"), "id", Path::new("/nonexistent"));
    assert_eq!(hits.len(), 1, "{hits:?}");
    let bin = &hits[0];
    // Kept setuid as Docker keeps it (the image's own business)...
    assert_eq!(fs::metadata(bin).unwrap().mode() & 0o7777, 0o4755);
    // ...but out of other users' reach: the dirs above berth's data root
    // are opened up here, so only berthd's own modes stand in the way.
    for dir in [sb.dir().to_path_buf(), sb.dir().join("berth")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).unwrap();
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&data), 0o710);
    assert_eq!(mode(&data.join("overlay2")), 0o710);
    assert_eq!(mode(bin.parent().unwrap().parent().unwrap().parent().unwrap()), 0o710, "the layer's dir");
    // Through a shell: setpriv execs its own argument before the path is
    // checked as the new user (seen: it ran a binary under a 0700 dir).
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", "exec \"$@\"", "sh"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = as_nobody(&["id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "65534", "{}", out(&ok));
    let run = as_nobody(&[bin.to_str().unwrap()]);
    assert!(!run.status.success(), "nobody ran the image's setuid binary: {}", out(&run));
    assert!(!out(&run).contains("euid=0"), "{}", out(&run));
    let ls = as_nobody(&["ls", data.join("overlay2").to_str().unwrap()]);
    assert!(!ls.status.success(), "nobody listed overlay2: {}", out(&ls));
    let ls = as_nobody(&["ls", data.to_str().unwrap()]);
    assert!(!ls.status.success(), "nobody listed the data root: {}", out(&ls));
    // Root still can (berthd's own use).
    let o = Command::new(bin).output().unwrap();
    assert!(o.status.success() && out(&o).contains("uid=0"), "{}", out(&o));
    drop(d);
}
