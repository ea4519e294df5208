//! OpenStack clients shared by the probes and the providers: Keystone tokens.

pub mod keystone;
