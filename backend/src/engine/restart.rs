//! Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`):
//! what Docker decides when a container's process ends and when the daemon
//! starts, and how long it waits before a restart. Pure, tested here; the
//! container lifecycle acts on it.

use std::time::Duration;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
}

impl Policy {
    /// HostConfig.RestartPolicy, with Docker's checks and messages.
    pub fn from_host_config(hc: &Value) -> Result<Policy, String> {
        let rp = &hc["RestartPolicy"];
        let name = rp["Name"].as_str().unwrap_or("");
        let max = rp["MaximumRetryCount"].as_i64().unwrap_or(0);
        if max < 0 {
            return Err("invalid restart policy: maximum retry count cannot be negative".into());
        }
        let policy = match name {
            "" | "no" => Policy::No,
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => Policy::OnFailure(max as u32),
            other => {
                return Err(format!(
                    "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                ))
            }
        };
        if max > 0 && !matches!(policy, Policy::OnFailure(_)) {
            return Err(format!("invalid restart policy: maximum retry count can only be used with 'on-failure', not '{name}'"));
        }
        if policy != Policy::No && hc["AutoRemove"].as_bool().unwrap_or(false) {
            return Err("can't create 'AutoRemove' container with restart policy".into());
        }
        Ok(policy)
    }

    /// Should a container whose process just ended be started again?
    /// `restarts` is how many times the policy restarted it already;
    /// `stopped_by_user`: a `docker stop`/`kill` ended it.
    pub fn restart_after_exit(&self, exit_code: i32, stopped_by_user: bool, restarts: u32) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure(max) => exit_code != 0 && (*max == 0 || restarts < *max),
        }
    }

    /// Should the daemon start it when it starts (it was running, or the
    /// policy says so)?
    pub fn start_with_daemon(&self, stopped_by_user: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !stopped_by_user,
            Policy::No | Policy::OnFailure(_) => false,
        }
    }
}

/// Docker's back-off: 100 ms, doubled at each restart in a row, at most a
/// minute; a run that lasted 10 s or more starts the count afresh.
pub fn delay(previous: Duration, ran_for: Duration) -> Duration {
    const FIRST: Duration = Duration::from_millis(100);
    if ran_for >= Duration::from_secs(10) || previous.is_zero() {
        return FIRST;
    }
    (previous * 2).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: Value) -> Result<Policy, String> {
        Policy::from_host_config(&json!({ "RestartPolicy": v }))
    }

    #[test]
    fn policies_are_read_and_checked_as_docker_does() {
        assert_eq!(policy(json!({"Name": ""})), Ok(Policy::No));
        assert_eq!(policy(json!({"Name": "on-failure", "MaximumRetryCount": 3})), Ok(Policy::OnFailure(3)));
        assert!(policy(json!({"Name": "sometimes"})).unwrap_err().contains("unknown policy 'sometimes'"));
        assert!(policy(json!({"Name": "always", "MaximumRetryCount": 2})).unwrap_err().contains("can only be used with 'on-failure'"));
        assert!(policy(json!({"Name": "on-failure", "MaximumRetryCount": -1})).unwrap_err().contains("cannot be negative"));
        let rm = Policy::from_host_config(&json!({"RestartPolicy": {"Name": "always"}, "AutoRemove": true}));
        assert_eq!(rm.unwrap_err(), "can't create 'AutoRemove' container with restart policy");
    }

    #[test]
    fn what_each_policy_restarts() {
        assert!(!Policy::No.restart_after_exit(1, false, 0));
        assert!(Policy::Always.restart_after_exit(0, false, 100));
        assert!(!Policy::Always.restart_after_exit(0, true, 0), "docker stop ends it");
        assert!(Policy::OnFailure(2).restart_after_exit(1, false, 1));
        assert!(!Policy::OnFailure(2).restart_after_exit(1, false, 2), "at most twice");
        assert!(!Policy::OnFailure(0).restart_after_exit(0, false, 0), "a clean exit stays");
        assert!(Policy::OnFailure(0).restart_after_exit(3, false, 50));
        assert!(Policy::Always.start_with_daemon(true));
        assert!(!Policy::UnlessStopped.start_with_daemon(true));
        assert!(Policy::UnlessStopped.start_with_daemon(false));
        assert!(!Policy::OnFailure(0).start_with_daemon(false));
    }

    #[test]
    fn the_back_off_doubles_and_resets_after_a_long_run() {
        let short = Duration::from_secs(1);
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..12 {
            d = delay(d, short);
            seen.push(d.as_millis());
        }
        assert_eq!(&seen[..4], &[100, 200, 400, 800]);
        assert_eq!(*seen.last().unwrap(), 60_000);
        assert_eq!(delay(Duration::from_secs(60), Duration::from_secs(11)).as_millis(), 100);
    }
}
