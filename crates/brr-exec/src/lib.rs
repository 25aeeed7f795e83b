//! Executing builds: running builder processes, isolated where the kernel
//! allows ([`sandbox`]).

pub mod sandbox;
