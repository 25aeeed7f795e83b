//! Workspace defaults (`defaults:` in the root `brr.ron`) merged into each
//! package, and where each effective value came from.
//!
//! A package's [`PackageBody`] holds the *effective* settings once loaded:
//! `env` per variable (the package's value wins), `tools` and `host_inputs` as the
//! union (the package's first), `limits` per field. Everything downstream (the build
//! key, the sandbox) reads only that, so moving a setting into the defaults
//! changes no key. [`Inherited`] records which names came from the
//! defaults, for `brr why` ([`Workspace::origins`]).
//!
//! To make another package field inheritable: add it to
//! [`brr_schema::DefaultsDecl`], merge it in [`apply`] and record it in
//! [`Inherited`] and [`Workspace::origins`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use brr_schema::{DefaultsDecl, PackageBody, SourceFile, Step};
use serde::{Deserialize, Serialize};

use crate::workspace::{Package, Workspace};

/// The names of a package's effective settings that came from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inherited {
    pub env: BTreeSet<String>,
    pub tools: BTreeSet<String>,
    pub host_inputs: BTreeSet<String>,
    /// Fields of `limits` (`"output_mib"`).
    pub limits: BTreeSet<String>,
}

/// Merges `defaults` into `body` and says what it took from them.
pub(crate) fn apply(defaults: &DefaultsDecl, body: &mut PackageBody) -> Inherited {
    let mut inherited = Inherited::default();
    for (k, v) in &defaults.env {
        if !body.env.contains_key(k) {
            body.env.insert(k.clone(), v.clone());
            inherited.env.insert(k.clone());
        }
    }
    for t in &defaults.tools {
        if !body.tools.contains(t) {
            body.tools.push(t.clone());
            inherited.tools.insert(t.clone());
        }
    }
    for g in &defaults.host_inputs {
        if !body.host_inputs.contains(g) {
            body.host_inputs.push(g.clone());
            inherited.host_inputs.insert(g.clone());
        }
    }
    let (own, d) = (&mut body.limits, &defaults.limits);
    let mut limit = |name: &str, taken: bool| {
        if taken {
            inherited.limits.insert(name.to_owned());
        }
    };
    limit("output_mib", own.output_mib.is_none() && d.output_mib.is_some());
    own.output_mib = own.output_mib.or(d.output_mib);
    limit("processes", own.processes.is_none() && d.processes.is_some());
    own.processes = own.processes.or(d.processes);
    limit("memory_mib", own.memory_mib.is_none() && d.memory_mib.is_some());
    own.memory_mib = own.memory_mib.or(d.memory_mib);
    limit("timeout_s", own.timeout_s.is_none() && d.timeout_s.is_some());
    own.timeout_s = own.timeout_s.or(d.timeout_s);
    inherited
}

/// Where one setting was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// In the workspace's `defaults` rather than the package's own file.
    pub defaults: bool,
    /// The file, as shown to users (workspace-relative).
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// A package's own value that replaces a default of the same name.
    pub overrides: bool,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = format!("{}:{}", self.file.display(), self.line);
        match (self.defaults, self.overrides) {
            (true, _) => write!(f, "workspace defaults, {place}"),
            (false, true) => write!(f, "{place}, over the workspace default"),
            (false, false) => f.write_str(&place),
        }
    }
}

/// The origin of each env variable, tool and limit of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    pub env: BTreeMap<String, Origin>,
    pub tools: BTreeMap<String, Origin>,
    pub limits: BTreeMap<String, Origin>,
}

impl Workspace {
    /// Where each of `pkg`'s env variables, tools and limits was declared
    /// (located in the files now: only `why` asks, for one package).
    pub fn origins(&self, pkg: &Package) -> Origins {
        let d = &self.decl.defaults;
        let line = |file: &SourceFile, path: &[Step<'_>]| file.line_col(file.locate(path).offset()).0;
        let at = |defaults: bool, overrides: bool, path: &[Step<'_>]| {
            let file = if defaults { &self.source } else { &pkg.source };
            let mut full = if defaults { vec![Step::Field("defaults")] } else { Vec::new() };
            full.extend_from_slice(path);
            Origin { defaults, file: file.path.clone(), line: line(file, &full), overrides }
        };
        let i = &pkg.inherited;
        let mut o = Origins::default();
        for k in pkg.body.env.keys() {
            let from = i.env.contains(k);
            o.env.insert(k.clone(), at(from, !from && d.env.contains_key(k), &[Step::Field("env"), Step::Key(k)]));
        }
        for t in &pkg.body.tools {
            let from = i.tools.contains(t);
            o.tools
                .insert(t.clone(), at(from, !from && d.tools.contains(t), &[Step::Field("tools"), Step::Item(t, 0)]));
        }
        let l = &pkg.body.limits;
        let set = [
            ("output_mib", l.output_mib.is_some()),
            ("processes", l.processes.is_some()),
            ("memory_mib", l.memory_mib.is_some()),
            ("timeout_s", l.timeout_s.is_some()),
        ];
        let dl = &d.limits;
        let in_defaults =
            [dl.output_mib.is_some(), dl.processes.is_some(), dl.memory_mib.is_some(), dl.timeout_s.is_some()];
        for ((name, is_set), default_set) in set.into_iter().zip(in_defaults) {
            if is_set {
                let from = i.limits.contains(name);
                let path = [Step::Field("limits"), Step::Field(name)];
                o.limits.insert(name.to_owned(), at(from, !from && default_set, &path));
            }
        }
        o
    }
}
