//! Container output: the pump that reads it and the json-file log driver
//! that keeps it (`<id>-json.log`, one JSON object a line, rotated as
//! Docker's `--log-opt max-size=… max-file=…` ask).
//!
//! The pump is linear in its input with a bounded line buffer: as moby's
//! copier (`daemon/logger/copier.go`, 16 KiB buffer) a line longer than
//! 16 KiB is written as several entries, each but the last without its
//! trailing newline; `docker logs` joins them back.
//! Reading (`docker logs --tail N`) starts from the end of the newest file
//! and goes back only as far as it needs, across rotated files.

use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::containers::{Container, Output, StreamKind};
use crate::error::{ApiError, ErrorKind};
use crate::ids::now_rfc3339;

/// Longest log entry, as Docker's copier splits lines.
pub const MAX_LINE: usize = 16 * 1024;

/// Docker's answer to `docker logs` for a driver that keeps nothing.
pub const READ_NOT_SUPPORTED: &str = "configured logging driver does not support reading";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    JsonFile,
    None,
}

/// `HostConfig.LogConfig`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub driver: Driver,
    /// Rotate when the file has reached this many bytes.
    pub max_size: Option<u64>,
    /// How many files to keep, the current one included (at least 1).
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { driver: Driver::JsonFile, max_size: None, max_file: 1 }
    }
}

impl LogConfig {
    /// Checks `HostConfig.LogConfig` as Docker does at create, and fills in
    /// the default driver so that `docker inspect` shows it. Unknown drivers
    /// and options are refused (400), never accepted and ignored.
    pub fn normalize(host_config: &mut Value) -> Result<LogConfig, ApiError> {
        let lc = &host_config["LogConfig"];
        if !lc.is_null() && !lc.is_object() {
            return Err(ApiError::bad_request(
                "json: cannot unmarshal into Go struct field HostConfig.LogConfig of type container.LogConfig",
            ));
        }
        let kind = match &lc["Type"] {
            Value::Null => "",
            Value::String(s) => s.as_str(),
            _ => return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field LogConfig.Type of type string")),
        };
        let mut opts = std::collections::BTreeMap::new();
        match &lc["Config"] {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    let Some(v) = v.as_str() else {
                        return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field LogConfig.Config of type string"));
                    };
                    opts.insert(k.clone(), v.to_string());
                }
            }
            _ => {
                return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field LogConfig.Config of type map[string]string"))
            }
        }
        let cfg = Self::parse(kind, &opts).map_err(ApiError::bad_request)?;
        let kind = if kind.is_empty() { "json-file" } else { kind };
        host_config["LogConfig"] = json!({"Type": kind, "Config": opts});
        Ok(cfg)
    }

    /// The driver and options, with Docker's messages for what is refused.
    pub fn parse(kind: &str, opts: &std::collections::BTreeMap<String, String>) -> Result<LogConfig, String> {
        let driver = match kind {
            "" | "json-file" => Driver::JsonFile,
            "none" => Driver::None,
            other => return Err(format!("logger: no log driver named '{other}' is registered")),
        };
        if driver == Driver::None {
            // Docker takes any option for "none" and uses none.
            return Ok(LogConfig { driver, max_size: None, max_file: 1 });
        }
        let mut cfg = LogConfig::default();
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => {
                    let n = parse_human_size(v).ok_or_else(|| format!("invalid size: '{v}'"))?;
                    if n <= 0 {
                        return Err("max-size must be a positive number".into());
                    }
                    cfg.max_size = Some(n as u64);
                }
                "max-file" => {
                    let n: i64 = v.parse().map_err(|_| format!("strconv.Atoi: parsing \"{v}\": invalid syntax"))?;
                    if n < 1 {
                        return Err("max-file cannot be less than 1".into());
                    }
                    cfg.max_file = u32::try_from(n).unwrap_or(u32::MAX);
                }
                "mode" if v == "blocking" || v.is_empty() => {}
                "mode" if v != "non-blocking" => return Err(format!("logger: logging mode not supported: {v}")),
                // Docker knows these; berth does not do them, and says so
                // rather than ignoring them.
                "mode" | "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" | "max-buffer-size" => {
                    return Err(format!("log opt '{k}' of the json-file log driver is not supported by berth"))
                }
                _ => return Err(format!("unknown log opt '{k}' for json-file log driver")),
            }
        }
        Ok(cfg)
    }

    /// The config a stored container was created with (checked then).
    pub fn of(host_config: &Value) -> LogConfig {
        let lc = &host_config["LogConfig"];
        let opts = lc["Config"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        Self::parse(lc["Type"].as_str().unwrap_or(""), &opts).unwrap_or_default()
    }
}

/// go-units' FromHumanSize: decimal units (k = 1000), as Docker reads
/// `max-size` ("10m", "1.5k", "100").
fn parse_human_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        _ => return None,
    };
    let v = n * mult;
    v.is_finite().then_some(v as i64)
}

/// The log files of a container, oldest first: `<log>.N` … `<log>.1`, `<log>`.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for i in 1.. {
        let p = rotated_name(path, i);
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    if path.exists() {
        rotated.push(path.to_path_buf());
    }
    rotated
}

fn rotated_name(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Docker's json-file log: one JSON object per line of output.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    config: LogConfig,
    /// None for the "none" driver.
    file: Option<fs::File>,
    size: u64,
    /// The unfinished line of each stream (stdout, stderr), < MAX_LINE bytes.
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// A json-file log with no size limit (tests, older records).
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, LogConfig::default())
    }

    pub fn open_with(path: &Path, config: LogConfig) -> io::Result<Self> {
        let file = match config.driver {
            Driver::JsonFile => Some(fs::OpenOptions::new().create(true).append(true).open(path)?),
            Driver::None => None,
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(JsonLog { path: path.to_path_buf(), config, file, size, partial: [Vec::new(), Vec::new()] })
    }

    fn name(s: StreamKind) -> &'static str {
        match s {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }

    /// Takes a chunk of a stream's output: every complete line (or full
    /// 16 KiB piece of one) becomes an entry. Linear in `data`.
    pub fn write(&mut self, stream: StreamKind, mut data: &[u8]) {
        let i = stream as usize;
        while !data.is_empty() {
            let room = MAX_LINE - self.partial[i].len();
            let take = room.min(data.len());
            if let Some(nl) = memchr::memchr(b'\n', &data[..take]) {
                self.partial[i].extend_from_slice(&data[..=nl]);
                data = &data[nl + 1..];
            } else {
                self.partial[i].extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.partial[i].len() < MAX_LINE {
                    break;
                }
            }
            let line = std::mem::take(&mut self.partial[i]);
            self.entry(stream, &line);
            self.partial[i] = line;
            self.partial[i].clear();
        }
    }

    /// Writes what is left of unfinished lines (the process ended).
    pub fn flush_partial(&mut self) {
        for s in [StreamKind::Stdout, StreamKind::Stderr] {
            let rest = std::mem::take(&mut self.partial[s as usize]);
            if !rest.is_empty() {
                self.entry(s, &rest);
            }
        }
    }

    fn entry(&mut self, stream: StreamKind, line: &[u8]) {
        if self.file.is_none() {
            return;
        }
        // A Value printed by its (non-generic) Display: serde_json's own
        // optimised code escapes the line, even in a debug build of berthd.
        let entry = json!({"log": String::from_utf8_lossy(line), "stream": Self::name(stream), "time": now_rfc3339()});
        let mut buf = entry.to_string().into_bytes();
        buf.push(b'\n');
        if self.config.max_size.is_some_and(|max| self.size >= max) {
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, path = %self.path.display(), "rotating the container log");
            }
        }
        if let Some(f) = &mut self.file {
            if f.write_all(&buf).is_ok() {
                self.size += buf.len() as u64;
            }
        }
    }

    /// `<log>.{N-2}` → `<log>.{N-1}` … `<log>` → `<log>.1`, and a new
    /// `<log>`; with max-file 1 the file is emptied instead.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.config.max_file;
        if keep <= 1 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated_name(&self.path, keep - 1));
        for i in (1..keep - 1).rev() {
            let from = rotated_name(&self.path, i);
            if from.exists() {
                fs::rename(&from, rotated_name(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, rotated_name(&self.path, 1))?;
        self.file = Some(fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// One parsed log line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLine {
    pub log: String,
    pub stream: StreamKind,
    pub time: String,
}

/// Every entry of a container's log, oldest first, across rotated files.
pub fn read_log(path: &Path) -> Vec<LogLine> {
    let mut out = Vec::new();
    for f in log_files(path) {
        let Ok(file) = fs::File::open(&f) else { continue };
        for l in io::BufReader::new(file).split(b'\n').map_while(Result::ok) {
            if let Ok(e) = serde_json::from_slice(&l) {
                out.push(e);
            }
        }
    }
    out
}

/// Calls `each` for every entry, oldest first, across rotated files,
/// without holding the whole log in memory. Stops when `each` says so.
/// `upto` bounds the newest file (where a [`Follower`] takes over).
pub fn for_each_entry(path: &Path, upto: Option<u64>, mut each: impl FnMut(LogLine) -> bool) {
    for f in log_files(path) {
        let Ok(file) = fs::File::open(&f) else { continue };
        let bound = if f == path { upto.unwrap_or(u64::MAX) } else { u64::MAX };
        for l in io::BufReader::new(file.take(bound)).split(b'\n').map_while(Result::ok) {
            if let Ok(e) = serde_json::from_slice(&l) {
                if !each(e) {
                    return;
                }
            }
        }
    }
}

/// The last `n` entries, oldest first, read backwards from the end of the
/// newest file (and into rotated ones only as far as needed).
pub fn read_tail(path: &Path, n: usize) -> Vec<LogLine> {
    read_tail_upto(path, n, None)
}

/// [`read_tail`], ending the newest file at `upto` bytes.
pub fn read_tail_upto(path: &Path, n: usize, upto: Option<u64>) -> Vec<LogLine> {
    let mut out: Vec<LogLine> = Vec::new();
    if n == 0 {
        return out;
    }
    for f in log_files(path).iter().rev() {
        let Ok(mut file) = fs::File::open(f) else { continue };
        let Ok(mut end) = file.seek(SeekFrom::End(0)) else { continue };
        if f == path {
            end = end.min(upto.unwrap_or(u64::MAX));
        }
        // Bytes of an unfinished line, carried to the next (earlier) block.
        let mut carry: Vec<u8> = Vec::new();
        const BLOCK: u64 = 64 * 1024;
        while end > 0 && out.len() < n {
            let start = end.saturating_sub(BLOCK);
            let mut block = vec![0u8; (end - start) as usize];
            if file.seek(SeekFrom::Start(start)).is_err() || file.read_exact(&mut block).is_err() {
                break;
            }
            block.extend_from_slice(&carry);
            // Everything after the first newline is whole lines (unless we
            // are at the file's start, where the first line is whole too).
            let first_whole = if start == 0 { 0 } else { block.iter().position(|b| *b == b'\n').map_or(block.len(), |i| i + 1) };
            for line in block[first_whole..].rsplit(|b| *b == b'\n') {
                if out.len() >= n {
                    break;
                }
                if let Ok(e) = serde_json::from_slice::<LogLine>(line) {
                    out.push(e);
                }
            }
            carry = block[..first_whole].to_vec();
            end = start;
        }
        if out.len() >= n {
            break;
        }
    }
    out.reverse();
    out
}

/// Follows the log as it grows (and rotates): each call returns the entries
/// written since the last one.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<fs::File>,
    ino: u64,
    pos: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of the log.
    pub fn at_end(path: &Path) -> Follower {
        use std::os::unix::fs::MetadataExt;
        let file = fs::File::open(path).ok();
        let (ino, pos) = file.as_ref().and_then(|f| f.metadata().ok()).map(|m| (m.ino(), m.len())).unwrap_or((0, 0));
        Follower { path: path.to_path_buf(), file, ino, pos, partial: Vec::new() }
    }

    /// Where in the current file it will go on from.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn poll(&mut self) -> Vec<LogLine> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        self.read_more(&mut out);
        // Rotated (or made) since: the old file is finished; go on in the new one.
        let now = fs::metadata(&self.path).map(|m| m.ino()).unwrap_or(0);
        if now != 0 && now != self.ino {
            self.file = fs::File::open(&self.path).ok();
            self.ino = now;
            self.pos = 0;
            self.partial.clear();
            self.read_more(&mut out);
        } else if let Some(f) = &self.file {
            // Truncated in place (max-file 1).
            if f.metadata().map(|m| m.len() < self.pos).unwrap_or(false) {
                self.pos = 0;
                self.partial.clear();
                self.read_more(&mut out);
            }
        }
        out
    }

    fn read_more(&mut self, out: &mut Vec<LogLine>) {
        let Some(f) = &mut self.file else { return };
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        // At most a few MiB a poll: a flood is caught up over several.
        let Ok(n) = f.take(4 << 20).read_to_end(&mut buf) else { return };
        self.pos += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|b| *b == b'\n') else { return };
        for line in self.partial[..last].split(|b| *b == b'\n') {
            if let Ok(e) = serde_json::from_slice(line) {
                out.push(e);
            }
        }
        self.partial.drain(..=last);
    }
}

/// Starts copying a container's output (its stdout and stderr pipes, or its
/// PTY master) to its log and to attached clients, on a thread of its own at
/// a lower CPU priority: a container flooding its output never holds one of
/// the async workers that answer the API, and the scheduler runs the copy
/// once requests have been served. One thread reads all of a container's
/// streams, stdout first when both are ready, so `echo out; echo err >&2`
/// is logged in that order. The receiver resolves once every stream ended.
pub(super) fn spawn_pump(
    streams: Vec<(OwnedFd, StreamKind)>,
    c: Arc<Container>,
    log: Arc<Mutex<JsonLog>>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let run = move || {
        // Best effort: only its priority is at stake.
        let _ = crate::sys::set_thread_nice(PUMP_NICE);
        copy_output(streams.into_iter().map(|(fd, kind)| (fs::File::from(fd), kind)).collect(), &c, &log);
        let _ = done.send(());
    };
    if let Err(e) = std::thread::Builder::new().name("output-pump".into()).spawn(run) {
        tracing::error!("starting an output pump: {e}");
    }
    finished
}

/// The nice value of output pumps (API threads run at 0). Measured under six
/// busy loops on 2 cores: with the pumps on the async workers, GET /version
/// took up to 124 ms during three 64 MB floods; at nice 5 on their own
/// thread 5–11 ms, and the floods still drain (nice 10 slowed them 2×).
const PUMP_NICE: i32 = 5;

fn copy_output(mut open: Vec<(fs::File, StreamKind)>, c: &Container, log: &Mutex<JsonLog>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut buf = vec![0u8; 32 * 1024];
    while !open.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open.iter().map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN)).collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        let mut ended = Vec::new();
        for (i, (f, kind)) in open.iter_mut().enumerate().filter(|(i, _)| ready[*i]) {
            match f.read(&mut buf) {
                // EIO from a PTY master: every slave descriptor is closed (the container exited).
                Ok(0) | Err(_) => ended.push(i),
                Ok(n) => {
                    if let Ok(mut l) = log.lock() {
                        l.write(*kind, &buf[..n]);
                    }
                    let _ = c.output.send(Output::Data(*kind, buf[..n].to_vec()));
                }
            }
        }
        for i in ended.into_iter().rev() {
            open.remove(i);
        }
    }
}

/// The 501 `docker logs` gets for the "none" driver.
pub fn read_not_supported() -> ApiError {
    ApiError::new(ErrorKind::NotImplemented, READ_NOT_SUPPORTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_writes_one_entry_per_line_and_keeps_streams_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut log = JsonLog::open(&path).unwrap();
        log.write(StreamKind::Stdout, b"hel");
        log.write(StreamKind::Stderr, b"oops\n");
        log.write(StreamKind::Stdout, b"lo\nworld");
        log.flush_partial();
        let lines = read_log(&path);
        let got: Vec<(String, StreamKind)> = lines.iter().map(|l| (l.log.clone(), l.stream)).collect();
        assert_eq!(
            got,
            vec![
                ("oops\n".to_string(), StreamKind::Stderr),
                ("hello\n".to_string(), StreamKind::Stdout),
                ("world".to_string(), StreamKind::Stdout),
            ]
        );
    }

    #[test]
    fn a_line_without_newline_is_split_at_16k_and_joins_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut log = JsonLog::open(&path).unwrap();
        let big = vec![b'a'; 40_000];
        for chunk in big.chunks(3000) {
            log.write(StreamKind::Stdout, chunk);
        }
        log.write(StreamKind::Stdout, b"\n");
        let lines = read_log(&path);
        assert_eq!(lines.iter().map(|l| l.log.len()).collect::<Vec<_>>(), vec![MAX_LINE, MAX_LINE, 40_000 - 2 * MAX_LINE + 1]);
        assert!(!lines[0].log.ends_with('\n') && lines[2].log.ends_with('\n'));
        let joined: String = lines.iter().map(|l| l.log.as_str()).collect();
        assert_eq!(joined.len(), 40_001);
    }

    #[test]
    fn the_pump_is_linear_64_mb_without_a_newline_takes_well_under_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = JsonLog::open(&dir.path().join("x-json.log")).unwrap();
        let chunk = vec![b'a'; 32 * 1024];
        let t = std::time::Instant::now();
        for _ in 0..2048 {
            log.write(StreamKind::Stdout, &chunk);
        }
        // The old pump rescanned the whole unfinished line per chunk: minutes.
        assert!(t.elapsed() < std::time::Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(log.partial[0].len() < MAX_LINE);
    }

    #[test]
    fn rotation_keeps_max_file_files_of_about_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let cfg = LogConfig { driver: Driver::JsonFile, max_size: Some(1000), max_file: 3 };
        let mut log = JsonLog::open_with(&path, cfg).unwrap();
        for i in 0..200 {
            log.write(StreamKind::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(path.exists() && rotated_name(&path, 1).exists() && rotated_name(&path, 2).exists());
        assert!(!rotated_name(&path, 3).exists());
        for f in log_files(&path) {
            assert!(fs::metadata(&f).unwrap().len() < 1100, "{}", f.display());
        }
        // Reading goes across the files, oldest first, and ends with the last line.
        let all = read_log(&path);
        assert_eq!(all.last().unwrap().log, "line 199\n");
        let nums: Vec<u32> = all.iter().map(|l| l.log.trim()[5..].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert_eq!(read_tail(&path, 3).iter().map(|l| l.log.as_str()).collect::<Vec<_>>(), ["line 197\n", "line 198\n", "line 199\n"]);
        // A tail longer than the current file reaches into the rotated ones.
        let cur = fs::read_to_string(&path).unwrap().lines().count();
        let t = read_tail(&path, cur + 5);
        assert_eq!(t.len(), cur + 5);
        assert_eq!(t.last().unwrap().log, "line 199\n");
    }

    #[test]
    fn tail_reads_from_the_end_of_a_large_log_fast() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut log = JsonLog::open(&path).unwrap();
        let line = vec![b'x'; 999];
        for _ in 0..50_000 {
            log.write(StreamKind::Stdout, &line);
            log.write(StreamKind::Stdout, b"\n");
        }
        log.write(StreamKind::Stderr, b"last\n");
        let t = std::time::Instant::now();
        let tail = read_tail(&path, 1);
        let took = t.elapsed();
        assert_eq!(tail.len(), 1);
        assert_eq!((tail[0].log.as_str(), tail[0].stream), ("last\n", StreamKind::Stderr));
        assert!(took < std::time::Duration::from_millis(50), "{took:?}");
        let tail = read_tail(&path, 200);
        assert_eq!(tail.len(), 200);
    }

    #[test]
    fn log_config_is_checked_as_docker_checks_it() {
        let mut hc = json!({});
        assert_eq!(LogConfig::normalize(&mut hc).unwrap(), LogConfig::default());
        assert_eq!(hc["LogConfig"], json!({"Type": "json-file", "Config": {}}));
        let mut hc = json!({"LogConfig": {"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}});
        let c = LogConfig::normalize(&mut hc).unwrap();
        assert_eq!((c.max_size, c.max_file), (Some(10_000), 3));
        let err = |v: Value| LogConfig::normalize(&mut json!({"LogConfig": v})).unwrap_err().message;
        assert_eq!(err(json!({"Type": "syslog"})), "logger: no log driver named 'syslog' is registered");
        assert_eq!(err(json!({"Type": "json-file", "Config": {"foo": "1"}})), "unknown log opt 'foo' for json-file log driver");
        assert_eq!(err(json!({"Config": {"max-file": "0"}})), "max-file cannot be less than 1");
        assert_eq!(err(json!({"Config": {"max-size": "lots"}})), "invalid size: 'lots'");
        assert!(err(json!({"Config": {"compress": "true"}})).contains("not supported"));
        assert_eq!(LogConfig::normalize(&mut json!({"LogConfig": {"Type": "none"}})).unwrap().driver, Driver::None);
    }

    #[test]
    fn the_none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut log = JsonLog::open_with(&path, LogConfig { driver: Driver::None, max_size: None, max_file: 1 }).unwrap();
        log.write(StreamKind::Stdout, b"hi\n");
        assert!(!path.exists());
    }

    #[test]
    fn a_follower_sees_new_lines_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let cfg = LogConfig { driver: Driver::JsonFile, max_size: Some(200), max_file: 2 };
        let mut log = JsonLog::open_with(&path, cfg).unwrap();
        log.write(StreamKind::Stdout, b"before\n");
        let mut f = Follower::at_end(&path);
        let mut seen = Vec::new();
        for i in 0..20 {
            log.write(StreamKind::Stdout, format!("n{i}\n").as_bytes());
            seen.extend(f.poll().into_iter().map(|l| l.log));
        }
        let want: Vec<String> = (0..20).map(|i| format!("n{i}\n")).collect();
        assert_eq!(seen, want);
    }
}
