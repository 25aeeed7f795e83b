//! The JSON documents that `--json` prints: one type per document, built by
//! the commands and serialized here. Their JSON Schemas are generated from
//! these types ([`json_schemas`]) and kept in `schemas/output/`, where a test
//! fails when they drift (`BRR_BLESS=1 cargo test -p brr-cli --bin brr output`
//! regenerates them).
//!
//! Why types and not `serde_json::json!`: the contract is visible in one
//! place, checked by the compiler, and described by a schema that scripts
//! can validate against. Object keys are printed sorted (as they always
//! were): documents go through [`serde_json::Value`], whose maps are ordered,
//! so the order of a struct's fields is not part of the contract.
//!
//! Hashes are [`Hash`](struct@Hash): 64 lowercase hex characters in JSON.

pub mod build;
pub mod cache;
pub mod image;
pub mod inspect;
pub mod release;
pub mod run;
pub mod store;
pub mod verify;

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;

use self::build::{BuildDoc, GraphDoc, PlanDoc, WhyDoc};
use self::cache::{CachePullDoc, CachePushDoc, CacheStatsDoc, CacheStatusDoc};
use self::image::{ImageDoc, PushDoc};
use self::inspect::{HashDoc, ShowDoc, StoreCompactDoc, StoreVerifyDoc};
use self::release::{DiffDoc, LedgerVerifyDoc, ReleaseDoc, ReleasesDoc};
use self::run::PsDoc;
use self::store::{ArchiveDoc, GcDoc, StoreStatsDoc};
use self::verify::{VerifyDoc, VerifyReportDoc};
use crate::Failure;

/// A BLAKE3 digest (a build key, an artifact, a tree, a blob, a tool):
/// 64 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Hash(brr_hash::Digest);

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<brr_hash::Digest> for Hash {
    fn from(d: brr_hash::Digest) -> Self {
        Self(d)
    }
}

macro_rules! hash_from_role {
    ($($role:ident),*) => {$(
        impl From<brr_hash::$role> for Hash {
            fn from(h: brr_hash::$role) -> Self {
                Self(h.0)
            }
        }
    )*};
}
hash_from_role!(BuildKey, ArtifactHash, TreeHash, BlobHash, ToolDigest, ConfigHash, ReleaseHash, EntryHash);

impl JsonSchema for Hash {
    fn schema_name() -> Cow<'static, str> {
        "Hash".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A BLAKE3 digest: 64 lowercase hex characters.",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
        })
    }
}

/// Prints a document on stdout: pretty JSON, keys sorted, one trailing newline.
pub fn print<T: Serialize>(doc: &T) -> Result<(), Failure> {
    let value = serde_json::to_value(doc)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// The JSON Schema of every document, as (file name under `schemas/output/`,
/// pretty JSON ending in a newline).
pub fn json_schemas() -> Vec<(&'static str, String)> {
    vec![
        ("build.schema.json", schema_of::<BuildDoc>()),
        ("plan.schema.json", schema_of::<PlanDoc>()),
        ("why.schema.json", schema_of::<WhyDoc>()),
        ("graph.schema.json", schema_of::<GraphDoc>()),
        ("verify.schema.json", schema_of::<VerifyDoc>()),
        ("verify-report.schema.json", schema_of::<VerifyReportDoc>()),
        ("show.schema.json", schema_of::<ShowDoc>()),
        ("hash.schema.json", schema_of::<HashDoc>()),
        ("store-verify.schema.json", schema_of::<StoreVerifyDoc>()),
        ("store-compact.schema.json", schema_of::<StoreCompactDoc>()),
        ("cache-status.schema.json", schema_of::<CacheStatusDoc>()),
        ("cache-push.schema.json", schema_of::<CachePushDoc>()),
        ("cache-pull.schema.json", schema_of::<CachePullDoc>()),
        ("cache-stats.schema.json", schema_of::<CacheStatsDoc>()),
        ("release.schema.json", schema_of::<ReleaseDoc>()),
        ("releases.schema.json", schema_of::<ReleasesDoc>()),
        ("diff.schema.json", schema_of::<DiffDoc>()),
        ("ledger-verify.schema.json", schema_of::<LedgerVerifyDoc>()),
        ("ps.schema.json", schema_of::<PsDoc>()),
        ("gc.schema.json", schema_of::<GcDoc>()),
        ("store-stats.schema.json", schema_of::<StoreStatsDoc>()),
        ("export.schema.json", schema_of::<ArchiveDoc>()),
        ("import.schema.json", schema_of::<ArchiveDoc>()),
        ("image.schema.json", schema_of::<ImageDoc>()),
        ("push.schema.json", schema_of::<PushDoc>()),
    ]
}

/// The schema of what `T` serializes to: an `Option` field is required (it
/// is printed as `null`) unless it is skipped when `None`.
fn schema_of<T: JsonSchema>() -> String {
    let schema = SchemaSettings::default().for_serialize().into_generator().into_root_schema_for::<T>();
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The schemas in `schemas/output/` match the types; `BRR_BLESS=1`
    /// rewrites them. A file there that no document has fails too.
    #[test]
    fn output_schemas_in_repo_match_the_types() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/output");
        let schemas = super::json_schemas();
        if std::env::var_os("BRR_BLESS").is_some() {
            std::fs::create_dir_all(&dir).expect("create schemas/output");
            for (name, text) in &schemas {
                std::fs::write(dir.join(name), text).expect("write a schema");
            }
        }
        for (name, text) in &schemas {
            let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                on_disk == *text,
                "schemas/output/{name} is out of date: run `BRR_BLESS=1 cargo test -p brr-cli --bin brr output` and commit it"
            );
        }
        let mut stale: Vec<String> = std::fs::read_dir(&dir)
            .expect("read schemas/output")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !schemas.iter().any(|(name, _)| name == n))
            .collect();
        stale.sort();
        assert!(stale.is_empty(), "schemas/output has files no document generates: {stale:?}");
    }
}
