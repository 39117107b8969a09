//! berth-hub, the classroom's front door: an instructor creates a class and
//! gets a join link; every learner who joins gets their own node1 from a
//! [`spawner::Spawner`] (namespaces on this machine, or a Kubernetes pod),
//! and the hub proxies their page, terminal and event stream to it.

pub mod hub;
pub mod spawner;
