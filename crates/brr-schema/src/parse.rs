//! Parsing declaration text, and the checks a single file can make on its own.
//! Checks across packages (unknown dependencies, cycles) live in `brr-graph`.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use ron::extensions::Extensions;

use crate::error::{DeclError, SourceFile};
use crate::{PackageDecl, WorkspaceDecl};

/// Environment variables brr sets itself; a declaration may not override them.
pub const RESERVED_ENV: &[&str] = &["PATH", "HOME", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH", "OUT", "DEPS", "TMPDIR"];

fn ron_options() -> ron::Options {
    // `Library(name: ..)` instead of `Library((name: ..))`, and `release: [..]`
    // instead of `release: Some([..])`.
    ron::Options::default().with_default_extension(Extensions::UNWRAP_VARIANT_NEWTYPES | Extensions::IMPLICIT_SOME)
}

fn parse<T: serde::de::DeserializeOwned>(file: &SourceFile) -> Result<T, Box<DeclError>> {
    ron_options().from_str(&file.text).map_err(|e| {
        let start = file.offset(e.span.start.line, e.span.start.col);
        let end = file.offset(e.span.end.line, e.span.end.col).max(start);
        let len = (end - start).max(1).min(file.text.len().saturating_sub(start));
        Box::new(DeclError::at(file, (start, len).into(), e.code.to_string(), "here"))
    })
}

/// Parses a workspace root `brr.ron`.
pub fn parse_workspace(file: &SourceFile) -> Result<WorkspaceDecl, Box<DeclError>> {
    let ws: WorkspaceDecl = parse(file)?;
    for r in &ws.remotes {
        let known = ["http://", "https://", "grpc://", "grpcs://", "file://"];
        if !known.iter().any(|k| r.url.starts_with(k)) {
            return Err(DeclError::at(
                file,
                file.find_value(&r.url, 0),
                format!("unsupported remote URL `{}`", r.url),
                "here",
            )
            .with_help("use http://, https://, grpc://, grpcs:// or file://")
            .into());
        }
    }
    for k in &ws.trusted_keys {
        let ok = k.split_once(':').is_some_and(|(name, key)| !name.is_empty() && key.len() == 44);
        if !ok {
            return Err(DeclError::at(file, file.find_value(k, 0), format!("`{k}` is not a public key"), "here")
                .with_help("trusted keys look like `name:BASE64` (as `brr key generate` prints them)")
                .into());
        }
    }
    if ws.packages.is_empty() {
        let at = file.find_field("packages");
        return Err(DeclError::at(file, (at, 8).into(), "a workspace needs at least one package glob", "empty")
            .with_help("e.g. `packages: [\"libs/*\", \"services/*\"]`")
            .into());
    }
    Ok(ws)
}

/// Parses a package `brr.ron` and checks what the file alone can tell.
pub fn parse_package(file: &SourceFile) -> Result<PackageDecl, Box<DeclError>> {
    let decl: PackageDecl = parse(file)?;
    check_package(file, &decl)?;
    Ok(decl)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

fn check_package(file: &SourceFile, decl: &PackageDecl) -> Result<(), Box<DeclError>> {
    let b = decl.body();
    let err =
        |value: &str, message: String, label: &str| DeclError::at(file, file.find_value(value, 0), message, label);

    if !is_name(&b.name) {
        return Err(err(&b.name, format!("invalid package name `{}`", b.name), "not a name")
            .with_help("names use lowercase letters, digits, `-` and `_`")
            .into());
    }
    let Some(program) = b.builder.first() else {
        let at = file.find_field("builder");
        return Err(DeclError::at(file, (at, 7).into(), "the builder command is empty", "no program").into());
    };
    if !b.tools.contains(program) {
        return Err(err(program, format!("builder program `{program}` is not a declared tool"), "not in `tools`")
            .with_help(format!("add `\"{program}\"` to `tools`: the builder's PATH holds only declared tools"))
            .into());
    }
    let mut seen = BTreeSet::new();
    for t in &b.tools {
        if !seen.insert(t) {
            return Err(err(t, format!("tool `{t}` is declared twice"), "duplicate").into());
        }
        if t.contains('/') || t.is_empty() {
            return Err(err(t, format!("tool `{t}` must be a program name, not a path"), "a path")
                .with_help("brr resolves tools on the host PATH and records their digests")
                .into());
        }
    }
    let mut seen = BTreeSet::new();
    for d in &b.deps {
        if d == &b.name {
            return Err(err(d, format!("package `{d}` depends on itself"), "self-dependency").into());
        }
        if !seen.insert(d) {
            return Err(err(d, format!("dependency `{d}` is listed twice"), "duplicate").into());
        }
    }
    for k in b.env.keys() {
        if RESERVED_ENV.contains(&k.as_str()) {
            return Err(err(k, format!("env `{k}` is set by brr and cannot be declared"), "reserved")
                .with_help(format!("reserved: {}", RESERVED_ENV.join(", ")))
                .into());
        }
    }
    if b.outputs.is_empty() {
        let at = file.find_field("outputs");
        return Err(DeclError::at(file, (at, 7).into(), "a package must declare at least one output", "empty").into());
    }
    let mut seen = BTreeSet::new();
    for o in &b.outputs {
        if !is_contained(o) {
            return Err(err(o, format!("output `{o}` escapes the output folder"), "not inside $OUT")
                .with_help("outputs are relative paths below $OUT, without `..`")
                .into());
        }
        if !seen.insert(o.trim_end_matches('/')) {
            return Err(err(o, format!("output `{o}` is declared twice"), "duplicate").into());
        }
    }
    for i in &b.inputs {
        if !is_contained(i) {
            return Err(err(i, format!("input glob `{i}` reaches outside the package folder"), "outside")
                .with_help("inputs are globs relative to the package folder, without `..`")
                .into());
        }
    }
    if !decl.is_service() {
        if let Some(p) = b.processes.keys().next() {
            return Err(err(p, format!("library `{}` declares process `{p}`", b.name), "libraries do not run")
                .with_help("declare it as `Service(...)` to give it processes")
                .into());
        }
        if b.release.is_some() {
            let at = file.find_field("release");
            return Err(DeclError::at(file, (at, 7).into(), "a library cannot have a release command", "here")
                .with_help("declare it as `Service(...)`")
                .into());
        }
    }
    for (name, p) in &b.processes {
        if !is_name(name) {
            return Err(err(name, format!("invalid process type `{name}`"), "not a name").into());
        }
        if p.command.is_empty() {
            return Err(err(name, format!("process `{name}` has an empty command"), "empty command").into());
        }
    }
    if b.release.as_ref().is_some_and(Vec::is_empty) {
        let at = file.find_field("release");
        return Err(DeclError::at(file, (at, 7).into(), "the release command is empty", "empty").into());
    }
    Ok(())
}

/// A relative path with no `..`, no root and not empty.
pub fn is_contained(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}
