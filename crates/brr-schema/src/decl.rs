//! The declaration types: exactly what a `brr.ron` file may say. Serde only:
//! no I/O and no graph logic here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The workspace root `brr.ron`: where the packages are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Workspace")]
pub struct WorkspaceDecl {
    /// Globs of package folders, relative to the workspace root (`"services/*"`;
    /// `*` stays within one folder, `**` crosses folders).
    /// Each matching folder holds a package `brr.ron`.
    pub packages: Vec<String>,
    /// Remote caches shared with other machines, asked in this order on a
    /// local miss. CI can add more with `BRR_REMOTE_CACHE`.
    #[serde(default)]
    pub remotes: Vec<RemoteDecl>,
    /// Public keys (`"name:base64"`) whose signed cache entries this
    /// workspace accepts; nothing else is trusted. CI can add more with
    /// `BRR_TRUSTED_KEYS`.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// How long remote caches may hold a run up, and what a push does on a
    /// conflict. Environment variables override each field.
    #[serde(default)]
    pub remote_cache: RemoteCacheDecl,
    /// A Remote Execution API executor (`"grpc://HOST:PORT[/INSTANCE]"`)
    /// that builds missing every cache run on instead of this machine; its
    /// workers need the same tools at the same paths. `BRR_REMOTE_EXEC`
    /// overrides it (empty: build here).
    #[serde(default)]
    pub remote_exec: Option<String>,
    /// Settings every package inherits unless it sets its own: `env` per
    /// variable (the package's value wins), `tools` added to the package's,
    /// `limits` per field. The effective values enter the build key, so
    /// moving a setting here changes no key.
    #[serde(default)]
    pub defaults: DefaultsDecl,
}

/// Workspace-wide package settings ([`WorkspaceDecl::defaults`]).
///
/// Each field mirrors the package field of the same name; a new inheritable
/// field goes here, in `brr-graph`'s `defaults` module (how it merges and
/// where each value came from) and nowhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Defaults")]
pub struct DefaultsDecl {
    /// Environment variables of every builder; a package's own value of the
    /// same name wins. A package cannot remove one (an empty value is a value).
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Host programs every builder may call, on top of each package's own.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Host files every build reads (`"/usr/include/**"`), on top of each
    /// package's own `host_inputs`; absolute globs without `..`.
    #[serde(default)]
    pub host_inputs: Vec<String>,
    /// Resource limits of every build; a package's own limit wins per field.
    #[serde(default)]
    pub limits: LimitsDecl,
}

/// Limits and policies of the remote caches (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "RemoteCache")]
pub struct RemoteCacheDecl {
    /// Limit of one request, e.g. `"5s"` or `"500ms"` (`BRR_REMOTE_TIMEOUT`).
    #[serde(default)]
    pub request_timeout: Option<String>,
    /// Total time a run may spend waiting on remotes, e.g. `"60s"`
    /// (`BRR_REMOTE_BUDGET`). When used up, the run goes on without them.
    #[serde(default)]
    pub budget: Option<String>,
    /// Retries of a transient failure, with exponential backoff (`BRR_REMOTE_RETRIES`).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Failed operations in a row after which a remote is switched off for
    /// the run (`BRR_REMOTE_BREAKER`).
    #[serde(default)]
    pub breaker: Option<u32>,
    /// What a push does when the remote holds another artifact for the same
    /// key (`BRR_CACHE_ON_CONFLICT`): keep the first writer's entry (the
    /// default) or replace it.
    #[serde(default)]
    pub on_conflict: Option<OnConflict>,
}

/// [`RemoteCacheDecl::on_conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnConflict {
    /// Keep the entry already there (first writer wins).
    KeepFirst,
    /// Replace it with this runner's (last writer wins).
    Replace,
}

/// A remote cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Remote")]
pub struct RemoteDecl {
    /// `http://…` or `https://…` (Bazel HTTP cache protocol), `grpc://…`
    /// (Bazel Remote Execution API) or `file://…` (a shared folder).
    pub url: String,
    /// Only read from it, never push (e.g. for untrusted pull requests).
    #[serde(default)]
    pub read_only: bool,
}

/// A package `brr.ron`: a `Library(...)`, a `Service(...)` or a `Fetch(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename = "Package")]
pub enum PackageDecl {
    /// Built and depended upon; never released or run.
    Library(PackageBody),
    /// Built, released and run: declares process types and a release command.
    Service(PackageBody),
    /// Downloaded (a URL) or made by a command with the network, and kept
    /// only if its output tree has the pinned hash; depended upon like a
    /// library.
    Fetch(FetchBody),
}

impl PackageDecl {
    /// The fields as a package body (a fetch's: its tools, env, command and
    /// limits; no inputs, dependencies or outputs).
    pub fn body(&self) -> std::borrow::Cow<'_, PackageBody> {
        match self {
            Self::Library(b) | Self::Service(b) => std::borrow::Cow::Borrowed(b),
            Self::Fetch(f) => std::borrow::Cow::Owned(f.package_body()),
        }
    }

    /// The fetch's own fields, for a `Fetch(...)`.
    pub fn fetch(&self) -> Option<&FetchBody> {
        match self {
            Self::Fetch(f) => Some(f),
            _ => None,
        }
    }

    pub fn is_service(&self) -> bool {
        matches!(self, Self::Service(_))
    }
}

/// The fields of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageBody {
    /// Unique name of the package across the workspace.
    pub name: String,
    /// Globs of input files relative to the package folder (`"src/**/*.c"`):
    /// `*` and `?` stay within one folder, `**` crosses folders.
    /// Only these are staged into the sandbox; each glob must match a file.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Names of packages whose artifacts this build needs, mounted read-only
    /// at `$DEPS/<name>`.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Host programs the builder may call (`"cc"`); resolved on `PATH`, their
    /// digests enter the build key, and only they are on the builder's `PATH`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Globs of host files outside the workspace that the build reads and
    /// no tool's closure covers (`"/usr/include/**"`), as absolute paths
    /// with the glob rules of `inputs`. Their digests enter the build key;
    /// they are not staged (the sandbox reads them where they are). Each
    /// glob must match a file.
    #[serde(default)]
    pub host_inputs: Vec<String>,
    /// The builder command (argv); its first word must be a declared tool.
    pub builder: Vec<String>,
    /// Environment variables for the builder, on top of brr's fixed ones.
    /// Names are `[A-Za-z_][A-Za-z0-9_]*`, each given once.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Paths relative to `$OUT` that the builder produces (files or folders).
    pub outputs: Vec<String>,
    /// Services only: process types by name (`"web"`, `"worker"`).
    #[serde(default, deserialize_with = "unique_keys")]
    pub processes: BTreeMap<String, ProcessDecl>,
    /// Services only: the release command (e.g. migrations), run per release.
    #[serde(default)]
    pub release: Option<Vec<String>>,
    /// Resource limits of the build; each one left out takes brr's default.
    /// Not part of the build key: a limit decides whether a build may
    /// finish, not what it makes.
    #[serde(default)]
    pub limits: LimitsDecl,
}

/// The fields of a fetch: the only kind of package whose builder has the
/// network, because what it makes is checked against `hash` (as Nix's
/// fixed-output derivations and Bazel's `http_archive` `sha256`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// Unique name of the package across the workspace.
    pub name: String,
    /// `http://…` or `https://…`: brr downloads it to `$OUT/<file name>`
    /// (the URL's last path segment). Give `url` or `command`, not both.
    #[serde(default)]
    pub url: Option<String>,
    /// A command (argv; its program a declared tool) that writes the fetched
    /// files below `$OUT`, run in the sandbox but with the host's network.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Host programs the command may call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Environment variables for the command.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// The tree hash of the whole of `$OUT` (what `brr hash` prints for the
    /// folder), 64 lowercase hex characters. The build key is made of it
    /// alone, so another URL or mirror for the same files is a cache hit.
    pub hash: String,
    /// Limits of the download or command (`output_mib` bounds the download).
    #[serde(default)]
    pub limits: LimitsDecl,
}

impl FetchBody {
    /// The fetch as a package body: what the graph and scheduler share with
    /// builds (name, tools, env, command as the builder, limits).
    pub fn package_body(&self) -> PackageBody {
        PackageBody {
            name: self.name.clone(),
            inputs: Vec::new(),
            deps: Vec::new(),
            host_inputs: Vec::new(),
            tools: self.tools.clone(),
            builder: self.command.clone().unwrap_or_default(),
            env: self.env.clone(),
            outputs: Vec::new(),
            processes: BTreeMap::new(),
            release: None,
            limits: self.limits.clone(),
        }
    }
}

/// Resource limits of one build (`limits: Limits(output_mib: 4096)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Limits")]
pub struct LimitsDecl {
    /// The most the declared outputs may hold in all, and any one file the
    /// builder writes, in MiB (default 1024).
    #[serde(default)]
    pub output_mib: Option<u64>,
    /// The most processes the build may have at once (default 1024; at
    /// least 300).
    #[serde(default)]
    pub processes: Option<u32>,
    /// The most data memory (heap) any one process of the build may use, in
    /// MiB (default 8192).
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// The most wall-clock seconds one build may run (default: none); past
    /// it the builder is killed with all it started and the build fails.
    /// Not in the build key: it changes no output.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// A process type of a service. Every setting is optional: one left out
/// takes the run stage's default. They are part of the build hash, like
/// the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Process")]
pub struct ProcessDecl {
    /// Command (argv), relative to the artifact folder or a host program.
    pub command: Vec<String>,
    /// When it is started again after it exits: `"never"`, `"on-failure"`
    /// (the default: a non-zero exit or a signal) or `"always"`.
    #[serde(default)]
    pub restart: Option<RestartDecl>,
    /// Seconds between SIGTERM and SIGKILL when it is stopped (default 10).
    #[serde(default)]
    pub grace_s: Option<u32>,
    /// When it is ready for traffic: `Tcp` (its `PORT` accepts a
    /// connection), `Http(path: "/health")` (a GET on its `PORT` answers
    /// 2xx), `Command(["sh", "-c", "…"])` (exits 0), or `None` (once
    /// started). Default: `Tcp` for `web`, `None` for other types.
    #[serde(default, deserialize_with = "declared")]
    #[schemars(with = "ReadyDecl")]
    pub ready: Option<ReadyDecl>,
}

impl ProcessDecl {
    /// A process type with only a command (every setting the default).
    pub fn command(command: Vec<String>) -> Self {
        Self { command, restart: None, grace_s: None, ready: None }
    }
}

/// A restart policy, written as a string (`restart: "never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecl {
    Never,
    OnFailure,
    Always,
}

impl RestartDecl {
    /// Every policy, as written.
    pub const ALL: [(&'static str, Self); 3] =
        [("never", Self::Never), ("on-failure", Self::OnFailure), ("always", Self::Always)];

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, r)| *r == self).map_or("", |(s, _)| s)
    }
}

impl Serialize for RestartDecl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RestartDecl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::ALL.iter().find(|(s, _)| *s == text).map(|(_, r)| *r).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown restart policy `{}`: expected `never`, `on-failure` or `always`",
                crate::cut(&text)
            ))
        })
    }
}

impl JsonSchema for RestartDecl {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Restart".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "When an exited process is started again.",
            "type": "string",
            "enum": ["never", "on-failure", "always"],
        })
    }
}

/// A readiness probe (`ready: Http(path: "/health")`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Ready")]
pub enum ReadyDecl {
    /// `127.0.0.1:PORT` accepts a TCP connection.
    Tcp,
    /// `GET path` on `127.0.0.1:PORT` answers 2xx.
    Http {
        /// Starts with `/`.
        path: String,
    },
    /// This command (argv), run in the release folder with the process's
    /// environment, exits 0 (each try is given 5 s).
    Command(Vec<String>),
    /// Ready once started.
    None,
}

/// A field that is `None` only when left out: in RON, a written value is
/// the inner type's, so `ready: None` is the probe `None`, not "not
/// declared" (which `IMPLICIT_SOME` would make it). Binary formats (the
/// saved workspace load) keep the option as it is.
fn declared<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    if d.is_human_readable() { T::deserialize(d).map(Some) } else { Option::<T>::deserialize(d) }
}

/// Start of the message of a key given twice in one map (see [`unique_keys`]);
/// the parser locates it in the text.
pub(crate) const DUPLICATE_KEY: &str = "duplicate key ";

/// A map whose keys are unique: serde's own maps keep the last of two equal
/// keys, which would let a second `"CFLAGS"` silently replace the first.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map with unique keys")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY}`{key}`")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    d.deserialize_map(Unique(std::marker::PhantomData))
}

/// The workspace root `environments.ron`: where releases go, and each
/// service's config there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Environments")]
pub struct EnvironmentsDecl {
    /// Environment names in promotion order (`["staging", "production"]`):
    /// a release is promoted from one to any later one. Environments left
    /// out (`dev`) are released to, but never promoted from or to.
    #[serde(default)]
    pub promotion: Vec<String>,
    /// Environments by name (`[a-z][a-z0-9_-]*`).
    #[serde(deserialize_with = "unique_keys")]
    pub environments: BTreeMap<String, EnvironmentDecl>,
}

/// One environment: config for every service, and per service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Environment")]
pub struct EnvironmentDecl {
    /// Variables of every service in this environment; a service's own
    /// value of the same name wins. Names are `[A-Za-z_][A-Za-z0-9_]*`.
    #[serde(default, deserialize_with = "unique_keys")]
    pub vars: BTreeMap<String, String>,
    /// Names of secrets every service gets from the environment of the
    /// process that releases or runs it. Values never appear in a file.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Config of single services (by package name), merged over the above.
    #[serde(default, deserialize_with = "unique_keys")]
    pub services: BTreeMap<String, ServiceEnvDecl>,
}

/// One service's config in one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "ServiceEnv")]
pub struct ServiceEnvDecl {
    /// Variables of this service; they override the environment's.
    #[serde(default, deserialize_with = "unique_keys")]
    pub vars: BTreeMap<String, String>,
    /// Names of secrets of this service, on top of the environment's.
    #[serde(default)]
    pub secrets: Vec<String>,
}
