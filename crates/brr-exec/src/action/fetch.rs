//! Running a `Fetch(...)`: the one kind of build that may use the network.
//! A URL is downloaded by brr itself to `$OUT/<file name>`; a command runs
//! in the sandbox with the host's network. Either way the whole of `$OUT`
//! is hashed as `brr hash` hashes a folder and kept only when that tree is
//! the pinned one: on a mismatch nothing at all is stored (no key, log or
//! blob), so a wrong pin leaves the store as it was.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use brr_hash::fs::{FsError, snapshot_holding};
use brr_hash::{Artifact, ArtifactHash, Digest, Object, ObjectKind};
use brr_store::{PACKED_MAX, Put, Store, snapshot_puts};

use super::{
    Action, Conditions, Failure, FailureCause, MIB, Ran, builder_spec, describe, limits, read_log, sandbox_base, stage,
    tail,
};
use crate::error::{ExecError, io};
use crate::sandbox::{Ended, SandboxSpec, spawn};
use crate::stage::Sandbox;

/// `BRR_FETCH_MIRROR`: an http(s) URL that URL fetches are read from
/// instead of their own (`<mirror>/<file name>`). Safe to point anywhere
/// because what comes back is checked against the pinned hash.
pub const MIRROR_ENV: &str = "BRR_FETCH_MIRROR";

/// Connecting to a fetch's server may take this long; the transfer itself
/// is bounded by the output limit, not by time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches `action`'s package (a `Fetch(...)`) and hands what it stored to
/// `store_outputs`, as [`super::build`] does for a builder.
pub(super) fn build<T>(
    store: &Store,
    action: &Action<'_>,
    isolate: bool,
    cond: &Conditions,
    on_start: &dyn Fn(),
    store_outputs: impl FnOnce(&[Put<'_>], &Ran) -> Result<T, ExecError>,
) -> Result<Result<T, Failure>, ExecError> {
    let pkg = action.pkg;
    let Some(fetch) = &pkg.fetch else {
        return Ok(Err(Failure {
            reason: format!("`{}` is not a fetch", pkg.name),
            log: None,
            log_tail: String::new(),
            cause: FailureCause::Environment,
        }));
    };
    let limits = limits(&pkg.body.limits);
    let base = sandbox_base(store, action, &[], cond)?;
    let mut sb = Sandbox::create(&base)?;
    stage(store, action, &[], &[], &mut sb, false, false)?;
    let log_path = sb.log();
    let mut log_file =
        std::fs::File::options().read(true).write(true).create_new(true).open(&log_path).map_err(io(&log_path))?;
    let out = sb.out();
    let fetched = if let Some(url) = &fetch.url {
        on_start();
        download(url, &out, limits.file_bytes, super::timeout::of(pkg), &mut log_file).map_err(|e| match e {
            Download::TimedOut(from, limit) => super::timeout::download_reason(pkg, &from, limit),
            Download::Failed(reason) => reason,
        })
    } else {
        let spec = builder_spec(action, &sb, cond, limits, isolate)?;
        let start = || {
            // Held until the command exits, as a builder's (see `jobserver`).
            let _token = cond.jobserver.as_ref().map(|j| j.acquire());
            on_start();
            // The only builder with the host's network: what it makes is pinned.
            let spec = SandboxSpec { host_network: true, net_slot: None, ..spec };
            spawn(&spec, &log_file, isolate)?.wait_timeout(super::timeout::of(pkg))
        };
        let ended = match &cond.builders {
            Some(permits) => permits.with(|_| start())?,
            None => start()?,
        };
        match ended {
            Ended::Exited(status) if status.success() => Ok(()),
            Ended::Exited(status) => Err(format!("fetch command {}", describe(status))),
            Ended::TimedOut(limit) => Err(super::timeout::reason(pkg, "fetch command", limit)),
        }
    };
    let log_bytes = read_log(&log_file).map_err(io(&log_path))?;
    // Nothing is stored for a failed fetch: no log either.
    let fail = |reason: String| {
        Ok(Err(Failure { reason, log: None, log_tail: tail(&log_bytes, 15), cause: FailureCause::Builder }))
    };
    if let Err(reason) = fetched {
        return fail(reason);
    }
    let names: Vec<String> =
        fs_err::read_dir(&out).map_err(io(&out))?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    let snap = match snapshot_holding(&out, &names, PACKED_MAX as u64) {
        Ok(s) => s,
        Err(e @ (FsError::EscapingSymlink { .. } | FsError::Special { .. } | FsError::NonUtf8 { .. })) => {
            return fail(format!("fetched files rejected: {e}"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(over) = super::over_output_limit(&snap, &limits, "the fetched files") {
        return fail(over);
    }
    let actual = snap.tree.root.to_string();
    if actual != fetch.hash {
        let at = pkg.source.locate(&[brr_schema::Step::Field("hash")]);
        let (line, col) = pkg.source.line_col(at.offset());
        return fail(format!(
            "fetched files do not have the pinned hash ({}:{line}:{col}): expected `{}`, actual `{actual}`; \
             nothing was stored",
            pkg.manifest.display(),
            fetch.hash
        ));
    }
    let sources = brr_graph::source_tree(pkg, &[])?;
    let key_bytes = action.key.encode();
    let artifact_bytes = Artifact { outputs: snap.tree.root, manifest: action.manifest.clone() }.encode();
    let artifact = ArtifactHash(Digest::of(&artifact_bytes));
    let log = Digest::of(&log_bytes);
    let mut puts: Vec<Put<'_>> =
        sources.trees.iter().map(|(_, b)| Put::Bytes { kind: ObjectKind::Tree, bytes: b }).collect();
    puts.push(Put::Bytes { kind: ObjectKind::Action, bytes: &key_bytes });
    puts.push(Put::Bytes { kind: ObjectKind::Blob, bytes: &log_bytes });
    puts.extend(snapshot_puts(&snap));
    puts.push(Put::Bytes { kind: ObjectKind::Artifact, bytes: &artifact_bytes });
    Ok(Ok(store_outputs(&puts, &Ran { outputs: snap.tree.root, artifact, log })?))
}

/// Where a URL fetch reads from: the URL, or the mirror's copy of its file.
fn source_url(url: &str, name: &str) -> Result<String, String> {
    match std::env::var(MIRROR_ENV) {
        Ok(m) if !m.is_empty() => {
            // Never `file://`: a mirror must not read local files into the store.
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(format!("{MIRROR_ENV} `{}` is not an http(s) URL", brr_schema::cut(&m)));
            }
            Ok(format!("{}/{name}", m.trim_end_matches('/')))
        }
        _ => Ok(url.to_owned()),
    }
}

/// Why a download failed.
enum Download {
    /// The declared timeout passed (the URL it read from, the timeout).
    TimedOut(String, Duration),
    Failed(String),
}

impl From<String> for Download {
    fn from(reason: String) -> Self {
        Self::Failed(reason)
    }
}

/// A server that accepts but does not start answering within this is
/// given up on, with or without a declared timeout.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads `url` to `out/<file name>`, at most `limit` bytes and within
/// `timeout` (when declared), noting what it did in `log`.
fn download(
    url: &str,
    out: &Path,
    limit: u64,
    timeout: Option<Duration>,
    log: &mut std::fs::File,
) -> Result<(), Download> {
    let name = brr_schema::url_file_name(url).ok_or_else(|| format!("fetch url `{}` has no file name", cut(url)))?;
    let from = source_url(url, name)?;
    let _ = writeln!(log, "fetching {from}");
    // ureq speaks only http and https: a redirect to any other scheme fails.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(ANSWER_TIMEOUT))
        .timeout_global(timeout)
        .max_redirects(10)
        .user_agent(concat!("brr/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let failed = |e: &dyn std::fmt::Display, timed_out: bool| match timeout {
        Some(limit) if timed_out => Download::TimedOut(from.clone(), limit),
        _ => Download::Failed(format!("cannot fetch `{}`: {e}", cut(&from))),
    };
    let response = agent.get(&from).call().map_err(|e| failed(&e, matches!(e, ureq::Error::Timeout(_))))?;
    let dest = out.join(name);
    let mut file = std::fs::File::create_new(&dest).map_err(|e| format!("cannot write `{name}`: {e}"))?;
    let mut reader = response.into_body().into_reader().take(limit.saturating_add(1));
    let copied = std::io::copy(&mut reader, &mut file).map_err(|e| {
        // ureq's body reader wraps its own error in the io::Error.
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        failed(&e, timed_out)
    })?;
    if copied > limit {
        return Err(Download::Failed(format!(
            "`{}` is over the output limit of {} MiB: raise `limits: Limits(output_mib: …)`",
            cut(&from),
            limit / MIB
        )));
    }
    file.sync_all().map_err(|e| format!("cannot write `{name}`: {e}"))?;
    let _ = writeln!(log, "fetched {copied} bytes into $OUT/{name}");
    Ok(())
}

fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    brr_schema::cut(s)
}
