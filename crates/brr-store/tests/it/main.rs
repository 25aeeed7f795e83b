//! Integration tests of brr-store: one binary, one module per concern.

mod action_cache;
mod cas;
mod closure;
mod concurrency;
mod crash;
mod lock;
mod materialize;
mod open;
mod prefix;
mod put_path;
mod repair;
mod roots;
mod stat_cache;
mod support;
mod sweep;
mod verify;
