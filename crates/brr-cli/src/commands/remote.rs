//! Opening the remote caches a run uses: the workspace's `remotes` plus
//! `BRR_REMOTE_CACHE` (a URL given twice is used once, read-only if either
//! says so), trusting its `trusted_keys` plus `BRR_TRUSTED_KEYS`, signing
//! with `BRR_SIGNING_KEY`, with the limits of its `remote_cache` overridden
//! by `BRR_REMOTE_TIMEOUT`, `BRR_REMOTE_BUDGET`, `BRR_REMOTE_RETRIES`,
//! `BRR_REMOTE_BREAKER` and `BRR_CACHE_ON_CONFLICT`, and the headers of
//! `BRR_REMOTE_TOKEN` and `BRR_REMOTE_HEADERS`.

use std::time::Duration;

use brr_graph::Workspace;
use brr_remote::ConnectOptions;
use brr_remote::keys::{PublicKey, SigningKey, TrustedKeys};
use brr_remote::remotes::{ConflictPolicy, Limits, Remote, Remotes};
use brr_schema::{OnConflict, parse_duration};

use crate::settings::Settings;
use crate::{Failure, printer};

/// The configured remotes, or `None` when there are none. A remote that
/// cannot be opened is skipped with a warning; bad keys are user errors.
pub fn open(settings: &Settings, ws: &Workspace) -> Result<Option<Remotes>, Failure> {
    let mut urls: Vec<(String, bool)> = Vec::new();
    let declared = ws.decl.remotes.iter().map(|r| (r.url.as_str(), r.read_only));
    for (url, read_only) in declared.chain(settings.remote_urls.iter().map(|u| (u.as_str(), false))) {
        let same = |u: &str| u.trim_end_matches('/') == url.trim_end_matches('/');
        match urls.iter_mut().find(|(u, _)| same(u)) {
            Some((_, ro)) => *ro |= read_only,
            None => urls.push((url.to_owned(), read_only)),
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    for (name, value) in &settings.unclear_flags {
        printer::note(&format!(
            "warning: {name}=`{value}` is neither yes (`1`, `true`, `yes`, `on`) nor no (`0`, `false`, `no`, `off`): \
             taken as yes"
        ));
    }
    let (limits, policy, request_timeout) = limits(settings, ws)?;
    let trusted = trusted_keys(settings, ws)?;
    let signing = match &settings.signing_key {
        Some(path) => Some(SigningKey::read(path).map_err(|e| user(&format!("BRR_SIGNING_KEY: {e}")))?),
        None => None,
    };
    let mut remotes = Vec::new();
    let headers = settings.remote_headers.as_ref().map_err(|e| user(e))?.0.clone();
    let options = ConnectOptions { request_timeout, headers };
    for (url, read_only) in urls {
        match brr_remote::open_with(&url, &options) {
            Ok(b) => remotes.push(Remote::new(b, read_only)),
            Err(e @ brr_remote::RemoteError::Header { .. }) => return Err(user(&e.to_string())),
            Err(e) => printer::note(&format!("warning: remote cache skipped: {e}")),
        }
    }
    let sink = Box::new(|line: &str| printer::note(line));
    Ok(Some(
        Remotes::new(remotes, trusted, signing, settings.cache_read_only, sink)
            .with_limits(limits)
            .with_conflict_policy(policy),
    ))
}

/// The limits and conflict policy: the workspace's `remote_cache`, each
/// field overridden by its environment variable; malformed values are user
/// errors naming the variable.
fn limits(settings: &Settings, ws: &Workspace) -> Result<(Limits, ConflictPolicy, Option<Duration>), Failure> {
    let decl = &ws.decl.remote_cache;
    let env = &settings.remote_env;
    let duration = |var: &str, env: &Option<String>, decl: &Option<String>| -> Result<Option<Duration>, Failure> {
        match (env, decl) {
            (Some(v), _) => parse_duration(v)
                .map(Some)
                .ok_or_else(|| user(&format!("{var}=`{v}` is not a duration (write `500ms`, `5s` or `2m`)"))),
            (None, Some(d)) => Ok(parse_duration(d)),
            (None, None) => Ok(None),
        }
    };
    let count = |var: &str, env: &Option<String>, decl: Option<u32>| -> Result<Option<u32>, Failure> {
        match env {
            Some(v) => v.trim().parse().map(Some).map_err(|_| user(&format!("{var}=`{v}` is not a whole number"))),
            None => Ok(decl),
        }
    };
    let mut limits = Limits::default();
    if let Some(b) = duration("BRR_REMOTE_BUDGET", &env.budget, &decl.budget)? {
        limits.budget = b;
    }
    if let Some(r) = count("BRR_REMOTE_RETRIES", &env.retries, decl.retries)? {
        limits.retries = r;
    }
    if let Some(b) = count("BRR_REMOTE_BREAKER", &env.breaker, decl.breaker)? {
        limits.breaker = b.max(1);
    }
    let timeout = duration("BRR_REMOTE_TIMEOUT", &env.timeout, &decl.request_timeout)?;
    let policy = match (env.on_conflict.as_deref().map(str::trim), decl.on_conflict) {
        (Some("keep-first" | "keep" | "KeepFirst"), _) | (None, Some(OnConflict::KeepFirst) | None) => {
            ConflictPolicy::KeepFirst
        }
        (Some("replace" | "Replace"), _) | (None, Some(OnConflict::Replace)) => ConflictPolicy::Replace,
        (Some(v), _) => {
            return Err(user(&format!("BRR_CACHE_ON_CONFLICT=`{v}`: use `keep-first` (the default) or `replace`")));
        }
    };
    Ok((limits, policy, timeout))
}

/// The workspace's `trusted_keys` plus `BRR_TRUSTED_KEYS`; a malformed key,
/// or one name given to two keys, is a user error.
pub fn trusted_keys(settings: &Settings, ws: &Workspace) -> Result<TrustedKeys, Failure> {
    let mut keys = Vec::new();
    for k in ws.decl.trusted_keys.iter().chain(&settings.trusted_keys) {
        let key: PublicKey = k.parse().map_err(|e| user(&format!("bad trusted key `{k}`: {e}")))?;
        keys.push(key);
    }
    // Not `TrustedKeys::new`, which keeps the first of two keys of one name.
    let mut trusted = TrustedKeys::default();
    trusted.extend(keys).map_err(|e| user(&format!("{e}")))?;
    Ok(trusted)
}

fn user(message: &str) -> Failure {
    Failure::User(miette::miette!("{message}"))
}

/// `brr key generate`: a new signing key in `out`; prints its public key.
pub fn generate_key(out: &std::path::Path, name: Option<&str>) -> Result<(), Failure> {
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let key = match name {
        Some(n) => SigningKey::generate(n).map_err(|e| user(&e.to_string()))?,
        // The host's name when it makes a valid key name, else `brr`.
        None => {
            SigningKey::generate(&host).or_else(|_| SigningKey::generate("brr")).map_err(|e| user(&e.to_string()))?
        }
    };
    // Never over an existing file: it may be the only copy of another key.
    if out.symlink_metadata().is_ok() {
        return Err(user(&format!(
            "`{}` already exists: not overwriting it (a key file may be the only copy of a key); choose another path",
            out.display()
        )));
    }
    match key.write_new(out) {
        Ok(()) => {}
        // Created between the check above and here, by someone else.
        Err(brr_remote::keys::KeyError::Write { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(user(&format!("`{}` already exists: not overwriting it", out.display())));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot write the key to `{}`", out.display())).into());
        }
    }
    println!("{}", key.public());
    printer::note(&format!(
        "wrote the private key to `{}`; trust the public key above in `trusted_keys` (or BRR_TRUSTED_KEYS)",
        out.display()
    ));
    Ok(())
}
