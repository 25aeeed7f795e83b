//! Parsing the workspace's `environments.ron` and the checks the file alone
//! can make: names, NUL bytes, secrets given once, no name both a variable
//! and a secret, a promotion order of declared environments. That every
//! service named is a service of the workspace is checked by `brr-graph`,
//! which knows the packages ([`service_span`] locates the name for it).

use std::collections::{BTreeMap, BTreeSet};

use miette::SourceSpan;

use crate::error::{DeclError, SourceFile};
use crate::locate::Step::{self, Field, Item, Key, Value};
use crate::parse::{cut, is_env_name, parse};
use crate::{EnvironmentDecl, EnvironmentsDecl};

/// File name of the environments declaration, at the workspace root.
pub const ENVIRONMENTS_FILE: &str = "environments.ron";

/// An environment name: `[a-z][a-z0-9_-]*`.
pub fn is_environment_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses an `environments.ron` and checks what the file alone can tell.
pub fn parse_environments(file: &SourceFile) -> Result<EnvironmentsDecl, Box<DeclError>> {
    let decl: EnvironmentsDecl = parse(file)?;
    for (name, env) in &decl.environments {
        if !is_environment_name(name) {
            return Err(DeclError::at(
                file,
                file.locate(&[Field("environments"), Key(name)]),
                format!("invalid environment name `{}`", cut(name)),
                "not a name",
            )
            .with_help("environment names are lowercase letters, digits, `-` and `_`, starting with a letter")
            .into());
        }
        check_environment(file, name, env)?;
    }
    check_promotion(file, &decl)?;
    Ok(decl)
}

/// Span of service `service` under environment `env`, for errors about it.
pub fn service_span(file: &SourceFile, env: &str, service: &str) -> SourceSpan {
    file.locate(&[Field("environments"), Key(env), Field("services"), Key(service)])
}

/// Where in the file a list of vars and secrets is, and how messages name it.
struct Scope<'a> {
    env: &'a str,
    service: Option<&'a str>,
}

impl Scope<'_> {
    fn path<'p>(&'p self, rest: &[Step<'p>]) -> Vec<Step<'p>> {
        let mut path = vec![Field("environments"), Key(self.env)];
        if let Some(s) = self.service {
            path.extend([Field("services"), Key(s)]);
        }
        path.extend_from_slice(rest);
        path
    }

    fn name(&self) -> String {
        match self.service {
            Some(s) => format!("service `{}` in environment `{}`", cut(s), cut(self.env)),
            None => format!("environment `{}`", cut(self.env)),
        }
    }
}

fn check_environment(file: &SourceFile, name: &str, env: &EnvironmentDecl) -> Result<(), Box<DeclError>> {
    let scope = Scope { env: name, service: None };
    check_lists(file, &scope, &env.vars, &env.secrets)?;
    both(file, &scope, &env.vars, &env.secrets)?;
    for (service, s) in &env.services {
        let scope = Scope { env: name, service: Some(service) };
        check_lists(file, &scope, &s.vars, &s.secrets)?;
        // Merged: the service's names against its own and the environment's.
        let secrets: Vec<&String> = env.secrets.iter().chain(&s.secrets).collect();
        if let Some(v) = s.vars.keys().find(|v| secrets.contains(v)) {
            return Err(both_error(file, &scope, v, &[Field("vars"), Key(v)]));
        }
        both(file, &scope, &env.vars, &s.secrets)?;
    }
    Ok(())
}

/// Names well formed, values without NUL, each secret once.
fn check_lists(
    file: &SourceFile,
    scope: &Scope<'_>,
    vars: &BTreeMap<String, String>,
    secrets: &[String],
) -> Result<(), Box<DeclError>> {
    let help = "names are letters, digits and `_`, and do not start with a digit";
    for (k, v) in vars {
        if !is_env_name(k) {
            return Err(DeclError::at(
                file,
                file.locate(&scope.path(&[Field("vars"), Key(k)])),
                format!("invalid variable name `{}` in {}", cut(k), scope.name()),
                "not a name",
            )
            .with_help(help)
            .into());
        }
        if v.contains('\0') {
            return Err(DeclError::at(
                file,
                file.locate(&scope.path(&[Field("vars"), Key(k), Value])),
                format!("variable `{}` of {} holds a NUL byte", cut(k), scope.name()),
                "NUL",
            )
            .with_help("a process environment cannot hold NUL bytes")
            .into());
        }
    }
    let mut seen = BTreeSet::new();
    for s in secrets {
        if !is_env_name(s) {
            return Err(DeclError::at(
                file,
                file.locate(&scope.path(&[Field("secrets"), Item(s, 0)])),
                format!("invalid secret name `{}` in {}", cut(s), scope.name()),
                "not a name",
            )
            .with_help(help)
            .into());
        }
        if !seen.insert(s) {
            return Err(DeclError::at(
                file,
                file.locate(&scope.path(&[Field("secrets"), Item(s, 1)])),
                format!("secret `{}` is listed twice in {}", cut(s), scope.name()),
                "duplicate",
            )
            .into());
        }
    }
    Ok(())
}

/// A secret of `secrets` (declared in `scope`) that is also in `vars`.
fn both(
    file: &SourceFile,
    scope: &Scope<'_>,
    vars: &BTreeMap<String, String>,
    secrets: &[String],
) -> Result<(), Box<DeclError>> {
    match secrets.iter().find(|s| vars.contains_key(*s)) {
        Some(s) => Err(both_error(file, scope, s, &[Field("secrets"), Item(s, 0)])),
        None => Ok(()),
    }
}

fn both_error(file: &SourceFile, scope: &Scope<'_>, name: &str, at: &[Step<'_>]) -> Box<DeclError> {
    DeclError::at(
        file,
        file.locate(&scope.path(at)),
        format!("`{}` is both a variable and a secret of {}", cut(name), scope.name()),
        "both",
    )
    .with_help("a name is either a plain value (`vars`) or a secret read from the environment (`secrets`)")
    .into()
}

fn check_promotion(file: &SourceFile, decl: &EnvironmentsDecl) -> Result<(), Box<DeclError>> {
    let mut seen = BTreeSet::new();
    for name in &decl.promotion {
        if !decl.environments.contains_key(name) {
            let known: Vec<&str> = decl.environments.keys().map(String::as_str).collect();
            let help = if known.is_empty() {
                "no environment is declared".to_owned()
            } else {
                format!("declared environments: {}", known.join(", "))
            };
            return Err(DeclError::at(
                file,
                file.locate(&[Field("promotion"), Item(name, 0)]),
                format!("unknown environment `{}` in the promotion order", cut(name)),
                "not declared",
            )
            .with_help(help)
            .into());
        }
        if !seen.insert(name) {
            return Err(DeclError::at(
                file,
                file.locate(&[Field("promotion"), Item(name, 1)]),
                format!("environment `{}` appears twice in the promotion order", cut(name)),
                "second time",
            )
            .with_help("a release moves through each environment once")
            .into());
        }
    }
    Ok(())
}
