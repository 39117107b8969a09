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

    let inside = sb.docker_ok(&d, &["run", "--rm", "alpine", "sh", "-c", "ip -4 -o addr show eth0; ip link show eth0; ip route; cat /etc/hosts | tail -1"]);
    assert!(inside.contains("inet 172.17.0.2/16"), "{inside}");
    assert!(inside.contains("link/ether 02:42:ac:11:00:02"), "{inside}");
    assert!(inside.contains("default via 172.17.0.1 dev eth0"), "{inside}");
    assert!(inside.lines().last().unwrap_or("").starts_with("172.17.0.2\t"), "{inside}");

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
    let links = host(&sb, "ip -o link show master docker0");
    assert_eq!(links, "", "no veth left after the container is gone");
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
    assert_eq!(host(&sb, "ip -o link show master docker0"), "");
    // Only the sandbox's own uplink (eth0) is a veth now.
    assert_eq!(host(&sb, "ip -o link show type veth | grep -v ': eth0@'"), "");
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
    assert!(filter.lines().any(|l| l == "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"), "{filter}");

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
    assert_eq!(host(&sb, "ip -o link show master docker0 | wc -l").trim(), "1");
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
