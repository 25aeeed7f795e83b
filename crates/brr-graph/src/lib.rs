//! The build graph of a workspace.
//!
//! [`Workspace::load`] finds the packages named by the root `brr.ron`, parses
//! each declaration, resolves input globs to files and dependency names to
//! packages, and rejects cycles (naming the whole cycle). Packages come out in
//! topological order. A service's optional `Procfile` adds process types
//! ([`Package::processes`]; [`service_manifest`] carries them into the
//! artifact, so editing it changes the build hash, never the build key).
//! The optional `environments.ron` is loaded with them
//! into [`Environments`]: the environments a service is released to, their
//! promotion order, and a service's [`brr_hash::Config`] in each. [`Inputs::hash`] hashes their input files through the
//! store's stat cache and resolves and hashes their tools with their
//! closures (loader, libraries, a compiler driver's programs; `closure`)
//! and their declared `host_inputs` (`host`); [`action_key`]
//! assembles a build key once the dependencies' artifact hashes are known
//! (early cutoff: dependents are keyed on artifacts, not on keys); a
//! fetch's key is its pinned hash alone ([`fetch_key`]).
//!
//! A no-op build of a large workspace must cost little more than stat'ing
//! its inputs, so two results are saved in the store's `cache/` folder
//! (`cache_file`): the whole load ([`Workspace::load_cached`], reused while
//! no folder listing or declaration changed: `snapshot`), and the stat-cache
//! entries of the input files in the order they are asked for
//! (`saved_stats`). Both are only ever hints checked against the files.

mod cache_file;
mod closure;
pub mod cpu;
mod defaults;
mod environments;
mod error;
mod host;
mod inputs;
mod saved_stats;
mod snapshot;
mod workspace;

use std::collections::BTreeMap;

use brr_hash::{ActionKey, ArtifactHash, Probe, ProcessSpec, Restart, TreeHash};
use brr_schema::{ProcessDecl, ReadyDecl, RestartDecl};

pub use defaults::{Inherited, Origin, Origins};
pub use environments::Environments;
pub use error::GraphError;
pub use inputs::{Inputs, Tool, source_tree, which};
pub use workspace::{DECL_FILE, Package, PackageKind, UnsavedLoad, Workspace};

/// Platform name that enters every build key (`x86_64-linux`).
pub fn system() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The build key of `pkg`, given its hashed sources, tools and host
/// inputs and the artifact hash of each dependency. The host CPU enters it
/// when the builder asks for code tuned to it ([`cpu::native_flag`]).
pub fn action_key(
    pkg: &Package,
    sources: TreeHash,
    tools: &BTreeMap<String, Tool>,
    host: &BTreeMap<String, brr_hash::Digest>,
    deps: BTreeMap<String, ArtifactHash>,
) -> ActionKey {
    if let Some(f) = &pkg.fetch {
        return fetch_key(&f.hash, sources);
    }
    ActionKey {
        system: system(),
        builder: pkg.body.builder.clone(),
        env: pkg.body.env.clone(),
        outputs: pkg.body.outputs.iter().map(|o| o.trim_end_matches('/').to_owned()).collect(),
        tools: tools.iter().map(|(n, t)| (n.clone(), (*t.closure).clone())).collect(),
        host_inputs: host.clone(),
        cpu: cpu::native_flag(&pkg.body.builder, &pkg.body.env).map(|_| cpu::host_cpu()),
        package_dir: pkg.dir.clone(),
        sources,
        deps,
    }
}

/// System of every fetch's key: what a fetch makes is pinned, so it is the
/// same on every platform.
pub const FETCH_SYSTEM: &str = "fetch";

/// The build key of a fetch: its pinned hash alone (the builder argv
/// `["fetch", HASH]`, every other field empty; `sources` is the empty tree),
/// so a new URL, mirror or command for the same files is a cache hit, as
/// Nix's fixed-output derivations.
pub fn fetch_key(hash: &str, sources: TreeHash) -> ActionKey {
    ActionKey {
        system: FETCH_SYSTEM.to_owned(),
        builder: vec!["fetch".to_owned(), hash.to_owned()],
        env: BTreeMap::new(),
        outputs: std::collections::BTreeSet::new(),
        tools: BTreeMap::new(),
        host_inputs: BTreeMap::new(),
        cpu: None,
        package_dir: String::new(),
        sources,
        deps: BTreeMap::new(),
    }
}

/// The runnable half of a package's artifact: its process types (from
/// `brr.ron` and the `Procfile`) with their settings, and its release
/// command.
pub fn service_manifest(pkg: &Package) -> brr_hash::ServiceManifest {
    brr_hash::ServiceManifest {
        processes: pkg.processes.iter().map(|(n, p)| (n.clone(), process_spec(p))).collect(),
        release: pkg.body.release.clone(),
    }
}

/// A declared process type as the artifact carries it.
fn process_spec(p: &ProcessDecl) -> ProcessSpec {
    ProcessSpec {
        command: p.command.clone(),
        restart: p.restart.map(|r| match r {
            RestartDecl::Never => Restart::Never,
            RestartDecl::OnFailure => Restart::OnFailure,
            RestartDecl::Always => Restart::Always,
        }),
        grace_s: p.grace_s,
        ready: p.ready.as_ref().map(|r| match r {
            ReadyDecl::Tcp => Probe::Tcp,
            ReadyDecl::Http { path } => Probe::Http { path: path.clone() },
            ReadyDecl::Command(argv) => Probe::Command(argv.clone()),
            ReadyDecl::None => Probe::None,
        }),
    }
}
