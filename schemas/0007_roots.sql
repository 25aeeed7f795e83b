-- brr store, schema version 7: roots, what deleting must keep.
--
-- A root pins one object (a release, a build's artifact, any object) by
-- name: deleting keeps it and everything it references, transitively. A
-- root is written only for an object that has a row, in the same
-- transaction that checks it, and deleting never removes a rooted object,
-- so `hash` always names a recorded object. Adding a root under a name in
-- use moves that name (as a Nix GC root symlink is replaced).
--
-- `IF NOT EXISTS`: versions count migrations by position, and this one was
-- written beside `0008_runs.sql`, which main applies as version 7. Listed
-- after it in `MIGRATIONS`, a store of either branch upgrades: one with
-- `runs` gets this, one with `roots` runs this again harmlessly.
CREATE TABLE IF NOT EXISTS roots (
    name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    -- Why it is kept, for people (`pinned by ci`, `production v12`).
    reason TEXT NOT NULL,
    -- Unix milliseconds when it was added.
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS roots_by_hash ON roots (hash);
