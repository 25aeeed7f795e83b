//! Running one build: read its sources, stage the sandbox, run the builder,
//! check its outputs and write everything to the store; committing that
//! (durably, with the action-cache entry) is left to the caller, who groups
//! the commits of many builds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brr_graph::{Package, Tool, which};
use brr_hash::fs::{FsError, Leaf, snapshot_holding};
use brr_hash::{
    ActionKey, Artifact, ArtifactHash, BuildKey, Digest, HashedBytes, Object, ObjectKind, ServiceManifest, TreeHash,
};
use brr_schema::LimitsDecl;
use brr_store::{ActionRecord, PACKED_MAX, Put, Store, read_checked, snapshot_puts};
use rayon::prelude::*;

use crate::error::{ExecError, io};
use crate::sandbox::{DEFAULT_UMASK, Ended, Limits, NetSlots, SandboxSpec, spawn};
use crate::stage::Sandbox;

pub mod fetch;
mod timeout;

/// `SOURCE_DATE_EPOCH` inside every build: 1980-01-01, the earliest time zip
/// archives can hold.
pub const SOURCE_DATE_EPOCH: &str = "315532800";

/// What one build needs, all hashed already.
#[derive(Debug)]
pub struct Action<'a> {
    pub pkg: &'a Package,
    pub key: ActionKey,
    pub key_hash: BuildKey,
    /// The hashed input files, in the order of `pkg.inputs` (the source
    /// tree, `key.sources`, is made of them).
    pub leaves: &'a [Leaf],
    pub tools: &'a BTreeMap<String, Tool>,
    pub manifest: ServiceManifest,
}

/// How a build ended when it did not produce an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line: why (exit status, missing output, escaping symlink…).
    pub reason: String,
    /// The builder's log, if it ran.
    pub log: Option<Digest>,
    /// The last lines of that log.
    pub log_tail: String,
    pub cause: FailureCause,
}

/// Whose fault a failure is: the CLI's exit code and hints follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The builder failed, or what it made was refused.
    Builder,
    /// brr or its environment failed (a full disk, an unwritable store).
    Environment,
    /// The store holds a damaged object (its bytes no longer hash to its
    /// name, which `reason` gives).
    DamagedStore,
}

impl FailureCause {
    /// brr's failure rather than the builder's: exit with the internal code.
    pub fn is_environment(self) -> bool {
        !matches!(self, Self::Builder)
    }
}

/// A successful build.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub artifact: ArtifactHash,
    pub log: Digest,
}

/// The conditions a builder runs under. [`Conditions::normal`] for builds;
/// verification varies what a reproducible build must not depend on.
#[derive(Debug, Clone)]
pub struct Conditions {
    /// Folder the sandbox is created in; `None`: brr picks per build (see
    /// [`crate::stage::default_base`]).
    pub sandbox_dir: Option<PathBuf>,
    /// Stage inputs in reverse order (changes directory order on some file systems).
    pub reverse_staging: bool,
    /// Pass the environment in reverse order (through `env -i`).
    pub reverse_env: bool,
    pub umask: u32,
    pub hostname: Option<String>,
    pub cpus: Option<usize>,
    /// Shared by the builds of one run: at most this many builders run at
    /// once; the threads that hold no permit stage, hash and store around
    /// them.
    pub builders: Option<std::sync::Arc<Permits>>,
    /// Network namespaces for sandboxed builders, one per permit of
    /// `builders` (see [`NetSlots`]); without them each builder makes its own.
    pub net_slots: Option<std::sync::Arc<NetSlots>>,
    /// The run's jobserver: each builder holds one of its tokens while it
    /// runs and gets its pipe (`MAKEFLAGS`), so builders' own sub-jobs
    /// share the `-j` too. `None`: builders get `$BRR_JOBS` only.
    pub jobserver: Option<std::sync::Arc<crate::jobserver::Jobserver>>,
    /// Where builds that miss every cache run, if not here (see
    /// [`crate::remote_exec`]).
    pub remote_exec: Option<std::sync::Arc<crate::remote_exec::RemoteExecutor>>,
}

/// A counting semaphore for builder processes (`-j`), whose permits are
/// numbered: permit `i` is held by one builder at a time (it picks the
/// builder's network slot).
#[derive(Debug)]
pub struct Permits {
    total: usize,
    free: std::sync::Mutex<Vec<usize>>,
    freed: std::sync::Condvar,
}

impl Permits {
    pub fn new(n: usize) -> Self {
        Self {
            total: n.max(1),
            free: std::sync::Mutex::new((0..n.max(1)).rev().collect()),
            freed: std::sync::Condvar::new(),
        }
    }

    /// How many builders may run at once (the build's `-j`).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Runs `f` holding one permit, given its number.
    pub fn with<T>(&self, f: impl FnOnce(usize) -> T) -> T {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let permit = loop {
            match free.pop() {
                Some(p) => break p,
                None => free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner),
            }
        };
        drop(free);
        let out = f(permit);
        self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(permit);
        self.freed.notify_one();
        out
    }
}

impl Conditions {
    /// Normal build conditions, with sandboxes created in `sandbox_dir`
    /// (default: picked per build, a tmpfs or the store's `tmp/`).
    pub fn normal(sandbox_dir: Option<&Path>) -> Self {
        Self {
            sandbox_dir: sandbox_dir.map(Path::to_path_buf),
            reverse_staging: false,
            reverse_env: false,
            umask: DEFAULT_UMASK,
            hostname: None,
            cpus: None,
            builders: None,
            net_slots: None,
            jobserver: None,
            remote_exec: None,
        }
    }
}

/// Whether builders see their sandbox at the fixed `/build` (what remote
/// execution needs: the paths in argv and env must mean the same there).
fn fixed_build_path(isolate: bool) -> bool {
    isolate && crate::sandbox::isolation().fixed_path()
}

/// A successful build whose outputs are written but neither durable nor
/// recorded: [`Store::commit`] its `batch` with its `record`, typically
/// together with other builds' (one sync and one transaction for all).
#[derive(Debug)]
pub struct Uncommitted {
    pub built: Built,
    pub batch: brr_store::PlacedBatch,
    pub record: ActionRecord,
    /// From the builder's start to its outputs being written: without the
    /// wait for a `-j` permit before it or for the commit after it.
    pub took: Duration,
}

/// Runs the builder of `action` and writes what it made to the store, up to
/// the commit; `Ok(Err(_))` is a failed build (recorded for `why` and
/// `log`) with how long it took from its builder's start (`None` when no
/// builder started), `Err` a failure to run it at all. `held` has the
/// bytes of input files already in memory (see
/// [`brr_graph::Inputs::take_held`]), which must be the bytes each leaf was
/// hashed from. `on_start` is called when the builder process is about to
/// start (after waiting for a `-j` permit).
pub fn execute_uncommitted(
    store: &Store,
    action: &Action<'_>,
    held: Vec<Option<HashedBytes>>,
    isolate: bool,
    cond: &Conditions,
    on_start: &dyn Fn(),
) -> Result<Result<Uncommitted, (Failure, Option<Duration>)>, ExecError> {
    // Timed from the builder's start: a build staged ahead waits for a
    // permit, and that wait is not how long it took.
    let began = std::cell::Cell::new(None::<Instant>);
    let timed_start = || {
        began.set(Some(Instant::now()));
        on_start();
    };
    build(store, action, held, isolate, cond, &timed_start, |puts, ran| {
        let batch = store.place_batch(puts)?;
        let took = began.get().map_or(Duration::ZERO, |t| t.elapsed());
        let record = ActionRecord {
            key: action.key_hash,
            artifact: ran.artifact,
            log: Some(ran.log),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            created_at: unix_now(),
            outputs: Some(ran.outputs),
        };
        Ok(Uncommitted { built: Built { artifact: ran.artifact, log: ran.log }, batch, record, took })
    })
    .map(|r| r.map_err(|f| (f, began.get().map(|t| t.elapsed()))))
}

/// What a builder run stored.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub outputs: TreeHash,
    /// The outputs with the action's service manifest.
    pub artifact: ArtifactHash,
    pub log: Digest,
}

/// The folder the sandbox of `action` goes in (created): the chosen one, or
/// one picked by the size of what it stages.
fn sandbox_base(
    store: &Store,
    action: &Action<'_>,
    deps: &[(&String, Artifact)],
    cond: &Conditions,
) -> Result<PathBuf, ExecError> {
    if let Some(dir) = &cond.sandbox_dir {
        fs_err::create_dir_all(dir).map_err(io(dir))?;
        return Ok(dir.clone());
    }
    let mut staged: u64 = action.leaves.iter().map(|l| l.size).sum();
    for (_, a) in deps {
        staged += store.get_object::<brr_hash::Tree>(a.outputs.0)?.total_size();
    }
    // Both candidates exist: the store makes `tmp/` when it opens, the
    // tmpfs folder is made when it is first probed.
    Ok(crate::stage::default_base(&store.tmp_dir(), staged))
}

/// Stores the sources and the key, runs the builder under `cond` and stores
/// its checked outputs and artifact. Records nothing in the action cache
/// (verification uses this directly).
pub fn run_builder(
    store: &Store,
    action: &Action<'_>,
    isolate: bool,
    cond: &Conditions,
) -> Result<Result<Ran, Failure>, ExecError> {
    build(store, action, Vec::new(), isolate, cond, &|| {}, |puts, ran| {
        store.put_many(puts)?;
        Ok(*ran)
    })
}

/// Small inputs of one build are held in memory up to this many bytes.
const HELD_INPUTS_MAX: u64 = 8 << 20;

/// The bytes of each input small enough to hold ([`HELD_INPUTS_MAX`] in
/// all, besides those `already` held): those, else read and checked against
/// its hash; `None` for the others.
fn read_held_inputs(
    action: &Action<'_>,
    mut already: Vec<Option<HashedBytes>>,
) -> Result<Vec<Option<HashedBytes>>, ExecError> {
    already.resize(action.leaves.len(), None);
    let mut budget = HELD_INPUTS_MAX;
    let read: Vec<bool> = action
        .leaves
        .iter()
        .zip(&already)
        .map(|(leaf, bytes)| {
            let hold = bytes.is_none() && leaf.size <= PACKED_MAX as u64 && leaf.size <= budget;
            budget -= if hold { leaf.size } else { 0 };
            hold
        })
        .collect();
    if !read.contains(&true) {
        return Ok(already);
    }
    let paths: Vec<&PathBuf> = action.pkg.inputs.values().collect();
    paths
        .into_par_iter()
        .with_min_len(32)
        .zip(action.leaves)
        .zip(already)
        .zip(read)
        .map(|(((path, leaf), bytes), read)| {
            Ok(if read { Some(read_checked(path, leaf.size, leaf.hash)?) } else { bytes })
        })
        .collect()
}

/// Runs the builder; hands what it made (sources, key, log, outputs and
/// artifact, in an order where each item's references come first) to
/// `store_outputs`.
fn build<T>(
    store: &Store,
    action: &Action<'_>,
    held: Vec<Option<HashedBytes>>,
    isolate: bool,
    cond: &Conditions,
    on_start: &dyn Fn(),
    store_outputs: impl FnOnce(&[Put<'_>], &Ran) -> Result<T, ExecError>,
) -> Result<Result<T, Failure>, ExecError> {
    let pkg = action.pkg;
    if pkg.fetch.is_some() {
        return fetch::build(store, action, isolate, cond, on_start, store_outputs);
    }
    // Small sources are read and checked against their hashes once, then
    // staged from memory; larger ones go into the store first and are staged
    // from there. Either way the builder sees the hashed bytes. All of them
    // are recorded, with the source tree and the key, in the same batch as
    // the outputs (one sync, one transaction), or with the log when the
    // build fails, so `why` can explain a failed build too.
    let key_bytes = action.key.encode();
    let held = read_held_inputs(action, held)?;
    let mut inputs_puts: Vec<Put<'_>> = pkg
        .inputs
        .values()
        .zip(action.leaves)
        .zip(&held)
        .map(|((abs, leaf), bytes)| match bytes {
            Some(b) => Put::HashedBlob(b),
            None => Put::File { path: abs, hash: leaf.hash },
        })
        .collect();
    let large: Vec<Put<'_>> = inputs_puts.iter().filter(|p| matches!(p, Put::File { .. })).copied().collect();
    store.place_many(&large)?;
    let sources = brr_graph::source_tree(pkg, action.leaves)?;
    inputs_puts.extend(sources.trees.iter().map(|(_, b)| Put::Bytes { kind: ObjectKind::Tree, bytes: b }));
    inputs_puts.push(Put::Bytes { kind: ObjectKind::Action, bytes: &key_bytes });

    // Hard links are safe only where Landlock keeps the builder's writes in
    // $OUT and $TMPDIR.
    let link = isolate && crate::sandbox::isolation().landlock();
    let deps: Vec<(&String, Artifact)> =
        action.key.deps.iter().map(|(name, a)| Ok((name, store.get_object(a.0)?))).collect::<Result<_, ExecError>>()?;
    let base = sandbox_base(store, action, &deps, cond)?;
    let mut sb = Sandbox::create(&base)?;
    stage(store, action, &held, &deps, &mut sb, link, cond.reverse_staging)?;
    let limits = limits(&pkg.body.limits);
    let spec = builder_spec(action, &sb, cond, limits, isolate)?;
    let log_path = sb.log();
    // Read back through the same descriptor once the builder is done.
    let log_file =
        std::fs::File::options().read(true).write(true).create_new(true).open(&log_path).map_err(io(&log_path))?;
    let time_limit = timeout::of(pkg);
    let start = |permit: Option<usize>| {
        // Held until the builder exits: its implicit job (see `jobserver`).
        let _token = cond.jobserver.as_ref().map(|j| j.acquire());
        on_start();
        let net_slot = permit.zip(cond.net_slots.as_ref()).map(|(i, slots)| slots.slot(i));
        spawn(&SandboxSpec { net_slot, ..spec }, &log_file, isolate)?.wait_timeout(time_limit)
    };
    let remote_status = run_remotely(action, &sb, cond, limits, isolate, &log_file, on_start);
    let ended = match (remote_status, &cond.builders) {
        (Some(ended), _) => ended,
        (None, Some(permits)) => permits.with(|i| start(Some(i)))?,
        (None, None) => start(None)?,
    };
    let timed_out = match ended {
        Ended::TimedOut(limit) => Some(timeout::reason(pkg, "builder", limit)),
        Ended::Exited(_) => None,
    };
    if let Some(reason) = &timed_out {
        timeout::note(&log_file, reason);
    }
    let log_bytes = read_log(&log_file).map_err(io(&log_path))?;
    let log = Digest::of(&log_bytes);
    let fail = |reason: String| {
        let mut puts = inputs_puts.clone();
        puts.push(Put::Bytes { kind: ObjectKind::Blob, bytes: &log_bytes });
        store.put_many(&puts)?;
        Ok(Err(Failure { reason, log: Some(log), log_tail: tail(&log_bytes, 15), cause: FailureCause::Builder }))
    };

    let status = match ended {
        Ended::TimedOut(_) => return fail(timed_out.unwrap_or_default()),
        Ended::Exited(status) => status,
    };
    if !status.success() {
        let hint = limit_hint(status, &log_bytes, limits);
        return fail(format!("builder {}{hint}", describe(status)));
    }
    let out = sb.out();
    let outputs: Vec<String> = action.key.outputs.iter().cloned().collect();
    // Small outputs are read once: hashed, then packed from memory.
    let snap = match snapshot_holding(&out, &outputs, PACKED_MAX as u64) {
        Ok(s) => s,
        Err(FsError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing = outputs.iter().find(|o| std::fs::symlink_metadata(out.join(o)).is_err());
            match missing {
                Some(missing) => return fail(format!("declared output `{missing}` was not produced in $OUT")),
                None => return Err(FsError::Io(e).into()),
            }
        }
        Err(e @ (FsError::EscapingSymlink { .. } | FsError::Special { .. } | FsError::NonUtf8 { .. })) => {
            return fail(format!("output rejected: {e}"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(over) = over_output_limit(&snap, &limits, "the outputs") {
        return fail(over);
    }
    // Log, outputs and artifact in one batch, the artifact last: it
    // references the output tree.
    let artifact_bytes = Artifact { outputs: snap.tree.root, manifest: action.manifest.clone() }.encode();
    let artifact = ArtifactHash(Digest::of(&artifact_bytes));
    let mut puts = inputs_puts.clone();
    puts.push(Put::Bytes { kind: ObjectKind::Blob, bytes: &log_bytes });
    puts.extend(snapshot_puts(&snap));
    puts.push(Put::Bytes { kind: ObjectKind::Artifact, bytes: &artifact_bytes });
    Ok(Ok(store_outputs(&puts, &Ran { outputs: snap.tree.root, artifact, log })?))
}

/// Runs the builder on the run's remote executor, if there is one and the
/// build path is fixed; `None` when it did not run there (it then runs
/// here, from an empty `out/` and log). A builder that ran there past its
/// timeout is [`Ended::TimedOut`], as here: running it again here would
/// only time out again.
fn run_remotely(
    action: &Action<'_>,
    sb: &Sandbox,
    cond: &Conditions,
    limits: Limits,
    isolate: bool,
    log_file: &std::fs::File,
    on_start: &dyn Fn(),
) -> Option<Ended> {
    let rx = cond.remote_exec.as_ref().filter(|_| fixed_build_path(isolate))?;
    // The executor's builder gets no jobserver: its pipe is here.
    let remote_cond = Conditions { jobserver: None, ..cond.clone() };
    let spec = builder_spec(action, sb, &remote_cond, limits, isolate).ok()?;
    let run = || {
        on_start();
        rx.run(action, &spec, timeout::of(action.pkg), sb.root(), log_file)
    };
    let ran = match &cond.builders {
        Some(permits) => permits.with(|_| run()),
        None => run(),
    };
    match ran {
        Ok(ended) => Some(ended),
        Err(why) => {
            rx.warn_fallback(&why);
            // Start afresh here: no half-written outputs or log.
            let _ = log_file.set_len(0);
            let _ = std::fs::remove_dir_all(sb.out());
            let _ = std::fs::create_dir(sb.out());
            None
        }
    }
}

/// Fills the sandbox: inputs (held ones from memory, the others from the
/// store), the working folder, tools and dependency artifacts.
fn stage(
    store: &Store,
    action: &Action<'_>,
    held: &[Option<HashedBytes>],
    deps: &[(&String, Artifact)],
    sb: &mut Sandbox,
    link: bool,
    reverse: bool,
) -> Result<(), ExecError> {
    let pkg = action.pkg;
    let mut staged: Vec<(&String, &Leaf, &Option<HashedBytes>)> =
        pkg.inputs.keys().zip(action.leaves).zip(held).map(|((rel, leaf), bytes)| (rel, leaf, bytes)).collect();
    if reverse {
        staged.reverse();
    }
    for (rel, leaf, bytes) in staged {
        match bytes {
            Some(b) => sb.stage_bytes(rel, b.bytes(), leaf.kind)?,
            None => sb.stage_file(store, rel, leaf.hash, leaf.kind, link)?,
        }
    }
    sb.src_dir(&sb.src().join(&pkg.dir))?;
    sb.set_tools(action.tools.iter().map(|(name, tool)| (name, &tool.path)))?;
    for (name, a) in deps {
        let dest = sb.deps().join(name);
        if link {
            store.materialize(a.outputs, &dest, true)?;
        } else {
            store.materialize_copy(a.outputs, &dest, true)?;
        }
    }
    Ok(())
}

/// The whole log as the builder left it: one `statx`, and one `pread`
/// unless it is empty, as most are.
fn read_log(log: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(log.metadata()?.len()).map_err(std::io::Error::other)?;
    let mut bytes = vec![0; len];
    log.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// Why `snap` (`what`: the outputs, the fetched files) is over the output
/// limit, if it is.
pub(crate) fn over_output_limit(snap: &brr_hash::fs::Snapshot, limits: &Limits, what: &str) -> Option<String> {
    let total: u64 = snap.files.iter().map(|f| f.leaf.size).sum();
    (total > limits.file_bytes).then(|| {
        format!(
            "{what} hold {} MiB, over the output limit of {} MiB: raise `limits: Limits(output_mib: …)`",
            total.div_ceil(MIB),
            limits.file_bytes / MIB
        )
    })
}

/// What the builder process runs, and with what, under `cond`.
fn builder_spec(
    action: &Action<'_>,
    sb: &Sandbox,
    cond: &Conditions,
    limits: Limits,
    isolate: bool,
) -> Result<SandboxSpec, ExecError> {
    let pkg = action.pkg;
    // With a fixed build path the builder sees its folder at `/build`, so
    // every path it is given (and may embed) is the same in every build.
    let fixed = isolate && crate::sandbox::isolation().fixed_path();
    let seen = if fixed { PathBuf::from(crate::sandbox::BUILD_PATH) } else { sb.root().to_path_buf() };
    let mut env = environment(&seen, &pkg.body.env, builder_jobs(cond));
    let mut writable = vec![sb.out(), sb.tmp()];
    let mut inherit_fds = Vec::new();
    if let Some(js) = &cond.jobserver {
        // Not in the key: they differ from run to run, like the sandbox's path.
        for (name, value) in js.env() {
            match env.iter_mut().find(|(k, _)| k == name) {
                // The package's own flags first, the jobserver's after them.
                Some((_, declared)) => *declared = format!("{declared} {value}"),
                None => env.push((name.to_owned(), value)),
            }
        }
        writable.push(js.fifo().to_path_buf());
        inherit_fds.extend(js.fds());
    }
    let mut program = action.tools[&pkg.body.builder[0]].path.clone();
    let mut args = pkg.body.builder[1..].to_vec();
    if cond.reverse_env {
        // std passes the environment sorted; `env -i` keeps the order given.
        let env_tool = which("env", &std::env::var_os("PATH").unwrap_or_default())?
            .unwrap_or_else(|| PathBuf::from("/usr/bin/env"));
        let mut wrapped = vec!["-i".to_owned()];
        wrapped.extend(env.iter().rev().map(|(k, v)| format!("{k}={v}")));
        wrapped.push(program.to_string_lossy().into_owned());
        wrapped.append(&mut args);
        program = env_tool;
        args = wrapped;
    }
    Ok(SandboxSpec {
        program,
        args,
        env,
        cwd: seen.join("src").join(&pkg.dir),
        writable,
        readable: readable(action, sb),
        hostname: cond.hostname.clone(),
        umask: cond.umask,
        cpus: cond.cpus,
        net_slot: None,
        host_network: false,
        limits: Some(limits),
        build_dir: fixed.then(|| sb.root().to_path_buf()),
        inherit_fds,
    })
}

/// The default limits of every build (README, "Limits").
pub const DEFAULT_OUTPUT_MIB: u64 = 1024;
pub const DEFAULT_PROCESSES: u32 = 1024;
pub const DEFAULT_MEMORY_MIB: u64 = 8192;

const MIB: u64 = 1 << 20;

/// A package's limits, brr's defaults where it sets none.
fn limits(decl: &LimitsDecl) -> Limits {
    Limits {
        file_bytes: decl.output_mib.unwrap_or(DEFAULT_OUTPUT_MIB).saturating_mul(MIB),
        processes: decl.processes.unwrap_or(DEFAULT_PROCESSES),
        data_bytes: decl.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB).saturating_mul(MIB),
    }
}

/// Why a failed builder may have failed, when its log or signal points at
/// one of its limits: a name the user can raise in `limits`.
fn limit_hint(status: std::process::ExitStatus, log: &[u8], limits: Limits) -> String {
    use std::os::unix::process::ExitStatusExt;
    let text = String::from_utf8_lossy(log);
    let has = |needle: &str| text.contains(needle);
    // A shell reports a child killed by SIGXFSZ as 128 + 25.
    if status.signal() == Some(libc::SIGXFSZ) || has("File size limit exceeded") || has("File too large") {
        let mib = limits.file_bytes / MIB;
        format!(" (a file reached the output limit of {mib} MiB: raise `limits: Limits(output_mib: …)`)")
    } else if has("Resource temporarily unavailable") || has("Cannot fork") {
        let n = limits.processes;
        format!(" (it may have reached the limit of {n} processes: raise `limits: Limits(processes: …)`)")
    } else if has("Cannot allocate memory") || has("MemoryError") || has("out of memory") {
        let mib = limits.data_bytes / MIB;
        format!(
            " (it may have reached the memory limit of {mib} MiB per process: raise `limits: Limits(memory_mib: …)`)"
        )
    } else {
        String::new()
    }
}

/// What the builder may read besides the system folders: its sandbox, its
/// tools' installations, the files of their closures and its host inputs
/// (those outside the system folders: a library a tool's RUNPATH finds in
/// `/opt`, a declared header folder).
fn readable(action: &Action<'_>, sb: &Sandbox) -> Vec<PathBuf> {
    let mut paths = vec![sb.root().to_path_buf()];
    let system = |p: &std::path::Path| brr_process::SYSTEM_READABLE.iter().any(|sys| p.starts_with(sys));
    for tool in action.tools.values() {
        for p in crate::sandbox::tool_readable(&tool.path) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    let files = action.tools.values().flat_map(|t| t.closure.files.keys()).chain(action.key.host_inputs.keys());
    for f in files.map(PathBuf::from) {
        if !system(&f) && !paths.iter().any(|p| f.starts_with(p)) {
            paths.push(f);
        }
    }
    paths
}

/// `$BRR_JOBS`: how many jobs a builder may run itself (`make -j`, a
/// compiler's threads): the build's `-j`, at most the CPUs it is confined
/// to. Not part of the build key: like the sandbox's path, it may change how
/// fast a build runs, never what it makes (`brr verify` checks that).
fn builder_jobs(cond: &Conditions) -> usize {
    let jobs = cond.builders.as_ref().map_or(1, |p| p.total());
    cond.cpus.map_or(jobs, |cpus| jobs.min(cpus.max(1)))
}

/// The builder's whole environment: brr's fixed values plus the declared
/// env; `root` is the sandbox folder as the builder sees it.
fn environment(root: &Path, declared: &BTreeMap<String, String>, jobs: usize) -> Vec<(String, String)> {
    let p = |name: &str| root.join(name).to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), p("tools")),
        ("HOME".into(), "/homeless-shelter".into()),
        ("TZ".into(), "UTC".into()),
        ("LC_ALL".into(), "C".into()),
        ("SOURCE_DATE_EPOCH".into(), SOURCE_DATE_EPOCH.into()),
        ("OUT".into(), p("out")),
        ("DEPS".into(), p("deps")),
        ("TMPDIR".into(), p("tmp")),
        ("BRR_JOBS".into(), jobs.to_string()),
    ];
    env.extend(declared.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

/// The last `n` lines of a log, lossily decoded.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
