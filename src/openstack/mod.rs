//! OpenStack clients shared by the probes and the providers: Keystone tokens for probes, and
//! a small blocking client (clouds.yaml, Keystone v3 and v2.0, the catalog, Nova) for the
//! `openstack` provider. No Rust OpenStack crate fits: none speaks Keystone v2.0, the
//! others are async-only or pull hundreds of crates.

pub mod catalog;
pub mod clouds;
pub mod keystone;
pub mod nova;
pub mod session;
