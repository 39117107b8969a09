//! Every event as one line of text, for the timeline and the evidence panel.

use berth_shared::Event;

/// One line describing an event, for the timeline and the evidence panel.
pub fn describe(e: &Event) -> String {
    let s = |id: &str| id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    match e {
        Event::DaemonStarted { version, .. } => format!("berthd {version} started"),
        Event::DaemonStopping => "berthd stopping".into(),
        Event::LayerAdded { chain_id, size, .. } => format!("layer {} unpacked ({size} B)", s(chain_id)),
        Event::LayerRemoved { chain_id } => format!("layer {} removed", s(chain_id)),
        Event::ImageAdded { repo_tags, id, .. } => format!("image {} ({})", repo_tags.first().cloned().unwrap_or_default(), s(id)),
        Event::ImageTagged { tag, .. } => format!("tagged {tag}"),
        Event::ImageUntagged { tag, .. } => format!("untagged {tag}"),
        Event::ImageRemoved { id } => format!("image {} removed", s(id)),
        Event::ContainerCreated { name, image, .. } => format!("container {name} created from {image}"),
        Event::OverlayMounted { merged, .. } => format!("overlay mounted at {merged}"),
        Event::OverlayUnmounted { merged, .. } => format!("overlay unmounted from {merged}"),
        Event::NamespacesCreated { kinds, pid, .. } => format!("namespaces {} for pid {pid}", kinds.join(", ")),
        Event::ContainerStarted { pid, id } => format!("container {} started (pid {pid})", s(id)),
        Event::ProcessExecd { command, .. } => format!("exec {}", command.join(" ")),
        Event::ProcessExited { exit_code, .. } => format!("exec exited ({exit_code})"),
        Event::ContainerExited { id, exit_code } => format!("container {} exited ({exit_code})", s(id)),
        Event::ContainerRemoved { id } => format!("container {} removed", s(id)),
        Event::ContainerRenamed { id, name } => format!("container {} renamed {name}", s(id)),
        Event::ContainerPaused { id } => format!("container {} paused (its processes frozen)", s(id)),
        Event::ContainerUnpaused { id } => format!("container {} unpaused", s(id)),
        Event::ContainerHealth { id, status } => format!("container {} is {status} (its healthcheck)", s(id)),
        Event::BridgeUp { name, address, prefix, .. } => format!("bridge {name} {address}/{prefix} up"),
        Event::BridgeDown { name } => format!("bridge {name} deleted"),
        Event::NetworkCreated { name, subnet, .. } => format!("network {name} ({subnet}) created"),
        Event::NetworkRemoved { name, .. } => format!("network {name} removed"),
        Event::EndpointAttached { host_if, ifname, ip, prefix, bridge, .. } => {
            format!("veth {host_if} ⇄ {ifname} {ip}/{prefix} on {bridge}")
        }
        Event::EndpointDetached { host_if, .. } => format!("veth {host_if} deleted"),
        Event::RuleAdded { table, rule } => format!("iptables -t {table} {rule}"),
        Event::RuleRemoved { table, rule } => format!("iptables -t {table} -D {}", rule.trim_start_matches("-A ")),
        Event::PortPublished { host_ip, host_port, container_ip, container_port, proto, .. } => {
            format!("port {host_ip}:{host_port} → {container_ip}:{container_port}/{proto}")
        }
        Event::PortUnpublished { host_port, proto, .. } => format!("port {host_port}/{proto} closed"),
        Event::VolumeCreated { name, .. } => format!("volume {} created", s(name)),
        Event::VolumePopulated { name, path, files, .. } => format!("volume {} filled from {path} ({files} entries)", s(name)),
        Event::VolumeRemoved { name } => format!("volume {} removed", s(name)),
        Event::BuildStarted { tags, steps, .. } => format!("build {} started ({steps} steps)", tags.join(", ")),
        Event::BuildStep { step, instruction, cached, .. } => {
            format!("step {step}: {instruction}{}", if *cached { " (cache)" } else { "" })
        }
        Event::BuildLayer { diff_id, size, .. } => format!("layer {} committed ({size} B)", s(diff_id)),
        Event::LinkObserved { name, kind, up, .. } => format!("kernel: link {name} ({kind}) {}", if *up { "up" } else { "down" }),
        Event::LinkGone { name, .. } => format!("kernel: link {name} gone"),
        Event::AddressObserved { link, address, prefix } => format!("kernel: {address}/{prefix} on {link}"),
        Event::AddressGone { link, address, prefix } => format!("kernel: {address}/{prefix} removed from {link}"),
        Event::RouteObserved { dst, gateway, dev } => format!(
            "kernel: route {dst}{}{}",
            gateway.as_ref().map(|g| format!(" via {g}")).unwrap_or_default(),
            dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default()
        ),
        Event::RouteGone { dst, .. } => format!("kernel: route {dst} removed"),
        Event::MountObserved { target, fstype, .. } => format!("kernel: {fstype} mounted on {target}"),
        Event::MountGone { target } => format!("kernel: {target} unmounted"),
        Event::KernelRuleObserved { table, rule } => format!("kernel: -t {table} {rule}"),
        Event::KernelRuleGone { table, rule } => format!("kernel: -t {table} {rule} gone"),
        Event::FileChanged { dir, path, change } => format!(
            "file {path} {} in {dir}",
            match change {
                berth_shared::event::FileChangeKind::Added => "added",
                berth_shared::event::FileChangeKind::Modified => "modified",
                berth_shared::event::FileChangeKind::Deleted => "deleted",
            }
        ),
        Event::LabProgress { step, change, .. } => match change {
            berth_shared::lab::LabChange::StepStarted => format!("lab: step {step} started"),
            berth_shared::lab::LabChange::StepFailed => format!("lab: step {step} failed"),
            berth_shared::lab::LabChange::StepCompleted => format!("lab: step {step} completed"),
            berth_shared::lab::LabChange::CheckPassed { kind, .. } => format!("lab: {step}: {kind} passed"),
            berth_shared::lab::LabChange::CheckFailed { diagnosis, .. } => format!("lab: {step}: {}", diagnosis.code),
        },
        Event::ShellCommand { command, exit_code, .. } => match exit_code {
            0 => format!("$ {command}"),
            code => format!("$ {command} (exit {code})"),
        },
        Event::BuildFinished { image, error, .. } => match (image, error) {
            (Some(i), _) => format!("build finished: {}", s(i)),
            (_, Some(e)) => format!("build failed: {e}"),
            _ => "build finished".into(),
        },
        Event::ContainerRequest { id, action, signal, .. } => match signal {
            Some(n) => format!("container {}: signal {n} sent ({action})", s(id)),
            None => format!("container {}: {action} asked", s(id)),
        },
    }
}
