-- brr store, schema version 1.
--
-- Migrations are append-only: never edit a released file, add the next one.
-- Each file runs in one transaction, and `PRAGMA user_version` records how
-- many have been applied. Digests are raw 32-byte BLOBs, never hex text.
--
-- The invariant every table keeps: a row that names an object is committed
-- only after that object's file is fully written, synced and renamed into
-- `cas/`, so a row never points at a missing or partial file.

-- "brr!" in ASCII: marks the file as a brr store.
PRAGMA application_id = 1651667489;

-- Every object whose file is in place. An object row is written only when
-- every object it references already has a row (trees: their entries;
-- artifacts: their outputs tree; action keys: sources and dependencies), so
-- the rows are closed under references.
CREATE TABLE objects (
    hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'tree', 'action', 'artifact')),
    size INTEGER NOT NULL CHECK (size >= 0)
) WITHOUT ROWID;

-- Action cache: build key -> artifact. Written after the artifact object.
CREATE TABLE action_cache (
    key BLOB PRIMARY KEY NOT NULL CHECK (length(key) = 32),
    artifact BLOB NOT NULL CHECK (length(artifact) = 32),
    log BLOB CHECK (log IS NULL OR length(log) = 32),
    duration_ms INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Build history: one row per target per build or cached use.
CREATE TABLE builds (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    key BLOB NOT NULL CHECK (length(key) = 32),
    artifact BLOB CHECK (artifact IS NULL OR length(artifact) = 32),
    status TEXT NOT NULL CHECK (status IN ('built', 'cached', 'failed')),
    log BLOB CHECK (log IS NULL OR length(log) = 32),
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX builds_by_target ON builds (target, id);

-- Stat cache (git-index style): a path's stat fields -> its blob digest.
-- `path` holds the path's raw bytes (paths need not be UTF-8). The digest
-- need not be in `objects`: this only saves re-hashing workspace files.
CREATE TABLE stat_cache (
    path BLOB PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    recorded_ns INTEGER NOT NULL
) WITHOUT ROWID;
