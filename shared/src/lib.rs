//! berth's shared core: the host state model, the events that change it, and
//! [`apply`], the only way state changes — in the daemon, in the page and in
//! the offline simulator alike. Pure: no I/O, compiles to wasm32 and native.

pub mod cli;
pub mod container;
pub mod etc;
pub mod event;
pub mod ipam;
pub mod ipam6;
pub mod lab;
pub mod netfilter;
pub mod plan;
pub mod record;
pub mod sim;
pub mod state;
pub mod vi;

pub use container::{RwLayer, Status};
pub use event::{EngineMode, Envelope, Event, Mount, SCHEMA_VERSION};
pub use record::{parse_cast, Frame, Recording, StreamMsg};
pub use state::{apply, Bridge, Container, DaemonInfo, Endpoint, Image, Layer, Network, PublishedPort, ShellCommand, State, Volume};

/// The newest Docker Engine API version berth speaks: Docker 28.2's, the
/// version of the docker CLI the lab installs (berthd and the simulator say
/// the same). Older clients negotiate down.
pub const API_VERSION: &str = "1.50";
/// The oldest API version clients may ask for (Docker 28's).
pub const MIN_API_VERSION: &str = "1.24";
