//! Netfilter rules as Docker 20.10 writes them. Describe, then do: the rule
//! lists are pure functions in `berth_shared::netfilter` (the simulator
//! makes the same ones); [`Iptables`] applies them with the iptables tool
//! (as Docker does), one `-w` call per rule.

use std::process::Command;

pub use berth_shared::netfilter::{global_rules, network_rules, port_rules, Place, PortMap, Rule, CHAINS};

#[derive(Debug, thiserror::Error)]
#[error("{args}: {message}")]
pub struct IptablesError {
    pub args: String,
    pub message: String,
}

/// Runs the iptables tool (or ip6tables, for an `--ipv6` network's rules)
/// in the daemon's network namespace.
#[derive(Debug)]
pub struct Iptables {
    tool: &'static str,
}

impl Default for Iptables {
    fn default() -> Self {
        Self::V4
    }
}

impl Iptables {
    pub const V4: Iptables = Iptables { tool: "iptables" };
    pub const V6: Iptables = Iptables { tool: "ip6tables" };

    fn run(&self, args: &[&str]) -> Result<(), IptablesError> {
        let out = Command::new(self.tool)
            .arg("-w")
            .args(args)
            .output()
            .map_err(|e| IptablesError { args: format!("{} {}", self.tool, args.join(" ")), message: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(IptablesError {
                args: format!("{} {}", self.tool, args.join(" ")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    fn exists(&self, r: &Rule) -> bool {
        let mut args = vec!["-t", r.table, "-C", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).is_ok()
    }

    pub fn ensure_chain(&self, table: &str, chain: &str) -> Result<(), IptablesError> {
        if self.run(&["-t", table, "-n", "-L", chain]).is_err() {
            self.run(&["-t", table, "-N", chain])?;
        }
        Ok(())
    }

    /// Appends the rule unless it is there already.
    pub fn append(&self, r: &Rule) -> Result<bool, IptablesError> {
        if self.exists(r) {
            return Ok(false);
        }
        let mut args = vec!["-t", r.table, "-A", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).map(|_| true)
    }

    /// A chain's rules as `iptables -S` lists them (`-A CHAIN …`).
    pub fn list(&self, table: &str, chain: &str) -> Vec<String> {
        Command::new(self.tool)
            .args(["-w", "-t", table, "-S", chain])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with("-A ")).map(String::from).collect())
            .unwrap_or_default()
    }

    /// The 1-based position of a rule in its chain, as `iptables -S` lists it.
    fn position(&self, r: &Rule) -> Result<Option<usize>, IptablesError> {
        let args = ["-t", r.table, "-S", r.chain];
        let out = Command::new(self.tool)
            .arg("-w")
            .args(args)
            .output()
            .map_err(|e| IptablesError { args: format!("{} {}", self.tool, args.join(" ")), message: e.to_string() })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let want = r.text();
        Ok(text.lines().filter(|l| l.starts_with("-A ")).position(|l| l.trim() == want).map(|i| i + 1))
    }

    /// Puts the rule at its place unless it is there already.
    pub fn place(&self, r: &Rule, place: &Place) -> Result<bool, IptablesError> {
        let pos = match place {
            Place::Append => return self.append(r),
            Place::Top => 1,
            Place::After(anchor) => self.position(anchor)?.map(|p| p + 1).unwrap_or(1),
        };
        if self.exists(r) {
            return Ok(false);
        }
        let pos = pos.to_string();
        let mut args = vec!["-t", r.table, "-I", r.chain, pos.as_str()];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).map(|_| true)
    }

    /// Takes the rule out of the kernel. `Ok` when it is not there
    /// afterwards: deleted now, or already gone (deleted by hand, even
    /// between the check and the delete); `Err` only while it is still there.
    pub fn delete(&self, r: &Rule) -> Result<(), IptablesError> {
        if !self.exists(r) {
            return Ok(());
        }
        let mut args = vec!["-t", r.table, "-D", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        match self.run(&args) {
            Err(e) if self.exists(r) => Err(e),
            _ => Ok(()),
        }
    }
}
