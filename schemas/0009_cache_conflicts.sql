-- brr store, schema version 9: cache conflicts seen by this runner.
--
-- A conflict: a remote cache already held a trusted entry for a build key
-- that names another artifact than the one built here (two machines built
-- different bytes from the same inputs). One row per (key, remote, local
-- artifact, remote artifact), with the remote entry's signer and when it
-- was first and last seen. `remote` is the URL as shown in messages, with
-- any credentials already hidden (`http://***@host`): no secret is stored.
-- Idempotent (IF NOT EXISTS), so the migration may be renumbered when
-- branches that add migrations are merged.
CREATE TABLE IF NOT EXISTS cache_conflicts (
    key BLOB NOT NULL CHECK (length(key) = 32),
    remote TEXT NOT NULL,
    local BLOB NOT NULL CHECK (length(local) = 32),
    theirs BLOB NOT NULL CHECK (length(theirs) = 32),
    signer TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (key, remote, local, theirs)
) WITHOUT ROWID;
