//! `archgate build`: daemonless multi-platform builds of Dockerfiles that
//! execute nothing (FROM, ARG, ENV, WORKDIR, ADD/COPY, LABEL, ...). Parsing,
//! substitution and planning are pure; layers are written reproducibly in one
//! streaming pass; publishing goes through the one `Store` trait.

pub mod context;
pub mod dockerfile;
pub mod layer;
pub mod plan;
pub mod subst;
