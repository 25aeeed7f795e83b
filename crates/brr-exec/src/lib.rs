//! Executing builds.
//!
//! [`scheduler::build`] walks the selected part of the DAG in parallel
//! (rayon, `-j N`): each target is keyed on its dependencies' artifact hashes,
//! looked up in the action cache and built only on a miss.
//! [`action::execute_uncommitted`] runs one builder in a fresh
//! [`stage::Sandbox`] holding only its declared inputs, tools and dependency
//! artifacts, through [`sandbox`] (namespaces and Landlock where the kernel
//! allows), then writes its outputs; the scheduler commits finished builds
//! in groups. The builders of a run share a [`jobserver::Jobserver`] of `N`
//! tokens, so their own `make`/`cargo` jobs count against the same `-j`.
//! A `Fetch(...)` package takes the same path but downloads its
//! URL itself, or runs its command with the host's network, and keeps the
//! result only if it has the pinned tree hash ([`action::fetch`]).

pub mod action;
mod error;
pub mod explain;
pub mod jobserver;
pub mod remote_exec;
pub mod scheduler;
pub mod stage;

/// Starting one builder, isolated where the kernel allows: the process layer below.
pub use brr_process as sandbox;

pub use error::ExecError;
pub use explain::{Planned, plan};
pub use scheduler::{BuildOptions, Outcome, Reporter, Status, build};
