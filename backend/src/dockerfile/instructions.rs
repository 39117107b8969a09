//! What Dockerfile instructions do to an image's config, apart from the
//! filesystem: ENV, LABEL, EXPOSE, VOLUME, USER, STOPSIGNAL, CMD,
//! ENTRYPOINT, HEALTHCHECK, SHELL, ONBUILD. Shared by `docker build`'s
//! steps and `docker commit --change`, so both read an instruction alike.

use serde_json::{json, Value};

use super::expand;
use super::{Form, Kind};

/// `8000` → `8000/tcp`.
pub fn port_key(p: &str) -> String {
    if p.contains('/') {
        p.to_ascii_lowercase()
    } else {
        format!("{p}/tcp")
    }
}

/// A shell-form command run with the stage's SHELL.
pub fn with_shell(config: &Value, cmd: &str) -> Vec<String> {
    let mut shell: Vec<String> =
        config["config"]["Shell"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
    if shell.is_empty() {
        shell = vec!["/bin/sh".into(), "-c".into()];
    }
    shell.push(cmd.to_string());
    shell
}

/// Go-style duration ("30s", "1m30s", "500ms") in nanoseconds.
pub fn duration_ns(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(total as i64)
}

/// HEALTHCHECK's arguments as the config's Healthcheck.
pub fn healthcheck(args: &str) -> Result<Value, String> {
    let mut rest = args.trim();
    if rest.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut hc = serde_json::Map::new();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let (flag, after) = f.split_at(end);
        let (k, v) = flag.split_once('=').ok_or_else(|| format!("HEALTHCHECK flag --{flag} needs a value"))?;
        let key = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            other => return Err(format!("Unknown flag: {other}")),
        };
        let value = if key == "Retries" {
            json!(v.parse::<i64>().map_err(|_| format!("invalid retries {v}"))?)
        } else {
            json!(duration_ns(v).ok_or_else(|| format!("invalid duration {v}"))?)
        };
        hc.insert(key.into(), value);
        rest = after.trim_start();
    }
    let cmd = rest.strip_prefix("CMD").or_else(|| rest.strip_prefix("cmd")).ok_or("HEALTHCHECK requires CMD or NONE")?.trim();
    let test = if cmd.starts_with('[') {
        let mut v: Vec<String> = serde_json::from_str(cmd).map_err(|e| format!("HEALTHCHECK CMD: {e}"))?;
        v.insert(0, "CMD".into());
        v
    } else {
        vec!["CMD-SHELL".into(), cmd.to_string()]
    };
    hc.insert("Test".into(), json!(test));
    Ok(Value::Object(hc))
}

/// What a metadata instruction did: its text as the history shows it
/// (`ENV a=b`), and what else its cache key needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub shown: String,
    pub extra: String,
}

/// Applies a metadata instruction to `cfg` (the image config's `config`
/// section; `image` is the whole config, for SHELL). Words are expanded
/// with `lookup`'s variables. `cmd_set`: whether this stage set CMD (an
/// ENTRYPOINT then keeps it). None for an instruction that is not
/// metadata-only (RUN, COPY, ADD, WORKDIR, ARG, MAINTAINER).
pub fn apply(
    cfg: &mut Value,
    image: &Value,
    kind: &Kind,
    lookup: &dyn Fn(&str) -> Option<String>,
    cmd_set: &mut bool,
) -> Result<Option<Applied>, String> {
    let exp = |s: &str| expand::expand(s, lookup);
    let shown = |s: String| Ok(Some(Applied { shown: s, extra: String::new() }));
    match kind {
        Kind::Env(vars) => {
            // Every value sees the environment from before this ENV.
            let mut expanded = Vec::new();
            for (k, v) in vars {
                expanded.push((k.clone(), exp(v)?));
            }
            let mut env: Vec<String> =
                cfg["Env"].as_array().map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect()).unwrap_or_default();
            for (k, v) in &expanded {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            cfg["Env"] = json!(env);
            let list: Vec<String> = expanded.iter().map(|(k, v)| format!("{k}={v}")).collect();
            shown(format!("ENV {}", list.join(" ")))
        }
        Kind::Label(labels) => {
            let mut list = Vec::new();
            for (k, v) in labels {
                let (k, v) = (exp(k)?, exp(v)?);
                if !cfg["Labels"].is_object() {
                    cfg["Labels"] = json!({});
                }
                cfg["Labels"][&k] = json!(v);
                list.push(format!("{k}={v}"));
            }
            shown(format!("LABEL {}", list.join(" ")))
        }
        Kind::Expose(ports) => {
            let mut list = Vec::new();
            for p in ports {
                let p = exp(p)?;
                let key = port_key(&p);
                let num = key.split('/').next().unwrap_or("");
                if num.split('-').any(|x| x.parse::<u16>().is_err()) {
                    return Err(format!("invalid containerPort: {p}"));
                }
                if !cfg["ExposedPorts"].is_object() {
                    cfg["ExposedPorts"] = json!({});
                }
                cfg["ExposedPorts"][&key] = json!({});
                list.push(key);
            }
            shown(format!("EXPOSE {}", list.join(" ")))
        }
        Kind::Volume(vols) => {
            let mut list = Vec::new();
            for v in vols {
                let v = exp(v)?;
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                if !cfg["Volumes"].is_object() {
                    cfg["Volumes"] = json!({});
                }
                cfg["Volumes"][&v] = json!({});
                list.push(v);
            }
            shown(format!("VOLUME [{}]", list.join(" ")))
        }
        Kind::User(u) => {
            let u = exp(u)?;
            cfg["User"] = json!(u);
            shown(format!("USER {u}"))
        }
        Kind::StopSignal(s) => {
            let s = exp(s)?;
            if crate::signals::parse_signal(&s).is_none() {
                return Err(format!("Invalid signal: {s}"));
            }
            cfg["StopSignal"] = json!(s);
            shown(format!("STOPSIGNAL {s}"))
        }
        Kind::Cmd(f) | Kind::Entrypoint(f) => {
            let is_cmd = matches!(kind, Kind::Cmd(_));
            let v = match f {
                Form::Exec(a) => a.clone(),
                Form::Shell(s) => with_shell(image, s),
            };
            let key = if is_cmd { "Cmd" } else { "Entrypoint" };
            cfg[key] = json!(v);
            if is_cmd {
                *cmd_set = true;
            } else if !*cmd_set {
                cfg["Cmd"] = Value::Null;
            }
            // Whether ENTRYPOINT clears the CMD is not in its text.
            let extra = if is_cmd { String::new() } else { format!("cmd_set={cmd_set}") };
            Ok(Some(Applied { shown: format!("{} {}", key.to_ascii_uppercase(), serde_json::to_string(&v).unwrap_or_default()), extra }))
        }
        Kind::Healthcheck(args) => {
            cfg["Healthcheck"] = healthcheck(args)?;
            shown(format!("HEALTHCHECK {args}"))
        }
        Kind::Shell(sh) => {
            cfg["Shell"] = json!(sh);
            shown(format!("SHELL {}", serde_json::to_string(sh).unwrap_or_default()))
        }
        Kind::OnBuild(t) => {
            let mut list = cfg["OnBuild"].as_array().cloned().unwrap_or_default();
            list.push(json!(t));
            cfg["OnBuild"] = json!(list);
            shown(format!("ONBUILD {t}"))
        }
        Kind::Run { .. } | Kind::Copy { .. } | Kind::Workdir(_) | Kind::Arg(_) | Kind::Maintainer(_) => Ok(None),
    }
}

/// WORKDIR's directory: absolute, or relative to the current one.
pub fn workdir(cfg: &Value, w: &str) -> String {
    let current = cfg["WorkingDir"].as_str().unwrap_or("/");
    if w.starts_with('/') {
        w.to_string()
    } else {
        std::path::Path::new(if current.is_empty() { "/" } else { current }).join(w).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_and_durations_read_as_docker_reads_them() {
        assert_eq!(duration_ns("30s"), Some(30_000_000_000));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5x"), None);
        let hc = healthcheck("--interval=5s --retries=3 CMD wget -qO- http://localhost/ || exit 1").unwrap();
        assert_eq!(hc["Test"], json!(["CMD-SHELL", "wget -qO- http://localhost/ || exit 1"]));
        assert_eq!((hc["Interval"].as_i64(), hc["Retries"].as_i64()), (Some(5_000_000_000), Some(3)));
        assert_eq!(healthcheck("NONE").unwrap(), json!({"Test": ["NONE"]}));
        assert!(healthcheck("--bogus=1 CMD true").is_err());
    }

    #[test]
    fn shell_form_uses_the_stages_shell() {
        assert_eq!(with_shell(&json!({}), "echo hi"), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            with_shell(&json!({"config": {"Shell": ["/bin/bash", "-eo", "pipefail", "-c"]}}), "x"),
            vec!["/bin/bash", "-eo", "pipefail", "-c", "x"]
        );
        assert_eq!(port_key("8000"), "8000/tcp");
        assert_eq!(port_key("53/UDP"), "53/udp");
    }
}
