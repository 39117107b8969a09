//! Bounded fuzzing (proptest) of the parsers that take untrusted text: the
//! Dockerfile parser, `.dockerignore`, and the port and volume specs of a
//! container create. Each property runs a few hundred cases, a few seconds.
#![allow(clippy::unwrap_used)] // test code

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::context::Ignore;
use crate::dockerfile;

/// A few hundred cases, no shrinking marathons, no files written.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() }
}

/// One Dockerfile-ish line: a known or made-up instruction, then arguments
/// drawn from the characters the parser treats specially.
fn line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("FROM".to_string()),
        Just("RUN".to_string()),
        Just("COPY".to_string()),
        Just("ADD".to_string()),
        Just("ENV".to_string()),
        Just("ARG".to_string()),
        Just("LABEL".to_string()),
        Just("EXPOSE".to_string()),
        Just("CMD".to_string()),
        Just("ENTRYPOINT".to_string()),
        Just("WORKDIR".to_string()),
        Just("USER".to_string()),
        Just("VOLUME".to_string()),
        Just("SHELL".to_string()),
        Just("HEALTHCHECK".to_string()),
        Just("ONBUILD".to_string()),
        Just("STOPSIGNAL".to_string()),
        Just("# escape=`".to_string()),
        Just("#".to_string()),
        "[a-zA-Z]{1,8}",
    ];
    let args = proptest::collection::vec(
        prop_oneof![
            Just("\\".to_string()),
            Just("`".to_string()),
            Just("<<EOF".to_string()),
            Just("<<-'X'".to_string()),
            Just("EOF".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("=".to_string()),
            Just("${A:-b}".to_string()),
            Just("--from=x".to_string()),
            Just("--chown=1:1".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("AS".to_string()),
            "[ -~]{0,12}",
            "\\PC{0,4}",
        ],
        0..12,
    );
    (word, args).prop_map(|(w, a)| format!("{w} {}", a.concat()))
}

proptest! {
    #![proptest_config(config(400))]

    /// Arbitrary text never panics the Dockerfile parser.
    #[test]
    fn dockerfile_parser_never_panics_on_arbitrary_text(src in "\\PC{0,300}") {
        let _ = dockerfile::parse(&src);
    }

    /// Arbitrary instruction-shaped lines neither panic nor hang it, and an
    /// error names a line that exists and stays short.
    #[test]
    fn dockerfile_parser_never_panics_or_hangs_on_instruction_lines(lines in proptest::collection::vec(line(), 0..40)) {
        let src = lines.join("\n");
        let start = Instant::now();
        let r = dockerfile::parse(&src);
        prop_assert!(start.elapsed() < Duration::from_secs(2), "{:?} took {:?}", src, start.elapsed());
        if let Err(e) = r {
            prop_assert!(e.line >= 1 && e.line <= src.lines().count().max(1), "{e:?} for {src:?}");
            prop_assert!(e.message.len() < 400, "{e:?}");
        }
    }

    /// `.dockerignore` text never panics, and matching never does either.
    #[test]
    fn dockerignore_never_panics(text in "\\PC{0,200}", path in "[a-z/.*]{0,20}") {
        if let Ok(i) = Ignore::parse(&text) {
            let _ = i.ignored(&path);
        }
    }

    /// Port specs as the API receives them (`PortBindings` keys and host
    /// ports, `ExposedPorts`) never panic the parser.
    #[test]
    fn port_specs_never_panic(key in "\\PC{0,12}|[0-9]{1,6}(/(tcp|udp|sctp|\\PC{0,3}))?", host_port in "\\PC{0,8}|[0-9]{0,6}", host_ip in "\\PC{0,8}|[0-9.]{0,16}", all in any::<bool>()) {
        let r = record(json!({"PortBindings": {key.clone(): [{"HostIp": host_ip, "HostPort": host_port}]}, "PublishAllPorts": all}), json!({"ExposedPorts": {key: {}}}));
        let _ = crate::engine::containers::port_requests(&r);
    }

    /// Volume specs (`-v` binds, `--mount` entries) never panic the parser.
    #[test]
    fn volume_specs_never_panic(bind in "\\PC{0,30}|[a-z/:,]{0,30}", target in "\\PC{0,10}|/[a-z/]{0,10}", kind in "bind|volume|tmpfs|\\PC{0,5}", vol in "\\PC{0,10}|/[a-z]{0,5}") {
        let host = json!({"Binds": [bind], "Mounts": [{"Type": kind, "Source": "src", "Target": target}]});
        let _ = crate::engine::containers::mount_requests(&host, &json!({"Volumes": {vol: {}}}));
    }
}

/// A container record with the given HostConfig and Config (the rest empty).
fn record(host_config: serde_json::Value, config: serde_json::Value) -> crate::engine::containers::Record {
    serde_json::from_value(json!({
        "id": "0".repeat(64), "name": "/fuzz", "created": "", "image": "x", "image_id": "",
        "config": config, "host_config": host_config,
        "state": {"status": serde_json::to_value(berth_shared::Status::Created).unwrap(), "pid": 0, "exit_code": 0, "error": "", "started_at": "", "finished_at": ""},
        "layer": {"lower": [], "upper": "", "work": "", "merged": ""},
        "log_path": "", "hostname_path": "", "hosts_path": "", "resolv_conf_path": "",
    }))
    .unwrap()
}

#[test]
fn huge_and_malformed_dockerfiles_fail_with_short_messages() {
    // A line past Docker's limit.
    let e = dockerfile::parse(&format!("FROM scratch\nRUN echo {}\n", "a".repeat(70_000))).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (2, "dockerfile line greater than max allowed size of 65535"));
    // An unknown instruction as long as a line may be is quoted, not echoed.
    let e = dockerfile::parse(&format!("FROM scratch\n{}\n", "X".repeat(60_000))).unwrap_err();
    assert!(e.message.starts_with("unknown instruction: XXX") && e.message.len() < 120, "{}", e.message.len());
    // A heredoc that never ends.
    let e = dockerfile::parse("FROM scratch\nRUN <<EOF\necho one\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("unterminated heredoc EOF"), "{}", e.message);
}

#[test]
fn ten_thousand_instructions_parse_quickly() {
    let mut src = String::from("FROM scratch\n");
    for i in 0..10_000 {
        src.push_str(&format!("LABEL k{i}=v{i}\n"));
    }
    let start = Instant::now();
    let p = dockerfile::parse(&src).unwrap();
    assert_eq!(p.stages[0].steps.len(), 10_000);
    // (The line lookup counted newlines from the top for each instruction:
    // 40 s for these 10,000; now a fraction of a second.)
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}
