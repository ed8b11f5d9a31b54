//! One integration-test binary; a module per area. Registry tests start a real
//! `docker-registry` (distribution 2.8) on 127.0.0.1 through `common`.

mod common;

mod attest;
mod build;
mod cache;
mod cancel;
mod ci_templates;
mod cli;
mod clients;
mod docker_archive;
mod faults;
mod hostile;
mod human_output;
mod k3s_import;
mod layout;
mod merge;
mod mirror;
mod natives;
mod progress;
mod registry;
mod run;
mod run_buildah;
mod run_step;
mod secrets;
mod service;
mod shared_cache;
mod store_contract;
mod verify;
