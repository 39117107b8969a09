//! The page's panels, a file each. They share the page's one store and the
//! lab's view through Leptos' context (`use_store`, `use_context::<LabView>`).

pub mod classroom;
pub mod dashboard;
pub mod evidence;
pub mod filesystem;
pub mod network;
pub mod recordings;
pub mod steps;
pub mod terminal;
pub mod timeline;

pub use evidence::Evidence;
pub use filesystem::FilesystemDiagram;
pub use network::{NetworkDiagram, RulesPanel};
pub use recordings::Recordings;
pub use steps::StepsPanel;
pub use terminal::Terminal;
pub use timeline::Timeline;
