//! Whole-store integrity check. Reads everything, changes nothing.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use brr_hash::{DIGEST_LEN, Digest, ObjectKind};
use rayon::prelude::*;

use crate::cas::hash_path;
use crate::db::{KindCol, from_sql_u64};
use crate::error::IoContext;
use crate::objects::{references, satisfies};
use crate::{Store, StoreError};

/// What [`Store::verify`] found. The store is sound when `problems` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects recorded in the database.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files in `cas/` without a row: left by interrupted puts; harmless.
    pub orphans: u64,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The rows, read in one transaction so they are consistent with each other.
struct Rows {
    objects: HashMap<Digest, (ObjectKind, u64)>,
    /// Objects whose bytes are in the database, already checked.
    inline: HashSet<Digest>,
    inline_checks: Vec<FileCheck>,
    /// Objects whose bytes are in a pack: (object, pack id, pack name, offset).
    packed: Vec<(Digest, i64, String, u64)>,
    /// (what names them, object, kind it must have)
    references: Vec<(String, Digest, ObjectKind)>,
    integrity: Vec<String>,
}

/// What checking one CAS file found.
#[derive(Default)]
struct FileCheck {
    problems: Vec<String>,
    refs: Vec<(Digest, Digest, ObjectKind, ObjectKind)>,
}

/// An error and its causes on one line.
fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(s, ": {c}");
        cause = c.source();
    }
    s
}

fn digest_of(v: Option<[u8; DIGEST_LEN]>) -> Option<Digest> {
    v.map(Digest::from_bytes)
}

impl Store {
    /// Checks the whole store: re-hashes every CAS file (in parallel), checks
    /// that every row's objects exist with the recorded kind and size, that
    /// tree, action and artifact objects decode and reference recorded
    /// objects, and SQLite's own `quick_check`. Orphan files are counted, not
    /// flagged. Never modifies anything.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        // Rows first: every row committed by then has its file in place, and
        // files are never removed, so the walk below sees them all.
        let rows = self.read_rows()?;
        let files = self.cas_files()?;
        let mut report = VerifyReport {
            objects: rows.objects.len() as u64,
            bytes: rows.objects.values().map(|(_, size)| size).sum(),
            orphans: 0,
            problems: rows.integrity.iter().map(|l| format!("database: {l}")).collect(),
        };
        report.problems.extend(files.problems);
        let mut checks: Vec<FileCheck> =
            files.found.par_iter().map(|(d, path)| check_file(*d, path, rows.objects.get(d).copied())).collect();
        checks.extend(rows.inline_checks);
        checks.par_extend(rows.packed.par_iter().map(|(d, id, name, offset)| {
            let row = rows.objects.get(d).copied();
            let size = row.map_or(0, |(_, size)| size);
            match self.pack_bytes(*id, name, *offset, size) {
                Ok(bytes) => check_small(*d, &bytes, row, &format!("in pack `{name}`")),
                Err(e) => FileCheck { problems: vec![format!("object `{d}`: {}", chain(&e))], refs: Vec::new() },
            }
        }));
        let on_disk: HashSet<Digest> = files.found.iter().map(|(d, _)| *d).collect();
        let packed: HashSet<Digest> = rows.packed.iter().map(|(d, ..)| *d).collect();
        report.orphans = on_disk.iter().filter(|d| !rows.objects.contains_key(d)).count() as u64;
        for check in checks {
            report.problems.extend(check.problems);
            for (owner, r, owner_kind, expected) in check.refs {
                if !rows.objects.get(&r).is_some_and(|(k, _)| satisfies(*k, expected)) {
                    report.problems.push(format!(
                        "{} `{owner}` references {} `{r}`, which is not recorded as one",
                        owner_kind.as_str(),
                        expected.as_str()
                    ));
                }
            }
        }
        let mut missing: Vec<&Digest> = rows
            .objects
            .keys()
            .filter(|d| !on_disk.contains(d) && !rows.inline.contains(d) && !packed.contains(d))
            .collect();
        missing.sort();
        for d in missing {
            report.problems.push(format!(
                "object `{d}` is recorded but its bytes are missing (neither `{}` nor in a pack or the database)",
                self.object_path(*d).display()
            ));
        }
        for (owner, r, expected) in &rows.references {
            if !rows.objects.get(r).is_some_and(|(k, _)| satisfies(*k, *expected)) {
                report
                    .problems
                    .push(format!("{owner} names {} `{r}`, which is not recorded as one", expected.as_str()));
            }
        }
        Ok(report)
    }

    fn read_rows(&self) -> Result<Rows, StoreError> {
        self.db.read(|tx| {
            let mut objects = HashMap::new();
            let mut stmt = tx.prepare("SELECT hash, kind, size FROM objects")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let d = Digest::from_bytes(r.get(0)?);
                objects.insert(d, (r.get::<_, KindCol>(1)?.0, from_sql_u64(r.get(2)?)));
            }
            let (mut inline, mut inline_checks) = (HashSet::new(), Vec::new());
            let mut stmt = tx.prepare("SELECT hash, data FROM object_data")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let d = Digest::from_bytes(r.get(0)?);
                let data = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                inline.insert(d);
                inline_checks.push(check_small(d, data, objects.get(&d).copied(), "in the database"));
            }
            let mut packed = Vec::new();
            let mut stmt =
                tx.prepare("SELECT o.hash, p.id, p.name, o.pack_offset FROM objects o JOIN packs p ON p.id = o.pack")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                packed.push((Digest::from_bytes(r.get(0)?), r.get(1)?, r.get(2)?, from_sql_u64(r.get(3)?)));
            }
            let mut references = Vec::new();
            let mut stmt = tx.prepare("SELECT key, artifact, log FROM action_cache")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let key = Digest::from_bytes(r.get(0)?);
                references.push((
                    format!("action cache entry `{key}`"),
                    Digest::from_bytes(r.get(1)?),
                    ObjectKind::Artifact,
                ));
                if let Some(log) = digest_of(r.get(2)?) {
                    references.push((format!("action cache entry `{key}`"), log, ObjectKind::Blob));
                }
            }
            let mut stmt = tx.prepare("SELECT id, target, artifact, log FROM builds")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let owner = format!("build #{} of `{}`", r.get::<_, i64>(0)?, r.get::<_, String>(1)?);
                if let Some(a) = digest_of(r.get(2)?) {
                    references.push((owner.clone(), a, ObjectKind::Artifact));
                }
                if let Some(log) = digest_of(r.get(3)?) {
                    references.push((owner, log, ObjectKind::Blob));
                }
            }
            let mut stmt = tx.prepare("PRAGMA quick_check")?;
            let integrity: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            let integrity = integrity.into_iter().filter(|l| l != "ok").collect();
            Ok(Rows { objects, inline, inline_checks, packed, references, integrity })
        })
    }

    /// Every file under `cas/` whose name is a digest, and problems for
    /// anything else found there.
    fn cas_files(&self) -> Result<CasFiles, StoreError> {
        let mut out = CasFiles::default();
        let cas = self.cas_dir();
        for shard in std::fs::read_dir(&cas).at(&cas)? {
            let shard = shard.at(&cas)?;
            let shard_path = shard.path();
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            let is_shard = shard_name.len() == 2 && shard.file_type().at(&shard_path)?.is_dir();
            if !is_shard {
                out.problems.push(format!("unexpected entry `{}` in the CAS", shard_path.display()));
                continue;
            }
            for file in std::fs::read_dir(&shard_path).at(&shard_path)? {
                let file = file.at(&shard_path)?;
                let path = file.path();
                let name = format!("{shard_name}{}", file.file_name().to_string_lossy());
                match name.parse::<Digest>() {
                    Ok(d) if file.file_type().at(&path)?.is_file() => out.found.push((d, path)),
                    _ => out.problems.push(format!("unexpected entry `{}` in the CAS", path.display())),
                }
            }
        }
        out.found.sort();
        Ok(out)
    }
}

#[derive(Default)]
struct CasFiles {
    found: Vec<(Digest, PathBuf)>,
    problems: Vec<String>,
}

/// Re-hashes one CAS file; for a recorded tree, action or artifact, also
/// decodes it and lists its references.
fn check_file(d: Digest, path: &Path, row: Option<(ObjectKind, u64)>) -> FileCheck {
    let mut check = FileCheck::default();
    let kind = row.map_or(ObjectKind::Blob, |(k, _)| k);
    let read = if kind == ObjectKind::Blob {
        hash_path(path).map(|(actual, len)| (actual, len, None))
    } else {
        std::fs::read(path).map(|bytes| (Digest::of(&bytes), bytes.len() as u64, Some(bytes)))
    };
    let (actual, len, bytes) = match read {
        Ok(r) => r,
        Err(e) => {
            check.problems.push(format!("object `{d}`: cannot read `{}`: {e}", path.display()));
            return check;
        }
    };
    if actual != d {
        check.problems.push(format!("object `{d}` is corrupt: `{}` hashes to `{actual}`", path.display()));
        return check;
    }
    if let Some((_, size)) = row
        && size != len
    {
        check.problems.push(format!("object `{d}` is recorded with {size} bytes but has {len}"));
    }
    if let Some(bytes) = bytes {
        match references(kind, d, &bytes) {
            Ok(refs) => check.refs = refs.into_iter().map(|(r, expected)| (d, r, kind, expected)).collect(),
            Err(e) => check.problems.push(chain(&e)),
        }
    }
    check
}

/// Checks the bytes of a small object (in a pack or the database), as [`check_file`]
/// does a file's.
fn check_small(d: Digest, data: &[u8], row: Option<(ObjectKind, u64)>, place: &str) -> FileCheck {
    let mut check = FileCheck::default();
    let Some((kind, size)) = row else {
        check.problems.push(format!("object `{d}` has bytes {place} but no `objects` row"));
        return check;
    };
    let actual = Digest::of(data);
    if actual != d {
        check.problems.push(format!("object `{d}` is corrupt: its bytes {place} hash to `{actual}`"));
        return check;
    }
    if size != data.len() as u64 {
        check.problems.push(format!("object `{d}` is recorded with {size} bytes but has {}", data.len()));
    }
    if kind != ObjectKind::Blob {
        match references(kind, d, data) {
            Ok(refs) => check.refs = refs.into_iter().map(|(r, expected)| (d, r, kind, expected)).collect(),
            Err(e) => check.problems.push(chain(&e)),
        }
    }
    check
}
