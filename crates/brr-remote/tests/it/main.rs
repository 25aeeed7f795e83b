//! Integration tests of brr-remote: one contract suite run against every
//! backend, and signed entries end to end.

#![expect(clippy::unwrap_used, reason = "the contract's helpers panic with the backend's error and line")]

mod backends;
mod contract;
mod entries;
mod grpc;
#[cfg(feature = "s3")]
mod s3;
mod servers;
