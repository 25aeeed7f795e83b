//! The JSON Schemas in `schemas/` match the declaration types.
//! Regenerate with `BRR_BLESS=1 cargo test -p brr-schema`.

use std::path::PathBuf;

#[test]
fn schemas_in_repo_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    for (name, text) in brr_schema::json_schema() {
        let path = dir.join(name);
        if std::env::var_os("BRR_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "schemas/{name} is out of date: run `BRR_BLESS=1 cargo test -p brr-schema` and commit it"
        );
    }
}
