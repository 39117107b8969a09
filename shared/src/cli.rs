//! What the docker CLI (28, as on the lab hosts) checks before it talks to
//! the daemon: known flags, flags that take a value, and argument counts,
//! with its exact messages. The simulator answers mistakes as the real CLI
//! does; the differential test holds both to the same output.

/// How many positional arguments a command takes, and how the CLI words it.
#[derive(Debug, Clone, Copy)]
enum Args {
    None,
    Exact(usize),
    AtLeast(usize),
    AtMost(usize),
}

#[derive(Debug)]
struct Spec {
    path: &'static str,
    usage: &'static str,
    args: Args,
    /// Flags that take a value: long names and one-letter shorthands.
    valued: &'static [&'static str],
    /// Flags that take none.
    boolean: &'static [&'static str],
    /// Whether flags stop at the first positional argument (run, exec).
    stop_at_positional: bool,
}

const SPECS: &[Spec] = &[
    Spec {
        path: "run",
        usage: "docker run [OPTIONS] IMAGE [COMMAND] [ARG...]",
        args: Args::AtLeast(1),
        valued: &[
            "name",
            "p",
            "publish",
            "v",
            "volume",
            "e",
            "env",
            "env-file",
            "network",
            "net",
            "network-alias",
            "mount",
            "w",
            "workdir",
            "u",
            "user",
            "entrypoint",
            "h",
            "hostname",
            "restart",
            "cap-add",
            "cap-drop",
            "m",
            "memory",
            "cpus",
            "l",
            "label",
            "platform",
            "pull",
            "a",
            "attach",
            "ip",
            "dns",
            "add-host",
            "stop-signal",
            "stop-timeout",
            "expose",
            "tmpfs",
            "ulimit",
            "log-driver",
            "log-opt",
            "device",
            "cidfile",
            "detach-keys",
            "shm-size",
            "pid",
            "ipc",
        ],
        boolean: &[
            "d",
            "detach",
            "i",
            "interactive",
            "t",
            "tty",
            "rm",
            "P",
            "publish-all",
            "init",
            "privileged",
            "read-only",
            "q",
            "quiet",
            "help",
        ],
        stop_at_positional: true,
    },
    Spec {
        path: "exec",
        usage: "docker exec [OPTIONS] CONTAINER COMMAND [ARG...]",
        args: Args::AtLeast(2),
        valued: &["e", "env", "env-file", "u", "user", "w", "workdir", "detach-keys"],
        boolean: &["d", "detach", "i", "interactive", "t", "tty", "privileged", "help"],
        stop_at_positional: true,
    },
    Spec {
        path: "ps",
        usage: "docker ps [OPTIONS]",
        args: Args::None,
        valued: &["f", "filter", "format", "n", "last"],
        boolean: &["a", "all", "q", "quiet", "no-trunc", "s", "size", "l", "latest", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "stop",
        usage: "docker stop [OPTIONS] CONTAINER [CONTAINER...]",
        args: Args::AtLeast(1),
        valued: &["t", "time", "s", "signal"],
        boolean: &["help"],
        stop_at_positional: false,
    },
    Spec {
        path: "rm",
        usage: "docker rm [OPTIONS] CONTAINER [CONTAINER...]",
        args: Args::AtLeast(1),
        valued: &[],
        boolean: &["f", "force", "v", "volumes", "l", "link", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "logs",
        usage: "docker logs [OPTIONS] CONTAINER",
        args: Args::Exact(1),
        valued: &["n", "tail", "since", "until"],
        boolean: &["f", "follow", "t", "timestamps", "details", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "inspect",
        usage: "docker inspect [OPTIONS] NAME|ID [NAME|ID...]",
        args: Args::AtLeast(1),
        valued: &["f", "format", "type"],
        boolean: &["s", "size", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "images",
        usage: "docker images [OPTIONS] [REPOSITORY[:TAG]]",
        args: Args::AtMost(1),
        valued: &["f", "filter", "format"],
        boolean: &["a", "all", "q", "quiet", "digests", "no-trunc", "tree", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "pull",
        usage: "docker pull [OPTIONS] NAME[:TAG|@DIGEST]",
        args: Args::Exact(1),
        valued: &["platform"],
        boolean: &["a", "all-tags", "q", "quiet", "disable-content-trust", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "build",
        usage: "docker build [OPTIONS] PATH | URL | -",
        args: Args::Exact(1),
        valued: &["t", "tag", "f", "file", "build-arg", "target", "label", "platform", "network", "iidfile", "cache-from"],
        boolean: &["no-cache", "q", "quiet", "pull", "rm", "force-rm", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "image inspect",
        usage: "docker image inspect [OPTIONS] IMAGE [IMAGE...]",
        args: Args::AtLeast(1),
        valued: &["f", "format", "platform"],
        boolean: &["help"],
        stop_at_positional: false,
    },
    Spec {
        path: "container prune",
        usage: "docker container prune [OPTIONS]",
        args: Args::None,
        valued: &["filter"],
        boolean: &["f", "force", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "volume create",
        usage: "docker volume create [OPTIONS] [VOLUME]",
        args: Args::AtMost(1),
        valued: &["d", "driver", "label", "o", "opt", "name"],
        boolean: &["help"],
        stop_at_positional: false,
    },
    Spec {
        path: "volume ls",
        usage: "docker volume ls [OPTIONS]",
        args: Args::None,
        valued: &["f", "filter", "format"],
        boolean: &["q", "quiet", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "volume inspect",
        usage: "docker volume inspect [OPTIONS] VOLUME [VOLUME...]",
        args: Args::AtLeast(1),
        valued: &["f", "format"],
        boolean: &["help"],
        stop_at_positional: false,
    },
    Spec {
        path: "volume rm",
        usage: "docker volume rm [OPTIONS] VOLUME [VOLUME...]",
        args: Args::AtLeast(1),
        valued: &[],
        boolean: &["f", "force", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "network ls",
        usage: "docker network ls [OPTIONS]",
        args: Args::None,
        valued: &["f", "filter", "format"],
        boolean: &["q", "quiet", "no-trunc", "help"],
        stop_at_positional: false,
    },
    Spec {
        path: "network inspect",
        usage: "docker network inspect [OPTIONS] NETWORK [NETWORK...]",
        args: Args::AtLeast(1),
        valued: &["f", "format"],
        boolean: &["v", "verbose", "help"],
        stop_at_positional: false,
    },
];

fn spec(path: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.path == path)
}

/// The command a `docker …` line names (`volume ls`, `ps`…) and the rest.
fn split_command<'a>(args: &'a [&'a str]) -> Option<(&'static Spec, &'a [&'a str])> {
    if let [group, sub, rest @ ..] = args {
        if let Some(s) = spec(&format!("{group} {sub}")) {
            return Some((s, rest));
        }
    }
    let (first, rest) = args.split_first()?;
    // `docker container ls`-style aliases of the top-level commands
    let s = spec(first)?;
    Some((s, rest))
}

fn footer(s: &Spec, verb: &str) -> String {
    format!("\n\nUsage:  {}\n\n{verb} 'docker {} --help' for more information\n", s.usage, s.path)
}

/// The positional arguments of a command line once its flags are taken
/// out, or the CLI's message for a flag it does not know.
fn positionals<'a>(s: &Spec, rest: &'a [&'a str]) -> Result<Vec<&'a str>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let unknown = |msg: String| Err(format!("{msg}{}", footer(s, "Run")));
    while i < rest.len() {
        let a = rest[i];
        if a == "--" {
            out.extend_from_slice(&rest[i + 1..]);
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            if s.valued.contains(&name) {
                if !inline {
                    if i + 1 >= rest.len() {
                        return Err(format!("flag needs an argument: --{name}{}", footer(s, "Run")));
                    }
                    i += 1;
                }
            } else if !s.boolean.contains(&name) {
                return unknown(format!("unknown flag: --{name}"));
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let letters: Vec<char> = a[1..].chars().collect();
            for (k, c) in letters.iter().enumerate() {
                let name = c.to_string();
                if s.valued.contains(&name.as_str()) {
                    if k + 1 == letters.len() {
                        if i + 1 >= rest.len() {
                            return Err(format!("flag needs an argument: '{c}' in -{c}{}", footer(s, "Run")));
                        }
                        i += 1;
                    }
                    break; // the rest of the word is the value
                } else if !s.boolean.contains(&name.as_str()) {
                    return unknown(format!("unknown shorthand flag: '{c}' in {a}"));
                }
            }
        } else {
            out.push(a);
            if s.stop_at_positional {
                out.extend_from_slice(&rest[i + 1..]);
                break;
            }
        }
        i += 1;
    }
    Ok(out)
}

/// The docker CLI's own answer to a malformed command line (unknown flag,
/// wrong number of arguments), or None when the daemon would be asked.
pub fn check_docker(args: &[&str]) -> Option<String> {
    let (s, rest) = split_command(args)?;
    let pos = match positionals(s, rest) {
        Ok(p) => p,
        Err(msg) => return Some(msg),
    };
    let n = pos.len();
    let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
    let cmd = format!("docker {}", s.path);
    match s.args {
        Args::None if n > 0 => Some(format!("docker: '{cmd}' accepts no arguments{}", footer(s, "Run"))),
        Args::Exact(k) if n != k => Some(format!("docker: '{cmd}' requires {k} {}{}", plural(k), footer(s, "Run"))),
        Args::AtLeast(k) if n < k => Some(format!("docker: '{cmd}' requires at least {k} {}{}", plural(k), footer(s, "See"))),
        // The CLI really prints "SRun" here (a stray format verb).
        Args::AtMost(k) if n > k => Some(format!("docker: '{cmd}' requires at most {k} {}{}", plural(k), footer(s, "SRun"))),
        _ => None,
    }
}

/// Whether `flag` (as typed: `-p`, `--name`) takes a value for `docker CMD`.
pub fn takes_value(path: &str, flag: &str) -> bool {
    let name = flag.trim_start_matches('-');
    spec(path).is_some_and(|s| s.valued.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_clis() {
        assert_eq!(
            check_docker(&["ps", "--bogus"]).unwrap_or_default(),
            "unknown flag: --bogus\n\nUsage:  docker ps [OPTIONS]\n\nRun 'docker ps --help' for more information\n"
        );
        assert!(check_docker(&["stop"]).unwrap_or_default().starts_with(
            "docker: 'docker stop' requires at least 1 argument\n\nUsage:  docker stop [OPTIONS] CONTAINER [CONTAINER...]\n\nSee "
        ));
        assert!(check_docker(&["exec", "web"]).unwrap_or_default().contains("requires at least 2 arguments"));
        assert!(check_docker(&["logs", "a", "b"]).unwrap_or_default().contains("'docker logs' requires 1 argument\n"));
        assert!(check_docker(&["volume", "create", "a", "b"])
            .unwrap_or_default()
            .ends_with("SRun 'docker volume create --help' for more information\n"));
        assert!(check_docker(&["ps", "-z"]).unwrap_or_default().starts_with("unknown shorthand flag: 'z' in -z\n"));
    }

    #[test]
    fn the_labs_commands_pass() {
        for line in [
            "run --name nginx-demo -d --rm -p 80:80 nginx:alpine",
            "run -it --rm alpine sh",
            "run -dit alpine",
            "run --name web -d -v webvol:/usr/share/nginx/html -p 8081:80 nginx:alpine",
            "exec -it nginx-1 /bin/sh",
            "exec web sh -c ls",
            "ps -a",
            "ps -aq",
            "logs nginx-demo",
            "stop nginx-demo",
            "rm -f web",
            "inspect nginx-1",
            "image inspect nginx:alpine",
            "build -t gourmetgram-app:0.0.1 gourmetgram",
            "volume create webvol",
            "volume ls",
            "network ls",
            "network inspect bridge",
            "container prune -f",
            "pull nginx:alpine",
            "images",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            assert_eq!(check_docker(&args), None, "{line}");
        }
        // flags after the image belong to the container's command
        assert_eq!(check_docker(&["run", "alpine", "ls", "--bogus"]), None);
    }
}
