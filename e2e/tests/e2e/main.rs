//! berth's outside-in tests, one binary: every suite is a module, so the
//! workspace links one test executable here instead of one per suite (26
//! executables, each carrying tokio, hyper and the WebDriver client, were
//! most of target/ and of the native build's link time). nextest still runs
//! every test in its own process.

mod api_breadth;
mod api_input;
mod build;
mod classroom;
mod confinement;
mod containers;
mod crash;
mod daemon;
mod dashboard;
mod differential;
mod file_changes;
mod fixtures;
mod gourmetgram;
mod health;
mod hostile_api;
mod hostile_builds;
mod hostile_layers;
mod images;
mod lab_progress;
mod logs;
mod network;
mod page;
mod page_security;
mod page_steps;
mod page_terminal;
mod reference;
mod resources;
mod restart;
mod sandbox;
mod sdk;
mod simulator;
mod terminal;
mod volumes;
