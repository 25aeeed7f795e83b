//! Tests of workspace loading, validation across packages, and input hashing.
#![expect(clippy::unwrap_used, reason = "a failing test panics, helpers included")]

mod environments;
mod inputs;
mod load;
mod procfile;
mod snapshot;
mod tools;

use std::path::Path;

/// Writes `files` (path, contents) below `dir`.
pub fn write_all(dir: &Path, files: &[(&str, &str)]) {
    for (rel, body) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// A package declaration with the given name, deps and extra fields.
pub fn lib(name: &str, deps: &[&str]) -> String {
    let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "Library(\n    name: \"{name}\",\n    inputs: [\"*.c\"],\n    deps: [{}],\n    tools: [\"sh\"],\n    builder: [\"sh\", \"-c\", \"true\"],\n    outputs: [\"x\"],\n)\n",
        deps.join(", ")
    )
}
