//! `archgate verify`.
pub mod cache;
pub mod check;
pub mod runner;
