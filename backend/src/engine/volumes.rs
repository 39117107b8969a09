//! Volumes (`<data-root>/volumes/NAME/_data`, as Docker's local driver
//! keeps them), the parsing of `-v`/`--mount`/VOLUME into a container's
//! mount points, and the copy-in that fills an empty volume from the image.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_shared::{plan, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};
use crate::events::EventBus;
use crate::host::LinuxHost;

/// What is kept of a volume (`volumes/NAME/volume.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub anonymous: bool,
}

/// A container's volume or bind mount, kept in its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// "volume" or "bind".
    pub kind: String,
    /// The volume's name ("" for a bind mount).
    pub name: String,
    /// Host path: the volume's `_data` dir or the bind source.
    pub source: PathBuf,
    pub destination: String,
    pub rw: bool,
    /// The mode as given (`ro`, `rw`, `z`…), shown by inspect.
    pub mode: String,
    /// Don't fill an empty volume from the image (`nocopy`).
    #[serde(default)]
    pub nocopy: bool,
}

impl MountPoint {
    pub fn to_event(&self) -> berth_shared::Mount {
        berth_shared::Mount {
            kind: self.kind.clone(),
            name: self.name.clone(),
            source: self.source.display().to_string(),
            destination: self.destination.clone(),
            readonly: !self.rw,
        }
    }

    /// As `docker inspect` lists it under Mounts.
    pub fn describe(&self) -> Value {
        let mut v = json!({
            "Type": self.kind,
            "Source": self.source.display().to_string(),
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": if self.kind == "bind" { "rprivate" } else { "" },
        });
        if self.kind == "volume" {
            v["Name"] = json!(self.name);
            v["Driver"] = json!("local");
        }
        v
    }
}

/// A mount as the client asked for it, before volumes are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRequest {
    /// A volume name ("" for a new anonymous one) or, for a bind, a host path.
    pub source: String,
    pub bind: bool,
    pub destination: String,
    pub readonly: bool,
    pub mode: String,
    pub nocopy: bool,
    /// `-v` creates a missing bind source; `--mount` refuses it.
    pub create_source: bool,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn check_destination(spec: &str, dest: &str) -> Result<(), ApiError> {
    if !dest.starts_with('/') {
        return Err(bad(format!("invalid volume specification: '{spec}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute")));
    }
    if Path::new(dest).components().count() <= 1 {
        return Err(bad(format!("invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid specification: destination can't be '/'")));
    }
    Ok(())
}

/// One `HostConfig.Binds` entry: `SRC:DST[:MODE]`, SRC a volume name or an
/// absolute host path.
pub fn parse_bind(spec: &str) -> Result<MountRequest, ApiError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad(format!("invalid volume specification: '{spec}'"))),
    };
    if src.is_empty() {
        return Err(bad(format!("invalid volume specification: '{spec}'")));
    }
    check_destination(spec, dst)?;
    let mut readonly = false;
    let mut nocopy = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => readonly = true,
            "rw" | "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "delegated" | "cached"
            | "consistent" => {}
            "nocopy" => nocopy = true,
            other => return Err(bad(format!("invalid mode: {other}"))),
        }
    }
    let bind = src.starts_with('/');
    if !bind {
        check_volume_name(src)?;
    }
    // A local volume's mode without one is "z", as Docker shows it.
    let mode = if !bind && mode.is_empty() { "z" } else { mode };
    Ok(MountRequest { source: src.into(), bind, destination: dst.into(), readonly, mode: mode.into(), nocopy, create_source: true })
}

/// One `HostConfig.Mounts` entry (`--mount type=…,source=…,target=…`).
pub fn parse_mount(m: &Value) -> Result<MountRequest, ApiError> {
    let kind = m["Type"].as_str().unwrap_or("");
    let target = m["Target"].as_str().unwrap_or("");
    let source = m["Source"].as_str().unwrap_or("");
    let spec = format!("type={kind},source={source},target={target}");
    if target.is_empty() {
        return Err(bad(format!("invalid mount config for type \"{kind}\": field Target must not be empty")));
    }
    check_destination(&spec, target)?;
    let readonly = m["ReadOnly"].as_bool().unwrap_or(false);
    match kind {
        "bind" => {
            if !source.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if !Path::new(source).exists() {
                return Err(bad(format!("invalid mount config for type \"bind\": bind source path does not exist: {source}")));
            }
            Ok(MountRequest {
                source: source.into(),
                bind: true,
                destination: target.into(),
                readonly,
                mode: String::new(),
                nocopy: false,
                create_source: false,
            })
        }
        "volume" => {
            if !source.is_empty() {
                check_volume_name(source)?;
            }
            let nocopy = m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false);
            Ok(MountRequest {
                source: source.into(),
                bind: false,
                destination: target.into(),
                readonly,
                mode: "z".into(),
                nocopy,
                create_source: false,
            })
        }
        "tmpfs" | "npipe" | "cluster" => Err(bad(format!("berth does not provide mounts of type \"{kind}\""))),
        other => Err(bad(format!("invalid mount config: unknown mount type \"{other}\""))),
    }
}

/// Docker's rule for local volume names.
pub fn check_volume_name(name: &str) -> Result<(), ApiError> {
    let ok = name.len() >= 2
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

/// The daemon's volumes.
#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    bus: Arc<EventBus>,
    map: Mutex<BTreeMap<String, VolumeRecord>>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

impl Volumes {
    /// Loads the volumes kept under `<data-root>/volumes`.
    pub fn open(data_root: &Path, bus: Arc<EventBus>) -> std::io::Result<Self> {
        let root = data_root.join("volumes");
        fs::create_dir_all(&root)?;
        let me = Volumes { root, bus, map: Mutex::new(BTreeMap::new()) };
        for e in fs::read_dir(&me.root)?.flatten() {
            let Ok(bytes) = fs::read(e.path().join("volume.json")) else { continue };
            let Ok(rec) = serde_json::from_slice::<VolumeRecord>(&bytes) else { continue };
            me.announce(&rec);
            me.map.lock().unwrap_or_else(|p| p.into_inner()).insert(rec.name.clone(), rec);
        }
        Ok(me)
    }

    fn announce(&self, rec: &VolumeRecord) {
        self.bus.emit(Event::VolumeCreated {
            name: rec.name.clone(),
            mountpoint: self.mountpoint(&rec.name).display().to_string(),
            anonymous: rec.anonymous,
        });
    }

    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Option<VolumeRecord> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// `docker volume create`; an existing volume of that name is returned
    /// as it is (Docker's create is idempotent). `None`: an anonymous one.
    pub fn create(&self, name: Option<&str>, labels: BTreeMap<String, String>) -> Result<VolumeRecord, ApiError> {
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                check_volume_name(n)?;
                (n.to_string(), false)
            }
            None => (format!("{:032x}{:032x}", crate::ids::random_u128(), crate::ids::random_u128()), true),
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.get(&name) {
            return Ok(v.clone());
        }
        let rec = VolumeRecord { name: name.clone(), created: crate::ids::now_rfc3339(), labels, anonymous };
        // Its data dir (`plan::create_volume`, the simulator's decision
        // too), then the record beside it; if that cannot be written, the
        // dir goes again.
        let data = self.mountpoint(&name).display().to_string();
        let plan = self.bus.with_state(|s| plan::create_volume(s, &name, &data, anonymous));
        let mut host = LinuxHost::new(None);
        host.run_now(&plan, &self.bus).map_err(|f| internal(format!("creating volume {name}: {f}")))?;
        if let Err(e) = crate::durable::write_json(&self.root.join(&name).join("volume.json"), &rec) {
            let _ = host.run_now(&plan.undoing(), &self.bus);
            return Err(internal(format!("creating volume {name}: {e}")));
        }
        map.insert(name.clone(), rec.clone());
        Ok(rec)
    }

    /// Deletes the volume and its data (`plan::remove_volume`: refused
    /// for one there is not, or one a container uses).
    pub fn remove(&self, name: &str) -> Result<(), ApiError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let plan = self.bus.with_state(|s| plan::remove_volume(s, name))?;
        LinuxHost::new(None).run_now(&plan, &self.bus).map_err(|f| internal(format!("remove {name}: {f}")))?;
        map.remove(name);
        Ok(())
    }

    /// Bytes used by a volume's data.
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = fs::symlink_metadata(p) else { return 0 };
            if m.is_dir() {
                fs::read_dir(p).map(|d| d.flatten().map(|e| walk(&e.path())).sum()).unwrap_or(0)
            } else {
                m.len()
            }
        }
        walk(&self.mountpoint(name))
    }

    /// `docker volume inspect`.
    pub fn describe(&self, v: &VolumeRecord) -> Value {
        json!({
            "CreatedAt": v.created,
            "Driver": "local",
            "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
            "Mountpoint": self.mountpoint(&v.name).display().to_string(),
            "Name": v.name,
            "Options": null,
            "Scope": "local",
        })
    }

    /// Docker's copy-in: the first time an empty volume is mounted over a
    /// path that has content in the container's filesystem (`rootfs`), that
    /// content is copied into it with owners, modes and times. The path is
    /// resolved inside `rootfs` (symlinks cannot lead out of it).
    pub fn populate(&self, name: &str, container_id: &str, rootfs: &Path, path: &str) -> std::io::Result<u64> {
        let data = self.mountpoint(name);
        if fs::read_dir(&data)?.next().is_some() {
            return Ok(0);
        }
        let root = pathrs::Root::open(rootfs).map_err(std::io::Error::other)?;
        let Ok(handle) = root.resolve(path) else { return Ok(0) };
        let from = crate::storage::copy::fd_path(&handle);
        if !fs::metadata(&from)?.is_dir() {
            return Ok(0);
        }
        let files = copy_tree(&from, &data)?;
        if files > 0 {
            // The volume's root takes the directory's owner and mode too.
            copy_attrs(&fs::metadata(&from)?, &data)?;
            self.bus.emit(Event::VolumePopulated { name: name.into(), container: container_id.into(), path: path.into(), files });
        }
        Ok(files)
    }
}

fn copy_attrs(m: &fs::Metadata, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        let f = fs::File::open(to)?;
        if let Ok(t) = m.modified() {
            let _ = f.set_modified(t);
        }
    }
    Ok(())
}

/// Copies the contents of `from` into the existing dir `to`: dirs, regular
/// files and symlinks (not followed), with owner, mode and mtime. Returns the
/// number of entries copied. Device nodes, fifos and sockets are skipped.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(from)? {
        let e = e?;
        let src = e.path();
        let dst = to.join(e.file_name());
        let m = fs::symlink_metadata(&src)?;
        let t = m.file_type();
        if t.is_dir() {
            fs::create_dir(&dst)?;
            n += 1 + copy_tree(&src, &dst)?;
        } else if t.is_file() {
            fs::copy(&src, &dst)?;
            n += 1;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
            n += 1;
        } else {
            continue;
        }
        copy_attrs(&m, &dst)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_volumes_or_host_paths_with_a_mode() {
        let v = parse_bind("webvol:/usr/share/nginx/html").unwrap();
        assert_eq!((v.bind, v.source.as_str(), v.destination.as_str(), v.readonly), (false, "webvol", "/usr/share/nginx/html", false));
        let b = parse_bind("/root/data/web:/usr/share/nginx/html:ro").unwrap();
        assert_eq!((b.bind, b.readonly, b.mode.as_str()), (true, true, "ro"));
        assert!(parse_bind("webvol:/data:nocopy").unwrap().nocopy);
        assert!(parse_bind("webvol:relative").unwrap_err().message.contains("must be absolute"));
        assert!(parse_bind("webvol:/").unwrap_err().message.contains("destination can't be '/'"));
        assert!(parse_bind("webvol:/x:bogus").unwrap_err().message.contains("invalid mode: bogus"));
        assert!(parse_bind("a:b:c:d").is_err());
        assert!(parse_bind("bad name:/x").unwrap_err().message.contains("invalid characters for a local volume name"));
    }

    #[test]
    fn mounts_check_their_type_and_a_bind_source_must_exist() {
        let m = parse_mount(&json!({"Type": "volume", "Source": "webvol", "Target": "/data", "ReadOnly": true})).unwrap();
        assert_eq!((m.bind, m.readonly, m.source.as_str()), (false, true, "webvol"));
        let anon = parse_mount(&json!({"Type": "volume", "Target": "/data"})).unwrap();
        assert_eq!(anon.source, "");
        let e = parse_mount(&json!({"Type": "bind", "Source": "/nonexistent/berth", "Target": "/data"})).unwrap_err();
        assert!(e.message.contains("bind source path does not exist: /nonexistent/berth"), "{}", e.message);
        assert!(parse_mount(&json!({"Type": "bind", "Source": "/tmp", "Target": "/data"})).unwrap().bind);
        assert!(parse_mount(&json!({"Type": "weird", "Target": "/data"})).is_err());
        assert!(parse_mount(&json!({"Type": "volume", "Source": "v1"})).is_err());
    }

    #[test]
    fn volume_names_follow_dockers_rule() {
        assert!(check_volume_name("webvol").is_ok());
        assert!(check_volume_name("my_vol-1.0").is_ok());
        assert!(check_volume_name("x").is_err());
        assert!(check_volume_name("-x").is_err());
        assert!(check_volume_name("a/b").is_err());
    }

    #[test]
    fn copy_in_keeps_modes_links_and_only_fills_an_empty_volume() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let html = rootfs.join("usr/share/nginx/html");
        fs::create_dir_all(html.join("sub")).unwrap();
        fs::write(html.join("index.html"), "Welcome to nginx!").unwrap();
        fs::set_permissions(html.join("index.html"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("index.html", html.join("link.html")).unwrap();
        // An absolute symlink in the image resolves inside the rootfs.
        std::os::unix::fs::symlink("/usr/share/nginx/html", rootfs.join("www")).unwrap();
        let bus = Arc::new(EventBus::new());
        let vols = Volumes::open(&dir.path().join("root"), bus.clone()).unwrap();
        vols.create(Some("webvol"), BTreeMap::new()).unwrap();
        let n = vols.populate("webvol", "c1", &rootfs, "/www").unwrap();
        assert_eq!(n, 3);
        let data = vols.mountpoint("webvol");
        assert_eq!(fs::read_to_string(data.join("index.html")).unwrap(), "Welcome to nginx!");
        assert_eq!(fs::metadata(data.join("index.html")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read_link(data.join("link.html")).unwrap(), Path::new("index.html"));
        // Not empty any more: a second mount copies nothing.
        fs::write(html.join("new.html"), "x").unwrap();
        assert_eq!(vols.populate("webvol", "c2", &rootfs, "/www").unwrap(), 0);
        assert!(!data.join("new.html").exists());
        assert!(bus.state().volumes["webvol"].populated_from.is_some());
    }

    #[test]
    fn an_existing_name_is_returned_and_removal_deletes_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let vols = Volumes::open(dir.path(), Arc::new(EventBus::new())).unwrap();
        let a = vols.create(Some("webvol"), BTreeMap::new()).unwrap();
        fs::write(vols.mountpoint("webvol").join("f"), "x").unwrap();
        assert_eq!(vols.create(Some("webvol"), BTreeMap::new()).unwrap(), a);
        let anon = vols.create(None, BTreeMap::new()).unwrap();
        assert!(anon.anonymous && anon.name.len() == 64);
        assert_eq!(vols.list().len(), 2);
        let reopened = Volumes::open(dir.path(), Arc::new(EventBus::new())).unwrap();
        assert_eq!(reopened.list().len(), 2);
        vols.remove("webvol").unwrap();
        assert!(!dir.path().join("volumes/webvol").exists());
        assert!(vols.remove("webvol").unwrap_err().message.contains("no such volume"));
    }
}
