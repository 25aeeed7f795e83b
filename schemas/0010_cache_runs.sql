-- brr store, schema version 10: what the remote caches did for each build.
--
-- One `cache_runs` row per `brr build` that asked a remote cache: counts,
-- bytes and the time spent waiting on remotes. One `cache_run_targets` row
-- per target that was looked up there: a hit (fetched) or a miss (built
-- here, with the builder's duration, from which `brr cache stats` estimates
-- the time later hits of that target saved). Idempotent (IF NOT EXISTS),
-- so the migration may be renumbered when branches are merged.
CREATE TABLE IF NOT EXISTS cache_runs (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    misses INTEGER NOT NULL,
    pushed INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    bytes_up INTEGER NOT NULL,
    wait_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_run_targets (
    run INTEGER NOT NULL REFERENCES cache_runs (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    hit INTEGER NOT NULL CHECK (hit IN (0, 1)),
    build_ms INTEGER NOT NULL,
    PRIMARY KEY (run, target)
) WITHOUT ROWID;
