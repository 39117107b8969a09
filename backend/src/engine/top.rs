//! `docker top`: the container's processes as the host's `ps` shows them.
//! As Docker does it: run `ps` with the client's arguments (`-ef` by
//! default) on the host, find the `PID` column in its header, and keep the
//! rows whose process is the container's — here, every process in the
//! container's PID namespace (its init's, so `docker exec`s are in too).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use crate::error::{ApiError, ErrorKind};

/// What `GET /containers/{id}/top` answers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// The `ps` arguments a client may send: words of options and values, no
/// shell, nothing that is not an option list (`ps` runs on the host).
pub fn ps_args(q: Option<&str>) -> Result<Vec<String>, ApiError> {
    let args: Vec<String> = q.unwrap_or("-ef").split_whitespace().map(str::to_string).collect();
    let ok = |a: &String| a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || "-=,:_%".contains(c));
    if args.len() > 16 || !args.iter().all(ok) {
        return Err(ApiError::bad_request(format!("invalid ps arguments: {:?}", q.unwrap_or(""))));
    }
    Ok(if args.is_empty() { vec!["-ef".into()] } else { args })
}

/// Docker's reading of `ps` output: titles from the header, each row split
/// into as many fields as there are titles (the last keeps its spaces:
/// the command line), rows kept when their PID is one of `pids`.
pub fn parse_ps(output: &str, pids: &HashSet<i32>) -> Result<Top, ApiError> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        return Err(ApiError::new(ErrorKind::Internal, "Couldn't find PID field in ps output"));
    };
    let mut processes = Vec::new();
    for line in lines {
        let fields = split_fields(line, titles.len());
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            return Err(ApiError::new(
                ErrorKind::Internal,
                format!("Unexpected pid '{}'", fields.get(pid_col).cloned().unwrap_or_default()),
            ));
        };
        if pids.contains(&pid) {
            processes.push(fields);
        }
    }
    Ok(Top { titles, processes })
}

/// The first `n - 1` whitespace-separated fields, then the rest of the line.
fn split_fields(line: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut rest = line.trim_start();
    while out.len() + 1 < n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() || out.len() + 1 == n {
        out.push(rest.trim_end().to_string());
    }
    out
}

/// Every process in the PID namespace of `init` (as the host numbers them).
pub fn pids_in_namespace_of(init: i32) -> std::io::Result<HashSet<i32>> {
    let ns = std::fs::metadata(format!("/proc/{init}/ns/pid"))?;
    let key = (ns.dev(), ns.ino());
    let mut out = HashSet::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/pid")) {
            if (m.dev(), m.ino()) == key {
                out.insert(pid);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 06:00 ?        00:00:01 /sbin/init splash
root        4242    4200  0 06:01 ?        00:00:00 nginx: master process nginx -g daemon off;
101         4250    4242  0 06:01 ?        00:00:00 nginx: worker process
root        5000       1  0 06:02 pts/0    00:00:00 bash
";

    #[test]
    fn rows_of_the_containers_pids_are_kept_with_the_command_line_whole() {
        let top = parse_ps(PS_EF, &HashSet::from([4242, 4250])).unwrap();
        assert_eq!(top.titles, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[0][7], "nginx: master process nginx -g daemon off;");
        assert_eq!(top.processes[1][..3], ["101", "4250", "4242"]);
        let json = serde_json::to_value(&top).unwrap();
        assert!(json.get("Titles").is_some() && json.get("Processes").is_some());
    }

    #[test]
    fn a_format_without_pid_and_bad_arguments_are_refused() {
        assert!(parse_ps("USER COMMAND\nroot bash\n", &HashSet::new()).is_err());
        assert_eq!(ps_args(None).unwrap(), ["-ef"]);
        assert_eq!(ps_args(Some("aux")).unwrap(), ["aux"]);
        assert_eq!(ps_args(Some("-o pid,comm")).unwrap(), ["-o", "pid,comm"]);
        for bad in ["-ef; rm -rf /", "$(id)", "-o pid `id`", "a|b"] {
            assert_eq!(ps_args(Some(bad)).unwrap_err().kind, ErrorKind::BadRequest, "{bad}");
        }
        // `-o pid,comm`: two columns, the last one whole.
        let top = parse_ps("    PID COMMAND\n      7 sleep 600\n", &HashSet::from([7])).unwrap();
        assert_eq!(top.processes, vec![vec!["7".to_string(), "sleep 600".to_string()]]);
    }
}
