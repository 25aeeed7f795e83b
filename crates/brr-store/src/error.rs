//! `StoreError`: everything that can go wrong in the store, each naming the
//! path or hash involved.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use brr_hash::{DecodeError, Digest, ObjectKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("i/o error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error in `{}`", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("`{}` is not a brr store: {reason}", path.display())]
    NotAStore { path: PathBuf, reason: String },
    #[error(
        "store `{}` was written by a newer brr (schema version {found}, this brr knows up to {known})",
        path.display()
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("`{}` is not a valid brr archive (at byte {offset}): {reason}", path.display())]
    BadArchive { path: PathBuf, offset: u64, reason: String },
    #[error("object `{hash}` is not in the store")]
    NotFound { hash: Digest },
    #[error("`{}` hashes to `{actual}`, expected `{expected}`", path.display())]
    HashMismatch { path: PathBuf, expected: Digest, actual: Digest },
    #[error("object `{hash}` is corrupt on disk: `{}` hashes to `{actual}`", path.display())]
    Corrupt { hash: Digest, path: PathBuf, actual: Digest },
    #[error("object `{hash}` is not a valid {}", kind.as_str())]
    Invalid {
        hash: Digest,
        kind: ObjectKind,
        #[source]
        source: DecodeError,
    },
    #[error("object `{hash}` is a {}, not a {}", actual.as_str(), expected.as_str())]
    WrongKind { hash: Digest, expected: ObjectKind, actual: ObjectKind },
    #[error("{} `{hash}` references {} `{missing}`, which is not in the store", kind.as_str(), expected.as_str())]
    MissingReference { kind: ObjectKind, hash: Digest, missing: Digest, expected: ObjectKind },
    #[error("hash prefix `{prefix}` is too short: at least 8 hex characters")]
    PrefixTooShort { prefix: String },
    #[error("`{prefix}` is not a hash prefix: lowercase hex characters only, at most 64")]
    InvalidPrefix { prefix: String },
    #[error("no object in the store starts with `{prefix}`")]
    PrefixNotFound { prefix: String },
    #[error("hash prefix `{prefix}` is ambiguous: {}", list(candidates))]
    AmbiguousPrefix { prefix: String, candidates: Vec<Digest> },
    #[error("`{}` already exists", path.display())]
    DestinationExists { path: PathBuf },
    #[error("tree `{tree}` has an invalid entry `{name}`: {reason}")]
    InvalidTree { tree: Digest, name: String, reason: &'static str },
    #[error("invalid build status `{status}`: expected `built`, `cached` or `failed`")]
    InvalidStatus { status: String },
    #[error("{}", in_use(path, *wanted))]
    InUse { path: PathBuf, wanted: crate::Access },
    #[error("object `{hash}` is not in the store: a root must name a recorded object")]
    RootTarget { hash: Digest },
    #[error("invalid root name `{name}`: {reason}")]
    InvalidRootName { name: String, reason: &'static str },
    #[error("corrupt row in table `{table}` of `{}`: {reason}", path.display())]
    CorruptRow { path: PathBuf, table: &'static str, reason: String },
}

/// Candidates of an ambiguous prefix, shown in full.
fn list(candidates: &[Digest]) -> String {
    let mut out = String::new();
    for (i, c) in candidates.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}`{c}`");
    }
    out
}

/// The message of [`StoreError::InUse`].
fn in_use(path: &Path, wanted: crate::Access) -> String {
    let lock = path.join(crate::lock::LOCK_FILE);
    match wanted {
        crate::Access::Shared => format!(
            "store `{}` is in use: another brr process holds `{}` exclusively (compacting or deleting)",
            path.display(),
            lock.display()
        ),
        crate::Access::Exclusive => format!(
            "store `{}` is in use: another brr process has it open (it holds `{}`); deleting needs it closed everywhere",
            path.display(),
            lock.display()
        ),
    }
}

/// Attaches a path to I/O errors.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
    }
}
