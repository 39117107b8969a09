#![recursion_limit = "256"]
//! berthd's library: the Docker Engine API, the lab server and (growing) the
//! engine behind them.

pub mod api;
pub mod build;
pub mod config;
pub mod daemon;
pub mod dockerfile;
pub mod durable;
pub mod engine;
pub mod error;
pub mod events;
pub mod fault;
pub mod host;
pub mod ids;
pub mod image;
pub mod lab;
pub mod network;
pub mod observer;
pub mod pty;
pub mod runtime;
pub mod signals;
pub mod storage;
pub mod sys;
pub mod system;
pub mod text;
