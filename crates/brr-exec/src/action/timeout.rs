//! A build's declared timeout (`limits.timeout_s`): how long its builder may
//! run, here or on a remote executor, and how running past it is reported.

use std::io::Write as _;
use std::time::Duration;

use brr_graph::Package;

/// The package's effective timeout; none when it declares none.
pub(crate) fn of(pkg: &Package) -> Option<Duration> {
    pkg.body.limits.timeout_s.map(Duration::from_secs)
}

/// Why the build failed: its `what` (`builder`, `fetch command`) ran past
/// its timeout, and where that was declared.
pub(crate) fn reason(pkg: &Package, what: &str, limit: Duration) -> String {
    format!(
        "{what} ran past its timeout of {} s and was killed, with all it started (`limits.timeout_s`, {}): \
         raise `limits: Limits(timeout_s: …)`",
        limit.as_secs(),
        declared_at(pkg)
    )
}

/// Why a fetch's download failed: it ran past the timeout.
pub(crate) fn download_reason(pkg: &Package, url: &str, limit: Duration) -> String {
    format!(
        "download of `{}` ran past its timeout of {} s and was stopped (`limits.timeout_s`, {}): \
         raise `limits: Limits(timeout_s: …)`",
        brr_schema::cut(url),
        limit.as_secs(),
        declared_at(pkg)
    )
}

/// Where the package's timeout was declared: `FILE:LINE`, or the defaults.
fn declared_at(pkg: &Package) -> String {
    if pkg.inherited.limits.contains("timeout_s") {
        "in the workspace defaults, brr.ron".to_owned()
    } else {
        let span = pkg.source.locate(&[brr_schema::Step::Field("limits"), brr_schema::Step::Field("timeout_s")]);
        format!("{}:{}", pkg.manifest.display(), pkg.source.line_col(span.offset()).0)
    }
}

/// Ends the log with `reason`, so `brr log` says why the builder stopped
/// mid-way; a log that cannot be written still fails the build.
pub(crate) fn note(mut log: &std::fs::File, reason: &str) {
    let _ = writeln!(log, "\nbrr: {reason}");
}
