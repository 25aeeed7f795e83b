//! Where releases live on disk, under the store folder:
//!
//! | path | what |
//! |---|---|
//! | `releases/<release hash>/` | the release, read-only: the build's output files and `.env` (the config's vars; secret names as a comment) |
//! | `envs/<env>/<service>/current` | symlink to the service's current release folder (Capistrano's layout) |
//! | `envs/<env>/data/` | the environment's writable data (`BRR_DATA_DIR`), e.g. a SQLite database |
//! | `envs/<env>/lock` | held while an entry is appended and the links are switched |
//!
//! A release folder is built under a temporary name and renamed into place,
//! so it is whole or absent; a `current` link is replaced by renaming a new
//! link over it, so it always names one release or the other.

use std::fmt::Write as _;
use std::fs::{File, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use brr_hash::{Artifact, Config, ReleaseHash};
use brr_store::{Store, remove_tree};

use crate::{IoAt, ReleaseError};

/// Name of the config file in a release folder (dotenv format).
pub const ENV_FILE: &str = ".env";

/// `<store>/releases/<hash>`.
pub fn release_dir(store: &Store, release: ReleaseHash) -> PathBuf {
    store.root().join("releases").join(release.to_string())
}

/// `<store>/envs/<env>`.
pub fn env_dir(store: &Store, env: &str) -> PathBuf {
    store.root().join("envs").join(env)
}

/// `<store>/envs/<env>/data`, created: what `BRR_DATA_DIR` names.
pub fn data_dir(store: &Store, env: &str) -> Result<PathBuf, ReleaseError> {
    let dir = env_dir(store, env).join("data");
    std::fs::create_dir_all(&dir).at(&dir)?;
    Ok(dir)
}

/// `<store>/envs/<env>/<service>/current`.
pub fn current_link(store: &Store, env: &str, service: &str) -> PathBuf {
    env_dir(store, env).join(service).join("current")
}

/// The release folder of `release`, materialized when missing: `artifact`'s
/// output files (copies, so a process that `chmod`s one cannot write into
/// the store) and the config's `.env`, all read-only.
pub fn materialize(
    store: &Store,
    release: ReleaseHash,
    artifact: &Artifact,
    config: &Config,
) -> Result<PathBuf, ReleaseError> {
    let dest = release_dir(store, release);
    if dest.is_dir() {
        return Ok(dest);
    }
    let parent = store.root().join("releases");
    std::fs::create_dir_all(&parent).at(&parent)?;
    let outputs: brr_hash::Tree = store.get_object(artifact.outputs.0)?;
    if outputs.entries.iter().any(|e| e.name == ENV_FILE) {
        return Err(ReleaseError::EnvFileClash { release });
    }
    remove_stale_temps(&parent, ".tmp-");
    let temp = parent.join(format!(".tmp-{release}-{}", std::process::id()));
    remove_tree(&temp);
    let built = (|| {
        store.materialize_copy(artifact.outputs, &temp, true)?;
        std::fs::set_permissions(&temp, Permissions::from_mode(0o755)).at(&temp)?;
        let env_path = temp.join(ENV_FILE);
        let mut file = File::create(&env_path).at(&env_path)?;
        file.write_all(env_file(release, config).as_bytes()).at(&env_path)?;
        file.set_permissions(Permissions::from_mode(0o444)).at(&env_path)?;
        file.sync_all().at(&env_path)?;
        std::fs::set_permissions(&temp, Permissions::from_mode(0o555)).at(&temp)?;
        Ok::<_, ReleaseError>(())
    })();
    if let Err(e) = built {
        remove_tree(&temp);
        return Err(e);
    }
    // Another process that materialized the same release first made the same bytes.
    brr_store::publish_dir(&temp, &dest).at(&dest)?;
    Ok(dest)
}

/// The `.env` text of a config: `NAME="value"` per var, with `\`, `"`, `$`
/// and newlines escaped; secrets are listed by name only.
pub fn env_file(release: ReleaseHash, config: &Config) -> String {
    let mut out = format!("# brr release {release}\n# config {}\n", config.hash());
    if !config.secrets.is_empty() {
        let names: Vec<&str> = config.secrets.iter().map(String::as_str).collect();
        let _ = writeln!(out, "# secrets (values are never written here): {}", names.join(", "));
    }
    for (name, value) in &config.vars {
        let mut quoted = String::with_capacity(value.len() + 2);
        for c in value.chars() {
            match c {
                '\\' | '"' | '$' | '`' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                '\n' => quoted.push_str("\\n"),
                c => quoted.push(c),
            }
        }
        let _ = writeln!(out, "{name}=\"{quoted}\"");
    }
    out
}

/// Points `current` of `service` in `env` at `release`'s folder, by renaming
/// a new relative link over the old one.
pub fn switch_current(store: &Store, env: &str, service: &str, release: ReleaseHash) -> Result<(), ReleaseError> {
    let link = current_link(store, env, service);
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let target = Path::new("../../../releases").join(release.to_string());
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    remove_stale_temps(dir, ".current-");
    let temp = dir.join(format!(".current-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    symlink(&target, &temp).at(&temp)?;
    std::fs::rename(&temp, &link).at(&link)
}

/// Removes `service`'s `current` link in `env` (it has no succeeded release).
pub fn clear_current(store: &Store, env: &str, service: &str) -> Result<(), ReleaseError> {
    let link = current_link(store, env, service);
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e).at(&link),
        _ => Ok(()),
    }
}

/// The lock of one environment, held while its ledger is appended to and
/// its links switched, so links follow the ledger's order.
pub struct EnvLock(#[expect(dead_code, reason = "held for its lock; released on drop")] File);

impl EnvLock {
    pub fn acquire(store: &Store, env: &str) -> Result<Self, ReleaseError> {
        let dir = env_dir(store, env);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join("lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).at(&path)?;
        file.lock().at(&path)?;
        Ok(Self(file))
    }
}

/// Best effort: removes what killed processes left in `dir`: names
/// `<prefix>…-<pid>` whose process is gone.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            remove_tree(&e.path());
        }
    }
}

/// Removes the release folders (`releases/<hash>`) of releases that can no
/// longer be materialized: not recorded, or whose build is not recorded
/// (collected by `brr gc`). Best effort; returns how many went and their
/// size in bytes. Only for a store held exclusive: nobody runs from them.
pub fn remove_unrunnable(store: &Store) -> (u64, u64) {
    let parent = store.root().join("releases");
    let Ok(entries) = std::fs::read_dir(&parent) else { return (0, 0) };
    let (mut removed, mut bytes) = (0, 0);
    for entry in entries.flatten() {
        let Ok(release) = entry.file_name().to_string_lossy().parse::<brr_hash::Digest>() else { continue };
        let runnable = match store.get_object::<brr_hash::Release>(release) {
            Ok(r) => matches!(store.kind_of(r.build.0), Ok(Some(brr_hash::ObjectKind::Artifact))),
            Err(_) => false,
        };
        if !runnable {
            let path = entry.path();
            bytes += walkdir::WalkDir::new(&path)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>();
            remove_tree(&path);
            removed += 1;
        }
    }
    (removed, bytes)
}
