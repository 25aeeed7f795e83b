//! The declarations of a brr workspace, as written in RON.
//!
//! A workspace root `brr.ron` holds a [`WorkspaceDecl`]; each package folder
//! holds a [`PackageDecl`] (`Library(...)`, `Service(...)` or `Fetch(...)`); an optional
//! `environments.ron` beside the root `brr.ron` holds an
//! [`EnvironmentsDecl`]: the environments releases go to, their promotion
//! order, and each service's vars and secret names there. This crate only
//! turns text into these types and checks what a single file can tell; it does
//! no I/O, so the graph layer decides what files are read and how names are
//! shown. Errors are [`DeclError`]s located at `file:line:column` with a
//! labelled snippet (miette). Semantic errors find their value through its
//! path in the file ([`SourceFile::locate`]), as a file like
//! `environments.ron` repeats the same names in every environment.
//!
//! The JSON Schema of each file is generated from these types
//! ([`json_schema`]) and kept in `schemas/`, where a test fails on drift.

mod decl;
mod environments;
mod error;
mod locate;
mod parse;
mod procfile;

pub use decl::{
    DefaultsDecl, EnvironmentDecl, EnvironmentsDecl, FetchBody, LimitsDecl, OnConflict, PackageBody, PackageDecl,
    ProcessDecl, ReadyDecl, RemoteCacheDecl, RemoteDecl, RestartDecl, ServiceEnvDecl, WorkspaceDecl,
};
pub use environments::{ENVIRONMENTS_FILE, is_environment_name, parse_environments, service_span};
pub use error::{DeclError, SourceFile};
pub use locate::Step;
pub use parse::{
    GLOB_MAX, RESERVED_ENV, WILDCARD_GLOBS_MAX, WORKSPACE_INPUT, cut, is_contained, is_env_name, parse_duration,
    parse_package, parse_package_with, parse_workspace, url_file_name,
};
pub use procfile::{PROCFILE, ProcfileEntry, parse_procfile};

/// The JSON Schemas of the declaration files, as (file name, pretty JSON).
pub fn json_schema() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::Schema| serde_json::to_string_pretty(&s).unwrap_or_default() + "\n";
    vec![
        ("workspace.schema.json", pretty(schemars::schema_for!(WorkspaceDecl))),
        ("package.schema.json", pretty(schemars::schema_for!(PackageDecl))),
        ("environments.schema.json", pretty(schemars::schema_for!(EnvironmentsDecl))),
    ]
}
