//! Every input checked at the API's edge, with Docker's words: JSON bodies
//! against their Go types (`model`), names, image references, port specs,
//! timestamps. Nothing a client sends reaches the engine unchecked, and no
//! client mistake becomes a 500.

use std::net::Ipv4Addr;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{self, GoType};
use crate::error::{ApiError, ApiResult};

/// The most a JSON request body may hold (build contexts are streamed and
/// not held to it). Docker's CLI sends a few kilobytes at most.
pub const BODY_LIMIT: usize = 2 << 20;

/// Longest name berth takes for a container, volume or network: a volume's
/// name is a directory name, and no file name is longer.
pub const NAME_MAX: usize = 255;

/// A JSON body typed as Docker's Go type; `T` declares which.
pub trait Body: DeserializeOwned {
    /// Go's name for the whole body ("runconfig.ContainerConfigWrapper").
    const GO: &'static str;
    /// May the body be empty (read as `{}`)?
    const EMPTY_OK: bool = false;
}

impl Body for model::ContainerCreate {
    const GO: &'static str = "runconfig.ContainerConfigWrapper";
}
impl Body for model::NetworkCreate {
    const GO: &'static str = "types.NetworkCreateRequest";
}
impl Body for model::NetworkConnect {
    const GO: &'static str = "types.NetworkConnect";
}
impl Body for model::VolumeCreate {
    const GO: &'static str = "volume.VolumeCreateBody";
    const EMPTY_OK: bool = true;
}
impl Body for model::ExecCreate {
    const GO: &'static str = "types.ExecConfig";
}
impl Body for model::ExecStart {
    const GO: &'static str = "types.ExecStartCheck";
    const EMPTY_OK: bool = true;
}

/// A checked JSON body: the value as sent (what the handlers read) and its
/// typed form. Malformed JSON, wrong types and over-long bodies are Docker's
/// `{"message"}` 400/413, never axum's plain-text rejections.
#[derive(Debug)]
pub struct Checked<T>(pub Value, pub T);

impl<S: Send + Sync, T: Body> FromRequest<S> for Checked<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await?;
        let (v, t) = decode::<T>(&bytes)?;
        Ok(Checked(v, t))
    }
}

/// Parses and type-checks a body.
pub fn decode<T: Body>(bytes: &[u8]) -> ApiResult<(Value, T)> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if T::EMPTY_OK {
            let v = Value::Object(Default::default());
            return Ok((v.clone(), typed::<T>(&v)?));
        }
        return Err(ApiError::bad_request("invalid JSON: got EOF while reading request body"));
    }
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {}", syntax_words(&e))))?;
    if v.is_null() {
        // Go decodes null into a struct as "nothing set".
        v = Value::Object(Default::default());
    }
    if !v.is_object() {
        return Err(ApiError::bad_request(format!("json: cannot unmarshal {} into Go value of type {}", json_kind(&v), T::GO)));
    }
    let t = typed::<T>(&v)?;
    Ok((v, t))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn typed<T: Body>(v: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| ApiError::bad_request(go_words(&e, T::GO)))
}

/// serde_json's syntax error without its line and column when the body is
/// one line (the client's own JSON is rarely more).
fn syntax_words(e: &serde_json::Error) -> String {
    // A body cut short: Go's words, which Docker's "invalid JSON: …" carries.
    if e.is_eof() {
        return "unexpected EOF".into();
    }
    let s = e.to_string();
    if e.line() == 1 {
        if let Some(i) = s.rfind(" at line ") {
            return format!("{} at offset {}", &s[..i], e.column());
        }
    }
    s
}

/// Go's encoding/json words for a value of the wrong type:
/// `json: cannot unmarshal string into Go struct field
/// ContainerConfigWrapper.HostConfig of type container.HostConfig`.
pub fn go_words(e: &serde_path_to_error::Error<serde_json::Error>, root: &str) -> String {
    use serde_path_to_error::Segment;
    let msg = e.inner().to_string();
    // A struct given as an array: serde reads it as the struct's fields in order.
    let as_array = msg
        .strip_prefix("invalid length ")
        .and_then(|r| r.split_once(", expected "))
        .map(|(_, x)| format!("invalid type: sequence, expected {x}"));
    let msg = as_array.unwrap_or(msg);
    let parsed = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rfind(", expected ").map(|i| (&rest[..i], &rest[i + ", expected ".len()..])));
    let Some((unexpected, expected)) = parsed else {
        return format!("json: {msg}");
    };
    let go_type = match expected {
        "a string" => "string".to_string(),
        "a boolean" => "bool".into(),
        "i64" => "int64".into(),
        "u64" => "uint64".into(),
        "i32" => "int".into(),
        "u32" => "uint32".into(),
        "u16" => "uint16".into(),
        "f64" => "float64".into(),
        other => other.to_string(),
    };
    let numeric_target = ["int", "int64", "uint64", "uint32", "uint16", "float64"].contains(&go_type.as_str());
    let json_kind = if unexpected.starts_with("string") {
        "string".to_string()
    } else if let Some(n) = unexpected.strip_prefix("integer `").or_else(|| unexpected.strip_prefix("floating point `")) {
        if numeric_target {
            format!("number {}", n.trim_end_matches('`'))
        } else {
            "number".into()
        }
    } else if unexpected.starts_with("boolean") {
        "bool".into()
    } else if unexpected == "map" {
        "object".into()
    } else if unexpected == "sequence" {
        "array".into()
    } else {
        unexpected.to_string()
    };
    // Struct fields only: indices and map keys are not in Go's path.
    let mut fields: Vec<String> = Vec::new();
    let mut key_next = false;
    for seg in e.path().iter() {
        match seg {
            Segment::Map { key } => {
                if key_next {
                    key_next = false;
                    continue;
                }
                let prev = fields.last().map(String::as_str).unwrap_or("");
                key_next = model::MAPS.contains(&key.as_str()) || (key == "Config" && prev == "LogConfig");
                fields.push(key.clone());
            }
            Segment::Seq { .. } | Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    if fields.is_empty() {
        return format!("json: cannot unmarshal {json_kind} into Go value of type {root}");
    }
    let owner = match fields.len() {
        1 => root.rsplit('.').next().unwrap_or(root).to_string(),
        n => {
            let parent = &fields[n - 2];
            model::NESTED.iter().find(|(f, _)| f == parent).map(|(_, s)| s.to_string()).unwrap_or_else(|| parent.clone())
        }
    };
    format!("json: cannot unmarshal {json_kind} into Go struct field {owner}.{} of type {go_type}", fields.join("."))
}

/// A name as the client sent it, shortened for an error message.
fn shown(s: &str) -> String {
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s.to_string()
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: Docker's rule for container, volume and
/// network names.
pub fn is_docker_name(n: &str) -> bool {
    n.len() >= 2
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A container name (`?name=`), with or without its leading '/'.
pub fn check_container_name(name: &str) -> ApiResult<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    if n.len() > NAME_MAX {
        return Err(ApiError::bad_request(format!("Invalid container name ({}), longer than {NAME_MAX} characters", shown(n))));
    }
    if !is_docker_name(n) {
        return Err(ApiError::bad_request(format!("Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", shown(n))));
    }
    Ok(n.to_string())
}

/// A local volume's name, as `docker volume create` and `-v NAME:/path` take it.
pub fn check_volume_name(name: &str) -> ApiResult<()> {
    let n = shown(name);
    if name.len() > NAME_MAX {
        return Err(ApiError::bad_request(format!("create {n}: volume name is too long, names should be at most {NAME_MAX} characters")));
    }
    if name.len() < 2 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(format!(
            "create {n}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    if !is_docker_name(name) {
        return Err(ApiError::bad_request(format!(
            "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(())
}

/// A user-defined network's name.
pub fn check_network_name(name: &str) -> ApiResult<()> {
    if name.len() > NAME_MAX {
        return Err(ApiError::bad_request(format!("invalid name: {} is longer than {NAME_MAX} characters", shown(name))));
    }
    // Docker takes any name ("my net" too); berth refuses only what a URL
    // path or a log line cannot carry.
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "invalid name: {} includes invalid characters ('/' or control characters)",
            shown(name)
        )));
    }
    Ok(())
}

/// An image ID as the API takes one in place of a reference: `sha256:<64
/// hex>` (a bare ID or ID prefix is a valid reference already).
fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The distribution reference grammar (docker/distribution `reference`):
/// `[domain/]path[:tag][@digest]`. Invalid → 400 "invalid reference format"
/// (with Docker's hint when only upper case is wrong).
pub fn check_reference(s: &str) -> ApiResult<()> {
    if is_image_id(s) {
        return Ok(());
    }
    match reference_ok(s) {
        true => Ok(()),
        false if reference_ok(&lower_path(s)) => Err(ApiError::bad_request("invalid reference format: repository name must be lowercase")),
        false => Err(ApiError::bad_request("invalid reference format")),
    }
}

/// The reference with its repository path lower-cased (domain and tag kept).
fn lower_path(s: &str) -> String {
    let (name, rest) = split_name(s);
    let (domain, path) = split_domain(name);
    let lowered = match domain {
        Some(d) => format!("{d}/{}", path.to_ascii_lowercase()),
        None => path.to_ascii_lowercase(),
    };
    format!("{lowered}{rest}")
}

/// ("name", ":tag@digest") — the tag starts at the last ':' after the last '/'.
fn split_name(s: &str) -> (&str, &str) {
    let at = s.find('@').unwrap_or(s.len());
    let before = &s[..at];
    let slash = before.rfind('/').map(|i| i + 1).unwrap_or(0);
    let colon = before[slash..].rfind(':').map(|i| slash + i).unwrap_or(at);
    (&s[..colon], &s[colon..])
}

/// The first component is a domain when it has a '.' or ':' or is "localhost".
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// One grammar for references, the image store's: what it cannot parse
/// is refused here. (Digests of other algorithms than sha256 are refused
/// too: berth stores only sha256 content.)
fn reference_ok(s: &str) -> bool {
    crate::image::reference::ImageRef::parse(s).is_ok()
}

/// A Unix time as `/events` (and `/logs`) take `since`/`until`: seconds,
/// optionally `.nanoseconds` (Docker's `timetypes.ParseTimestamps`; the CLI
/// turns durations and dates into this form before sending). Anything else,
/// non-finite values included, is a 400.
pub fn parse_unix_time(key: &str, value: &str) -> ApiResult<Option<f64>> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ApiError::bad_request(format!("failed to parse value {:?} of {key}: not a Unix timestamp (seconds[.nanoseconds])", shown(value)))
    };
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let secs_digits = secs.strip_prefix('-').unwrap_or(secs);
    if !digits(secs_digits) || (value.contains('.') && !digits(frac)) || frac.len() > 9 {
        return Err(bad());
    }
    let s: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    let t = s as f64 + f64::from(nanos) / 1e9;
    if !t.is_finite() {
        return Err(bad());
    }
    Ok(Some(t))
}

/// A whole-number query parameter (`t`, `h`, `w`): absent is None; present
/// and not a number in range is Go's strconv error, a 400.
pub fn parse_number<N: std::str::FromStr>(key: &str, value: Option<&String>) -> ApiResult<Option<N>> {
    match value.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<N>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("strconv.Atoi: parsing {:?}: invalid syntax (query parameter {key})", shown(v)))),
    }
}

/// "80/tcp" → (80, "tcp"), as Docker's `nat` package reads a port key.
fn port_key(key: &str) -> ApiResult<(u16, &str)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let n = port.parse::<u16>().map_err(|_| ApiError::bad_request(format!("invalid port specification: {:?}", shown(port))))?;
    match proto {
        "tcp" | "udp" => Ok((n, proto)),
        "sctp" => Err(ApiError::bad_request(format!("berth does not publish sctp ports ({})", shown(key)))),
        other => Err(ApiError::bad_request(format!("invalid proto: {}", shown(other)))),
    }
}

/// `Config.ExposedPorts` and `HostConfig.PortBindings`: keys `PORT[/PROTO]`,
/// host ports numeric and in range, host IPs IPv4 addresses.
pub fn check_ports(body: &model::ContainerCreate) -> ApiResult<()> {
    for (key, _) in body.exposed_ports.iter().flat_map(|m| m.0.iter()) {
        port_key(key)?;
    }
    let bindings = body.host_config.as_ref().and_then(|h| h.port_bindings.as_ref());
    for (key, list) in bindings.iter().flat_map(|m| m.0.iter()) {
        port_key(key)?;
        for b in list.iter().flat_map(|l| l.0.iter()).flatten() {
            let port = b.host_port.as_deref().unwrap_or("");
            if port.contains('-') && port.split_once('-').is_some_and(|(a, z)| a.parse::<u16>().is_ok() && z.parse::<u16>().is_ok()) {
                return Err(ApiError::bad_request(format!("berth does not publish host port ranges ({})", shown(port))));
            }
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return Err(ApiError::bad_request(format!("invalid port specification: {:?}", shown(port))));
            }
            let ip = b.host_ip.as_deref().unwrap_or("");
            if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
                let msg = if ip.parse::<std::net::Ipv6Addr>().is_ok() {
                    "berth does not publish ports on IPv6 addresses"
                } else {
                    "invalid IP address"
                };
                return Err(ApiError::bad_request(format!("{msg}: {}", shown(ip))));
            }
        }
    }
    Ok(())
}

/// `HostConfig.Binds` (`SRC:DST[:MODE]`): a source that is not an absolute
/// path is a volume name and must be one. (The engine parses the rest:
/// absolute destination, modes, duplicates.)
pub fn check_binds(body: &model::ContainerCreate) -> ApiResult<()> {
    let binds = body.host_config.as_ref().and_then(|h| h.binds.as_ref());
    for spec in binds.iter().flat_map(|l| l.0.iter()).flatten() {
        if spec.len() > 4096 {
            return Err(ApiError::bad_request(format!("invalid volume specification: '{}'", shown(spec))));
        }
        let src = spec.split(':').next().unwrap_or("");
        if spec.split(':').count() >= 2 && !src.is_empty() && !src.starts_with('/') {
            check_volume_name(src)?;
        }
    }
    Ok(())
}

/// The image a new container asks for.
pub fn check_image(body: &model::ContainerCreate) -> ApiResult<()> {
    match body.image.as_deref() {
        None | Some("") => Ok(()),
        Some(i) => check_reference(i),
    }
}

impl<T: GoType> model::List<T> {
    /// The non-null elements.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::ContainerCreate;

    fn create_err(body: &str) -> String {
        decode::<ContainerCreate>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn wrong_json_types_get_gos_words_with_the_field_path() {
        assert_eq!(
            create_err(r#"{"Env": "x"}"#),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string"
        );
        assert_eq!(
            create_err(r#"{"Tty": "yes"}"#),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool"
        );
        assert_eq!(
            create_err(r#"{"HostConfig": "x"}"#),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig"
        );
        assert_eq!(
            create_err(r#"{"HostConfig": {"Binds": "x"}}"#),
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Binds of type []string"
        );
        assert_eq!(
            create_err(r#"{"Env": ["A=1", 5]}"#),
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string"
        );
        assert_eq!(
            create_err(r#"{"Cmd": 5}"#),
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"
        );
        assert_eq!(
            create_err(r#"{"Cmd": ["a", {}]}"#),
            "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Cmd of type string"
        );
        assert_eq!(
            create_err(r#"{"StopTimeout": 1.5}"#),
            "json: cannot unmarshal number 1.5 into Go struct field ContainerConfigWrapper.StopTimeout of type int"
        );
        assert_eq!(
            create_err(r#"{"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}}"#),
            "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"
        );
        assert_eq!(
            create_err(r#"{"ExposedPorts": {"80/tcp": "x"}}"#),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.ExposedPorts of type struct {}"
        );
        assert_eq!(
            create_err(r#"{"Labels": {"a": 1}}"#),
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type string"
        );
        assert_eq!(
            create_err(r#"{"NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}}"#),
            "json: cannot unmarshal string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string"
        );
        assert_eq!(
            create_err(r#"{"HostConfig": {"Mounts": [{"ReadOnly": "no"}]}}"#),
            "json: cannot unmarshal string into Go struct field Mount.HostConfig.Mounts.ReadOnly of type bool"
        );
        assert_eq!(create_err("[1]"), "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper");
        assert_eq!(
            create_err(r#"{"HostConfig": []}"#),
            "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig"
        );
    }

    #[test]
    fn what_go_accepts_is_accepted() {
        let ok = |b: &str| decode::<ContainerCreate>(b.as_bytes()).unwrap().1;
        assert_eq!(ok(r#"{"Cmd": "echo"}"#).cmd.unwrap().0, vec!["echo"]);
        assert_eq!(ok(r#"{"Entrypoint": ["sh", "-c"]}"#).entrypoint.unwrap().0, vec!["sh", "-c"]);
        assert!(ok(r#"{"Cmd": null, "Env": null, "HostConfig": null, "Tty": null}"#).cmd.is_none());
        assert!(ok("null").image.is_none());
        assert!(ok(r#"{"Unknown": {"x": 1}, "Env": ["A=1", null]}"#).env.is_some());
    }

    #[test]
    fn malformed_json_and_empty_bodies_are_400s() {
        assert!(create_err("{").starts_with("invalid JSON: "));
        assert_eq!(create_err(""), "invalid JSON: got EOF while reading request body");
        assert!(decode::<model::VolumeCreate>(b"").is_ok());
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(check_container_name("/web-1").unwrap(), "web-1");
        assert_eq!(
            check_container_name("a").unwrap_err().message,
            "Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
        assert!(check_container_name("-x").is_err());
        assert!(check_container_name(&"a".repeat(2 << 20)).unwrap_err().message.len() < 200);
        assert_eq!(
            check_volume_name("a").unwrap_err().message,
            "create a: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            check_volume_name("../x").unwrap_err().message,
            "create ../x: \"../x\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        assert!(check_volume_name(&"v".repeat(256)).is_err());
        assert!(check_network_name("my.net_1").is_ok());
        assert!(check_network_name("a/b").is_err());
    }

    #[test]
    fn references_follow_the_distribution_grammar() {
        for good in [
            "alpine",
            "nginx:alpine",
            "localhost:5000/x/y:1",
            "a.b/c__d/e-f:v1.0",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check_reference(good).is_ok(), "{good}");
        }
        assert_eq!(check_reference("Alpine").unwrap_err().message, "invalid reference format: repository name must be lowercase");
        for bad in ["", "a:", ":x", "-a", "a..b", "a//b", "a:b:c", "a@sha256:xyz", "a b", "a/", "a:-tag", &format!("a:{}", "t".repeat(129))]
        {
            assert_eq!(check_reference(bad).unwrap_err().message, "invalid reference format", "{bad}");
        }
    }

    #[test]
    fn timestamps_are_seconds_and_nanoseconds_only() {
        assert_eq!(parse_unix_time("since", "").unwrap(), None);
        assert_eq!(parse_unix_time("since", "12").unwrap(), Some(12.0));
        assert_eq!(parse_unix_time("since", "12.5").unwrap(), Some(12.5));
        for bad in ["inf", "NaN", "1e400", "-inf", "x", "1.", ".5", "1.2.3", "99999999999999999999"] {
            let e = parse_unix_time("until", bad).unwrap_err();
            assert!(e.message.starts_with("failed to parse value"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn port_specs_are_checked_at_create() {
        let port_err = |b: &str| check_ports(&decode::<ContainerCreate>(b.as_bytes()).unwrap().1).err().map(|e| e.message);
        assert_eq!(
            port_err(r#"{"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}"#),
            None
        );
        assert_eq!(port_err(r#"{"ExposedPorts": {"http/tcp": {}}}"#).unwrap(), "invalid port specification: \"http\"");
        assert_eq!(
            port_err(r#"{"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}}"#).unwrap(),
            "invalid port specification: \"70000\""
        );
        assert_eq!(port_err(r#"{"HostConfig": {"PortBindings": {"99999/tcp": []}}}"#).unwrap(), "invalid port specification: \"99999\"");
        assert_eq!(port_err(r#"{"HostConfig": {"PortBindings": {"80/xyz": []}}}"#).unwrap(), "invalid proto: xyz");
        assert!(port_err(r#"{"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "nope"}]}}}"#)
            .unwrap()
            .starts_with("invalid IP address"));
    }
}

/// The routes themselves, through the whole app (no socket): every client
/// mistake is a 4xx with Docker's `{"message"}`, never a 500, never plain text.
#[cfg(test)]
mod route_tests {
    use crate::api::test_support::{call_with, state};
    use axum::http::StatusCode;

    async fn post(uri: &str, body: &str) -> (StatusCode, String) {
        let (status, _, json, text) = call_with(state(), "POST", uri, body.as_bytes().to_vec()).await;
        assert!(json["message"].is_string(), "{uri} {body}: not Docker's error shape: {status} {text}");
        (status, json["message"].as_str().unwrap_or_default().to_string())
    }

    #[tokio::test]
    async fn create_refuses_wrong_types_that_it_used_to_accept() {
        for (body, field) in [
            (r#"{"Image": "alpine", "Env": "x"}"#, "ContainerConfigWrapper.Env of type []string"),
            (r#"{"Image": "alpine", "HostConfig": "x"}"#, "ContainerConfigWrapper.HostConfig of type container.HostConfig"),
            (r#"{"Image": "alpine", "HostConfig": {"Binds": "x"}}"#, "HostConfig.HostConfig.Binds of type []string"),
            (r#"{"Image": "alpine", "Tty": "yes"}"#, "ContainerConfigWrapper.Tty of type bool"),
            (r#"{"Image": "alpine", "Cmd": 7}"#, "ContainerConfigWrapper.Cmd of type string"),
        ] {
            let (status, msg) = post("/containers/create", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {msg}");
            assert!(msg.starts_with("json: cannot unmarshal ") && msg.ends_with(field), "{body}: {msg}");
        }
    }

    #[tokio::test]
    async fn malformed_bodies_are_dockers_json_400_on_every_route() {
        for uri in [
            "/containers/create",
            "/v1.41/containers/create",
            "/networks/create",
            "/networks/x/connect",
            "/networks/x/disconnect",
            "/volumes/create",
            "/containers/x/exec",
            "/exec/x/start",
        ] {
            let (status, msg) = post(uri, "{not json").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {msg}");
            assert!(msg.starts_with("invalid JSON"), "{uri}: {msg}");
        }
        let (status, msg) = post("/networks/create", r#"{"Name": "n1", "Labels": {"a": 1}}"#).await;
        assert_eq!(
            (status, msg.as_str()),
            (StatusCode::BAD_REQUEST, "json: cannot unmarshal number into Go struct field NetworkCreateRequest.Labels of type string")
        );
        let (status, msg) = post("/volumes/create", r#"{"Name": ["v"]}"#).await;
        assert_eq!(
            (status, msg.as_str()),
            (StatusCode::BAD_REQUEST, "json: cannot unmarshal array into Go struct field VolumeCreateBody.Name of type string")
        );
        let (status, msg) = post("/containers/x/exec", r#"{"Cmd": "sh"}"#).await;
        assert_eq!(
            (status, msg.as_str()),
            (StatusCode::BAD_REQUEST, "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string")
        );
        let (status, msg) = post("/exec/x/start", r#"{"Detach": "yes"}"#).await;
        assert_eq!(
            (status, msg.as_str()),
            (StatusCode::BAD_REQUEST, "json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool")
        );
        let (status, msg) = post("/networks/x/connect", r#"{"Container": 5}"#).await;
        assert_eq!(
            (status, msg.as_str()),
            (StatusCode::BAD_REQUEST, "json: cannot unmarshal number into Go struct field NetworkConnect.Container of type string")
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_json() {
        let big = format!(r#"{{"Image": "alpine", "Env": ["{}"]}}"#, "x".repeat(20 << 20));
        let (status, _, json, _) = call_with(state(), "POST", "/containers/create", big.into_bytes()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json["message"], "request body too large");
        let big = format!(r#"{{"Detach": false, "x": "{}"}}"#, "x".repeat(3 << 20));
        let (status, _, json, _) = call_with(state(), "POST", "/exec/x/start", big.into_bytes()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    }

    #[tokio::test]
    async fn names_references_and_ports_are_refused_with_dockers_words() {
        // (A URI tops out at 64 KiB in hyper and in the http crate.)
        let huge = "a".repeat(60_000);
        let cases = [
            (format!("/containers/create?name={huge}"), r#"{"Image": "alpine"}"#.to_string(), "Invalid container name (aaaa"),
            (
                "/containers/create?name=a".into(),
                r#"{"Image": "alpine"}"#.into(),
                "Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            ),
            ("/containers/create?name=../x".into(), r#"{"Image": "alpine"}"#.into(), "Invalid container name (../x)"),
            ("/containers/create".into(), r#"{"Image": "Alpine"}"#.into(), "invalid reference format: repository name must be lowercase"),
            ("/containers/create".into(), r#"{"Image": "alpine::x"}"#.into(), "invalid reference format"),
            (
                "/containers/create".into(),
                r#"{"Image": "alpine", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}}"#.into(),
                "invalid port specification: \"99999\"",
            ),
            (
                "/containers/create".into(),
                r#"{"Image": "alpine", "ExposedPorts": {"eighty": {}}}"#.into(),
                "invalid port specification: \"eighty\"",
            ),
            (
                "/containers/create".into(),
                r#"{"Image": "alpine", "HostConfig": {"Binds": ["../x:/data"]}}"#.into(),
                "create ../x: \"../x\" includes invalid characters",
            ),
            (
                "/containers/create".into(),
                r#"{"Image": "alpine", "HostConfig": {"Binds": ["v:/data"]}}"#.into(),
                "create v: volume name is too short",
            ),
            (
                "/volumes/create".into(),
                r#"{"Name": "a"}"#.into(),
                "create a: volume name is too short, names should be at least two alphanumeric characters",
            ),
            ("/volumes/create".into(), format!(r#"{{"Name": "{}"}}"#, "v".repeat(1 << 20)), "volume name is too long"),
            ("/volumes/create".into(), r#"{"Name": "../x"}"#.into(), "includes invalid characters for a local volume name"),
            ("/networks/create".into(), r#"{"Name": "a/b"}"#.into(), "invalid name: a/b includes invalid characters"),
        ];
        for (uri, body, want) in cases {
            let (status, msg) = post(&uri, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {msg}", &uri[..uri.len().min(80)]);
            assert!(msg.contains(want), "{}: {msg}", &uri[..uri.len().min(80)]);
            assert!(msg.len() < 400, "the message echoes a bounded part of the input");
        }
    }

    #[tokio::test]
    async fn query_numbers_and_timestamps_are_checked() {
        let (status, _, json, _) = call_with(state(), "GET", "/events?until=inf", Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(json["message"].as_str().unwrap_or("").starts_with("failed to parse value \"inf\" of until"), "{json}");
        let (status, _, _, _) = call_with(state(), "GET", "/events?since=NaN", Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, json, _) = call_with(state(), "POST", "/containers/x/stop?t=soon", Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        let (status, _, _, _) = call_with(state(), "POST", "/containers/x/resize?h=-1", Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, json, _) = call_with(state(), "POST", "/containers/x/kill?signal=SIGNOPE", Vec::new()).await;
        assert_eq!((status, json["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Invalid signal: SIGNOPE")));
    }

    #[tokio::test]
    async fn axums_own_rejections_come_in_dockers_shape() {
        // A path segment that is not UTF-8, and a method the route lacks.
        let (status, headers, json, text) = call_with(state(), "GET", "/containers/%FF/json", Vec::new()).await;
        assert!(status.is_client_error(), "{status} {text}");
        assert!(json["message"].is_string(), "{text}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
        let (status, _, json, text) = call_with(state(), "PUT", "/containers/create", Vec::new()).await;
        assert!(status.is_client_error(), "{status} {text}");
        assert!(json["message"].is_string(), "{text}");
    }
}
