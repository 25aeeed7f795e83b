//! Opening the remote caches a run uses: the workspace's `remotes` plus
//! `BRR_REMOTE_CACHE`, trusting its `trusted_keys` plus `BRR_TRUSTED_KEYS`,
//! signing with `BRR_SIGNING_KEY`.

use anyhow::Context;
use brr_graph::Workspace;
use brr_remote::keys::{PublicKey, SigningKey, TrustedKeys};
use brr_remote::remotes::{Remote, Remotes};

use crate::settings::Settings;
use crate::{Failure, printer};

/// The configured remotes, or `None` when there are none. A remote that
/// cannot be opened is skipped with a warning; bad keys are user errors.
pub fn open(settings: &Settings, ws: &Workspace) -> Result<Option<Remotes>, Failure> {
    let mut urls: Vec<(String, bool)> = ws.decl.remotes.iter().map(|r| (r.url.clone(), r.read_only)).collect();
    urls.extend(settings.remote_urls.iter().map(|u| (u.clone(), false)));
    if urls.is_empty() {
        return Ok(None);
    }
    let trusted = trusted_keys(settings, ws)?;
    let signing = match &settings.signing_key {
        Some(path) => Some(SigningKey::read(path).map_err(|e| user(&format!("BRR_SIGNING_KEY: {e}")))?),
        None => None,
    };
    let mut remotes = Vec::new();
    for (url, read_only) in urls {
        match brr_remote::open(&url) {
            Ok(b) => remotes.push(Remote::new(b, read_only)),
            Err(e) => printer::note(&format!("warning: remote cache skipped: {e}")),
        }
    }
    let sink = Box::new(|line: &str| printer::note(line));
    Ok(Some(Remotes::new(remotes, trusted, signing, settings.cache_read_only, sink)))
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
    key.write_new(out).with_context(|| format!("cannot write the key to `{}`", out.display()))?;
    println!("{}", key.public());
    printer::note(&format!(
        "wrote the private key to `{}`; trust the public key above in `trusted_keys` (or BRR_TRUSTED_KEYS)",
        out.display()
    ));
    Ok(())
}
