//! archgate publishes multi-architecture container images and gates releases
//! on proof that every architecture really works.
//!
//! The library holds everything; `main.rs` only calls [`cli::main`], and
//! `cli` only parses flags, calls the library ([`pipeline::run`] for the
//! whole job) and maps outcomes to exit codes.

pub mod attest;
pub mod build;
pub mod cache_lock;
pub mod cache_prune;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod error;
pub mod gate;
pub mod image;
pub mod inspect;
pub mod merge;
pub mod mirror;
pub mod pipeline;
pub mod platform;
pub mod progress;
pub mod publish;
pub mod report;
pub mod store;
pub mod verify;

pub use error::{Error, ErrorKind, ExitStatus, Result};
