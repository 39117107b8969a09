//! Dockerfiles, read with the `dockerfile-parser` crate (its pest grammar
//! handles continuations, comments, JSON and shell forms and gives spans),
//! plus what it lacks: parser directives (`# escape=`, `# syntax=`),
//! heredocs (`RUN <<EOF`, `COPY <<EOF /dest`), and the instructions it
//! passes through untyped (WORKDIR, USER, ADD, …), which are read here.

pub mod expand;
pub mod instructions;

use dockerfile_parser::{BreakableStringComponent, Dockerfile, Instruction, ShellOrExecExpr};

/// A Dockerfile problem, with the line it is on when known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile parse error line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError { line, message: message.into() }
}

/// The longest line a Dockerfile may have (Docker's parser reads lines with
/// Go's bufio.Scanner, whose limit this is).
pub const MAX_LINE: usize = 65535;

/// Untrusted text quoted in an error: a short excerpt, never the whole.
fn quote(s: &str) -> String {
    crate::text::excerpt(s, 60)
}

/// Shell form (run by the SHELL, `/bin/sh -c`) or exec form (a JSON array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Form {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc's name and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Run {
        cmd: Form,
        heredocs: Vec<Heredoc>,
    },
    /// COPY, or ADD (`add`: local archives are extracted).
    Copy {
        add: bool,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        sources: Vec<String>,
        dest: String,
        heredocs: Vec<Heredoc>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Cmd(Form),
    Entrypoint(Form),
    StopSignal(String),
    /// HEALTHCHECK's arguments as written (parsed when the config is made).
    Healthcheck(String),
    Shell(Vec<String>),
    OnBuild(String),
    Maintainer(String),
}

/// One instruction of a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line where it starts.
    pub line: usize,
    /// The instruction on one line, as `Step N/M :` shows it.
    pub text: String,
    pub kind: Kind,
}

/// `FROM base [AS name]` and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub base: String,
    pub name: Option<String>,
    pub line: usize,
    pub text: String,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// ARGs before the first FROM (usable in FROM lines).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

impl Parsed {
    /// Steps as the legacy builder counts them: each FROM and each instruction.
    pub fn total_steps(&self) -> usize {
        self.global_args.len() + self.stages.iter().map(|s| 1 + s.steps.len()).sum::<usize>()
    }
}

/// Reads the parser directives at the top: returns the escape character.
fn directives(src: &str) -> Result<char, ParseError> {
    let mut escape = '\\';
    for (i, line) in src.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix('#') else { break };
        let Some((key, value)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        if key.contains(' ') {
            break;
        }
        match key.as_str() {
            "escape" => {
                escape = match value.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(err(i + 1, format!("invalid escape token '{}' does not match ` or \\", quote(other)))),
                }
            }
            "syntax" | "check" => {}
            _ => break,
        }
    }
    Ok(escape)
}

/// Heredoc markers on an instruction line: `<<EOF`, `<<-EOF`, `<<"EOF"`.
fn heredoc_markers(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("<<") {
        let after = &rest[i + 2..];
        let (strip, after) = match after.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, after),
        };
        let unquoted = after.trim_start_matches(['"', '\'']);
        let name: String = unquoted.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push((name.clone(), strip));
        }
        rest = &after[name.len().min(after.len())..];
    }
    out
}

/// Cuts heredoc bodies out (leaving blank lines, so line numbers stay) and
/// turns a backtick escape into the parser's backslash at line ends.
fn prepare(src: &str, escape: char) -> Result<(String, Vec<(usize, Vec<Heredoc>)>), ParseError> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut heredocs = Vec::new();
    let mut continued = false;
    let mut i = 0;
    while i < lines.len() {
        let mut line = lines[i].to_string();
        if escape == '`' && line.trim_end().ends_with('`') {
            let t = line.trim_end();
            line = format!("{}\\", &t[..t.len() - 1]);
        }
        let word = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let starts = !continued && matches!(word.as_str(), "RUN" | "COPY" | "ADD");
        continued = line.trim_end().ends_with('\\') && !line.trim_start().starts_with('#');
        out.push(line.clone());
        i += 1;
        if !starts {
            continue;
        }
        let at = out.len(); // this instruction's 1-based line
        let mut docs = Vec::new();
        for (name, strip) in heredoc_markers(&line) {
            let mut body = String::new();
            let mut closed = false;
            while i < lines.len() {
                let l = lines[i];
                out.push(String::new());
                i += 1;
                let cmp = if strip { l.trim_start_matches('\t') } else { l };
                if cmp == name {
                    closed = true;
                    break;
                }
                body.push_str(cmp);
                body.push('\n');
            }
            if !closed {
                return Err(err(at, format!("unterminated heredoc {}: no line {} closes it", quote(&name), quote(&name))));
            }
            docs.push(Heredoc { name, body });
        }
        if !docs.is_empty() {
            heredocs.push((at, docs));
        }
    }
    Ok((out.join("\n") + "\n", heredocs))
}

/// The 1-based line of a byte offset, given where each line starts (a
/// search, not a count from the top: 10,000 instructions took 40 s).
fn line_of(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|s| *s <= offset).max(1)
}

/// The instruction's text on one line: continuations joined, comments out.
fn one_line(src: &str, span: (usize, usize)) -> String {
    let raw = &src[span.0.min(src.len())..span.1.min(src.len())];
    let mut out = String::new();
    for l in raw.lines() {
        let t = l.trim_start();
        if t.starts_with('#') && !out.is_empty() {
            continue;
        }
        let l = l.trim_end();
        let l = l.strip_suffix('\\').unwrap_or(l);
        out.push_str(l);
    }
    out.trim().to_string()
}

fn breakable(b: &dockerfile_parser::BreakableString) -> String {
    let mut s = String::new();
    for c in &b.components {
        if let BreakableStringComponent::String(x) = c {
            s.push_str(&x.content);
        }
    }
    s.trim().to_string()
}

fn form(e: &ShellOrExecExpr) -> Form {
    match e {
        ShellOrExecExpr::Shell(b) => Form::Shell(breakable(b)),
        ShellOrExecExpr::Exec(a) => Form::Exec(a.elements.iter().map(|s| s.content.clone()).collect()),
    }
}

/// A JSON array of strings, if the text is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(s.trim()).ok()?;
    v.as_array()?.iter().map(|x| x.as_str().map(String::from)).collect()
}

fn form_of(args: &str) -> Form {
    match json_array(args) {
        Some(a) if args.trim_start().starts_with('[') => Form::Exec(a),
        _ => Form::Shell(args.trim().to_string()),
    }
}

/// `--name=value` flags at the front of ADD/COPY arguments, then the words
/// (or the JSON array) that follow.
fn flags_and_words(args: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = args.trim();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let (flag, after) = f.split_at(end);
        let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
        flags.push((k.to_string(), v.to_string()));
        rest = after.trim_start();
    }
    let words = json_array(rest).filter(|_| rest.starts_with('[')).unwrap_or_else(|| rest.split_whitespace().map(String::from).collect());
    (flags, words)
}

/// `KEY=VALUE ...` or the old `KEY VALUE` form.
fn pairs(args: &str, line: usize, what: &str) -> Result<Vec<(String, String)>, ParseError> {
    let words = expand::split_words(args);
    if words.is_empty() {
        return Err(err(line, format!("{what} requires at least one argument")));
    }
    if !words[0].contains('=') {
        let (k, v) =
            args.trim().split_once(char::is_whitespace).ok_or_else(|| err(line, format!("{what} names must be followed by a value")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| err(line, format!("{what} names can not be blank: {}", quote(w))))
        })
        .collect()
}

const KNOWN: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parses a Dockerfile into its stages.
pub fn parse(src: &str) -> Result<Parsed, ParseError> {
    if let Some((n, _)) = src.lines().enumerate().find(|(_, l)| l.len() > MAX_LINE) {
        return Err(err(n + 1, format!("dockerfile line greater than max allowed size of {MAX_LINE}")));
    }
    let escape = directives(src)?;
    let (text, heredocs) = prepare(src, escape)?;
    // Unknown instructions: the grammar takes any word, so check first.
    let mut continued = false;
    for (n, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('#') || (continued && t.is_empty()) {
            continue; // comments (and blank lines) inside a continuation keep it going
        }
        let was_continued = continued;
        continued = t.ends_with('\\');
        if was_continued || t.is_empty() {
            continue;
        }
        let word = t.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if !KNOWN.contains(&word.as_str()) {
            return Err(err(n + 1, format!("unknown instruction: {}", quote(t.split_whitespace().next().unwrap_or("")))));
        }
    }
    let df = Dockerfile::parse(&text).map_err(|e| {
        let msg = e.to_string();
        let line = msg.split("-->").nth(1).and_then(|s| s.trim().split(':').next()).and_then(|n| n.trim().parse().ok()).unwrap_or(1);
        // The parser may point past the end (a continuation on the last line).
        let line = line.min(src.lines().count().max(1));
        err(line, format!("syntax error: {}", quote(msg.lines().last().unwrap_or(&msg).trim())))
    })?;
    let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let heredocs_at = |line: usize| heredocs.iter().find(|(l, _)| *l == line).map(|(_, d)| d.clone()).unwrap_or_default();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        let span = match ins {
            Instruction::From(i) => (i.span.start, i.span.end),
            Instruction::Arg(i) => (i.span.start, i.span.end),
            Instruction::Label(i) => (i.span.start, i.span.end),
            Instruction::Run(i) => (i.span.start, i.span.end),
            Instruction::Entrypoint(i) => (i.span.start, i.span.end),
            Instruction::Cmd(i) => (i.span.start, i.span.end),
            Instruction::Copy(i) => (i.span.start, i.span.end),
            Instruction::Env(i) => (i.span.start, i.span.end),
            Instruction::Misc(i) => (i.span.start, i.span.end),
        };
        let line = line_of(&starts, span.0);
        let one = one_line(&text, span);
        if let Instruction::From(f) = ins {
            let mut words = one.split_whitespace().skip(1).filter(|w| !w.starts_with("--"));
            let base = words.next().unwrap_or("").to_string();
            if base.is_empty() {
                return Err(err(line, "FROM requires either one or three arguments"));
            }
            stages.push(Stage { base, name: f.alias.as_ref().map(|a| a.content.to_ascii_lowercase()), line, text: one, steps: Vec::new() });
            continue;
        }
        let kind = match ins {
            Instruction::Arg(a) => Kind::Arg(vec![(a.name.content.clone(), a.value.as_ref().map(|v| v.content.clone()))]),
            Instruction::Label(l) => Kind::Label(l.labels.iter().map(|x| (x.name.content.clone(), x.value.content.clone())).collect()),
            Instruction::Run(r) => Kind::Run { cmd: form(&r.expr), heredocs: heredocs_at(line) },
            Instruction::Entrypoint(e) => Kind::Entrypoint(form(&e.expr)),
            Instruction::Cmd(c) => Kind::Cmd(form(&c.expr)),
            Instruction::Env(e) => Kind::Env(e.vars.iter().map(|v| (v.key.content.clone(), breakable(&v.value))).collect()),
            Instruction::Copy(c) => {
                let flag = |n: &str| c.flags.iter().find(|f| f.name.content == n).map(|f| f.value.content.clone());
                if let Some(bad) = c.flags.iter().find(|f| !["from", "chown", "chmod", "link"].contains(&f.name.content.as_str())) {
                    return Err(err(line, format!("Unknown flag: {}", quote(&bad.name.content))));
                }
                Kind::Copy {
                    add: false,
                    from: flag("from"),
                    chown: flag("chown"),
                    chmod: flag("chmod"),
                    sources: c.sources.iter().map(|s| s.content.clone()).collect(),
                    dest: c.destination.content.clone(),
                    heredocs: heredocs_at(line),
                }
            }
            Instruction::Misc(m) => {
                let name = m.instruction.content.to_ascii_uppercase();
                let args = breakable(&m.arguments);
                misc(&name, &args, line, heredocs_at(line))?
            }
            Instruction::From(_) => continue,
        };
        if let Kind::Copy { sources, .. } = &kind {
            if sources.is_empty() {
                return Err(err(
                    line,
                    "COPY requires at least two arguments, but only one was provided. Destination could not be determined.",
                ));
            }
        }
        match stages.last_mut() {
            Some(stage) => stage.steps.push(Step { line, text: one, kind }),
            None => match kind {
                Kind::Arg(a) => global_args.extend(a),
                _ => return Err(err(line, "no build stage in current context")),
            },
        }
    }
    if stages.is_empty() {
        return Err(err(1, "file with no instructions"));
    }
    Ok(Parsed { global_args, stages })
}

fn misc(name: &str, args: &str, line: usize, heredocs: Vec<Heredoc>) -> Result<Kind, ParseError> {
    let need = |ok: bool, msg: &str| if ok { Ok(()) } else { Err(err(line, msg.to_string())) };
    Ok(match name {
        "WORKDIR" => {
            need(!args.is_empty(), "WORKDIR requires exactly one argument")?;
            Kind::Workdir(args.to_string())
        }
        "USER" => {
            need(!args.is_empty(), "USER requires exactly one argument")?;
            Kind::User(args.to_string())
        }
        "EXPOSE" => {
            need(!args.is_empty(), "EXPOSE requires at least one argument")?;
            Kind::Expose(args.split_whitespace().map(String::from).collect())
        }
        "VOLUME" => {
            let v = if args.trim_start().starts_with('[') {
                json_array(args).unwrap_or_default()
            } else {
                args.split_whitespace().map(String::from).collect()
            };
            need(!v.is_empty(), "VOLUME requires at least one argument")?;
            Kind::Volume(v)
        }
        "STOPSIGNAL" => {
            need(!args.is_empty(), "STOPSIGNAL requires exactly one argument")?;
            Kind::StopSignal(args.to_string())
        }
        "HEALTHCHECK" => {
            need(!args.is_empty(), "HEALTHCHECK requires an argument")?;
            Kind::Healthcheck(args.to_string())
        }
        "SHELL" => Kind::Shell(
            json_array(args).filter(|a| !a.is_empty()).ok_or_else(|| err(line, "SHELL requires the arguments to be in JSON form"))?,
        ),
        "ONBUILD" => Kind::OnBuild(args.to_string()),
        "MAINTAINER" => Kind::Maintainer(args.to_string()),
        "ADD" => {
            let (flags, mut words) = flags_and_words(args);
            if let Some((bad, _)) =
                flags.iter().find(|(k, _)| !["chown", "chmod", "checksum", "link", "keep-git-dir"].contains(&k.as_str()))
            {
                return Err(err(line, format!("Unknown flag: {}", quote(bad))));
            }
            let dest = words.pop().unwrap_or_default();
            need(
                !words.is_empty(),
                "ADD requires at least two arguments, but only one was provided. Destination could not be determined.",
            )?;
            let flag = |n: &str| flags.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            Kind::Copy { add: true, from: None, chown: flag("chown"), chmod: flag("chmod"), sources: words, dest, heredocs }
        }
        "ENV" => Kind::Env(pairs(args, line, "ENV")?),
        "LABEL" => Kind::Label(pairs(args, line, "LABEL")?),
        "RUN" => Kind::Run { cmd: form_of(args), heredocs },
        "CMD" => Kind::Cmd(form_of(args)),
        "ENTRYPOINT" => Kind::Entrypoint(form_of(args)),
        "ARG" => {
            let (k, v) = match args.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                None => (args.trim().to_string(), None),
            };
            need(!k.is_empty(), "ARG requires exactly one argument")?;
            Kind::Arg(vec![(k, v)])
        }
        other => return Err(err(line, format!("unknown instruction: {}", quote(other)))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "# syntax=docker/dockerfile:1\nARG BASE=alpine\nFROM ${BASE} AS base\nWORKDIR /app\nCOPY requirements.txt ./\nRUN echo installing && \\\n    # a comment inside\n    echo done\nCOPY . .\nEXPOSE 8000\nENV A=1 B=\"two words\"\nCMD [\"python\", \"app.py\"]\n";

    #[test]
    fn the_lab_shaped_dockerfile_reads_as_steps_with_lines() {
        let p = parse(LAB).unwrap();
        assert_eq!(p.global_args, vec![("BASE".to_string(), Some("alpine".to_string()))]);
        let s = &p.stages[0];
        assert_eq!((s.base.as_str(), s.name.as_deref(), s.line), ("${BASE}", Some("base"), 3));
        let lines: Vec<usize> = s.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 9, 10, 11, 12]);
        assert_eq!(s.steps[0].kind, Kind::Workdir("/app".into()));
        assert_eq!(s.steps[2].kind, Kind::Run { cmd: Form::Shell("echo installing &&     echo done".into()), heredocs: vec![] });
        assert_eq!(s.steps[2].text, "RUN echo installing &&     echo done");
        assert_eq!(s.steps[4].kind, Kind::Expose(vec!["8000".into()]));
        assert_eq!(s.steps[5].kind, Kind::Env(vec![("A".into(), "1".into()), ("B".into(), "two words".into())]));
        assert_eq!(s.steps[6].kind, Kind::Cmd(Form::Exec(vec!["python".into(), "app.py".into()])));
        assert_eq!(p.total_steps(), 9);
    }

    #[test]
    fn unknown_instructions_and_bad_arguments_name_their_line() {
        let e = parse("FROM alpine\nRUN true\nFOOBAR x\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "unknown instruction: FOOBAR"));
        assert_eq!(e.to_string(), "Dockerfile parse error line 3: unknown instruction: FOOBAR");
        assert_eq!(parse("FROM alpine\nCOPY onlyone\n").unwrap_err().line, 2);
        assert_eq!(parse("RUN true\n").unwrap_err().message, "no build stage in current context");
        assert!(parse("FROM alpine\nSHELL /bin/bash\n").unwrap_err().message.contains("JSON form"));
        assert_eq!(parse("FROM alpine\nCOPY --bogus=1 a b\n").unwrap_err().message, "Unknown flag: bogus");
    }

    #[test]
    fn heredocs_are_cut_out_and_kept_with_their_instruction() {
        let p =
            parse("FROM alpine\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-CONF /etc/app.conf\n\tkey=value\n\tCONF\nRUN true\n").unwrap();
        let steps = &p.stages[0].steps;
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0].kind,
            Kind::Run {
                cmd: Form::Shell("<<EOF".into()),
                heredocs: vec![Heredoc { name: "EOF".into(), body: "echo one\necho two\n".into() }]
            }
        );
        match &steps[1].kind {
            Kind::Copy { dest, heredocs, .. } => {
                assert_eq!(dest, "/etc/app.conf");
                assert_eq!(heredocs, &vec![Heredoc { name: "CONF".into(), body: "key=value\n".into() }]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(steps[2].line, 9, "line numbers survive the cut");
    }

    #[test]
    fn the_escape_directive_switches_continuations_to_backticks() {
        let p = parse("# escape=`\nFROM alpine\nRUN echo a `\n    b\n").unwrap();
        assert_eq!(p.stages[0].steps[0].kind, Kind::Run { cmd: Form::Shell("echo a     b".into()), heredocs: vec![] });
        assert!(parse("# escape=x\nFROM alpine\n").is_err());
    }

    #[test]
    fn add_takes_flags_and_multi_stage_names_are_kept() {
        let p = parse("FROM alpine AS Build\nADD --chown=1:1 a.tar.gz b /dst/\nFROM scratch\nCOPY --from=build /x /x\n").unwrap();
        assert_eq!(p.stages[0].name.as_deref(), Some("build"));
        assert_eq!(
            p.stages[0].steps[0].kind,
            Kind::Copy {
                add: true,
                from: None,
                chown: Some("1:1".into()),
                chmod: None,
                sources: vec!["a.tar.gz".into(), "b".into()],
                dest: "/dst/".into(),
                heredocs: vec![]
            }
        );
        assert!(matches!(&p.stages[1].steps[0].kind, Kind::Copy { from: Some(f), .. } if f == "build"));
    }
}
