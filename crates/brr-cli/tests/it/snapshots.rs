//! Snapshots (insta) of what users read: a cycle diagnostic and the build
//! summary, with hashes, durations and temporary paths redacted.

use crate::{shop, workspace};

/// Runs `f` with the redactions every snapshot here uses.
fn redacted(f: impl FnOnce()) {
    insta::with_settings!({
        filters => vec![
            (r"[0-9a-f]{64}", "[HASH]"),
            (r"\(\d+\.\d+s\)", "([TIME])"),
            (r"/\S*brr-(test|scratch)-[A-Za-z0-9_]+", "[WS]"),
        ],
    }, {
        f();
    });
}

#[test]
fn cycle_error() {
    let ws = workspace()
        .sh_lib("a", &["b"], &[], "echo a > \"$OUT/f\"")
        .sh_lib("b", &["c"], &[], "echo b > \"$OUT/f\"")
        .sh_lib("c", &["a"], &[], "echo c > \"$OUT/f\"");
    let run = ws.brr(["build"]).code(2);
    assert_eq!(run.stdout, "");
    redacted(|| insta::assert_snapshot!(run.stderr));
}

#[test]
fn shop_build_stdout() {
    let run = shop().brr(["build"]).success();
    redacted(|| insta::assert_snapshot!(run.stdout));
}
