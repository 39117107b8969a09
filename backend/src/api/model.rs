//! The Engine API's request bodies as Docker's Go types declare them.
//!
//! Every field is optional (Go's zero value where absent or null) and
//! unknown fields are ignored, as Go's decoder does; a field of the wrong
//! JSON type is refused with Go's words (`api::validate::decode`). The
//! handlers still read the checked body as a `serde_json::Value`; these
//! types are where a typed engine model (issue 14) starts.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The Go type a Rust model type stands for, as Go's errors name it.
pub trait GoType {
    fn go() -> String;
}

macro_rules! go_type {
    ($($t:ty => $name:expr),* $(,)?) => {
        $(impl GoType for $t {
            fn go() -> String {
                $name.to_string()
            }
        })*
    };
}

go_type!(String => "string", bool => "bool", i64 => "int64", u64 => "uint64", i32 => "int", u16 => "uint16", Value => "interface {}");

/// A JSON array (Go slice); null elements are Go's zero values.
#[derive(Debug, Default)]
pub struct List<T>(pub Vec<Option<T>>);

impl<T: GoType> GoType for List<T> {
    fn go() -> String {
        format!("[]{}", T::go())
    }
}

impl<'de, T: Deserialize<'de> + GoType> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + GoType> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&List::<T>::go())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element::<Option<T>>()? {
                    out.push(x);
                }
                Ok(List(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A JSON object with string keys (Go map[string]T).
#[derive(Debug, Default)]
pub struct Map<T>(pub Vec<(String, Option<T>)>);

impl<T: GoType> GoType for Map<T> {
    fn go() -> String {
        format!("map[string]{}", T::go())
    }
}

impl<'de, T: Deserialize<'de> + GoType> Deserialize<'de> for Map<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + GoType> Visitor<'de> for V<T> {
            type Value = Map<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&Map::<T>::go())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Map<T>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Option<T>>()? {
                    out.push((k, v));
                }
                Ok(Map(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Go's `struct{}`: the values of ExposedPorts and Volumes.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "struct {}")]
pub struct Empty {}
go_type!(Empty => "struct {}");

/// moby's `strslice.StrSlice`: a list of strings, or one string standing
/// for a one-element list. Anything else fails as Go's fallback decode into
/// a string does ("… of type string").
#[derive(Debug, Default)]
pub struct StrSlice(pub Vec<String>);
go_type!(StrSlice => "strslice.StrSlice");

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrSlice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StrSlice, E> {
                Ok(StrSlice(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrSlice, A::Error> {
                let mut out = Vec::new();
                let mut bad = false;
                while let Some(x) = seq.next_element::<Value>()? {
                    match x {
                        Value::String(s) => out.push(s),
                        Value::Null => out.push(String::new()),
                        _ => bad = true,
                    }
                }
                if bad {
                    return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
                }
                Ok(StrSlice(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `POST /containers/create`: moby's ContainerConfigWrapper, the container
/// Config with HostConfig and NetworkingConfig beside it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "runconfig.ContainerConfigWrapper")]
pub struct ContainerCreate {
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub user: Option<String>,
    pub attach_stdin: Option<bool>,
    pub attach_stdout: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub exposed_ports: Option<Map<Empty>>,
    pub tty: Option<bool>,
    pub open_stdin: Option<bool>,
    pub stdin_once: Option<bool>,
    pub env: Option<List<String>>,
    pub cmd: Option<StrSlice>,
    pub healthcheck: Option<HealthConfig>,
    pub args_escaped: Option<bool>,
    pub image: Option<String>,
    pub volumes: Option<Map<Empty>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<StrSlice>,
    pub network_disabled: Option<bool>,
    pub mac_address: Option<String>,
    pub on_build: Option<List<String>>,
    pub labels: Option<Map<String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i32>,
    pub shell: Option<StrSlice>,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "container.HealthConfig")]
pub struct HealthConfig {
    pub test: Option<List<String>>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub retries: Option<i32>,
}
go_type!(HealthConfig => "container.HealthConfig");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "container.HostConfig")]
pub struct HostConfig {
    pub binds: Option<List<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: Option<String>,
    pub log_config: Option<LogConfig>,
    pub network_mode: Option<String>,
    pub port_bindings: Option<Map<List<PortBinding>>>,
    pub restart_policy: Option<RestartPolicy>,
    pub auto_remove: Option<bool>,
    pub volume_driver: Option<String>,
    pub volumes_from: Option<List<String>>,
    pub cap_add: Option<StrSlice>,
    pub cap_drop: Option<StrSlice>,
    pub cgroupns_mode: Option<String>,
    pub dns: Option<List<String>>,
    pub dns_options: Option<List<String>>,
    pub dns_search: Option<List<String>>,
    pub extra_hosts: Option<List<String>>,
    pub group_add: Option<List<String>>,
    pub ipc_mode: Option<String>,
    pub cgroup: Option<String>,
    pub links: Option<List<String>>,
    pub oom_score_adj: Option<i32>,
    pub pid_mode: Option<String>,
    pub privileged: Option<bool>,
    pub publish_all_ports: Option<bool>,
    pub readonly_rootfs: Option<bool>,
    pub security_opt: Option<List<String>>,
    pub storage_opt: Option<Map<String>>,
    pub tmpfs: Option<Map<String>>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: Option<String>,
    pub userns_mode: Option<String>,
    pub shm_size: Option<i64>,
    pub sysctls: Option<Map<String>>,
    pub runtime: Option<String>,
    pub isolation: Option<String>,
    pub cpu_shares: Option<i64>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cgroup_parent: Option<String>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub devices: Option<List<DeviceMapping>>,
    pub device_cgroup_rules: Option<List<String>>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<List<Ulimit>>,
    pub mounts: Option<List<Mount>>,
    pub masked_paths: Option<List<String>>,
    pub readonly_paths: Option<List<String>>,
    pub init: Option<bool>,
}
go_type!(HostConfig => "container.HostConfig");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "container.LogConfig")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub config: Option<Map<String>>,
}
go_type!(LogConfig => "container.LogConfig");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "nat.PortBinding")]
pub struct PortBinding {
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}
go_type!(PortBinding => "nat.PortBinding");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "container.RestartPolicy")]
pub struct RestartPolicy {
    pub name: Option<String>,
    pub maximum_retry_count: Option<i32>,
}
go_type!(RestartPolicy => "container.RestartPolicy");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "container.DeviceMapping")]
pub struct DeviceMapping {
    pub path_on_host: Option<String>,
    pub path_in_container: Option<String>,
    pub cgroup_permissions: Option<String>,
}
go_type!(DeviceMapping => "container.DeviceMapping");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "units.Ulimit")]
pub struct Ulimit {
    pub name: Option<String>,
    pub hard: Option<i64>,
    pub soft: Option<i64>,
}
go_type!(Ulimit => "units.Ulimit");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "mount.Mount")]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
    pub consistency: Option<String>,
    pub bind_options: Option<BindOptions>,
    pub volume_options: Option<VolumeOptions>,
    pub tmpfs_options: Option<TmpfsOptions>,
}
go_type!(Mount => "mount.Mount");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "mount.BindOptions")]
pub struct BindOptions {
    pub propagation: Option<String>,
    pub non_recursive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "mount.VolumeOptions")]
pub struct VolumeOptions {
    pub no_copy: Option<bool>,
    pub labels: Option<Map<String>>,
    pub driver_config: Option<Driver>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "mount.Driver")]
pub struct Driver {
    pub name: Option<String>,
    pub options: Option<Map<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "mount.TmpfsOptions")]
pub struct TmpfsOptions {
    pub size_bytes: Option<i64>,
    pub mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "network.NetworkingConfig")]
pub struct NetworkingConfig {
    pub endpoints_config: Option<Map<EndpointSettings>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "network.EndpointSettings")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    pub links: Option<List<String>>,
    pub aliases: Option<List<String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: Option<String>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: Option<String>,
    pub gateway: Option<String>,
    #[serde(rename = "IPAddress")]
    pub ip_address: Option<String>,
    pub mac_address: Option<String>,
    pub driver_opts: Option<Map<String>>,
}
go_type!(EndpointSettings => "network.EndpointSettings");

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "network.EndpointIPAMConfig")]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: Option<String>,
    #[serde(rename = "LinkLocalIPs")]
    pub link_local_ips: Option<List<String>>,
}

/// `POST /networks/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "types.NetworkCreateRequest")]
pub struct NetworkCreate {
    pub name: Option<String>,
    pub check_duplicate: Option<bool>,
    pub driver: Option<String>,
    pub scope: Option<String>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub ingress: Option<bool>,
    pub options: Option<Map<String>>,
    pub labels: Option<Map<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "network.IPAM")]
pub struct Ipam {
    pub driver: Option<String>,
    pub options: Option<Map<String>>,
    pub config: Option<List<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "network.IPAMConfig")]
pub struct IpamConfig {
    pub subnet: Option<String>,
    #[serde(rename = "IPRange")]
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub auxiliary_addresses: Option<Map<String>>,
}
go_type!(IpamConfig => "network.IPAMConfig");

/// `POST /networks/{id}/connect` and `/disconnect`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "types.NetworkConnect")]
pub struct NetworkConnect {
    pub container: Option<String>,
    pub endpoint_config: Option<EndpointSettings>,
    pub force: Option<bool>,
}

/// `POST /volumes/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "volume.VolumeCreateBody")]
pub struct VolumeCreate {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<Map<String>>,
    pub labels: Option<Map<String>>,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "types.ExecConfig")]
pub struct ExecCreate {
    pub user: Option<String>,
    pub privileged: Option<bool>,
    pub tty: Option<bool>,
    pub attach_stdin: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub attach_stdout: Option<bool>,
    pub detach: Option<bool>,
    pub detach_keys: Option<String>,
    pub env: Option<List<String>>,
    pub working_dir: Option<String>,
    pub cmd: Option<List<String>>,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", expecting = "types.ExecStartCheck")]
pub struct ExecStart {
    pub detach: Option<bool>,
    pub tty: Option<bool>,
}

/// The Go names of the structs nested in these bodies, by the field that
/// holds them (Go's errors name the innermost struct of a field).
pub const NESTED: &[(&str, &str)] = &[
    ("HostConfig", "HostConfig"),
    ("Healthcheck", "HealthConfig"),
    ("LogConfig", "LogConfig"),
    ("PortBindings", "PortBinding"),
    ("RestartPolicy", "RestartPolicy"),
    ("Devices", "DeviceMapping"),
    ("Ulimits", "Ulimit"),
    ("Mounts", "Mount"),
    ("BindOptions", "BindOptions"),
    ("VolumeOptions", "VolumeOptions"),
    ("DriverConfig", "Driver"),
    ("TmpfsOptions", "TmpfsOptions"),
    ("NetworkingConfig", "NetworkingConfig"),
    ("EndpointsConfig", "EndpointSettings"),
    ("EndpointConfig", "EndpointSettings"),
    ("IPAMConfig", "EndpointIPAMConfig"),
    ("IPAM", "IPAM"),
    ("Config", "IPAMConfig"),
];

/// Fields that are Go maps: the path segment after one is a key, not a field.
pub const MAPS: &[&str] = &[
    "ExposedPorts",
    "Volumes",
    "Labels",
    "PortBindings",
    "StorageOpt",
    "Tmpfs",
    "Sysctls",
    "EndpointsConfig",
    "DriverOpts",
    "Options",
    "AuxiliaryAddresses",
];
