//! Pulling and managing images with the real docker CLI against berthd in
//! the sandbox, through the fixture registry as a docker.io mirror.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out};

#[test]
fn docker_pull_through_the_mirror_then_list_inspect_tag_and_remove() {
    let (sb, d) = node1().unwrap();
    let pulled = sb.docker_ok(&d, &["pull", "alpine"]);
    assert!(pulled.contains("latest: Pulling from library/alpine"), "{pulled}");
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert!(pulled.contains("Status: Downloaded newer image for alpine:latest"), "{pulled}");
    assert!(pulled.contains("docker.io/library/alpine:latest"), "{pulled}");

    // nginx:alpine shares alpine's base layer: stored once.
    let pulled = sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    assert!(pulled.contains("Already exists"), "{pulled}");
    let again = sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    assert!(again.contains("Status: Image is up to date for nginx:alpine"), "{again}");

    let images = sb.docker_ok(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = images.lines().collect();
    names.sort();
    assert_eq!(names, vec!["alpine:latest", "nginx:alpine"]);

    let ports = sb.docker_ok(
        &d,
        &[
            "image",
            "inspect",
            "nginx:alpine",
            "--format",
            "{{json .Config.ExposedPorts}}|{{len .RootFS.Layers}}|{{.GraphDriver.Name}}|{{json .Config.Cmd}}",
        ],
    );
    assert_eq!(ports.trim(), r#"{"80/tcp":{}}|3|overlay2|["nginx","-g","daemon off;"]"#);

    // The linux/amd64 entry of alpine's OCI index was picked, not arm64.
    let arch = sb.docker_ok(&d, &["image", "inspect", "alpine", "--format", "{{.Architecture}} {{.Os}}"]);
    assert_eq!(arch.trim(), "amd64 linux");

    sb.docker_ok(&d, &["tag", "alpine", "my/alpine:1"]);
    // One row per tag, as Docker lists them: the new tag shares alpine's ID.
    let ids = sb.docker_ok(&d, &["images", "-q", "--no-trunc"]);
    let unique: std::collections::BTreeSet<&str> = ids.lines().collect();
    assert_eq!((ids.lines().count(), unique.len()), (3, 2), "{ids}");
    let rmi = sb.docker_ok(&d, &["rmi", "my/alpine:1"]);
    assert_eq!(rmi.trim(), "Untagged: my/alpine:1");
    let rmi = sb.docker_ok(&d, &["rmi", "nginx:alpine"]);
    assert!(rmi.contains("Untagged: nginx:alpine") && rmi.contains("Deleted: sha256:"), "{rmi}");
    // alpine still works: its layer was shared, not deleted with nginx.
    let layers = sb.docker_ok(&d, &["image", "inspect", "alpine", "--format", "{{.GraphDriver.Data.UpperDir}}"]);
    assert!(std::path::Path::new(layers.trim()).join("bin/busybox").exists(), "{layers}");
}

#[test]
fn unknown_images_and_bad_names_get_dockers_errors() {
    let (sb, d) = node1().unwrap();
    let o = sb.docker(&d, &["pull", "nosuchimage"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("pull access denied for nosuchimage"), "{}", out(&o));
    let o = sb.docker(&d, &["image", "inspect", "nope:1"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("No such image: nope:1"), "{}", out(&o));
    let o = sb.docker(&d, &["rmi", "nope:1"]).unwrap();
    assert!(out(&o).contains("No such image: nope:1"), "{}", out(&o));
}

#[test]
fn pulls_from_localhost_5000_and_images_survive_a_daemon_restart() {
    let (sb, mut d) = node1().unwrap();
    let pulled = sb.docker_ok(&d, &["pull", "localhost:5000/library/hello-world"]);
    assert!(pulled.contains("Downloaded newer image for localhost:5000/library/hello-world:latest"), "{pulled}");
    assert!(d.terminate().unwrap().success());
    let d2 = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    let images = sb.docker_ok(&d2, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "localhost:5000/library/hello-world:latest");
}
