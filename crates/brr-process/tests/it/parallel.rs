//! Many sandboxed builders started at once from several threads (fork safety).

use std::thread;

use crate::{run, sh};

#[test]
fn many_builders_in_parallel_all_succeed() {
    let dirs: Vec<_> = (0..16).map(|_| tempfile::tempdir().unwrap()).collect();
    thread::scope(|scope| {
        for (i, dir) in dirs.iter().enumerate() {
            scope.spawn(move || {
                for round in 0..4 {
                    let mut spec = sh("echo \"$N\" > out && cat out", dir.path());
                    spec.env = vec![("N".into(), format!("{i}-{round}"))];
                    let (status, log) = run(&spec, true);
                    assert!(status.success(), "builder {i}-{round}: {status}: {log}");
                    assert_eq!(log, format!("{i}-{round}\n"));
                }
            });
        }
    });
}
