//! The command line as clap types. No behaviour here.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "brr", version, about = "build → release → run: a content-addressed build and release graph")]
pub struct Cli {
    /// Run as if started in DIR (the workspace root).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Store folder [default: .brr in the workspace root].
    #[arg(long, global = true, value_name = "DIR", env = "BRR_STORE")]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build targets (default: all) and print their artifact hashes.
    Build {
        targets: Vec<String>,
        /// Builders running at once [default: number of cores]; brr's own
        /// staging and storing runs beside them.
        #[arg(short, long, value_name = "N")]
        jobs: Option<usize>,
        /// Run builders without namespaces and Landlock.
        #[arg(long)]
        no_sandbox: bool,
        /// Exit 1 when a remote cache holds another artifact for a key built
        /// here (a non-reproducible build); also `BRR_FAIL_ON_CONFLICT=1`.
        #[arg(long)]
        fail_on_conflict: bool,
        /// With one target: a read-only copy of its artifact, linked at PATH
        /// (a symlink, replaced atomically, as Nix's `result`).
        #[arg(long, value_name = "PATH")]
        out_link: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print one file of a target's artifact (built first if needed).
    Cat { target: String, path: String },
    /// Show what is cached and what would build, without building.
    Plan {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild targets without the cache under varied conditions and compare their outputs.
    Verify {
        targets: Vec<String>,
        /// Rebuilds per target (at least 2).
        #[arg(long, default_value_t = 2, value_name = "N")]
        rounds: u32,
        /// Also hand differing outputs to diffoscope, when it is installed.
        #[arg(long)]
        diffoscope: bool,
        /// Summarize what has been verified so far instead of verifying.
        #[arg(long, conflicts_with_all = ["targets", "diffoscope"])]
        report: bool,
        /// Run builders without namespaces and Landlock.
        #[arg(long)]
        no_sandbox: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every input of a target's key, and what changed since its previous build.
    Why {
        target: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the dependency graph.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Print any stored object by hash or unique prefix (at least 8 hex characters).
    Show {
        hash: String,
        #[arg(long)]
        json: bool,
    },
    /// Hash a file or folder as brr does (BLAKE3; folders as Merkle trees), without a store.
    Hash {
        paths: Vec<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the log of a target's last build, or of a release's release phase.
    Log {
        #[arg(required_unless_present = "release", conflicts_with = "release")]
        target: Option<String>,
        /// A release hash or unique prefix.
        #[arg(long, value_name = "HASH")]
        release: Option<String>,
    },
    /// Build the services (default: all), make their releases for ENV, run
    /// each release command, and record them in ENV's ledger.
    Release {
        services: Vec<String>,
        #[arg(long, value_name = "ENV")]
        env: String,
        /// A note recorded with each ledger entry.
        #[arg(short = 'm', long = "message", value_name = "NOTE")]
        note: Option<String>,
        /// Run builders without namespaces and Landlock.
        #[arg(long)]
        no_sandbox: bool,
        #[arg(long)]
        json: bool,
    },
    /// The ledger of an environment, newest first; `*` marks current releases.
    Releases {
        #[arg(long, value_name = "ENV")]
        env: String,
        service: Option<String>,
        /// Show at most N entries.
        #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Release each service's current build of one environment into the
    /// next, with the next one's config. Never builds.
    Promote {
        #[arg(long, value_name = "ENV")]
        from: String,
        #[arg(long, value_name = "ENV")]
        to: String,
        services: Vec<String>,
        #[arg(short = 'm', long = "message", value_name = "NOTE")]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Append a new entry for an earlier release of a service (default: the
    /// previous succeeded one) and run its release command again.
    Rollback {
        #[arg(long, value_name = "ENV")]
        env: String,
        service: String,
        /// The version to go back to, e.g. `v3`.
        #[arg(long, value_name = "vN", value_parser = parse_version)]
        to: Option<u64>,
        #[arg(short = 'm', long = "message", value_name = "NOTE")]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Two releases side by side: build files, config and processes. Each is
    /// a release hash (or prefix), `ENV` (its current release) or `ENV@vN`.
    Diff {
        a: String,
        b: String,
        /// The service, for environments that release several.
        #[arg(short, long)]
        service: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A release as a reproducible OCI image. RELEASE is a release hash (or
    /// prefix), `ENV` (its current release) or `ENV@vN`.
    Image {
        release: String,
        /// Where to write it: a folder (`oci-layout`) or a file (`oci-archive`).
        #[arg(short, long, value_name = "DIR|FILE")]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = ImageFormat::OciLayout)]
        format: ImageFormat,
        /// The process type to run as the entrypoint [default: web].
        #[arg(long, value_name = "TYPE")]
        process: Option<String>,
        /// The service, for environments that release several.
        #[arg(short, long)]
        service: Option<String>,
        /// The tag the image is named by in the layout.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// Put the release on this image from a registry
        /// (`HOST[:PORT]/REPO[:TAG]` or `…@sha256:…`).
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// Allow plain HTTP to a base's registry that is not on this machine.
        #[arg(long)]
        plain_http: bool,
        #[arg(long)]
        json: bool,
    },
    /// Push a release's OCI image to a registry, uploading only the blobs it
    /// lacks, and print it as `HOST/REPO@sha256:…`. Credentials:
    /// `BRR_REGISTRY_USER`, `BRR_REGISTRY_PASSWORD`, or a Docker-style auth
    /// file (`$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
    /// `~/.docker/config.json`).
    Push {
        release: String,
        /// `HOST[:PORT]/REPO[:TAG]`.
        reference: String,
        /// The process type to run as the entrypoint [default: web].
        #[arg(long, value_name = "TYPE")]
        process: Option<String>,
        /// The service, for environments that release several.
        #[arg(short, long)]
        service: Option<String>,
        /// Put the release on this image from a registry
        /// (`HOST[:PORT]/REPO[:TAG]` or `…@sha256:…`).
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// Allow plain HTTP to a registry that is not on this machine.
        #[arg(long)]
        plain_http: bool,
        #[arg(long)]
        json: bool,
    },
    /// Supervise a release's processes: RELEASE is a release hash (or a
    /// unique prefix) or an environment (its current releases, followed
    /// through promotions and rollbacks without downtime).
    Run {
        release: String,
        /// Only these process types.
        #[arg(long = "process", value_name = "TYPE")]
        processes: Vec<String>,
        /// Instances per process type, e.g. `web=2,worker=1` (default 1 each).
        #[arg(long, value_name = "TYPE=N,…")]
        formation: Option<String>,
        /// When an exited process is started again.
        #[arg(long, value_enum, default_value_t = RestartPolicy::OnFailure)]
        restart: RestartPolicy,
        /// Seconds between SIGTERM and SIGKILL when stopping.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        grace: f64,
    },
    /// Processes of running runs (from any terminal), lost runs and recent ones.
    Ps {
        #[arg(long)]
        json: bool,
    },
    /// The output of a run (default: the newest): a run id or what was run (an environment).
    Logs {
        run: Option<String>,
        /// Only this process type.
        #[arg(long, value_name = "TYPE")]
        process: Option<String>,
        /// Keep printing while the run goes on.
        #[arg(short, long)]
        follow: bool,
    },
    /// Build, release every service into ENV, then run them until Ctrl-C.
    Up {
        env: String,
        #[arg(short = 'm', long = "message", value_name = "NOTE")]
        note: Option<String>,
        #[arg(long)]
        no_sandbox: bool,
        /// Stop after releasing: do not run.
        #[arg(long)]
        no_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete what no root keeps: releases beyond the last N of every
    /// environment and service lose their builds, unrooted builds go, packs
    /// are compacted. Needs the store closed everywhere else.
    Gc {
        /// Print what would be freed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Succeeded releases kept per environment and service before the
        /// current one.
        #[arg(long, default_value_t = 5, value_name = "N")]
        keep_last: usize,
        /// Also keep unrooted builds, most recently used first, while the
        /// store's objects fit in SIZE (`500M`, `2G`, `1GiB`, bytes).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Wait for other brr processes to close the store instead of failing.
        #[arg(long)]
        wait: bool,
        /// Rewrite every pack that holds freed bytes, so all the space comes
        /// back now (by default a pack is rewritten once a quarter of it is
        /// dead: rewriting a large pack to win back a few percent is slow).
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a release's or a build's closure to one archive file.
    Export {
        /// A release or build (artifact) hash, or a prefix of one.
        hash: String,
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Read an archive written by `brr export` into the store: every object
    /// is checked first, and a bad file imports nothing.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Keep a release (its build and config) through `brr gc`.
    Pin { release: String },
    /// Stop keeping a pinned release; the next `brr gc` may delete its build.
    Unpin { release: String },
    /// The ledger's integrity.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Remote caches shared with other machines.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Signing keys for the remote cache.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Serve a Remote Execution API cluster's Bots service (BuildGrid) as a
    /// worker: run each leased action in brr's sandbox, its tools required
    /// here with the digests the action names. Stops on SIGTERM or SIGINT
    /// after finishing the actions it holds.
    Worker {
        /// The server: `grpc://HOST:PORT` or `grpcs://HOST:PORT`.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The REAPI instance name (default: the server's default instance).
        #[arg(long, value_name = "NAME", default_value = "")]
        instance: String,
        /// Actions run at once (one bot session each).
        #[arg(long, value_name = "N", default_value_t = 1)]
        slots: usize,
        /// Where input roots are written (default: a temporary folder).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// Write the JSON Schemas of the declaration files into DIR, and those of
    /// the `--json` documents into DIR/output.
    #[command(hide = true)]
    Schema { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Walk every environment's hash chain; name the first broken link.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

/// `123`, `500K`, `500M`, `2G`, `1T` (powers of 1024; `KiB`, `MB`, `B`
/// suffixes are read alike), or a decimal (`1.5G`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let shift: i32 = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("`{s}` is not a size: expected a number with K, M, G or T")),
    };
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size: expected a number with K, M, G or T"))?;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "sizes are far below 2^53")]
    Ok((n * 2f64.powi(shift)) as u64)
}

/// `v3` or `3`.
fn parse_version(s: &str) -> Result<u64, String> {
    s.strip_prefix('v')
        .unwrap_or(s)
        .parse::<u64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| format!("`{s}` is not a version: expected `vN` with N ≥ 1"))
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Which remotes are reachable, how many of the workspace's keys they
    /// hold, and where two machines built different bytes from the same key.
    Status {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Push the targets' local builds (needs BRR_SIGNING_KEY).
    Push {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Fetch the targets' builds without building anything.
    Pull {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The remote caches over this store's recent builds: hit rate, bytes,
    /// time waiting and time saved, per target.
    Stats {
        /// How many of the latest builds that asked a remote to count.
        #[arg(long, default_value_t = 20, value_name = "N")]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new private signing key to FILE and print its public key.
    Generate {
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// The key's name [default: this host's name].
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-hash every object and check every reference.
    Verify {
        /// Drop damaged rows and everything that depends on them (the next
        /// build rebuilds them), and corrupt files; all or nothing.
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// Objects and bytes by kind, packs and their dead fraction, roots, and
    /// the largest targets (their latest build's closure).
    Stats {
        /// How many of the largest targets to list.
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// Rewrite packs that hold dead bytes and remove leftovers of killed
    /// processes; deletes no object. Needs the store closed everywhere else.
    Compact {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

/// How `brr image` writes an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// An OCI image layout folder (`skopeo inspect oci:DIR:TAG`).
    OciLayout,
    /// A tar of an OCI image layout (`oci-archive:FILE:TAG`).
    OciArchive,
}
