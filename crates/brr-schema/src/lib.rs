//! The declarations of a brr workspace, as written in RON.
//!
//! A workspace root `brr.ron` holds a [`WorkspaceDecl`]; each package folder
//! holds a [`PackageDecl`] (`Library(...)` or `Service(...)`). This crate only
//! turns text into these types and checks what a single file can tell; it does
//! no I/O, so the graph layer decides what files are read and how names are
//! shown. Errors are [`DeclError`]s located at `file:line:column` with a
//! labelled snippet (miette).
//!
//! The JSON Schema of both files is generated from these types
//! ([`json_schema`]) and kept in `schemas/`, where a test fails on drift.

mod decl;
mod error;
mod parse;

pub use decl::{LimitsDecl, PackageBody, PackageDecl, ProcessDecl, RemoteDecl, WorkspaceDecl};
pub use error::{DeclError, SourceFile};
pub use parse::{
    GLOB_MAX, RESERVED_ENV, WILDCARD_GLOBS_MAX, cut, is_contained, is_env_name, parse_package, parse_workspace,
};

/// The JSON Schemas of the declaration files, as (file name, pretty JSON).
pub fn json_schema() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::Schema| serde_json::to_string_pretty(&s).unwrap_or_default() + "\n";
    vec![
        ("workspace.schema.json", pretty(schemars::schema_for!(WorkspaceDecl))),
        ("package.schema.json", pretty(schemars::schema_for!(PackageDecl))),
    ]
}
