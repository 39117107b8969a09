//! The fixture registry serves every fixture image (after scripts/setup.sh).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::Sandbox;

#[test]
fn the_fixture_registry_serves_all_fixture_manifests_and_blobs() {
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let script = berth_e2e::repo_root().join("scripts/fixtures.py");
    let out = sb.run("python3", &[script.to_str().unwrap(), "--check", "http://127.0.0.1:5000"]).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for want in [
        "library/hello-world:latest ok",
        "library/alpine:latest ok",
        "library/nginx:alpine ok",
        "library/gourmetgram-base:libtorch-2.13.0 ok",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // nginx:alpine is a real multi-layer image: LowerDir will show several dirs.
    assert!(text.contains("library/nginx:alpine ok (application/vnd.docker.distribution.manifest.v2+json, 3 layers)"), "{text}");
}
