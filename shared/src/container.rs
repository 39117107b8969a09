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
