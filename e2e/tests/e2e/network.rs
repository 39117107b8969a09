//! Container networking in the sandbox, with the real CLI and host tools.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Sandbox};

fn host(sb: &Sandbox, cmd: &str) -> String {
    let o = sb.run("sh", &["-c", cmd]).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn containers_get_eth0_on_docker0_with_a_veth_and_reach_each_other() {
    let (sb, d) = node1().unwrap();
    let br = host(&sb, "ip -4 -o addr show docker0");
    assert!(br.contains("inet 172.17.0.1/16"), "{br}");
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);

    let inside = sb.docker_ok(
        &d,
        &["run", "--rm", "alpine", "sh", "-c", "ip -4 -o addr show eth0; ip link show eth0; ip route; cat /etc/hosts | tail -1"],
    );
    assert!(inside.contains("inet 172.17.0.2/16"), "{inside}");
    assert!(inside.contains("link/ether 02:42:ac:11:00:02"), "{inside}");
    assert!(inside.contains("default via 172.17.0.1 dev eth0"), "{inside}");
    assert!(inside.lines().last().unwrap_or("").starts_with("172.17.0.2\t"), "{inside}");
    // An IPv4-only network's interface has IPv6 off, as Docker 26+ leaves it:
    // no link-local address, no IPv6 multicast groups.
    let v6 =
        sb.docker_ok(&d, &["run", "--rm", "alpine", "sh", "-c", "ip -6 addr show eth0; cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6"]);
    assert_eq!(v6.trim(), "1", "{v6}");

    sb.docker_ok(&d, &["run", "--name", "nginx-demo", "-d", "--rm", "nginx:alpine"]);
    let ip = sb.docker_ok(&d, &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "nginx-demo"]);
    assert_eq!(ip.trim(), "172.17.0.2", "the address was released and reused");
    // docker network inspect bridge: IPAM and a Containers entry.
    let n = sb.docker_ok(&d, &["network", "inspect", "bridge"]);
    let v: serde_json::Value = serde_json::from_str(&n).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16", "{n}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "172.17.0.1", "{n}");
    let entries: Vec<&serde_json::Value> = v[0]["Containers"].as_object().unwrap().values().collect();
    assert_eq!(entries.len(), 1, "{n}");
    assert_eq!(entries[0]["Name"], "nginx-demo");
    assert_eq!(entries[0]["IPv4Address"], "172.17.0.2/16");
    assert_eq!(entries[0]["MacAddress"], "02:42:ac:11:00:02");
    let ls = sb.docker_ok(&d, &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(ls.lines().collect::<Vec<_>>(), vec!["bridge bridge", "host host", "none null"]);
    // The host side: a veth with master docker0 and a link-netnsid.
    let links = host(&sb, "ip -o link show master docker0");
    assert!(links.contains(": veth") && links.contains("link-netnsid"), "{links}");
    // The host reaches the container; another container reaches it too.
    let page = host(&sb, "curl -s --max-time 5 http://172.17.0.2/");
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let ping = sb.docker_ok(&d, &["run", "--rm", "alpine", "ping", "-c", "1", "-W", "3", "172.17.0.2"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // (busybox-static's wget crashes with -T; plain wget as the lab uses it.)
    let page = sb.docker_ok(&d, &["run", "--rm", "alpine", "wget", "-qO-", "http://172.17.0.2/"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");

    sb.docker_ok(&d, &["stop", "nginx-demo"]);
    // The pair goes with the container's namespace, in the kernel's time
    // (milliseconds: berthd does not wait for it).
    berth_e2e::sandbox::until(5, "no veth left after the container is gone", || host(&sb, "ip -o link show master docker0").is_empty());
    // Its namespace's bind mount (SandboxKey) is gone too.
    let netns_dir = sb.dir().join("berth/run/netns");
    let left: Vec<_> = std::fs::read_dir(&netns_dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let mounts = host(&sb, &format!("grep ' nsfs ' /proc/self/mountinfo | grep -c '{}' || true", netns_dir.display()));
    assert_eq!(mounts.trim(), "0", "no namespace bind mount left in berthd's mount namespace");
}

#[test]
fn network_none_and_host() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let none = sb.docker_ok(&d, &["run", "--rm", "--network", "none", "alpine", "ip", "-o", "link"]);
    assert_eq!(none.lines().count(), 1, "{none}");
    let hostnet = sb.docker_ok(&d, &["run", "--rm", "--network", "host", "alpine", "ip", "-o", "link"]);
    assert!(hostnet.contains("docker0"), "{hostnet}");
}

#[test]
fn two_hundred_create_remove_cycles_leak_nothing_and_reuse_the_first_address() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // Two at a time, so that allocation must skip an address in use.
    sb.docker_ok(&d, &["run", "--name", "keeper", "-d", "alpine", "sleep", "600"]);
    let o = sb
        .command("sh")
        .args(["-c", "for i in $(seq 1 200); do docker run --rm alpine true || exit 1; done"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", out(&o), d.log_text());
    let ip = sb.docker_ok(&d, &["run", "--rm", "alpine", "sh", "-c", "ip -4 -o addr show eth0"]);
    assert!(ip.contains("inet 172.17.0.3/16"), "the next free address after keeper's: {ip}");
    sb.docker_ok(&d, &["rm", "-f", "keeper"]);
    // Only the sandbox's own uplink (eth0) is a veth once the kernel has
    // taken the last pairs down with their namespaces.
    berth_e2e::sandbox::until(5, "the last veths to go", || {
        host(&sb, "ip -o link show master docker0").is_empty() && host(&sb, "ip -o link show type veth | grep -v ': eth0@'").is_empty()
    });
    let left = std::fs::read_dir(sb.dir().join("berth/run/netns")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
}

#[test]
fn publishing_a_port_adds_dockers_rules_and_serves_on_the_host_address_and_loopback() {
    let (sb, d) = node1().unwrap();
    // The standing chains and rules exist before any container.
    let nat = host(&sb, "iptables -t nat -S");
    for want in [
        "-N DOCKER",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        "-A DOCKER -i docker0 -j RETURN",
    ] {
        assert!(nat.lines().any(|l| l == want), "missing {want}:\n{nat}");
    }
    let filter = host(&sb, "iptables --list -n");
    for chain in ["Chain DOCKER (", "Chain DOCKER-USER (", "Chain DOCKER-ISOLATION-STAGE-1 (", "Chain DOCKER-ISOLATION-STAGE-2 ("] {
        assert!(filter.contains(chain), "missing {chain}:\n{filter}");
    }
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    sb.docker_ok(&d, &["run", "--name", "nginx-public", "-d", "--rm", "-p", "80:80", "nginx:alpine"]);
    let nat = host(&sb, "iptables -t nat -S");
    assert!(nat.lines().any(|l| l == "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80"), "{nat}");
    assert!(nat.lines().any(|l| l == "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE"), "{nat}");
    let filter = host(&sb, "iptables -S DOCKER");
    assert!(
        filter.lines().any(|l| l == "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"),
        "{filter}"
    );

    // node1's own address (DNAT) and 127.0.0.1 (the userland proxy).
    let page = host(&sb, &format!("curl -s --max-time 5 http://{}/", sb.uplink.node_ip));
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let page = host(&sb, "curl -s --max-time 5 http://127.0.0.1/");
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let ports = sb.docker_ok(&d, &["port", "nginx-public"]);
    assert_eq!(ports.trim(), "80/tcp -> 0.0.0.0:80");
    let ps = sb.docker_ok(&d, &["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), "0.0.0.0:80->80/tcp");

    // The port is taken: Docker's error, and nothing of the second container stays.
    let o = sb.docker(&d, &["run", "--name", "second", "-d", "-p", "80:80", "nginx:alpine"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("address already in use"), "{}", out(&o));
    berth_e2e::sandbox::until(5, "the failed run's veth to go with its namespace", || {
        host(&sb, "ip -o link show master docker0 | wc -l").trim() == "1"
    });
    // A random host port with -P.
    sb.docker_ok(&d, &["run", "--name", "random", "-d", "--rm", "-P", "nginx:alpine"]);
    let port = sb.docker_ok(&d, &["port", "random", "80"]);
    let hp = port.trim().rsplit(':').next().unwrap().to_string();
    assert!(hp.parse::<u16>().unwrap() > 1024, "{port}");
    let page = host(&sb, &format!("curl -s --max-time 5 http://127.0.0.1:{hp}/"));
    assert!(page.contains("Welcome to nginx!"), "{page}");

    sb.docker_ok(&d, &["stop", "nginx-public", "random"]);
    sb.docker_ok(&d, &["rm", "-f", "second"]);
    let nat = host(&sb, "iptables -t nat -S");
    assert!(!nat.contains("DNAT"), "port rules are removed with the container:\n{nat}");
    let filter = host(&sb, "iptables -S DOCKER");
    assert_eq!(filter.trim(), "-N DOCKER", "{filter}");
}

#[test]
fn containers_on_a_user_defined_network_reach_each_other_by_name_and_are_isolated_from_docker0() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    let id = sb.docker_ok(&d, &["network", "create", "labnet"]).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let br = format!("br-{}", &id[..12]);
    assert!(host(&sb, &format!("ip -4 -o addr show {br}")).contains("inet 172.18.0.1/16"));
    let ls = sb.docker_ok(&d, &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.lines().any(|l| l == "labnet bridge"), "{ls}");
    // Docker's isolation rules for the new bridge, above the chains' RETURNs.
    let filter = host(&sb, "iptables -S");
    let stage1: Vec<&str> = filter.lines().filter(|l| l.starts_with("-A DOCKER-ISOLATION-STAGE-1")).collect();
    assert_eq!(
        stage1.first().copied(),
        Some(format!("-A DOCKER-ISOLATION-STAGE-1 -i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2").as_str()),
        "{filter}"
    );
    assert_eq!(stage1.last().copied(), Some("-A DOCKER-ISOLATION-STAGE-1 -j RETURN"), "{filter}");
    assert!(filter.lines().any(|l| l == format!("-A DOCKER-ISOLATION-STAGE-2 -o {br} -j DROP")), "{filter}");
    let forward: Vec<&str> = filter.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
    assert_eq!(&forward[..2], &["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"], "{filter}");
    assert!(host(&sb, "iptables -t nat -S").lines().any(|l| l == format!("-A POSTROUTING -s 172.18.0.0/16 ! -o {br} -j MASQUERADE")));

    sb.docker_ok(&d, &["run", "--name", "web", "-d", "--rm", "--network", "labnet", "--network-alias", "www", "nginx:alpine"]);
    sb.docker_ok(&d, &["run", "--name", "client", "-d", "--rm", "--network", "labnet", "alpine", "sleep", "600"]);
    let resolv = sb.docker_ok(&d, &["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    // By name and by alias, through the embedded DNS server.
    let ns = sb.docker_ok(&d, &["exec", "client", "nslookup", "web"]);
    assert!(ns.contains("172.18.0.2"), "{ns}");
    let page = sb.docker_ok(&d, &["exec", "client", "wget", "-qO-", "http://www/"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let ping = sb.docker_ok(&d, &["exec", "client", "ping", "-c", "1", "-W", "3", "web"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let v: serde_json::Value = serde_json::from_str(&sb.docker_ok(&d, &["network", "inspect", "labnet"])).unwrap();
    let names: Vec<&str> = v[0]["Containers"].as_object().unwrap().values().map(|c| c["Name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(names.contains(&"web") && names.contains(&"client"), "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    let net = sb.docker_ok(&d, &["inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"]);
    let net: serde_json::Value = serde_json::from_str(&net).unwrap();
    assert_eq!(net["labnet"]["IPAddress"], "172.18.0.2", "{net}");
    assert_eq!(net["labnet"]["NetworkID"].as_str(), Some(id.as_str()), "{net}");

    // A container on docker0 cannot reach the other bridge's containers…
    sb.docker_ok(&d, &["run", "--name", "outsider", "-d", "--rm", "alpine", "sleep", "600"]);
    let o = sb.docker(&d, &["exec", "outsider", "ping", "-c", "1", "-W", "1", "172.18.0.2"]).unwrap();
    assert!(!o.status.success(), "isolation: {}", out(&o));
    // …until it is connected to the network: eth1, no second default route.
    sb.docker_ok(&d, &["network", "connect", "labnet", "outsider"]);
    let addrs = sb.docker_ok(&d, &["exec", "outsider", "sh", "-c", "ip -4 -o addr show eth1; ip route | grep -c default"]);
    assert!(addrs.contains("inet 172.18.0.4/16"), "{addrs}");
    assert_eq!(addrs.lines().last(), Some("1"), "{addrs}");
    let ping = sb.docker_ok(&d, &["exec", "outsider", "ping", "-c", "1", "-W", "3", "172.18.0.2"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let o = sb.docker(&d, &["network", "connect", "labnet", "outsider"]).unwrap();
    assert!(out(&o).contains("already exists in network labnet"), "{}", out(&o));
    sb.docker_ok(&d, &["network", "disconnect", "labnet", "outsider"]);
    let links = sb.docker_ok(&d, &["exec", "outsider", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");

    // In use: Docker's refusal; then removed with its bridge and rules.
    let o = sb.docker(&d, &["network", "rm", "labnet"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("has active endpoints"), "{}", out(&o));
    let o = sb.docker(&d, &["network", "rm", "bridge"]).unwrap();
    assert!(out(&o).contains("pre-defined network and cannot be removed"), "{}", out(&o));
    sb.docker_ok(&d, &["stop", "-t", "1", "web", "client", "outsider"]);
    sb.docker_ok(&d, &["network", "rm", "labnet"]);
    assert!(host(&sb, &format!("ip link show {br} 2>&1")).contains("does not exist"));
    let all = host(&sb, "iptables -S; iptables -t nat -S");
    assert!(!all.contains(&br), "{all}");
    assert!(
        all.lines().any(|l| l == "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2"),
        "docker0's rules stay: {all}"
    );
    let o = sb.docker(&d, &["run", "--rm", "--network", "labnet", "alpine", "true"]).unwrap();
    assert!(out(&o).contains("network labnet not found"), "{}", out(&o));
}

#[test]
fn user_defined_networks_take_a_subnet_survive_a_restart_and_refuse_bad_input() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", "custom"]);
    let o = sb.docker(&d, &["network", "create", "custom"]).unwrap();
    assert!(out(&o).contains("network with name custom already exists"), "{}", out(&o));
    let o = sb.docker(&d, &["network", "create", "--subnet", "10.77.0.128/25", "overlapping"]).unwrap();
    assert!(out(&o).contains("Pool overlaps with other one on this address space"), "{}", out(&o));
    let o = sb.docker(&d, &["network", "create", "--subnet", "nonsense", "bad"]).unwrap();
    assert!(!o.status.success(), "{}", out(&o));
    let o = sb.docker(&d, &["network", "create", "-d", "overlay", "swarmy"]).unwrap();
    assert!(out(&o).contains("plugin \"overlay\" not found"), "{}", out(&o));
    let ls = sb.docker_ok(&d, &["network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "custom");

    assert!(d.terminate().unwrap().success());
    d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let ip = sb.docker_ok(&d, &["run", "--rm", "--network", "custom", "alpine", "sh", "-c", "ip -4 -o addr show eth0; ip route"]);
    assert!(ip.contains("inet 10.77.0.1/24"), "the gateway took .254, so .1 is the first address: {ip}");
    assert!(ip.contains("default via 10.77.0.254"), "{ip}");
    let pruned = sb.docker_ok(&d, &["network", "prune", "-f"]);
    assert!(pruned.contains("custom"), "{pruned}");
    assert_eq!(sb.docker_ok(&d, &["network", "ls", "-q"]).lines().count(), 3);
}

/// Sends one datagram from node1's root namespace and returns the reply.
fn udp_roundtrip(sb: &Sandbox, addr: &str, port: u16, msg: &str) -> String {
    let script = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); s.sendto(b'{msg}', ('{addr}', {port})); print(s.recvfrom(600)[0].decode())"
    );
    let o = sb.run("python3", &["-c", &script]).unwrap();
    assert!(o.status.success(), "udp to {addr}:{port}: {}", out(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn udp_ports_are_published_with_udp_rules_and_proxied() {
    let (sb, d) = node1().unwrap();
    // A UDP server for the container (the busybox stand-in has none).
    let exe = sb.dir().join("udp-echo");
    let src = berth_e2e::repo_root().join("e2e/fixtures/udp-echo.c");
    let o = std::process::Command::new("gcc").args(["-static", "-Os", "-o"]).arg(&exe).arg(&src).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(
        &d,
        &[
            "run",
            "--name",
            "listener",
            "-d",
            "-p",
            "5353:9999/udp",
            "alpine",
            "sh",
            "-c",
            "while [ ! -x /udp-echo ]; do sleep 0.1; done; exec /udp-echo 9999",
        ],
    );
    let merged = sb.docker_ok(&d, &["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "listener"]);
    // Into the running container's merged dir, as `docker cp` would, under
    // another name first: cp makes the file executable before it has
    // written it, and the container's loop would exec a part of it (it
    // then exits, and its port rules go with its run — seen in CI).
    let dest = format!("{}/udp-echo", merged.trim());
    let o = sb.run("sh", &["-c", &format!("cp {} {dest}.part && mv {dest}.part {dest}", exe.display())]).unwrap();
    assert!(o.status.success(), "{}", out(&o));

    let nat = host(&sb, "iptables -t nat -S");
    assert!(
        nat.lines().any(|l| l == "-A DOCKER ! -i docker0 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:9999"),
        "{nat}"
    );
    let filter = host(&sb, "iptables -S DOCKER");
    assert!(
        filter.lines().any(|l| l == "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p udp -m udp --dport 9999 -j ACCEPT"),
        "{filter}\n{}",
        d.log_text()
    );
    assert_eq!(sb.docker_ok(&d, &["port", "listener"]).trim(), "9999/udp -> 0.0.0.0:5353");
    for _ in 0..50 {
        if sb.docker_ok(&d, &["logs", "listener"]).contains("listening") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Loopback through berthd's UDP proxy; node1's own address through DNAT.
    assert_eq!(udp_roundtrip(&sb, "127.0.0.1", 5353, "via-proxy"), "echo: via-proxy");
    assert_eq!(udp_roundtrip(&sb, &sb.uplink.node_ip, 5353, "via-dnat"), "echo: via-dnat");
    let logs = sb.docker_ok(&d, &["logs", "listener"]);
    assert!(logs.contains("got: via-proxy") && logs.contains("got: via-dnat"), "{logs}");
    sb.docker_ok(&d, &["rm", "-f", "listener"]);
    assert!(!host(&sb, "iptables -t nat -S").contains("udp"));
}

/// The state berthd's page sees, fetched inside node1.
fn lab_state(sb: &Sandbox) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&host(sb, &format!("curl -fsS --max-time 5 -H '{}' http://127.0.0.1:8080/api/state", sb.lab_auth_header())))
            .unwrap();
    v["state"].clone()
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..60 {
        if ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} did not happen within 6 s");
}

#[test]
fn what_a_learner_does_by_hand_in_the_kernel_shows_up_and_is_reconciled() {
    let (sb, d) = node1().unwrap();
    // Links and addresses: from netlink, including the bridge berth made.
    eventually("docker0 observed", || {
        lab_state(&sb)["links"]["docker0"]["addresses"].as_array().is_some_and(|a| a.iter().any(|x| x == "172.17.0.1/16"))
    });
    host(&sb, "ip link add demo0 type veth peer name demo1 && ip addr add 10.99.0.1/24 dev demo0 && ip link set demo0 up");
    eventually("demo0 observed", || {
        let l = &lab_state(&sb)["links"]["demo0"];
        l["kind"] == "veth" && l["addresses"].as_array().is_some_and(|a| a.iter().any(|x| x == "10.99.0.1/24"))
    });
    // Routes: the bridge's own, and one added by hand.
    host(&sb, "ip route add 10.98.0.0/24 dev docker0");
    eventually("route observed", || {
        let routes = lab_state(&sb)["routes"].as_array().cloned().unwrap_or_default();
        routes.contains(&serde_json::json!(["10.98.0.0/24", null, "docker0"]))
            && routes.contains(&serde_json::json!(["172.17.0.0/16", null, "docker0"]))
    });
    host(&sb, "ip route del 10.98.0.0/24 dev docker0");
    eventually("route gone", || {
        !lab_state(&sb)["routes"].as_array().cloned().unwrap_or_default().contains(&serde_json::json!(["10.98.0.0/24", null, "docker0"]))
    });
    host(&sb, "ip link del demo0");
    eventually("demo0 gone", || lab_state(&sb)["links"].get("demo0").is_none() && lab_state(&sb)["links"].get("demo1").is_none());
    // Rules: one added by hand is seen; one of berth's deleted by hand is missed.
    host(&sb, "iptables -A INPUT -p tcp --dport 9999 -j ACCEPT && iptables -t nat -D DOCKER -i docker0 -j RETURN");
    eventually("rules reconciled", || {
        let s = lab_state(&sb);
        let kernel = s["kernel_rules"].as_array().cloned().unwrap_or_default();
        let mine = s["rules"].as_array().cloned().unwrap_or_default();
        let by_hand = serde_json::json!(["filter", "-A INPUT -p tcp -m tcp --dport 9999 -j ACCEPT"]);
        let deleted = serde_json::json!(["nat", "-A DOCKER -i docker0 -j RETURN"]);
        kernel.contains(&by_hand) && !mine.contains(&by_hand) && mine.contains(&deleted) && !kernel.contains(&deleted)
    });
    host(&sb, "iptables -D INPUT -p tcp --dport 9999 -j ACCEPT && iptables -t nat -A DOCKER -i docker0 -j RETURN");
    // Mounts: a container's overlay, and a learner's own mount.
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "--name", "sleeper", "-d", "--rm", "alpine", "sleep", "60"]);
    let merged = sb.docker_ok(&d, &["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "sleeper"]).trim().to_string();
    eventually("overlay observed", || lab_state(&sb)["mounts"][&merged]["fstype"] == "overlay");
    let mnt = sb.dir().join("by-hand");
    std::fs::create_dir_all(&mnt).unwrap();
    host(&sb, &format!("mount -t tmpfs learner-tmpfs {}", mnt.display()));
    let target = mnt.display().to_string();
    eventually("tmpfs observed", || lab_state(&sb)["mounts"][&target]["source"] == "learner-tmpfs");
    host(&sb, &format!("umount {}", mnt.display()));
    eventually("tmpfs gone", || lab_state(&sb)["mounts"].get(&target).is_none());
    sb.docker_ok(&d, &["rm", "-f", "sleeper"]);
}

/// `--ip` (and `docker network connect --ip`): the address asked for, on
/// a network with the client's own subnet, shown in inspect; Docker's
/// refusals for the default bridge, a pool-chosen subnet, an address
/// outside the subnet, and one another container has.
#[test]
fn a_static_ip_is_given_where_docker_gives_it_and_refused_where_it_refuses() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["network", "create", "--subnet", "10.77.0.0/24", "fixed"]);
    sb.docker_ok(&d, &["network", "create", "pooled"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "at50", "--network", "fixed", "--ip", "10.77.0.50", "alpine", "sleep", "300"]);
    let ip = sb.docker_ok(&d, &["exec", "at50", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"]);
    assert_eq!(ip.trim(), "10.77.0.50/24");
    let shown = sb.docker_ok(
        &d,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fixed.IPAddress}} {{.NetworkSettings.Networks.fixed.IPAMConfig.IPv4Address}}",
            "at50",
        ],
    );
    assert_eq!(shown.trim(), "10.77.0.50 10.77.0.50");
    // The next container without --ip does not get it.
    sb.docker_ok(&d, &["run", "-d", "--name", "auto", "--network", "fixed", "alpine", "sleep", "300"]);
    let auto = sb.docker_ok(&d, &["inspect", "-f", "{{.NetworkSettings.Networks.fixed.IPAddress}}", "auto"]);
    assert_ne!(auto.trim(), "10.77.0.50");
    for (args, want) in [
        (vec!["--ip", "172.17.0.99"], "user specified IP address is supported on user defined networks only"),
        (
            vec!["--network", "pooled", "--ip", "172.18.0.99"],
            "user specified IP address is supported only when connecting to networks with user configured subnets",
        ),
        (vec!["--network", "fixed", "--ip", "10.78.0.5"], "no configured subnet or ip-range contain the IP address 10.78.0.5"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter());
        a.extend(["alpine", "true"]);
        let o = sb.docker(&d, &a).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "{a:?}: {}", out(&o));
    }
    let o = sb.docker(&d, &["run", "--rm", "--network", "fixed", "--ip", "10.77.0.50", "alpine", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("Address already in use"), "{}", out(&o));
    // network connect --ip.
    sb.docker_ok(&d, &["run", "-d", "--name", "later", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["network", "connect", "--ip", "10.77.0.60", "fixed", "later"]);
    let ips = sb.docker_ok(&d, &["exec", "later", "sh", "-c", "ip -4 -o addr show eth1 | awk '{print $4}'"]);
    assert_eq!(ips.trim(), "10.77.0.60/24");
    // Pinging the static address from another container on the network.
    sb.docker_ok(&d, &["exec", "auto", "ping", "-c1", "-W2", "10.77.0.50"]);
    sb.docker_ok(&d, &["rm", "-f", "at50", "auto", "later"]);
    sb.docker_ok(&d, &["network", "rm", "fixed", "pooled"]);
}

/// `docker network create --internal`: containers on it reach each other
/// and nothing else — no MASQUERADE, Docker's DROP rules, no default route.
#[test]
fn an_internal_network_keeps_its_containers_inside() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["network", "create", "--internal", "--subnet", "10.66.0.0/24", "vault"]);
    let rules = String::from_utf8_lossy(&sb.run("iptables-save", &[]).unwrap().stdout).to_string();
    let bridge = format!("br-{}", &sb.docker_ok(&d, &["network", "inspect", "-f", "{{.Id}}", "vault"]).trim()[..12]);
    assert!(rules.contains(&format!("-A DOCKER-ISOLATION-STAGE-1 ! -s 10.66.0.0/24 -o {bridge} -j DROP")), "{rules}");
    assert!(rules.contains(&format!("-A DOCKER-ISOLATION-STAGE-1 ! -d 10.66.0.0/24 -i {bridge} -j DROP")), "{rules}");
    assert!(!rules.contains("-s 10.66.0.0/24 ! -o"), "no MASQUERADE for an internal network: {rules}");
    assert_eq!(sb.docker_ok(&d, &["network", "inspect", "-f", "{{.Internal}}", "vault"]).trim(), "true");
    sb.docker_ok(&d, &["run", "-d", "--name", "v1", "--network", "vault", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "v2", "--network", "vault", "alpine", "sleep", "300"]);
    // Each other, by name: yes. The bridge's gateway address beyond them: no route out.
    sb.docker_ok(&d, &["exec", "v1", "ping", "-c1", "-W2", "v2"]);
    let routes = sb.docker_ok(&d, &["exec", "v1", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let o = sb.docker(&d, &["exec", "v1", "ping", "-c1", "-W1", "172.17.0.1"]).unwrap();
    assert!(!o.status.success(), "reached the default bridge from an internal network: {}", out(&o));
    sb.docker_ok(&d, &["rm", "-f", "v1", "v2"]);
    sb.docker_ok(&d, &["network", "rm", "vault"]);
    let rules = String::from_utf8_lossy(&sb.run("iptables-save", &[]).unwrap().stdout).to_string();
    assert!(!rules.contains(&bridge), "its rules went with it: {rules}");
}

/// `--mac-address`: the container's eth0 has it, inspect shows it; a
/// malformed one is a 400. The docker CLI 28 sends it per endpoint (API
/// 1.44+); an SDK speaking 1.41 sends it container-wide, and a 1.50 client
/// that still does gets Docker's deprecation warning.
#[test]
fn a_mac_address_asked_for_is_the_one_eth0_gets() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "mac0", "--mac-address", "02:42:AC:11:00:98", "alpine", "sleep", "300"]);
    assert_eq!(sb.docker_ok(&d, &["exec", "mac0", "cat", "/sys/class/net/eth0/address"]).trim(), "02:42:ac:11:00:98");
    assert_eq!(
        sb.inspect(&d, "mac0", "{{.NetworkSettings.Networks.bridge.MacAddress}} {{.Config.MacAddress}}"),
        "02:42:ac:11:00:98 02:42:ac:11:00:98"
    );
    let (code, body) = sb.api(
        &d,
        "POST",
        "/containers/create?name=mac1",
        Some(r#"{"Image":"alpine","Cmd":["sleep","300"],"MacAddress":"02:42:AC:11:00:99"}"#),
    );
    assert_eq!(code, 201, "{body}");
    assert!(body.contains(r#""Warnings":[]"#), "{body}");
    sb.docker_ok(&d, &["start", "mac1"]);
    assert_eq!(sb.docker_ok(&d, &["exec", "mac1", "cat", "/sys/class/net/eth0/address"]).trim(), "02:42:ac:11:00:99");
    assert_eq!(sb.inspect(&d, "mac1", "{{.NetworkSettings.Networks.bridge.MacAddress}}"), "02:42:ac:11:00:99");
    let (code, body) = sb.api_at(
        &d,
        "1.50",
        "POST",
        "/containers/create?name=mac2",
        Some(r#"{"Image":"alpine","Cmd":["true"],"MacAddress":"02:42:ac:11:00:97"}"#),
    );
    assert!(code == 201 && body.contains("The container-wide MacAddress field is now deprecated"), "{code} {body}");
    let (code, body) =
        sb.api(&d, "POST", "/containers/create", Some(r#"{"Image":"alpine","Cmd":["true"],"MacAddress":"02:42:zz:00:00:01"}"#));
    assert!(code == 400 && body.contains("invalid MAC address: 02:42:zz:00:00:01"), "{code} {body}");
    sb.docker_ok(&d, &["rm", "-f", "mac0", "mac1", "mac2"]);
}

/// Legacy `--link` on the default bridge (a hosts line, Docker 28's
/// environment, inspect's form, `docker rm --link`), `--link` on a
/// user-defined network (a name only the linking container resolves),
/// `--add-host` (host-gateway too), the `--dns*` flags, and TERM on a
/// terminal — each as Docker gives them.
#[test]
fn links_extra_hosts_and_dns_flags_are_dockers() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "db", "-e", "SECRET=s3", "--expose", "5432", "alpine", "sleep", "300"]);
    let db_ip = sb.inspect(&d, "db", "{{.NetworkSettings.IPAddress}}");
    let db_id = sb.inspect(&d, "db", "{{.Id}}");
    sb.docker_ok(&d, &["run", "-d", "--name", "web", "--link", "db:store", "alpine", "sleep", "300"]);
    let hosts = sb.docker_ok(&d, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{db_ip}\tstore {} db\n", &db_id[..12])), "{hosts}");
    sb.docker_ok(&d, &["exec", "web", "ping", "-c1", "-W2", "store"]);
    let env = sb.docker_ok(&d, &["exec", "web", "env"]);
    for want in [
        format!("STORE_PORT=tcp://{db_ip}:5432"),
        format!("STORE_PORT_5432_TCP_ADDR={db_ip}"),
        "STORE_NAME=/web/store".to_string(),
        "STORE_ENV_SECRET=s3".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    assert_eq!(sb.inspect(&d, "web", "{{json .HostConfig.Links}}"), r#"["/db:/web/store"]"#);
    let o = sb.docker(&d, &["run", "--rm", "--link", "nope:x", "alpine", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("could not get container for nope"), "{}", out(&o));
    sb.docker_ok(&d, &["stop", "-t", "0", "db"]);
    let o = sb.docker(&d, &["run", "-d", "--name", "web2", "--link", "db", "alpine", "sleep", "300"]).unwrap();
    assert!(out(&o).contains("Cannot link to a non running container: /db AS /web2/db"), "{}", out(&o));
    sb.docker_ok(&d, &["rm", "--link", "/web/store"]);
    assert_eq!(sb.inspect(&d, "web", "{{json .HostConfig.Links}}"), "null");
    let o = sb.docker(&d, &["rm", "--link", "web"]).unwrap();
    assert!(out(&o).contains("cannot remove the default link name"), "{}", out(&o));

    // On a user-defined network the alias is the linking container's alone.
    sb.docker_ok(&d, &["network", "create", "linked"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "db2", "--network", "linked", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "web3", "--network", "linked", "--link", "db2:cache", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["exec", "web3", "ping", "-c1", "-W2", "cache"]);
    let o = sb.docker(&d, &["exec", "db2", "ping", "-c1", "-W2", "cache"]).unwrap();
    assert!(!o.status.success(), "another container resolved the link's alias: {}", out(&o));
    assert_eq!(sb.inspect(&d, "web3", "{{json .NetworkSettings.Networks.linked.Links}}"), r#"["db2:cache"]"#);

    // --add-host, host-gateway included; a bad address is refused.
    let hosts = sb
        .docker_ok(&d, &["run", "--rm", "--add-host", "db.local:10.9.8.7", "--add-host", "gw:host-gateway", "alpine", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.9.8.7\tdb.local\n") && hosts.contains("172.17.0.1\tgw\n"), "{hosts}");
    let (code, body) = sb.api(&d, "POST", "/containers/create", Some(r#"{"Image":"alpine","HostConfig":{"ExtraHosts":["x:1.2.3.999"]}}"#));
    assert!(code == 400 && body.contains("invalid IP address in add-host"), "{code} {body}");

    // --dns, --dns-search, --dns-option.
    let resolv = sb.docker_ok(
        &d,
        &[
            "run",
            "--rm",
            "--dns",
            "10.0.0.53",
            "--dns-search",
            "lab.local",
            "--dns-option",
            "timeout:2",
            "alpine",
            "cat",
            "/etc/resolv.conf",
        ],
    );
    assert_eq!(resolv, "nameserver 10.0.0.53\nsearch lab.local\noptions timeout:2\n");

    // A terminal has TERM=xterm, as Docker sets it.
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "-t", "alpine", "sh", "-c", "echo $TERM"]).trim(), "xterm");
    sb.docker_ok(&d, &["rm", "-f", "db", "web", "web2", "db2", "web3"]);
}

/// `--ip-range` (containers get addresses from it; `--ip` may still be any
/// address of the subnet), `--aux-address` (never handed out), both shown in
/// inspect, Docker's checks; and a network name with a space, which Docker
/// takes.
#[test]
fn ip_ranges_aux_addresses_and_names_with_spaces() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(
        &d,
        &["network", "create", "--subnet", "10.78.0.0/24", "--ip-range", "10.78.0.128/30", "--aux-address", "router=10.78.0.129", "ranged"],
    );
    let ipam = sb.docker_ok(&d, &["network", "inspect", "-f", "{{json .IPAM.Config}}", "ranged"]);
    assert_eq!(
        ipam.trim(),
        r#"[{"Subnet":"10.78.0.0/24","IPRange":"10.78.0.128/30","Gateway":"10.78.0.128","AuxiliaryAddresses":{"router":"10.78.0.129"}}]"#,
        "Docker's IPAM hands the gateway the range's first address (Docker 20.10 beside berth agrees: reference.rs)"
    );
    let ip = |n: &str| sb.inspect(&d, n, "{{.NetworkSettings.Networks.ranged.IPAddress}}");
    for n in ["r1", "r2"] {
        sb.docker_ok(&d, &["run", "-d", "--name", n, "--network", "ranged", "alpine", "sleep", "300"]);
    }
    assert_eq!((ip("r1"), ip("r2")), ("10.78.0.130".to_string(), "10.78.0.131".to_string()), "the gateway and aux address are skipped");
    sb.docker_ok(&d, &["run", "-d", "--name", "r3", "--network", "ranged", "--ip", "10.78.0.7", "alpine", "sleep", "300"]);
    assert_eq!(ip("r3"), "10.78.0.7");
    let o = sb.docker(&d, &["run", "-d", "--name", "r4", "--network", "ranged", "--ip", "10.78.0.129", "alpine", "sleep", "300"]).unwrap();
    assert!(out(&o).contains("Address already in use"), "{}", out(&o));
    // (The CLI checks this one itself: an SDK's request.)
    let (code, body) = sb.api(
        &d,
        "POST",
        "/networks/create",
        Some(r#"{"Name":"outside","IPAM":{"Config":[{"Subnet":"10.79.0.0/24","IPRange":"10.80.0.0/25"}]}}"#),
    );
    assert!(code == 400 && body.contains("parent subnet 10.79.0.0/24 doesn't contain ip-range"), "{code} {body}");

    sb.docker_ok(&d, &["network", "create", "my net"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "spaced", "--network", "my net", "alpine", "sleep", "300"]);
    assert!(sb.inspect(&d, "spaced", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}") == "my net");
    sb.docker_ok(&d, &["rm", "-f", "r1", "r2", "r3", "r4", "spaced"]);
    sb.docker_ok(&d, &["network", "rm", "my net", "ranged"]);
}

/// An endpoint's GwPriority (API 1.48) picks the network that gives the
/// default route, DriverOpts are kept and shown, and the two driver options
/// Docker's bridge acts on are refused by name.
#[test]
fn gw_priority_picks_the_default_route_and_driver_opts_are_kept() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["network", "create", "--subnet", "10.81.0.0/24", "prio"]);
    let body = |gw: i64| {
        format!(
            r#"{{"Image":"alpine","Cmd":["sleep","300"],"NetworkingConfig":{{"EndpointsConfig":{{"bridge":{{}},"prio":{{"GwPriority":{gw},"DriverOpts":{{"lab":"yes"}}}}}}}}}}"#
        )
    };
    let (code, out) = sb.api_at(&d, "1.50", "POST", "/containers/create?name=gw1", Some(&body(10)));
    assert_eq!(code, 201, "{out}");
    sb.docker_ok(&d, &["start", "gw1"]);
    let route = sb.docker_ok(&d, &["exec", "gw1", "ip", "route", "show", "default"]);
    assert!(route.contains("via 10.81.0.1"), "the higher priority network gives the route: {route}");
    assert_eq!(
        sb.inspect(&d, "gw1", "{{.NetworkSettings.Networks.prio.GwPriority}} {{json .NetworkSettings.Networks.prio.DriverOpts}}"),
        r#"10 {"lab":"yes"}"#
    );
    // A 1.47 client had no GwPriority: the NetworkMode's network routes.
    let (code, out) = sb.api_at(&d, "1.47", "POST", "/containers/create?name=gw2", Some(&body(10)));
    assert_eq!(code, 201, "{out}");
    sb.docker_ok(&d, &["start", "gw2"]);
    assert!(sb.docker_ok(&d, &["exec", "gw2", "ip", "route", "show", "default"]).contains("via 172.17.0.1"));
    let (code, out) = sb.api(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"alpine","NetworkingConfig":{"EndpointsConfig":{"bridge":{"DriverOpts":{"com.docker.network.endpoint.sysctls":"x=1"}}}}}"#),
    );
    assert!(code == 400 && out.contains("does not support the endpoint driver option"), "{code} {out}");
    sb.docker_ok(&d, &["rm", "-f", "gw1", "gw2"]);
}

#[test]
fn ipv6_networks_give_containers_addresses_routes_names_and_rules() {
    let (sb, d) = node1().unwrap();
    let fail = |args: &[&str]| {
        let o = sb.docker(&d, args).unwrap();
        assert!(!o.status.success(), "docker {} should fail", args.join(" "));
        out(&o)
    };
    sb.docker_ok(&d, &["network", "create", "--ipv6", "--subnet", "fd00:b::/64", "--subnet", "10.88.0.0/24", "v6net"]);
    let id = sb.docker_ok(&d, &["network", "inspect", "-f", "{{.Id}}", "v6net"]).trim().to_string();
    let bridge = format!("br-{}", &id[..12]);
    assert_eq!(
        sb.docker_ok(&d, &["network", "inspect", "-f", "{{.EnableIPv6}} {{json .IPAM.Config}}", "v6net"]).trim(),
        r#"true [{"Subnet":"10.88.0.0/24","Gateway":"10.88.0.1"},{"Subnet":"fd00:b::/64","Gateway":"fd00:b::1"}]"#
    );
    assert!(
        host(&sb, &format!("ip -6 addr show {bridge}")).contains("inet6 fd00:b::1/64"),
        "{}",
        host(&sb, &format!("ip -6 addr show {bridge}"))
    );

    // A static --ip6, then one handed out; both reach each other by name.
    sb.docker_ok(&d, &["run", "-d", "--name", "web6", "--network", "v6net", "--ip6", "fd00:b::10", "alpine", "sleep", "300"]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "v6net", "alpine"];
        all.extend(args);
        sb.docker_ok(&d, &all)
    };
    let addr = run(&["ip", "-6", "addr", "show", "eth0"]);
    // Usable at once: no duplicate address detection holds it "tentative".
    assert!(addr.lines().any(|l| l.contains("inet6 fd00:b::2/64") && !l.contains("tentative")), "{addr}");
    assert!(run(&["ip", "-6", "route"]).contains("default via fd00:b::1 dev eth0"), "{}", run(&["ip", "-6", "route"]));
    assert!(run(&["ping", "-c", "1", "-W", "3", "fd00:b::10"]).contains("1 packets received"));
    let names = run(&["nslookup", "web6"]);
    assert!(names.contains("fd00:b::10") && names.contains("10.88.0.2"), "{names}");
    assert!(run(&["ping", "-6", "-c", "1", "-W", "3", "web6"]).contains("1 packets received"));
    let hosts = run(&["cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l.starts_with("fd00:b::2\t")), "{hosts}");

    // docker inspect and network inspect show it as Docker does.
    let f = "{{with index .NetworkSettings.Networks \"v6net\"}}{{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} via {{.IPv6Gateway}} asked {{json .IPAMConfig}}{{end}}";
    assert_eq!(sb.inspect(&d, "web6", f), r#"fd00:b::10/64 via fd00:b::1 asked {"IPv6Address":"fd00:b::10"}"#);
    let members =
        sb.docker_ok(&d, &["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.IPv6Address}}{{end}}", "v6net"]);
    assert_eq!(members.trim(), "web6 10.88.0.2/24 fd00:b::10/64");

    // Its IPv6 traffic is masqueraded and forwarded as its IPv4 traffic is.
    let nat6 = host(&sb, "ip6tables -t nat -S POSTROUTING");
    assert!(nat6.contains(&format!("-A POSTROUTING -s fd00:b::/64 ! -o {bridge} -j MASQUERADE")), "{nat6}");
    assert!(host(&sb, "ip6tables -S FORWARD").contains(&format!("-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT")));

    // Without a subnet: the next /64 of the daemon's unique local prefix.
    sb.docker_ok(&d, &["network", "create", "--ipv6", "auto6"]);
    let auto = sb.docker_ok(&d, &["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", "auto6"]);
    let v6 = auto.split_whitespace().find(|s| s.contains(':')).unwrap_or_default();
    assert!(v6.starts_with("fd") && v6.ends_with("::/64"), "{auto}");

    // Docker's refusals.
    let e = fail(&["run", "--rm", "--network", "auto6", "--ip6", "fd00:1::5", "alpine", "true"]);
    assert!(e.contains("user specified IP address is supported only when connecting to networks with user configured subnets"), "{e}");
    let e = fail(&["run", "--rm", "--network", "v6net", "--ip6", "fd00:c::5", "alpine", "true"]);
    assert!(e.contains("no configured subnet or ip-range contain the IP address fd00:c::5"), "{e}");
    let e = fail(&["run", "--rm", "--network", "v6net", "--ip6", "fd00:b::10", "alpine", "true"]);
    assert!(e.contains("Address already in use"), "{e}");
    let e = fail(&["network", "create", "--ipv6", "--subnet", "fd00:b:0:0:1::/80", "overlap6"]);
    assert!(e.contains("Pool overlaps"), "{e}");
    let e = fail(&["network", "create", "--ipv6", "--subnet", "fd00:d::5/64", "unmasked6"]);
    assert!(e.contains("invalid subnet fd00:d::5/64: it should be fd00:d::/64"), "{e}");

    // Removing the network takes its IPv6 rules and address with it.
    sb.docker_ok(&d, &["rm", "-f", "web6"]);
    sb.docker_ok(&d, &["network", "rm", "v6net", "auto6"]);
    assert!(!host(&sb, "ip6tables -t nat -S POSTROUTING").contains("fd00:b::/64"));
    assert!(!host(&sb, "ip link show").contains(&bridge));
}

#[test]
fn link_local_ips_are_on_the_interface_and_in_inspect() {
    let (sb, d) = node1().unwrap();
    let args = ["--link-local-ip", "169.254.10.10", "--link-local-ip", "fe80::10", "alpine"];
    let mut run = vec!["run", "--rm"];
    run.extend(args);
    run.extend(["ip", "addr", "show", "eth0"]);
    let addr = sb.docker_ok(&d, &run);
    assert!(addr.contains("inet 169.254.10.10/16") && addr.contains("inet6 fe80::10/64"), "{addr}");
    let mut create = vec!["create", "--name", "ll"];
    create.extend(args);
    create.push("true");
    sb.docker_ok(&d, &create);
    assert_eq!(
        sb.inspect(&d, "ll", "{{json .NetworkSettings.Networks.bridge.IPAMConfig}}"),
        r#"{"LinkLocalIPs":["169.254.10.10","fe80::10"]}"#
    );
    let o = sb.docker(&d, &["run", "--rm", "--link-local-ip", "0.0.0.0", "alpine", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("invalid link-local IP address: 0.0.0.0"), "{}", out(&o));
}
