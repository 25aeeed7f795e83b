-- brr store, schema version 6: the release stage's objects and the ledger.
--
-- `objects.kind` gains `config`, `release` and `ledger`. SQLite cannot alter
-- a CHECK constraint, so the table is rebuilt with the same columns and
-- rows; the new CHECK lists every kind `brr_hash::ObjectKind` knows.
CREATE TABLE objects_v6 (
    hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'tree', 'action', 'artifact', 'config', 'release', 'ledger')),
    size INTEGER NOT NULL CHECK (size >= 0),
    pack INTEGER REFERENCES packs (id),
    pack_offset INTEGER CHECK (pack_offset >= 0)
) WITHOUT ROWID;
INSERT INTO objects_v6 (hash, kind, size, pack, pack_offset)
    SELECT hash, kind, size, pack, pack_offset FROM objects;
DROP TABLE objects;
ALTER TABLE objects_v6 RENAME TO objects;

-- The ledger: one row per release, promotion or rollback of a service in
-- an environment, in the order they were appended (`id`). Each row's
-- `hash` is the BLAKE3 of its `brr/ledger/1` encoding (see
-- `brr_hash::release`), whose fields are the columns from `previous` to
-- `source_version`; `previous` is the hash of the environment's previous
-- row, so the rows of an environment form a hash chain that `brr ledger
-- verify` walks. `build` and `config` repeat what the release object says
-- (for queries without decoding it); `log` is the release phase's output,
-- and with `build` and `config` is checked but not hashed.
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    previous BLOB CHECK (previous IS NULL OR length(previous) = 32),
    env TEXT NOT NULL CHECK (env <> ''),
    service TEXT NOT NULL CHECK (service <> ''),
    version INTEGER NOT NULL CHECK (version >= 1),
    release BLOB NOT NULL CHECK (length(release) = 32),
    action TEXT NOT NULL CHECK (action IN ('release', 'promote', 'rollback')),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    actor TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    note TEXT,
    source_env TEXT,
    source_version INTEGER CHECK (source_version IS NULL OR source_version >= 1),
    build BLOB NOT NULL CHECK (length(build) = 32),
    config BLOB NOT NULL CHECK (length(config) = 32),
    log BLOB CHECK (log IS NULL OR length(log) = 32),
    CHECK ((source_env IS NULL) = (source_version IS NULL)),
    UNIQUE (env, service, version)
);
-- A chain cannot fork: an entry has at most one successor, and an
-- environment has one first entry.
CREATE UNIQUE INDEX ledger_successor ON ledger (env, previous) WHERE previous IS NOT NULL;
CREATE UNIQUE INDEX ledger_first ON ledger (env) WHERE previous IS NULL;
CREATE INDEX ledger_by_release ON ledger (release);
CREATE INDEX ledger_by_env ON ledger (env, id);

-- Append-only: a row, once written, is never changed or removed.
CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only: an entry cannot be changed');
END;
CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only: an entry cannot be removed');
END;
