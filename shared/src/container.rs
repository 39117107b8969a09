//! A container's lifecycle, as an explicit state machine shared by the
//! daemon, the page and the simulator.

use serde::{Deserialize, Serialize};

/// Docker's container states (the ones berth reaches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
    Removing,
}

impl Status {
    /// As `docker inspect` prints State.Status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }
    pub fn can_stop(self) -> bool {
        self == Status::Running
    }
    /// Without force, only a container that is not running may be removed.
    pub fn can_remove(self, force: bool) -> bool {
        match self {
            Status::Running => force,
            Status::Removing => false,
            Status::Created | Status::Exited => true,
        }
    }
}

/// Why Docker refuses a verb on a container, in its words: the daemon
/// answers with them and the simulator prints them.
pub mod refusal {
    use super::Status;

    /// No container has this name or ID (prefix).
    pub fn no_such_container(key: &str) -> String {
        format!("No such container: {key}")
    }

    /// A verb that needs the container running (exec, pause, attach).
    pub fn not_running(id: &str) -> String {
        format!("Container {id} is not running")
    }

    /// `docker kill` of a container that is not running.
    pub fn kill_not_running(id: &str) -> String {
        format!("Cannot kill container: {id}: {}", not_running(id))
    }

    /// A signal other than SIGKILL to a paused container.
    pub fn kill_paused(id: &str) -> String {
        format!("Cannot kill container: {id}: Container {id} is paused. Unpause the container before stopping or killing")
    }

    /// Why a start is refused (a running container is not: it answers 304).
    pub fn start(id: &str, status: Status) -> Option<String> {
        (status != Status::Running && !status.can_start()).then(|| format!("cannot start container {id} in state {}", status.as_str()))
    }

    /// A name another container has (create, rename).
    pub fn name_in_use(name: &str, holder: &str) -> String {
        format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
        )
    }

    /// A host port the userland proxy could not take (`cause`: the bind's
    /// error, "address already in use").
    pub fn port_in_use(endpoint: &str, proto: &str, host_ip: std::net::Ipv4Addr, host_port: u16, cause: &str) -> String {
        format!(
            "driver failed programming external connectivity on endpoint {endpoint}: Error starting userland proxy: listen {proto}4 {host_ip}:{host_port}: bind: {cause}"
        )
    }

    /// No volume has this name.
    pub fn no_such_volume(name: &str) -> String {
        format!("get {name}: no such volume")
    }

    /// A volume containers (`users`, their IDs) still mount.
    pub fn volume_in_use(name: &str, users: &[String]) -> String {
        format!("remove {name}: volume is in use - [{}]", users.join(", "))
    }

    /// Why a removal is refused; `restarting`: waiting for its restart
    /// policy's next start.
    pub fn remove(id: &str, status: Status, restarting: bool, force: bool) -> Option<String> {
        let stop_first = "Stop the container before attempting removal or force remove";
        if restarting && !force {
            Some(format!("You cannot remove a restarting container {id}. {stop_first}"))
        } else if status == Status::Running && !force {
            Some(format!("You cannot remove a running container {id}. {stop_first}"))
        } else {
            None
        }
    }
}

/// The container's own read-write layer over its image's layers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RwLayer {
    /// Image layer `diff` dirs, top-most first (overlay's lowerdir order).
    pub lower: Vec<String>,
    pub upper: String,
    pub work: String,
    pub merged: String,
}

impl RwLayer {
    /// Container `id`'s layer in the overlay store at `store` (Docker's
    /// overlay2 layout: `<id>/diff`, `work`, `merged`) over `lower`, its
    /// image's layer dirs, top-most first.
    pub fn for_container(store: &str, id: &str, lower: Vec<String>) -> Self {
        let dir = format!("{}/{id}", store.trim_end_matches('/'));
        RwLayer { lower, upper: format!("{dir}/diff"), work: format!("{dir}/work"), merged: format!("{dir}/merged") }
    }

    /// The overlay mount options for this stack.
    pub fn mount_options(&self) -> String {
        format!("lowerdir={},upperdir={},workdir={}", self.lower.join(":"), self.upper, self.work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stopped_containers_are_removed_without_force() {
        assert!(Status::Exited.can_remove(false));
        assert!(Status::Created.can_remove(false));
        assert!(!Status::Running.can_remove(false));
        assert!(Status::Running.can_remove(true));
        assert!(!Status::Removing.can_remove(true));
    }

    #[test]
    fn a_running_container_cannot_be_started_again_but_an_exited_one_can() {
        assert!(!Status::Running.can_start());
        assert!(Status::Exited.can_start());
        assert!(Status::Running.can_stop() && !Status::Exited.can_stop());
    }

    #[test]
    fn refusals_are_dockers_words_and_only_where_docker_refuses() {
        let id = "c0ffee";
        assert_eq!(
            refusal::remove(id, Status::Running, false, false).as_deref(),
            Some("You cannot remove a running container c0ffee. Stop the container before attempting removal or force remove")
        );
        assert!(refusal::remove(id, Status::Exited, true, false).unwrap().contains("a restarting container"));
        assert_eq!(refusal::remove(id, Status::Running, false, true), None);
        assert_eq!(refusal::remove(id, Status::Exited, false, false), None);
        assert_eq!(refusal::start(id, Status::Running), None);
        assert_eq!(refusal::start(id, Status::Exited), None);
        assert_eq!(refusal::start(id, Status::Removing).as_deref(), Some("cannot start container c0ffee in state removing"));
        assert_eq!(refusal::kill_not_running(id), "Cannot kill container: c0ffee: Container c0ffee is not running");
    }

    #[test]
    fn overlay_options_list_lower_layers_top_first() {
        let l = RwLayer {
            lower: vec!["/l/top/diff".into(), "/l/base/diff".into()],
            upper: "/c/diff".into(),
            work: "/c/work".into(),
            merged: "/c/merged".into(),
        };
        assert_eq!(l.mount_options(), "lowerdir=/l/top/diff:/l/base/diff,upperdir=/c/diff,workdir=/c/work");
    }
}
