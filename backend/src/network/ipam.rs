//! Address management: the pure allocator lives in `berth_shared::ipam`,
//! shared with the simulator.

pub use berth_shared::ipam::*;
