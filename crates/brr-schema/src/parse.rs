//! Parsing declaration text, and the checks a single file can make on its own.
//! Checks across packages (unknown dependencies, cycles) live in `brr-graph`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use ron::extensions::Extensions;

use crate::decl::DUPLICATE_KEY;
use crate::error::{DeclError, SourceFile};
use crate::locate::Step;
use miette::SourceSpan;

use crate::{DefaultsDecl, LimitsDecl, PackageDecl, ReadyDecl, WorkspaceDecl};

/// Longest glob accepted: no path is longer (Linux's `PATH_MAX`), and a glob
/// compiles to a regex, whose cost grows with its length.
pub const GLOB_MAX: usize = 4096;

/// Most globs with wildcards in one list: they compile into one automaton,
/// whose size (and build time) grows with their number. Plain names are
/// not counted: they are looked up, not compiled.
pub const WILDCARD_GLOBS_MAX: usize = 4096;

/// Characters of a declared value quoted in a message before it is cut.
const QUOTED_MAX: usize = 100;

/// A declared value as messages quote it: cut to `QUOTED_MAX` characters
/// (with `…`) and control characters escaped, so a hostile value cannot
/// flood or garble the terminal.
pub fn cut(s: &str) -> Cow<'_, str> {
    let short = s.chars().nth(QUOTED_MAX).is_none();
    if short && !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out: String = s
        .chars()
        .take(QUOTED_MAX)
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect();
    if !short {
        out.push('…');
    }
    Cow::Owned(out)
}

/// A portable shell variable name: `[A-Za-z_][A-Za-z0-9_]*`. Anything else
/// (`=`, NUL, empty) would let a declaration rewrite other variables.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Environment variables brr sets itself; a declaration may not override them.
pub const RESERVED_ENV: &[&str] =
    &["PATH", "HOME", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH", "OUT", "DEPS", "TMPDIR", "BRR_JOBS"];

fn ron_options() -> ron::Options {
    // `Library(name: ..)` instead of `Library((name: ..))`, and `release: [..]`
    // instead of `release: Some([..])`.
    ron::Options::default().with_default_extension(Extensions::UNWRAP_VARIANT_NEWTYPES | Extensions::IMPLICIT_SOME)
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(file: &SourceFile) -> Result<T, Box<DeclError>> {
    ron_options().from_str(&file.text).map_err(|e| {
        let start = file.offset(e.span.start.line, e.span.start.col);
        let end = file.offset(e.span.end.line, e.span.end.col).max(start);
        if let ron::Error::Message(m) = &e.code
            && let Some(key) = m.strip_prefix(DUPLICATE_KEY).and_then(|k| k.strip_prefix('`')?.strip_suffix('`'))
        {
            // The parser stands past the second key: point at it, not past it.
            let quoted = format!("\"{key}\"");
            let at = file.text[..end.max(start)].rfind(&quoted).map_or((start, 1), |i| (i, quoted.len()));
            return Box::new(
                DeclError::at(file, at.into(), format!("key `{}` is given twice", cut(key)), "duplicate")
                    .with_help("each key of a map may appear once"),
            );
        }
        let len = (end - start).max(1).min(file.text.len().saturating_sub(start));
        Box::new(DeclError::at(file, (start, len).into(), e.code.to_string(), "here"))
    })
}

/// Parses a workspace root `brr.ron`.
pub fn parse_workspace(file: &SourceFile) -> Result<WorkspaceDecl, Box<DeclError>> {
    let ws: WorkspaceDecl = parse(file)?;
    for r in &ws.remotes {
        let known = ["http://", "https://", "grpc://", "grpcs://", "s3://", "s3+http://", "s3+https://", "file://"];
        if !known.iter().any(|k| r.url.starts_with(k)) {
            return Err(DeclError::at(
                file,
                file.find_value(&r.url, 0),
                format!("unsupported remote URL `{}`", cut(&r.url)),
                "here",
            )
            .with_help("use http://, https://, grpc://, grpcs://, s3://, s3+http(s):// or file://")
            .into());
        }
    }
    for d in [&ws.remote_cache.request_timeout, &ws.remote_cache.budget].into_iter().flatten() {
        if parse_duration(d).is_none() {
            return Err(DeclError::at(file, file.find_value(d, 0), format!("invalid duration `{}`", cut(d)), "here")
                .with_help("write a number and a unit: `500ms`, `5s`, `2m`")
                .into());
        }
    }
    let mut names = BTreeMap::new();
    for k in &ws.trusted_keys {
        let Some((name, _)) = k.split_once(':').filter(|(name, key)| !name.is_empty() && key.len() == 44) else {
            return Err(DeclError::at(
                file,
                file.find_value(k, 0),
                format!("`{}` is not a public key", cut(k)),
                "here",
            )
            .with_help("trusted keys look like `name:BASE64` (as `brr key generate` prints them)")
            .into());
        };
        if let Some(first) = names.insert(name, k) {
            // Past the first one, so the second is the one shown.
            let after = file.find_value(first, 0).offset() + 1;
            return Err(DeclError::at(
                file,
                file.find_value(k, after),
                format!("trusted key name `{}` is used twice", cut(name)),
                "second key of that name",
            )
            .with_help("a signature names its key: each name must stand for one key")
            .into());
        }
    }
    for g in &ws.packages {
        if !is_contained(g) {
            return Err(DeclError::at(
                file,
                file.find_value(g, file.find_field("packages")),
                format!("package glob `{}` reaches outside the workspace", cut(g)),
                "outside",
            )
            .with_help("package globs are relative to the workspace root, without `..`")
            .into());
        }
        check_glob_len(file, g)?;
    }
    check_wildcard_count(file, &ws.packages, "packages")?;
    check_defaults(file, &ws.defaults)?;
    if ws.packages.is_empty() {
        let at = file.find_field("packages");
        return Err(DeclError::at(file, (at, 8).into(), "a workspace needs at least one package glob", "empty")
            .with_help("e.g. `packages: [\"libs/*\", \"services/*\"]`")
            .into());
    }
    Ok(ws)
}

/// The workspace's `defaults`, checked as a package's own fields are; errors
/// point into the root `brr.ron`.
fn check_defaults(file: &SourceFile, d: &DefaultsDecl) -> Result<(), Box<DeclError>> {
    check_env_vars(file, &d.env, |k| file.locate(&[Step::Field("defaults"), Step::Field("env"), Step::Key(k)]))?;
    let tools_at = file.locate(&[Step::Field("defaults"), Step::Field("tools")]).offset();
    check_tools(file, &d.tools, |t| file.find_value(t, tools_at))?;
    let host_at = file.locate(&[Step::Field("defaults"), Step::Field("host_inputs")]).offset();
    check_host_inputs(file, &d.host_inputs, host_at)?;
    check_limits(file, &d.limits, &[Step::Field("defaults")])
}

/// `limits` (below the fields `under`): a timeout of zero would fail every
/// build before it started, so it is refused rather than read as "none".
fn check_limits(file: &SourceFile, limits: &LimitsDecl, under: &[Step<'_>]) -> Result<(), Box<DeclError>> {
    if limits.timeout_s == Some(0) {
        let mut path = under.to_vec();
        path.extend([Step::Field("limits"), Step::Field("timeout_s")]);
        return Err(DeclError::at(
            file,
            file.locate(&path),
            "`limits.timeout_s` is `0`: no build can finish in it",
            "zero",
        )
        .with_help("give the most seconds one build may run (`timeout_s: Some(600)`), or leave it out for none")
        .into());
    }
    Ok(())
}

fn check_wildcard_count(file: &SourceFile, globs: &[String], field: &str) -> Result<(), Box<DeclError>> {
    let wild = |g: &&String| g.contains(['*', '?', '[', '{', '\\']);
    if let Some(g) = globs.iter().filter(wild).nth(WILDCARD_GLOBS_MAX) {
        return Err(DeclError::at(
            file,
            file.find_value(g, file.find_field(field)),
            format!("`{field}` holds more than {WILDCARD_GLOBS_MAX} globs with wildcards"),
            "one too many",
        )
        .with_help("list plain folder or file names, or merge globs (`{a,b}/*`)")
        .into());
    }
    Ok(())
}

fn check_glob_len(file: &SourceFile, g: &str) -> Result<(), Box<DeclError>> {
    if g.len() > GLOB_MAX {
        return Err(DeclError::at(
            file,
            file.find_value(g, 0),
            format!("glob `{}` is longer than {GLOB_MAX} bytes", cut(g)),
            "too long",
        )
        .into());
    }
    Ok(())
}

/// Parses a package `brr.ron` and checks what the file alone can tell.
pub fn parse_package(file: &SourceFile) -> Result<PackageDecl, Box<DeclError>> {
    parse_package_with(file, &DefaultsDecl::default())
}

/// [`parse_package`] in a workspace with `defaults`: a builder program may
/// be one of the inherited tools.
pub fn parse_package_with(file: &SourceFile, defaults: &DefaultsDecl) -> Result<PackageDecl, Box<DeclError>> {
    let decl: PackageDecl = parse(file)?;
    check_package(file, &decl, defaults)?;
    check_host_inputs(file, &decl.body().host_inputs, file.find_field("host_inputs"))?;
    Ok(decl)
}

/// A package or process type name: lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// `host_inputs` (the field at offset `at`) are absolute globs without `..`.
fn check_host_inputs(file: &SourceFile, globs: &[String], at: usize) -> Result<(), Box<DeclError>> {
    let err =
        |value: &str, message: String, label: &str| DeclError::at(file, file.find_value(value, at), message, label);
    for g in globs {
        if !g.starts_with('/') {
            return Err(err(g, format!("host input `{}` is not an absolute path", cut(g)), "relative")
                .with_help(
                    "host inputs name files outside the workspace from `/`; files of the workspace go in `inputs`",
                )
                .into());
        }
        if g.split('/').any(|c| c == "..") {
            return Err(err(g, format!("host input `{}` contains `..`", cut(g)), "`..`")
                .with_help("write the path without `..`")
                .into());
        }
    }
    Ok(())
}

fn check_package(file: &SourceFile, decl: &PackageDecl, defaults: &DefaultsDecl) -> Result<(), Box<DeclError>> {
    check_limits(file, &decl.body().limits, &[])?;
    if let Some(f) = decl.fetch() {
        return check_fetch(file, f);
    }
    let b = decl.body();
    let b = b.as_ref();
    let err =
        |value: &str, message: String, label: &str| DeclError::at(file, file.find_value(value, 0), message, label);

    if !is_name(&b.name) {
        return Err(err(&b.name, format!("invalid package name `{}`", cut(&b.name)), "not a name")
            .with_help("names use lowercase letters, digits, `-` and `_`")
            .into());
    }
    let Some(program) = b.builder.first() else {
        let at = file.find_field("builder");
        return Err(DeclError::at(file, (at, 7).into(), "the builder command is empty", "no program").into());
    };
    check_program(file, b, &defaults.tools, program)?;
    let mut seen = BTreeSet::new();
    for d in &b.deps {
        if d == &b.name {
            return Err(err(d, format!("package `{}` depends on itself", cut(d)), "self-dependency").into());
        }
        if !seen.insert(d) {
            return Err(err(d, format!("dependency `{}` is listed twice", cut(d)), "duplicate").into());
        }
    }
    check_env(file, b)?;
    if b.outputs.is_empty() {
        let at = file.find_field("outputs");
        return Err(DeclError::at(file, (at, 7).into(), "a package must declare at least one output", "empty").into());
    }
    let mut seen = BTreeSet::new();
    for o in &b.outputs {
        if !is_contained(o) {
            return Err(err(o, format!("output `{}` escapes the output folder", cut(o)), "not inside $OUT")
                .with_help("outputs are relative paths below $OUT, without `..`")
                .into());
        }
        if !seen.insert(o.trim_end_matches('/')) {
            return Err(err(o, format!("output `{}` is declared twice", cut(o)), "duplicate").into());
        }
    }
    for i in &b.inputs {
        // `//path` is relative to the workspace root, still never outside it.
        if !is_contained(i.strip_prefix(WORKSPACE_INPUT).unwrap_or(i)) {
            return Err(err(i, format!("input glob `{}` reaches outside its folder", cut(i)), "outside")
                .with_help(
                    "inputs are globs relative to the package folder (or, starting with `//`, to the workspace \
                     root), without `..`",
                )
                .into());
        }
        check_glob_len(file, i)?;
    }
    check_wildcard_count(file, &b.inputs, "inputs")?;
    if !decl.is_service() {
        if let Some(p) = b.processes.keys().next() {
            return Err(err(
                p,
                format!("library `{}` declares process `{}`", cut(&b.name), cut(p)),
                "libraries do not run",
            )
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
            return Err(err(name, format!("invalid process type `{}`", cut(name)), "not a name").into());
        }
        if p.command.is_empty() {
            return Err(err(name, format!("process `{}` has an empty command", cut(name)), "empty command").into());
        }
        check_ready(file, name, p.ready.as_ref())?;
    }
    if b.release.as_ref().is_some_and(Vec::is_empty) {
        let at = file.find_field("release");
        return Err(DeclError::at(file, (at, 7).into(), "the release command is empty", "empty").into());
    }
    Ok(())
}

/// A readiness probe that can be tried: an HTTP path that fits a request
/// line, a command that is not empty.
fn check_ready(file: &SourceFile, process: &str, ready: Option<&ReadyDecl>) -> Result<(), Box<DeclError>> {
    let at = |steps: &[Step<'_>]| {
        let mut path = vec![Step::Field("processes"), Step::Key(process), Step::Field("ready")];
        path.extend_from_slice(steps);
        file.locate(&path)
    };
    match ready {
        Some(ReadyDecl::Http { path })
            if !path.starts_with('/') || path.contains(|c: char| c.is_whitespace() || c.is_control()) =>
        {
            Err(DeclError::at(
                file,
                at(&[Step::Field("path"), Step::Value]),
                format!("process `{}` has an invalid readiness path `{}`", cut(process), cut(path)),
                "not a path",
            )
            .with_help("an HTTP path starts with `/` and holds no spaces (`/health`)")
            .into())
        }
        Some(ReadyDecl::Command(argv)) if argv.is_empty() => Err(DeclError::at(
            file,
            at(&[]),
            format!("process `{}` has an empty readiness command", cut(process)),
            "empty command",
        )
        .into()),
        _ => Ok(()),
    }
}

/// Env names and values, and NUL bytes in commands: they would break or
/// rewrite the builder's environment and argv.
/// The builder's program is a declared tool; each tool is a name, given once.
/// The builder's program is a declared tool (the package's own or one of
/// `inherited`, the workspace defaults'), and the tools are names.
fn check_program(
    file: &SourceFile,
    b: &crate::PackageBody,
    inherited: &[String],
    program: &str,
) -> Result<(), Box<DeclError>> {
    if !b.tools.iter().any(|t| t == program) && !inherited.iter().any(|t| t == program) {
        return Err(DeclError::at(
            file,
            file.find_value(program, 0),
            format!("builder program `{}` is not a declared tool", cut(program)),
            "not in `tools`",
        )
        .with_help(format!(
            "add `\"{}\"` to `tools` (or to the workspace's `defaults`): the builder's PATH holds only declared \
             tools",
            cut(program)
        ))
        .into());
    }
    check_tools(file, &b.tools, |t| file.find_value(t, 0))
}

/// The file name a URL fetch saves to: the last segment of its path
/// (without query or fragment), `None` when it has none usable.
pub fn url_file_name(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let rest = rest.split(['?', '#']).next()?;
    let (_, path) = rest.split_once('/')?;
    let name = path.rsplit('/').next()?;
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['\\', '\0']);
    ok.then_some(name)
}

/// A pinned hash: 64 lowercase hex characters.
fn is_pinned_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn check_fetch(file: &SourceFile, f: &crate::FetchBody) -> Result<(), Box<DeclError>> {
    let err =
        |value: &str, message: String, label: &str| DeclError::at(file, file.find_value(value, 0), message, label);
    let field = |name: &str, message: String, label: &str| {
        let at = file.find_field(name);
        DeclError::at(file, (at, name.len()).into(), message, label)
    };
    if !is_name(&f.name) {
        return Err(err(&f.name, format!("invalid package name `{}`", cut(&f.name)), "not a name")
            .with_help("names use lowercase letters, digits, `-` and `_`")
            .into());
    }
    if !is_pinned_hash(&f.hash) {
        return Err(err(
            &f.hash,
            format!("fetch hash `{}` is not 64 lowercase hex characters", cut(&f.hash)),
            "not a hash",
        )
        .with_help(
            "pin the tree hash of the fetched files (`brr hash DIR`); a fetch with a wrong hash fails and \
                 prints the actual one",
        )
        .into());
    }
    match (&f.url, &f.command) {
        (Some(url), None) => {
            if url_file_name(url).is_none() {
                return Err(err(
                    url,
                    format!("fetch url `{}` is not an http(s) URL ending in a file name", cut(url)),
                    "not http(s)",
                )
                .with_help("write `https://host/path/file.tar.gz`; only http and https are fetched")
                .into());
            }
            if !f.tools.is_empty() || !f.env.is_empty() {
                let which = if f.tools.is_empty() { "env" } else { "tools" };
                return Err(field(which, format!("a url fetch runs no command: `{which}` is unused"), "unused")
                    .with_help("remove it, or fetch with `command` instead")
                    .into());
            }
        }
        (None, Some(command)) => {
            let b = f.package_body();
            let Some(program) = command.first() else {
                return Err(field("command", "the fetch command is empty".into(), "no program").into());
            };
            check_program(file, &b, &[], program)?;
            check_env(file, &b)?;
        }
        (Some(_), Some(_)) => {
            return Err(field("command", "a fetch has a `url` or a `command`, not both".into(), "both").into());
        }
        (None, None) => {
            return Err(field("hash", "a fetch needs a `url` or a `command`".into(), "nothing to fetch")
                .with_help("add `url: \"https://…\"`")
                .into());
        }
    }
    Ok(())
}

fn check_env(file: &SourceFile, b: &crate::PackageBody) -> Result<(), Box<DeclError>> {
    let env_at = file.find_field("env");
    check_env_vars(file, &b.env, |k| file.find_value(k, env_at))?;
    check_commands(file, b)
}

/// Tool names: each once, a program name rather than a path. `at` finds one
/// in the file.
fn check_tools(file: &SourceFile, tools: &[String], at: impl Fn(&str) -> SourceSpan) -> Result<(), Box<DeclError>> {
    let mut seen = BTreeSet::new();
    for t in tools {
        if !seen.insert(t) {
            return Err(DeclError::at(file, at(t), format!("tool `{}` is declared twice", cut(t)), "duplicate").into());
        }
        if t.contains('/') || t.is_empty() {
            return Err(DeclError::at(
                file,
                at(t),
                format!("tool `{}` must be a program name, not a path", cut(t)),
                "a path",
            )
            .with_help("brr resolves tools on the host PATH and records their digests")
            .into());
        }
    }
    Ok(())
}

/// Env names (not brr's own) and values without NUL; `at` finds a name in
/// the file.
fn check_env_vars(
    file: &SourceFile,
    env: &BTreeMap<String, String>,
    at: impl Fn(&str) -> SourceSpan,
) -> Result<(), Box<DeclError>> {
    for (k, v) in env {
        let key_span = at(k);
        if !is_env_name(k) {
            return Err(DeclError::at(file, key_span, format!("invalid env name `{}`", cut(k)), "not a name")
                .with_help("env names are letters, digits and `_`, and do not start with a digit")
                .into());
        }
        if RESERVED_ENV.contains(&k.as_str()) {
            return Err(DeclError::at(
                file,
                key_span,
                format!("env `{k}` is set by brr and cannot be declared"),
                "reserved",
            )
            .with_help(format!("reserved: {}", RESERVED_ENV.join(", ")))
            .into());
        }
        if v.contains('\0') {
            return Err(DeclError::at(file, file.string_after(key_span), format!("env `{k}` holds a NUL byte"), "NUL")
                .with_help("a process environment cannot hold NUL bytes")
                .into());
        }
    }
    Ok(())
}

/// NUL bytes in a package's commands, which no argv can hold.
fn check_commands(file: &SourceFile, b: &crate::PackageBody) -> Result<(), Box<DeclError>> {
    let probes = b.processes.values().filter_map(|p| match &p.ready {
        Some(ReadyDecl::Command(argv)) => Some(argv),
        _ => None,
    });
    let commands = b.processes.values().map(|p| &p.command).chain(probes).chain(b.release.as_ref()).chain([&b.builder]);
    if commands.flatten().any(|w| w.contains('\0')) {
        let at = file.find_field("builder");
        return Err(DeclError::at(file, (at, 7).into(), "a command holds a NUL byte", "here")
            .with_help("program arguments cannot hold NUL bytes")
            .into());
    }
    Ok(())
}

/// The prefix of an input glob relative to the workspace root (`//src/*.c`).
pub const WORKSPACE_INPUT: &str = "//";

/// A relative path with no `..`, no root, no NUL and not empty.
pub fn is_contained(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && !p.contains('\0')
        && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A duration written `500ms`, `5s`, `1.5s` or `2m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    std::time::Duration::try_from_secs_f64(value * scale).ok()
}
